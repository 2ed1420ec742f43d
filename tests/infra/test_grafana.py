"""The Grafana operations dashboard (infra/grafana): it parses, Grafana provisions it from
the folder docker-compose.yml mounts, every panel queries the provisioned Prometheus
datasource, and every metric and label a query names is one the code exports.

The exported names are not listed here: they come from the collectors the worker
(``sinks.metrics``, in the default registry its /metrics serves) and the API
(``tilannekuva.api.state.Metrics``, a registry of each app's own) really build.
No Docker, Grafana or Prometheus server is needed; promtool checks the PromQL syntax.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    generate_latest,
)
from prometheus_client.metrics import MetricWrapperBase

from sinks import metrics as worker_metrics
from tilannekuva.api.state import Metrics as ApiMetrics

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "infra" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "tilannekuva-operations.json"
PROVIDER = GRAFANA / "provisioning" / "dashboards" / "tilannekuva.yml"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
COMPOSE = ROOT / "docker-compose.yml"

# What the issue asks the dashboard to show, as the series it must query.
REQUIRED_SERIES = {
    "tk_events_in_total",  # events/s per step
    "tk_events_out_total",
    "tk_consumer_lag",
    "tk_event_to_redis_seconds_bucket",  # event -> Redis latency quantiles
    "tk_events_rejected_total",  # DLQ by reason
    "tk_api_requests_total",  # API requests by route and status
    "tk_api_request_duration_seconds_bucket",  # API latency by route
    "tk_alerts_raised_total",
}
# Labels Prometheus adds to every scraped series (not the code's).
TARGET_LABELS = {"job", "instance"}

# prometheus-client's exposition: the series of a metric family, by its type.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),  # quantiles (bare name): not in this client
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "unknown": ("",),
}

# PromQL words that are neither metrics nor labels (functions are told by their "(").
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


# --- what the code exports --------------------------------------------------------------


def family_series(family) -> set[str]:
    """The series names prometheus-client exposes for one collected metric family."""
    return {family.name + s for s in SUFFIXES[family.type]} | {s.name for s in family.samples}


def exported_series(collectors, registry: CollectorRegistry) -> dict[str, set[str]]:
    """Series name -> label names, for ``collectors`` as ``registry`` serves them."""
    served = {family.name for family in registry.collect()}
    out: dict[str, set[str]] = {}
    for collector in collectors:
        # A labelled metric without children yields no samples: its label names are
        # the collector's own (prometheus-client keeps them in ``_labelnames``).
        labels = set(collector._labelnames)
        for family in collector.collect():
            assert family.name in served, f"{family.name} is not in the registry served"
            for name in family_series(family):
                out[name] = (labels | {"le"}) if name.endswith("_bucket") else labels
    return out


@pytest.fixture(scope="module")
def exported() -> dict[str, set[str]]:
    """Every tk_ series the worker's and the API's /metrics expose, with its labels."""
    worker = [
        v for v in vars(worker_metrics).values() if isinstance(v, MetricWrapperBase)
    ]  # streams/ops.py serves the default registry
    api = ApiMetrics.create()  # handlers.metrics serves api.registry + the default one
    api_collectors = [
        getattr(api, f.name)
        for f in fields(api)
        if isinstance(getattr(api, f.name), MetricWrapperBase)
    ]
    assert worker and api_collectors
    out = exported_series(worker, REGISTRY)
    out.update(exported_series(api_collectors, api.registry))
    out.update(custom_series(worker_metrics.GC_SECONDS))  # both serve it, once installed
    return {name: labels for name, labels in out.items() if name.startswith("tk_")}


def custom_series(collector) -> dict[str, set[str]]:
    """Series name -> label names of a custom collector (its samples carry its labels),
    as a registry it is installed in serves them."""
    registry = CollectorRegistry()
    registry.register(collector)
    served = {family.name for family in registry.collect()}
    out: dict[str, set[str]] = {}
    for family in collector.collect():
        assert family.name in served
        labels = {label for sample in family.samples for label in sample.labels}
        for name in family_series(family):
            out[name] = labels
    return out


def test_suffix_rules_match_the_library():
    """The suffix rules are prometheus-client's own: compare with real exposition."""
    reg = CollectorRegistry()
    Counter("x_total", "c", ["a"], registry=reg).labels("1").inc()
    Counter("y", "c", registry=reg).inc()
    Gauge("g", "g", ["a"], registry=reg).labels("1").set(1)
    Histogram("h_seconds", "h", ["a"], registry=reg).labels("1").observe(1)
    Summary("s", "s", registry=reg).observe(1)
    text = generate_latest(reg).decode()
    real = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    by_rules = set().union(*(family_series(f) for f in reg.collect()))
    assert by_rules == real


