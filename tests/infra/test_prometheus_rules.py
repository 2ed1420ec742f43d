"""The Prometheus alert rules are valid, their unit tests pass, and the unit tests
would notice a broken rule. promtool is installed by infra/up: missing = failure."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "infra" / "prometheus"
RULE_TESTS = ["alerts_test.yml", "alerts_trend_test.yml"]


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if not path:
        pytest.fail(
            "promtool not found: install it with `bash infra/up` (Debian package prometheus)"
        )
    return path


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_check_rules(promtool):
    res = run([promtool, "check", "rules", "alerts.yml"], PROM)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout + res.stderr


def test_rule_unit_tests_pass(promtool):
    res = run([promtool, "test", "rules", *RULE_TESTS], PROM)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (res.stdout + res.stderr).count("SUCCESS") == len(RULE_TESTS)


def test_check_config(promtool, tmp_path):
    """prometheus.yml is valid (with the token file path pointed at a temp file)."""
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    token = tmp_path / "api_token"
    token.write_text("test-token")
    for job in config["scrape_configs"]:
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(token)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    shutil.copy(PROM / "alerts.yml", tmp_path / "alerts.yml")
    res = run([promtool, "check", "config", "prometheus.yml"], tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr


def alert_rules() -> list[dict]:
    rules = yaml.safe_load((PROM / "alerts.yml").read_text())
    return [r for g in rules["groups"] for r in g["rules"] if "alert" in r]


def alert_names() -> list[str]:
    return [r["alert"] for r in alert_rules()]


def breakages() -> list[tuple[str, str]]:
    out = []
    for r in alert_rules():
        out.append((r["alert"], "never_fires"))
        if ">" in r["expr"]:
            out.append((r["alert"], "threshold"))
    return out


def test_expected_alerts_exist():
    assert set(alert_names()) >= {
        "TkDeadLetterRateHigh",
        "TkConsumerLagHigh",
        "TkEventToRedisLatencyHigh",
        "TkAreaIndicatorShareRising",
        "TkShiftDetected",
        "TkShiftDetectionBehind",
        "TkWorkerLostMessages",
    }


@pytest.mark.parametrize("alert,breakage", breakages())
def test_unit_tests_catch_a_broken_rule(promtool, tmp_path, alert, breakage):
    """Break one rule on purpose: the unit tests must then fail."""
    rules = yaml.safe_load((PROM / "alerts.yml").read_text())
    rule = next(r for g in rules["groups"] for r in g["rules"] if r.get("alert") == alert)
    if breakage == "never_fires":
        rule["expr"] = "vector(0) > 1"
    else:
        # Raise the threshold (the number after the last '>') a thousandfold.
        head, _, number = rule["expr"].rpartition(">")
        rule["expr"] = f"{head}> ({number.strip()}) * 1000"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    for name in RULE_TESTS:
        shutil.copy(PROM / name, tmp_path / name)
    res = run([promtool, "test", "rules", *RULE_TESTS], tmp_path)
    assert res.returncode != 0, f"breaking {alert} ({breakage}) went unnoticed:\n{res.stdout}"
    assert alert in res.stdout + res.stderr
