"""Settings, read once at the edge (the CLI) and passed inward.

Every setting is declared once, below, as a field of :class:`Settings`: its type, its
default, its environment variable (the field's alias) and its help text (the field's
description). Names and defaults of the ``KAFKA_``/``REDIS_``/``SITUATION_`` ones follow
../shared/contract/situation-api.md; the ``TK_`` ones are ours.

``Settings(**values)`` takes values by attribute name and never reads the environment;
``Settings.from_env()`` reads ``os.environ`` (or an explicit mapping instead of it).
An empty variable means its default.

>>> s = Settings.from_env({"SITUATION_MIN_CELL": "3", "TK_FAMILY_TYPES": "off"})
>>> s.min_cell, s.family_types, s.partitions
(3, False, 4)
>>> Settings.from_env({"SITUATION_MIN_CELL": "0"})
Traceback (most recent call last):
...
tilannekuva.config.ConfigError: SITUATION_MIN_CELL='0': input should be greater than or equal to 1

The README's configuration table is this module's output:
``python -m tilannekuva.config --markdown``.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BeforeValidator, Field, ValidationError
from pydantic.config import JsonDict
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

# Topics of the output contract (the defaults of the topic settings below).
TOPIC_INPUT = "register-events"
TOPIC_DLQ = "register-events-dlq"
TOPIC_ALERTS = "situation-alerts"
# Internal topics, named "<app id>-<suffix>": only pseudonymised data ever reaches them.
TOPIC_BY_ID = "events-by-id"  # keyed by event_id: dedup and retractions
TOPIC_BY_PERSON = "events-by-person"  # keyed by person pseudonym
TOPIC_FAMILY_INPUTS = "family-inputs"  # keyed by family pseudonym
TOPIC_VECTORS = "family-vectors"  # one partition: family vectors for the one learner
TOPIC_MODEL = "model-changelog"  # compacted changelog of the learner's snapshot table
PICTURE_TOPICS = (TOPIC_BY_ID, TOPIC_BY_PERSON, TOPIC_FAMILY_INPUTS)  # an event's path
INTERNAL_TOPICS = (*PICTURE_TOPICS, TOPIC_VECTORS)


class ConfigError(RuntimeError):
    """A setting is missing or malformed."""


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _flag(value: Any) -> Any:
    """0/1, true/false, yes/no, on/off (any case) as a bool; nothing else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ValueError("must be 0/1, true/false, yes/no or on/off")


Flag = Annotated[bool, BeforeValidator(_flag)]
#: models.detection.METHODS (a test holds the two equal; config imports no model code)
AlertMethod = Literal["cusum", "level", "farrington", "rise5pp"]


def _setting(default: Any, env: str, help: str, *, unset: str | None = None, **kw: Any) -> Any:
    """One setting: its default, environment variable and help text, said once.

    ``unset`` says what happens when a setting without a default is not set.
    """
    extra: JsonDict | None = {"unset": unset} if unset else None
    return Field(default, validation_alias=env, description=help, json_schema_extra=extra, **kw)


