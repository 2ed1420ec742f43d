"""Run the real worker as a subprocess against the real broker and Redis."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis

from models.contract import KEY_PREFIX, type_id_of

ROOT = Path(__file__).resolve().parents[2]
KEY = "test-pseudonym-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def flatten(picture: dict) -> dict[str, dict[str, int]]:
    """An unsuppressed picture (batch form) as ``{scope: {field: count}}``, zeros dropped."""
    out = {"all": picture["all"]}
    out.update({f"m:{code}": c for code, c in picture["municipalities"].items()})
    out.update({f"a:{pc}": a["counts"] for pc, a in picture["areas"].items()})
    flat = {s: {k: v for k, v in c.items() if v} for s, c in out.items()}
    return {s: c for s, c in flat.items() if c}


def read_redis(client: redis.Redis, groups: bool = False) -> dict[str, dict[str, int]]:
    """Non-zero aggregate fields per scope: the indicators, or with ``groups`` only the
    service-need groups ``g1`` … ``g10`` (which the batch reference does not compute).
    The family-type counts (``t<id>``) and the cell keys (``~<field>``) are neither."""
    out = {}
    for key in client.scan_iter("tk:agg:*", count=1000):
        fields = {k.decode(): int(v) for k, v in client.hgetall(key).items() if int(v)}
        fields = {
            k: v
            for k, v in fields.items()
            if (k[0] == "g" and k[1:].isdigit()) == groups
            and type_id_of(k) is None
            and not k.startswith(KEY_PREFIX)
        }
        if fields:
            out[key.decode()[len("tk:agg:") :]] = fields
    return out


class Worker:
    """One ``tilannekuva worker`` process with its own app id and topics."""

    def __init__(
        self,
        bootstrap: str,
        redis_url: str,
        input_topic: str,
        log_dir: Path,
        app_id: str | None = None,
    ):
        self.app_id = app_id or f"tktest-{uuid.uuid4().hex[:8]}"
        self.input_topic = input_topic
        self.dlq_topic = f"{self.app_id}-dlq"
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP": bootstrap,
            "REDIS_URL": redis_url,
            "TK_APP_ID": self.app_id,
            "TK_INPUT_TOPIC": input_topic,
            "TK_DLQ_TOPIC": self.dlq_topic,
            "TK_ALERTS_TOPIC": f"{self.app_id}-alerts",
            "SITUATION_PSEUDONYM_KEY": KEY,
            "TK_DATA_DIR": str(log_dir / "faust"),
        }
        self.log_dir = log_dir
        # Kept over restarts: the worker's tables on disk are found by its web port.
        self.web_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.log_dir / f"worker-{self.app_id}-{self.starts}.log", "wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tilannekuva.cli",
                "worker",
                "--web-port",
                str(self.web_port),
                "--loglevel",
                "WARNING",
            ],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def metrics(self, attempts: int = 3) -> str:
        """The worker's /metrics text. A worker busy on a loaded machine can leave its
        web view unanswered for a while: wait and retry rather than fail the test."""
        import urllib.request

        for attempt in range(attempts):
            try:
                return (
                    urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/metrics", timeout=60)
                    .read()
                    .decode()
                )
            except OSError:
                if attempt == attempts - 1:
                    raise
                time.sleep(2)
        raise AssertionError("unreachable")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-4000:]
            for p in sorted(self.log_dir.glob(f"worker-{self.app_id}-*.log"))
        )


def produce(bootstrap: str, topic: str, lines: list[bytes]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024, acks="all"
    )
    for line in lines:
        producer.send(topic, line)
    producer.flush()
    producer.close()


def consume_all(bootstrap: str, topic: str) -> list:
    """Every message on ``topic`` up to its end offsets when called (aiokafka: its C record
    parser reads a 100 MB changelog in about a second, kafka-python in twenty)."""
    import asyncio

    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    async def read() -> list:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            await consumer._client.force_metadata_update()
            parts = [
                TopicPartition(topic, p)
                for p in consumer._client.cluster.partitions_for_topic(topic) or ()
            ]
            if not parts:
                return []
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            end = await consumer.end_offsets(parts)
            out: list = []
            while [p for p in parts if await consumer.position(p) < end[p]]:
                for messages in (
                    await consumer.getmany(timeout_ms=1000, max_records=100_000)
                ).values():
                    out.extend(
                        m for m in messages if m.offset < end[TopicPartition(m.topic, m.partition)]
                    )
            return out
        finally:
            await consumer.stop()

    return asyncio.run(read())


def wait_for(
    client: redis.Redis,
    expected: dict,
    worker: Worker,
    timeout: float = 180.0,
    watermark: str | None = None,
) -> dict:
    """Poll Redis until it shows ``expected`` (and the watermark), or time out."""
    deadline = time.monotonic() + timeout
    got: dict = {}
    while time.monotonic() < deadline:
        got = read_redis(client)
        wm = client.get("tk:wm")
        if got == expected and (watermark is None or (wm and wm.decode() == watermark)):
            return got
        if worker.proc is not None and worker.proc.poll() is not None:
            raise AssertionError(f"worker exited with {worker.proc.returncode}:\n{worker.logs()}")
        time.sleep(0.5)
    return got
