"""docker-compose.yml and the Dockerfile: pinned images, real subcommands, contract env.

No Docker engine is needed: the files are parsed, not run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tilannekuva.cli import SUBCOMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PROJECT_SERVICES = {"topics", "worker", "api"}
UNPINNED = {"", "latest", "stable", "main", "master", "edge", "nightly"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def image_tag(image: str) -> str | None:
    """The tag of ``repo[:tag][@digest]`` (None when missing); a digest pins too."""
    if "@sha256:" in image:
        return image.split("@", 1)[1]
    name = image.rsplit("/", 1)[-1]
    return name.split(":", 1)[1] if ":" in name else None


def is_pinned(image: str) -> bool:
    tag = image_tag(image)
    if tag is None or tag.lower() in UNPINNED or "${" in image:
        return False
    # A version, not a moving name: must contain a digit (7.4.1, v2.55.1, 3.11.10-slim).
    return bool(re.search(r"\d", tag))


@pytest.mark.parametrize(
    "image,pinned",
    [
        ("redis:7.4.1", True),
        ("prom/prometheus:v2.55.1", True),
        ("redis", False),
        ("redis:latest", False),
        ("grafana/grafana:main", False),
        ("localhost:5000/redis", False),
        ("python@sha256:" + "a" * 64, True),
    ],
)
def test_pin_checker(image, pinned):
    assert is_pinned(image) is pinned


def test_every_service_has_a_pinned_image(compose):
    services = compose["services"]
    assert services, "no services in docker-compose.yml"
    for name, svc in services.items():
        assert "image" in svc, (
            f"service {name} has no image (built services need a pinned image name too)"
        )
        assert is_pinned(svc["image"]), f"service {name}: image {svc['image']!r} is not pinned"


def test_dockerfile_base_image_is_pinned():
    froms = re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert froms, "Dockerfile has no FROM"
    for image in froms:
        assert is_pinned(image), f"Dockerfile base image {image!r} is not pinned"
        assert image.startswith("python:3.11"), image


def test_kafka_is_3_9_1_in_kraft_mode(compose):
    kafka = compose["services"]["kafka"]
    assert kafka["image"] == "apache/kafka:3.9.1"
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert str(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == "1"
    assert str(env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"]) == "1"
    assert len(env["CLUSTER_ID"]) == 22, "CLUSTER_ID must be a base64 Kafka Uuid"


def test_supporting_images(compose):
    services = compose["services"]
    assert services["redis"]["image"].startswith("redis:7.")
    assert services["prometheus"]["image"].startswith("prom/prometheus:v2.")
    assert services["grafana"]["image"].startswith("grafana/grafana:11.")


def test_project_services_run_real_subcommands(compose):
    services = compose["services"]
    assert PROJECT_SERVICES <= set(services)
    for name in PROJECT_SERVICES:
        svc = services[name]
        assert svc.get("build"), f"{name} must be built from the project's Dockerfile"
        command = svc["command"]
        assert isinstance(command, list), f"{name}: use the exec form of command"
        assert command[0] == "tilannekuva", f"{name}: {command}"
        assert command[1] in SUBCOMMANDS, f"{name}: {command[1]!r} is not a tilannekuva subcommand"
    assert services["topics"]["command"][1] == "topics"
    assert services["worker"]["command"][1] == "worker"
    assert services["api"]["command"][1] == "api"


@pytest.mark.parametrize("service", sorted(PROJECT_SERVICES))
def test_project_service_arguments_parse(compose, service):
    """The whole command line parses: imports the subcommand's module for its arguments."""
    argv = [str(a) for a in compose["services"][service]["command"][1:]]
    args = build_parser(argv).parse_args(argv)
    assert args.command == argv[0]


def test_contract_environment(compose):
    services = compose["services"]
    for name in PROJECT_SERVICES:
        env = services[name]["environment"]
        assert env["KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert env["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD:?")
        assert env["REDIS_URL"].endswith("@redis:6379/0")
    # Secrets come from the user's environment and are required, never defaulted.
    assert services["worker"]["environment"]["SITUATION_PSEUDONYM_KEY"].startswith(
        "${SITUATION_PSEUDONYM_KEY:?"
    )
    assert services["api"]["environment"]["SITUATION_API_TOKEN"].startswith(
        "${SITUATION_API_TOKEN:?"
    )
    text = COMPOSE.read_text()
    for secret in ("REDIS_PASSWORD", "SITUATION_API_TOKEN", "SITUATION_PSEUDONYM_KEY"):
        assert f"${{{secret}:-" not in text, f"{secret} must not have a default"


def test_prometheus_config_is_mounted_and_scrapes_both(compose):
    prom = compose["services"]["prometheus"]
    assert any(v.startswith("./infra/prometheus:/etc/prometheus") for v in prom["volumes"])
    config = yaml.safe_load((ROOT / "infra/prometheus/prometheus.yml").read_text())
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets["tilannekuva-api"] == ["api:8080"]
    assert targets["tilannekuva-worker"] == ["worker:6066"]
    api_job = next(j for j in config["scrape_configs"] if j["job_name"] == "tilannekuva-api")
    assert api_job["authorization"]["type"] == "Bearer"
    assert config["rule_files"] == ["alerts.yml"]
