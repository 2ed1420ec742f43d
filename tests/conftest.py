"""Shared fixtures: the real Kafka broker and Redis server started by ``infra/up``.

Where they are comes from the environment (``KAFKA_BOOTSTRAP``, ``REDIS_URL``) or,
failing that, from ``var/env`` written by ``infra/up``. A server that does not answer
FAILS the tests that need it: integration tests are never skipped to get green.

Any test that uses one of these fixtures is marked ``integration`` automatically, so
``pytest -m "not integration"`` runs the rest without servers.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = ROOT / "var" / "env"
TEST_REDIS_DB = 15  # production uses db 0 (prefix tk:); tests may flushdb this one
WORKER_TESTS = "tests/streams/test_worker.py"


def worker_db() -> int:
    """The Redis db of the worker tests in this xdist worker (gw0: 14, gw1: 13, ...):
    they run side by side, each writing the production key layout."""
    n = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    if n > 13:
        pytest.fail("more than 14 xdist workers: too few Redis dbs for the worker tests")
    return 14 - n


SERVER_FIXTURES = {
    "kafka_bootstrap",
    "kafka_admin",
    "kafka_topic_factory",
    "redis_url",
    "redis_client",
    "redis_test_url",
}
_HINT = "Start the local services with `bash infra/up` (or `make services-up`)."


def _env_file() -> dict[str, str]:
    out: dict[str, str] = {}
    if not ENV_FILE.exists():
        return out
    for line in ENV_FILE.read_text().splitlines():
        m = re.match(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip().strip("'\"")
    return out


def service_setting(name: str) -> str | None:
    """``name`` from the environment, else from var/env (infra/up), else None."""
    return os.environ.get(name) or _env_file().get(name)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """Mark the tests of the real servers ``integration``. Under ``pytest -n N --dist
    loadgroup`` (``make test``) they form one group, run in one worker in their order,
    since they share the Redis test db -- except the worker tests
    (``tests/streams/test_worker.py``), the suite's long ones: each is a group of its
    own, so that they run side by side, each xdist worker with its own Redis db
    (:func:`worker_db`) and every test with its own topics. Every other module is a
    group of its own, so a module's fixtures are built once."""
    for item in items:
        module = item.nodeid.split("::")[0]
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
            own = module == WORKER_TESTS
            item.add_marker(pytest.mark.xdist_group(item.nodeid if own else "integration"))
        else:
            item.add_marker(pytest.mark.xdist_group(module))


# --------------------------------------------------------------------------- Kafka


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap servers of a broker that answers a metadata request, or a failure."""
    bootstrap = service_setting("KAFKA_BOOTSTRAP")
    if not bootstrap:
        pytest.fail(f"KAFKA_BOOTSTRAP is not set and {ENV_FILE} does not exist. {_HINT}")
    from kafka.admin import KafkaAdminClient

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=10_000, client_id="tk-tests-probe"
        )
        try:
            admin.list_topics()
        finally:
            admin.close()
    except Exception as exc:
        pytest.fail(f"Kafka at {bootstrap} does not answer: {exc!r}. {_HINT}")
    return bootstrap


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap):
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="tk-tests-admin")
    yield admin
    admin.close()


def _wait_for_leaders(admin, names: list[str], timeout_s: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        infos = {t.get("name", t.get("topic")): t for t in admin.describe_topics(names)}
        ready = all(
            infos.get(n)
            and infos[n].get("error_code", 0) == 0
            and infos[n].get("partitions")
            and all(p.get("leader_id", p.get("leader", -1)) >= 0 for p in infos[n]["partitions"])
            for n in names
        )
        if ready:
            return
        if time.monotonic() >= deadline:
            pytest.fail(f"Kafka topics {names} have no leaders after {timeout_s:.0f}s")
        time.sleep(0.1)


@pytest.fixture
def kafka_topic_factory(kafka_admin, request):
    """``make(prefix="t", partitions=1, configs=None) -> str``: a new, uniquely named
    topic that exists (with leaders) when returned and is deleted after the test."""
    from kafka.admin import NewTopic

    created: list[str] = []
    base = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:80]

    def make(prefix: str = "t", partitions: int = 1, configs: dict | None = None) -> str:
        name = f"test-{prefix}-{base}-{uuid.uuid4().hex[:10]}"
        kafka_admin.create_topics(
            [
                NewTopic(
                    name=name,
                    num_partitions=partitions,
                    replication_factor=1,
                    topic_configs={k: str(v) for k, v in (configs or {}).items()},
                )
            ]
        )
        created.append(name)
        _wait_for_leaders(kafka_admin, [name])
        return name

    yield make
    if created:
        try:
            kafka_admin.delete_topics(created)
        except Exception as exc:  # cleanup must not mask the test's own result
            print(f"warning: could not delete test topics {created}: {exc!r}")


# --------------------------------------------------------------------------- Redis


@pytest.fixture(scope="session")
def redis_url() -> str:
    """``REDIS_URL`` of a Redis that answers PING (with its password), or a failure."""
    url = service_setting("REDIS_URL")
    if not url:
        pytest.fail(f"REDIS_URL is not set and {ENV_FILE} does not exist. {_HINT}")
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        safe = _without_password(url)
        pytest.fail(f"Redis at {safe} does not answer PING: {exc!r}. {_HINT}")
    return url


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def redis_url_for_db(url: str, db: int) -> str:
    """The same server and credentials, another database number."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


