"""Settings, read once at the edge (the CLI) and passed inward.

Names and defaults follow ../shared/contract/situation-api.md; the rest are ours.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

# Topics of the output contract.
TOPIC_INPUT = "register-events"
TOPIC_DLQ = "register-events-dlq"
TOPIC_ALERTS = "situation-alerts"
# Internal topics, named "<app id>-<suffix>": only pseudonymised data ever reaches them.
TOPIC_BY_ID = "events-by-id"  # keyed by event_id: dedup and retractions
TOPIC_BY_PERSON = "events-by-person"  # keyed by person pseudonym
TOPIC_FAMILY_INPUTS = "family-inputs"  # keyed by family pseudonym
TOPIC_VECTORS = "family-vectors"  # one partition: family vectors for the one learner
TOPIC_MODEL = "model-changelog"  # compacted changelog of the learner's snapshot table
INTERNAL_TOPICS = (TOPIC_BY_ID, TOPIC_BY_PERSON, TOPIC_FAMILY_INPUTS, TOPIC_VECTORS)


class ConfigError(RuntimeError):
    """A setting is missing or malformed."""


def _int(env: dict, name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _float(env: dict, name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def _bool(env: dict, name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 0/1, true/false, yes/no or on/off, got {raw!r}")


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = "localhost:9092"
    redis_url: str = "redis://localhost:6379/0"
    api_port: int = 8080
    api_token: str | None = None
    pseudonym_key: str | None = field(default=None, repr=False)
    min_cell: int = 5
    partitions: int = 4
    standby_replicas: int = 1
    session_timeout_s: float = 60.0
    input_retention_ms: int = 3_600_000
    app_id: str = "tilannekuva"
    input_topic: str = TOPIC_INPUT
    dlq_topic: str = TOPIC_DLQ
    alerts_topic: str = TOPIC_ALERTS
    # Trend alerts (models/alerts.py): checked by the leader worker every interval.
    alert_interval_s: float = 15.0
    alert_window_days: int = 30
    alert_rise: float = 0.05
    alert_min_families: int = 20
    # Family types and service-need groups (models/family_types.py).
    family_types: bool = True
    n_types: int = 100
    model_warmup: int = 5000
    snapshot_days: int = 30
    snapshot_min_interval_s: float = 60.0

    @classmethod
    def from_env(cls, env: dict | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        min_cell = _int(env, "SITUATION_MIN_CELL", 5)
        if min_cell < 1:
            raise ConfigError("SITUATION_MIN_CELL must be at least 1")
        return cls(
            kafka_bootstrap=env.get("KAFKA_BOOTSTRAP") or "localhost:9092",
            redis_url=env.get("REDIS_URL") or "redis://localhost:6379/0",
            api_port=_int(env, "SITUATION_API_PORT", 8080),
            api_token=env.get("SITUATION_API_TOKEN") or None,
            pseudonym_key=env.get("SITUATION_PSEUDONYM_KEY") or None,
            min_cell=min_cell,
            partitions=_int(env, "TK_PARTITIONS", 4),
            # Standby table copies in the other workers: faster fail-over, more CPU.
            standby_replicas=_int(env, "TK_STANDBY_REPLICAS", 1),
            # A killed worker keeps its partitions until the group gives up on it.
            session_timeout_s=_float(env, "TK_SESSION_TIMEOUT_S", 60.0),
            input_retention_ms=_int(env, "TK_INPUT_RETENTION_MS", 3_600_000),
            app_id=env.get("TK_APP_ID") or "tilannekuva",
            # Overridable so that integration tests run isolated on a shared broker.
            input_topic=env.get("TK_INPUT_TOPIC") or TOPIC_INPUT,
            dlq_topic=env.get("TK_DLQ_TOPIC") or TOPIC_DLQ,
            alerts_topic=env.get("TK_ALERTS_TOPIC") or TOPIC_ALERTS,
            alert_interval_s=_float(env, "TK_ALERT_INTERVAL_S", 15.0),
            alert_window_days=_int(env, "TK_ALERT_WINDOW_DAYS", 30),
            alert_rise=_float(env, "TK_ALERT_RISE", 0.05),
            alert_min_families=_int(env, "TK_ALERT_MIN_FAMILIES", 20),
            family_types=_bool(env, "TK_FAMILY_TYPES", True),
            n_types=_int(env, "TK_N_TYPES", 100),
            model_warmup=_int(env, "TK_MODEL_WARMUP", 5000),
            snapshot_days=_int(env, "TK_SNAPSHOT_DAYS", 30),
            snapshot_min_interval_s=_float(env, "TK_SNAPSHOT_MIN_INTERVAL_S", 60.0),
        )

    def internal_topic(self, suffix: str) -> str:
        return f"{self.app_id}-{suffix}"

    def require_pseudonym_key(self) -> bytes:
        """Workers refuse to start without a key (situation-api.md)."""
        if not self.pseudonym_key:
            raise ConfigError(
                "SITUATION_PSEUDONYM_KEY is not set: workers refuse to start without a "
                "pseudonymisation key"
            )
        if len(self.pseudonym_key) < 16:
            raise ConfigError("SITUATION_PSEUDONYM_KEY must be at least 16 characters")
        return self.pseudonym_key.encode("utf-8")