class Settings(BaseSettings):
    """Every setting of tilannekuva (see the module doc)."""

    model_config = SettingsConfigDict(
        frozen=True,
        populate_by_name=True,  # Settings(min_cell=3): by attribute name
        extra="forbid",
        case_sensitive=True,
        env_ignore_empty=True,  # an empty variable means the default
        env_file=None,
        secrets_dir=None,
        hide_input_in_errors=True,  # ConfigError says the value, unless it is a secret
        protected_namespaces=("settings_",),  # model_warmup is ours (older pydantic warns)
    )

    kafka_bootstrap: str = _setting("localhost:9092", "KAFKA_BOOTSTRAP", "Kafka bootstrap servers")
    redis_url: str = _setting("redis://localhost:6379/0", "REDIS_URL", "Redis")
    api_port: int = _setting(8080, "SITUATION_API_PORT", "HTTP API port", ge=0, le=65535)
    api_token: str | None = _setting(
        None,
        "SITUATION_API_TOKEN",
        "API bearer token",
        unset="none: only `/healthz` answers, everything else is 401",
        repr=False,
    )
    audit_token: str | None = _setting(
        None,
        "SITUATION_AUDIT_TOKEN",
        "the data controller's token for the exact counts (/api/v1/audit/…)",
        unset="none: the audit paths answer 401",
        repr=False,
    )
    pseudonym_key: str | None = _setting(
        None,
        "SITUATION_PSEUDONYM_KEY",
        "pseudonymisation key (≥ 16 chars)",
        unset="none: workers refuse to start",
        repr=False,
    )
    min_cell: int = _setting(5, "SITUATION_MIN_CELL", "small-cell threshold", ge=1)
    partitions: int = _setting(4, "TK_PARTITIONS", "partitions of the topics", ge=1)
    # Standby table copies in the other workers: faster fail-over, more CPU.
    standby_replicas: int = _setting(
        1,
        "TK_STANDBY_REPLICAS",
        "standby table copies per worker (0 saves CPU on a small machine)",
        ge=0,
    )
    # A killed worker keeps its partitions until the group gives up on it.
    session_timeout_s: float = _setting(
        60.0,
        "TK_SESSION_TIMEOUT_S",
        "seconds before the group takes the partitions of a worker that died",
        gt=0,
        allow_inf_nan=False,
    )
    # RocksDB keeps the tables on disk with the changelog offset they hold, so a restart
    # reads only what it missed; in memory every start replays every changelog.
    store: Literal["rocksdb", "memory"] = _setting(
        "rocksdb", "TK_STORE", "where a worker keeps its tables: `rocksdb` (on disk) or `memory`"
    )
    data_dir: str = _setting(
        "var/faust",
        "TK_DATA_DIR",
        "a worker's local state (its RocksDB tables), one directory per app id, host and web port",
        min_length=1,
    )
    input_retention_ms: int = _setting(
        3_600_000, "TK_INPUT_RETENTION_MS", "retention of `register-events` in ms (1 h)", ge=1
    )
    app_id: str = _setting(
        "tilannekuva",
        "TK_APP_ID",
        "Faust app id: prefix of internal topics; consumer groups `<id>` and `<id>-ingest`",
        min_length=1,
    )
    # Overridable so that integration tests run isolated on a shared broker.
    input_topic: str = _setting(TOPIC_INPUT, "TK_INPUT_TOPIC", "input topic", min_length=1)
    dlq_topic: str = _setting(TOPIC_DLQ, "TK_DLQ_TOPIC", "dead-letter topic", min_length=1)
    alerts_topic: str = _setting(TOPIC_ALERTS, "TK_ALERTS_TOPIC", "alert topic", min_length=1)
    # Shift alerts (models/detection.py): the leader worker detects every interval.
    alert_interval_s: float = _setting(
        15.0,
        "TK_ALERT_INTERVAL_S",
        "shift alerts: seconds between ticks",
        gt=0,
        allow_inf_nan=False,
    )
    alert_method: AlertMethod = _setting(
        "cusum", "TK_ALERT_METHOD", "shift alerts: detection method (docs/alerts.md)"
    )
    alert_q: float = _setting(
        0.05,
        "TK_ALERT_Q",
        "shift alerts: false discovery rate of a tick (Benjamini-Hochberg)",
        gt=0,
        lt=1,
        allow_inf_nan=False,
    )
    alert_min_families: int = _setting(
        20, "TK_ALERT_MIN_FAMILIES", "shift alerts: shown families needed", ge=0
    )
    # Family types and service-need groups (models/family_types.py).
    family_types: Flag = _setting(
        True,
        "TK_FAMILY_TYPES",
        "family types and service-need groups (off: picture only, much faster)",
    )
    impact: Flag = _setting(
        False,
        "TK_IMPACT",
        "service cohorts in the worker, for /api/v1/impact (with family types; costs CPU)",
    )
    n_types: int = _setting(100, "TK_N_TYPES", "number of family types", ge=1)
    model_warmup: int = _setting(5000, "TK_MODEL_WARMUP", "learner warm-up vectors", ge=0)
    snapshot_days: int = _setting(
        30, "TK_SNAPSHOT_DAYS", "family-type snapshot every N days of W", ge=1
    )
    snapshot_min_interval_s: float = _setting(
        60.0,
        "TK_SNAPSHOT_MIN_INTERVAL_S",
        "family-type snapshot at most every S seconds",
        ge=0,
        allow_inf_nan=False,
    )
    snapshot_adoption_share: float = _setting(
        0.1,
        "TK_SNAPSHOT_ADOPTION_SHARE",
        "family-type snapshots: most of the workers' time their re-assignment may take",
        gt=0,
        le=1,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Settings(...) holds what it is given and the defaults, nothing else: the
        # environment is read by from_env only, so tests are hermetic.
        return (init_settings,)

    @classmethod
    def env_vars(cls) -> dict[str, str]:
        """Attribute name -> its environment variable, for every setting."""
        return {name: str(f.validation_alias) for name, f in cls.model_fields.items()}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings from ``env`` (None: ``os.environ``), which is used *instead of*
        the process environment; no ``.env`` file is read. Raises :class:`ConfigError`."""
        environ = os.environ if env is None else env
        values = _EnvMapping(cls, environ)()
        try:
            return cls(**values)
        except ValidationError as err:
            raise ConfigError(_explain(cls, err, values)) from None

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (by attribute name), validated like the original.

        Raises :class:`ConfigError`."""
        values = {**self.model_dump(), **changes}
        try:
            return type(self)(**values)
        except ValidationError as err:
            raise ConfigError(_explain(type(self), err, values)) from None

    def __repr_args__(self):
        # Secrets are repr=False; a password inside REDIS_URL is masked too.
        for name, value in super().__repr_args__():
            if name == "redis_url" and isinstance(value, str):
                value = _mask_password(value)
            yield name, value

    def internal_topic(self, suffix: str) -> str:
        return f"{self.app_id}-{suffix}"

    @property
    def ingest_group(self) -> str:
        """The consumer group of the ingest's own consumer of the input topic (Faust's
        group, ``app_id``, reads the internal topics)."""
        return f"{self.app_id}-ingest"

    def consumer_groups(self, internal: Sequence[str] = INTERNAL_TOPICS) -> dict[str, list[str]]:
        """``{group: the topics it commits}``: the input topic by the ingest's group, the
        ``internal`` topics (suffixes; default all) by Faust's."""
        return {
            self.ingest_group: [self.input_topic],
            self.app_id: [self.internal_topic(t) for t in internal],
        }

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


SECRETS = frozenset(name for name, f in Settings.model_fields.items() if not f.repr)


class _EnvMapping(EnvSettingsSource):
    """pydantic-settings' environment source over an explicit mapping.

    It reads the declared variables only (not also the attribute names, which
    pydantic-settings would with ``populate_by_name``), and empty ones not at all.
    """

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        fields = self.settings_cls.model_fields.values()
        names = [str(f.validation_alias) for f in fields]
        return {n: self._environ[n] for n in names if self._environ.get(n) not in (None, "")}


def _mask_password(url: str) -> str:
    """``redis://:secret@host/0`` -> ``redis://:***@host/0``."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _explain(cls: type[Settings], err: ValidationError, given: Mapping[str, Any]) -> str:
    """One line naming each bad variable (or attribute) and its value (never a secret's)."""
    by_var = {var: name for name, var in cls.env_vars().items()}
    by_var.update({name: name for name in cls.model_fields})
    parts = []
    for e in err.errors():
        var = str(e["loc"][0]) if e["loc"] else "?"
        msg = e["msg"].removeprefix("Value error, ")
        msg = msg[:1].lower() + msg[1:]
        value = "<hidden>" if by_var.get(var) in SECRETS else repr(given.get(var))
        parts.append(f"{var}={value}: {msg}")
    return "; ".join(parts)


def _env_default(field: FieldInfo) -> str:
    """A field's default as one would write it in the environment."""
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    value = field.default
    if value is None:
        return str(extra.get("unset") or "none")
    if isinstance(value, bool):
        return f"`{int(value)}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def markdown_table() -> str:
    """The README's configuration table: every setting, its variable and default."""
    rows = ["| setting | environment variable | default |", "| --- | --- | --- |"]
    for field in Settings.model_fields.values():
        rows.append(f"| {field.description} | `{field.validation_alias}` | {_env_default(field)} |")
    return "\n".join(rows) + "\n"


#: The collector's young-generation threshold (CPython's default: 700). Every state read
#: decodes a tree of lists and dicts, and each 700 new containers started a collection;
#: with 50,000 (set for the drill's processes through a sitecustomize) the worker caught
#: up on 200,000 lines (RocksDB, family types on) in 280 and 272 s against 293 and 293 s,
#: runs alternating (bench/README.md, session 21). The states are acyclic, so reference
#: counting frees them and little waits for the collector. The batch commands hold every
#: state in memory, where the default's full collections walk all of them: the in-process
#: steps over the first 1,000,000 lines of a 20,000-family history took 119 s, 34 s of
#: it in 20 full collections, and 92 s with none (bench/README.md, session 39). At
#: 50,000 a worker's batch (16 envelopes, up to 4,000 states decoded at once) still
#: started young collections that walked its live states. Timed as
#: ``tk_gc_seconds_total`` times them, over the drill's 200,000 lines the young and middle
#: generations took 2.4-3.4 s of the worker's 39-53 s of CPU, and 0.0-0.07 s at 500,000;
#: in the in-process steps with the types over 200,000 lines the collector took 1.9-2.5 s
#: and 0.9-1.1 s (the two last pairs 24.6 / 23.4 s and 24.4 / 23.9 s in all;
#: bench/README.md, session 45).
GC_THRESHOLD = (500_000, 20, 10)


def tune_gc() -> None:
    """Set :data:`GC_THRESHOLD` for this process (and the processes it forks): every
    command (:func:`tilannekuva.cli.main`) and the benchmarks that stand for them."""
    gc.set_threshold(*GC_THRESHOLD)


def one_blas_thread() -> None:
    """One BLAS thread in this process: the API's suppression (an SVD per component of
    hidden cells) took as long on two BLAS threads and 1.8 times the CPU (the second
    thread waits spinning), beside a worker that needs the cores (bench/README.md,
    session 29). The services call it, not the batch commands."""
    # threadpoolctl limits the libraries loaded when it is called: numpy's BLAS and
    # scipy's own (suppression's LAPACK calls) are loaded first.
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tilannekuva.config", description="tilannekuva's settings"
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print the README's configuration table"
    )
    args = parser.parse_args(argv)
    if not args.markdown:
        parser.print_help()
        return 2
    sys.stdout.write(markdown_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