def test_exported_names_are_real(exported):
    assert "tk_events_in_total" in exported
    assert exported["tk_events_rejected_total"] == {"reason"}
    assert "tk_event_to_redis_seconds_bucket" in exported
    assert "tk_event_to_redis_seconds_total" not in exported  # a histogram has no _total
    assert "tk_events_in" not in exported  # a counter's bare family name is not a series
    assert exported["tk_api_requests_total"] == {"method", "route", "status"}
    assert exported["tk_api_request_duration_seconds_bucket"] == {"route", "le"}
    assert exported["tk_gc_seconds_total"] == {"generation"}


# --- what a query names -----------------------------------------------------------------


def parse_promql(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) an expression refers to."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # string literals
    s = re.sub(r"\[[^\]]*\]", "", s)  # ranges and subqueries: [5m], [$__rate_interval]
    s = re.sub(r"\$\{?\w+\}?", "", s)  # dashboard variables
    labels: set[str] = set()
    for matchers in re.findall(r"\{([^{}]*)\}", s):
        labels |= set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    s = re.sub(r"\{[^{}]*\}", " ", s)
    for _, names in GROUPING.findall(s):
        labels |= set(IDENT.findall(names))
    s = GROUPING.sub(" ", s)  # "sum by (x) (...)" -> "sum (...)": a function
    s = re.sub(r"(?<![\w:])\d[\w.]*", " ", s)  # numbers and durations: 0.95, 1e3, 1h30m
    metrics = set()
    for m in IDENT.finditer(s):
        word = m.group()
        if word.lower() in KEYWORDS or re.match(r"\s*\(", s[m.end() :]):
            continue  # a keyword, or a function / aggregation
        metrics.add(word)
    return metrics, labels


def iter_panels(panels: list[dict]):
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))  # collapsed rows


def problems(dashboard: dict, exported: dict[str, set[str]], ds_uid: str) -> list[str]:
    """Everything wrong with the dashboard's panels; empty when it is fine."""
    out = []
    for panel in iter_panels(dashboard["panels"]):
        title = panel.get("title", panel.get("id"))
        if panel.get("type") == "row":
            continue
        if panel.get("datasource", {}).get("uid") != ds_uid:
            out.append(f"{title}: panel datasource is not {ds_uid}")
        targets = panel.get("targets") or []
        if not targets:
            out.append(f"{title}: no targets")
        for t in targets:
            where = f"{title} [{t.get('refId')}]"
            if t.get("datasource", {}).get("uid") != ds_uid:
                out.append(f"{where}: target datasource is not {ds_uid}")
            expr = t.get("expr", "")
            names, labels = parse_promql(expr)
            if not names:
                out.append(f"{where}: names no metric: {expr!r}")
            for name in sorted(names - set(exported)):
                out.append(f"{where}: {name} is not exported by the code")
            known = set().union(*(exported.get(n, set()) for n in names)) | TARGET_LABELS
            labels |= set(re.findall(r"\{\{\s*(\w+)\s*\}\}", t.get("legendFormat", "")))
            for label in sorted(labels - known):
                out.append(f"{where}: label {label!r} is not on {sorted(names)}")
            groupings = [IDENT.findall(g) for _, g in GROUPING.findall(expr)]
            if "histogram_quantile" in expr and not (
                groupings and all("le" in g for g in groupings)
            ):
                out.append(f"{where}: histogram_quantile must aggregate by (..., le)")
    return out


def test_parse_promql():
    expr = (
        'histogram_quantile(0.95, sum by (route, le) (rate(tk_a_bucket{job="x", route!~"/m.*"}'
        "[$__rate_interval]))) / ignoring(job) group_left max(up offset 1h30m) * 1e3 + tk_b2"
    )
    assert parse_promql(expr) == ({"tk_a_bucket", "up", "tk_b2"}, {"route", "le", "job"})
    assert parse_promql("time() / 86400 - max(tk_watermark_days)") == ({"tk_watermark_days"}, set())