@pytest.fixture(scope="session")
def redis_test_url(redis_url) -> str:
    """REDIS_URL pointing at the test database (15)."""
    return redis_url_for_db(redis_url, TEST_REDIS_DB)


@pytest.fixture
def redis_client(redis_test_url):
    """A ``redis.Redis`` (bytes responses) on db 15, flushed before and after the test."""
    import redis

    client = redis.Redis.from_url(redis_test_url)
    assert client.connection_pool.connection_kwargs.get("db") == TEST_REDIS_DB
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


# --------------------------------------------------------------------------- a Redis of a test's own


def write_counts(pipe, scope: str, fields: dict, day: str, present: bool = True) -> None:
    """Counts that hold from ``day`` on, as the sink writes them: the scope's present hash
    (``present``) and its history's difference arrays (``sinks/apply_history.lua``) —
    for tests that set a picture without a family behind it."""
    import datetime as dt

    from sinks import keys

    on = dt.date.fromisoformat(day).toordinal()
    block = on // keys.HIST_BLOCK
    for f, v in fields.items():
        if not v:
            continue
        if present:
            pipe.hincrby(keys.scope(scope), f, v)
        pipe.hincrby(keys.history(scope), f"{f}:{block}", v)
        pipe.hincrby(keys.history(scope, block), f"{f}:{on}", v)


class OwnRedis:
    """Debian's redis-server on a free port, for tests that stop and start it (the
    shared server must stay up). ``aof``: an append-only file fsync'd on every write
    (True or ``"always"``: a kill loses nothing acknowledged) or every second
    (``"everysec"``, as infra/redis.sh runs it: a kill may lose the last second); without
    it a restart comes back empty."""

    SERVER = "/usr/bin/redis-server"

    def __init__(self, tmp_path: Path, aof: bool | str = False):
        import shutil
        import socket

        if not shutil.which(self.SERVER):
            pytest.fail(f"{self.SERVER} is missing: infra/up installs Debian's redis-server")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tmp_path
        self.aof = aof
        self.proc = None

    def start(self) -> None:
        import subprocess
        import time

        import redis

        fsync = "always" if self.aof is True else self.aof
        persistence = ["--appendonly", "yes", "--appendfsync", fsync] if fsync else []
        self.proc = subprocess.Popen(
            [self.SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--dir", str(self.dir), *persistence],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        """``kill -9``: no shutdown save."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class OwnKafka:
    """A second Kafka broker (the project's infra/kafka.sh, its own ports and state under
    ``tmp_path``), for tests that kill and restart it: the shared broker must stay up."""

    SCRIPT = ROOT / "infra" / "kafka.sh"

    def __init__(self, tmp_path: Path):
        import socket

        ports = []
        for _ in range(2):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                ports.append(s.getsockname()[1])
        self.port, self.controller_port = ports
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.state = tmp_path / "kafka"
        self.env = {
            **os.environ,
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_STATE": str(self.state),
        }

    def start(self) -> None:
        import subprocess

        done = subprocess.run(
            ["bash", str(self.SCRIPT), "start"], env=self.env, capture_output=True, text=True
        )
        if done.returncode:
            pytest.fail(f"own Kafka broker did not start:\n{done.stderr[-3000:]}")

    def pid(self) -> int | None:
        f = self.state / "kafka.pid"
        return int(f.read_text().strip()) if f.exists() and f.read_text().strip() else None

    def kill(self) -> None:
        """``kill -9`` of the broker's JVM: no controlled shutdown."""
        import signal

        pid = self.pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                import time

                time.sleep(0.1)

    def create_topic(self, name: str, partitions: int) -> None:
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="tk-test-own")
        try:
            admin.create_topics([NewTopic(name, partitions, 1)])
            _wait_for_leaders(admin, [name])
        finally:
            admin.close()
