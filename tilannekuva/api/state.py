"""What an API app carries: its settings, Redis client, OpenAPI document and state.

The keys live here, not in ``app.py``, so that handlers and middleware can import them
without importing the factory that imports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tilannekuva.config import Settings

SETTINGS = web.AppKey("settings", Settings)
HISTORY = web.AppKey("history", object)  # a tilannekuva.api.history.HistoryCache
TYPES = web.AppKey("types", object)  # a tilannekuva.api.types.TypesCache
IMPACT = web.AppKey("impact", object)  # a tilannekuva.api.impact.ImpactCache
REDIS = web.AppKey("redis", object)  # a redis.asyncio.Redis, bytes or str responses
OPENAPI = web.AppKey("openapi", dict)


@dataclass
class Metrics:
    """The API's collectors, in a registry of each app's own, so that several apps in
    one process (the tests, the demo) do not collide in the global registry."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    history_days: Counter
    events: Counter
    share: Gauge
    streams: Gauge

    @classmethod
    def create(cls) -> Metrics:
        reg = CollectorRegistry(auto_describe=True)
        return cls(
            registry=reg,
            requests=Counter(
                "tk_api_requests",
                "HTTP requests answered",
                ["method", "route", "status"],
                registry=reg,
            ),
            latency=Histogram(
                "tk_api_request_duration_seconds", "HTTP request latency", ["route"], registry=reg
            ),
            history_days=Counter(
                "tk_api_history_days_suppressed",
                "days of the history whose whole picture was suppressed (anew or changed)",
                registry=reg,
            ),
            events=Counter("tk_api_stream_events", "server-sent area events", registry=reg),
            share=Gauge(
                "tk_area_indicator_share",
                "Share of counted families with the indicator, per municipality (shown counts only)",
                ["municipality", "indicator"],
                registry=reg,
            ),
            streams=Gauge("tk_api_stream_clients", "open server-sent event streams", registry=reg),
        )


@dataclass
class State:
    heartbeat_s: float  # the SSE stream's comment interval while nothing changes
    metrics: Metrics = field(default_factory=Metrics.create)


STATE = web.AppKey("state", State)