# --- the files --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


@pytest.fixture(scope="module")
def ds_uid() -> str:
    sources = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    prom = [s for s in sources if s["type"] == "prometheus"]
    assert len(prom) == 1 and prom[0].get("uid"), "provision one Prometheus with a fixed uid"
    return prom[0]["uid"]


def test_dashboard_identity(dashboard):
    assert dashboard["uid"] == "tk-operations"
    assert dashboard["title"] == "tilannekuva — operations"
    assert dashboard["schemaVersion"] >= 39  # Grafana 11
    assert "id" not in dashboard or dashboard["id"] is None  # provisioning assigns ids
    ids = [p["id"] for p in iter_panels(dashboard["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert any(p["type"] == "timeseries" for p in dashboard["panels"])


def test_every_panel_queries_exported_metrics(dashboard, exported, ds_uid):
    assert problems(dashboard, exported, ds_uid) == []


def test_dashboard_shows_what_the_issue_asks(dashboard):
    named = set()
    for panel in iter_panels(dashboard["panels"]):
        for t in panel.get("targets", []):
            named |= parse_promql(t["expr"])[0]
    assert REQUIRED_SERIES <= named, REQUIRED_SERIES - named


@pytest.mark.parametrize(
    "old,new",
    [
        ("tk_events_in_total", "tk_events_inn_total"),  # a typo
        ("tk_event_to_redis_seconds_bucket", "tk_event_to_redis_seconds_total"),  # wrong suffix
        ("tk_consumer_lag", "tk_consumer_lag_total"),  # a gauge has no _total
        ("tk_events_in_total", "tk_events_in"),  # a counter's family name
        ("by (reason)", "by (step)"),  # a label the metric does not have
        ("sum by (le)", "sum"),  # a quantile of buckets summed over le
        ("tk-prometheus", "some-other-uid"),  # not the provisioned datasource
    ],
)
def test_a_broken_dashboard_is_caught(dashboard, exported, ds_uid, old, new):
    """The same check as above fails on a dashboard broken on purpose."""
    text = json.dumps(dashboard, ensure_ascii=False)
    assert old in text
    broken = json.loads(text.replace(old, new))
    assert problems(broken, exported, ds_uid), f"{old} -> {new} went unnoticed"


def test_a_panel_without_targets_is_caught(dashboard, exported, ds_uid):
    broken = copy.deepcopy(dashboard)
    broken["panels"][0]["targets"] = []
    assert any("no targets" in p for p in problems(broken, exported, ds_uid))


def test_promql_syntax(dashboard, tmp_path):
    """promtool parses every query (as a recording rule; Grafana's $__ intervals = 5m)."""
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.fail(
            "promtool not found: install it with `bash infra/up` (Debian package prometheus)"
        )
    rules = [
        {
            "record": f"tk_dashboard_check:panel{panel['id']}_{t['refId']}",
            "expr": re.sub(r"\$\{?__\w+\}?", "5m", t["expr"]),
        }
        for panel in iter_panels(dashboard["panels"])
        for t in panel.get("targets", [])
    ]
    (tmp_path / "rules.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    res = subprocess.run(
        [promtool, "check", "rules", "rules.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def grafana_volumes() -> dict[str, tuple[str, str]]:
    """Container path -> (host path, mode) of the grafana service's volumes."""
    compose = yaml.safe_load(COMPOSE.read_text())
    out = {}
    for volume in compose["services"]["grafana"]["volumes"]:
        host, container, *mode = volume.split(":")
        out[container] = (host, mode[0] if mode else "rw")
    return out


def test_provider_path_is_the_compose_mount():
    volumes = grafana_volumes()
    # The provider file itself is under the mounted provisioning folder.
    host, mode = volumes["/etc/grafana/provisioning"]
    assert (ROOT / host).resolve() == PROVIDER.parent.parent.resolve() and mode == "ro"
    providers = yaml.safe_load(PROVIDER.read_text())["providers"]
    assert [p["type"] for p in providers] == ["file"]
    path = providers[0]["options"]["path"]
    assert path in volumes, f"provider path {path} is not a volume of the grafana service"
    host, mode = volumes[path]
    assert mode == "ro"
    assert (ROOT / host).resolve() == DASHBOARD.parent.resolve()
    assert DASHBOARD.exists()
