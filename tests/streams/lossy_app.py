"""A Faust app that loses messages as faust-streaming/faust#596 does, for the tests of
the repair and the commit guard in test_ops.py: its agent holds one message until Faust
has handed on the rest, then clears the agents' queues (``app.flow_control.clear()``, as
a recovery does), touches ``T_OUT.cleared`` and lets the held one go. ``T_MODE=tail``
(the default) holds the first message and loses all the others; ``head`` holds the
last but one and loses the last alone (more sent after it are taken); ``fail`` takes
batches (``take_events``) whose body raises once, at offset 5, inside
:class:`streams.ops.KeptUnacked` (``T_KEEP=0``: not); ``acked`` takes batches and acks
the message at offset 5 once without processing it, as Faust acks what no body
finished; ``slow`` does that too, with a body that takes 10 ms a message and a stream
buffer of 16, so that Faust's fetch loop waits inside a large fetched batch when the
partition is read again (``T_PLAIN=1``: read again with a plain seek, as before
session 33; ``T_COMMIT_S``: Faust's commit interval); ``none`` loses nothing. Each message it processes is appended to
``T_OUT``; the lag tick's :class:`streams.ops.LostMessages` repair runs every half
second (``T_REPAIR=0``: not); :class:`streams.ops.CommitGuard` guards its commits with
what the bodies finished (``T_GUARD=0``: not).

    python -m tests.streams.lossy_app worker -l info

env: KAFKA_BOOTSTRAP, T_APP (its id), T_TOPIC, T_N (messages in it), T_OUT, T_DATA.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import nullcontext
from pathlib import Path

import faust
from faust.types import TP

from streams.ops import CommitGuard, Finished, KeptUnacked, LostMessages, tables_recovered

T_TOPIC, T_OUT, T_MESSAGES = os.environ["T_TOPIC"], os.environ["T_OUT"], int(os.environ["T_N"])
MODE = os.environ.get("T_MODE", "tail")

app = faust.App(
    os.environ["T_APP"],
    broker=f"kafka://{os.environ['KAFKA_BOOTSTRAP']}",
    datadir=os.environ["T_DATA"],
    web_enabled=False,
    topic_partitions=1,
    consumer_auto_offset_reset="earliest",
    stream_buffer_maxsize=16 if MODE == "slow" else 4096,
    broker_commit_interval=float(os.environ.get("T_COMMIT_S", "2.8")),  # Faust's default
)
topic = app.topic(T_TOPIC, value_serializer="raw", key_serializer="raw")
GUARD = os.environ.get("T_GUARD", "1") == "1"
finished = Finished({T_TOPIC}) if GUARD else None
lost = LostMessages(patience=4, finished=finished)
done = asyncio.Event()
HOLD = {"tail": 0, "head": T_MESSAGES - 2}.get(MODE, -1)
FAIL_AT = 5
KEEP = os.environ.get("T_KEEP", "1") == "1"
failed = asyncio.Event()
if finished is not None:
    CommitGuard.install(app.consumer, finished)


async def plain_seek(consumer, lowest) -> None:
    await consumer.seek_wait(lowest)


if os.environ.get("T_PLAIN") == "1":
    lost.reread = plain_seek


async def take(stream):
    async for event in stream.events():
        if not done.is_set() and event.message.offset == HOLD:
            await lose_the_rest()
        processed(event)
        if finished is not None:
            finished.add([event])


async def take_batches(stream):
    async for batch in stream.take_events(10, within=0.5):
        if MODE in ("acked", "slow") and not failed.is_set():
            for event in [e for e in batch if e.message.offset == FAIL_AT]:
                failed.set()
                batch.remove(event)
                event.ack()  # acked, never processed
        async with KeptUnacked("lossy", batch, finished) if KEEP else nullcontext():
            for event in batch:
                if MODE == "fail" and event.message.offset == FAIL_AT and not failed.is_set():
                    failed.set()
                    raise RuntimeError("the body failed")
                processed(event)
                if MODE == "slow":
                    await asyncio.sleep(0.01)


def processed(event) -> None:
    with open(T_OUT, "a") as out:
        out.write(f"{event.message.offset}\n")


app.agent(topic, name="take")(take_batches if MODE in ("fail", "acked", "slow") else take)


async def lose_the_rest() -> None:
    while (app.consumer._read_offset.get(TP(T_TOPIC, 0)) or 0) < T_MESSAGES - 1:
        await asyncio.sleep(0.05)
    app.flow_control.clear()
    done.set()
    Path(f"{T_OUT}.cleared").touch()


@app.timer(0.5)
async def repair():
    if os.environ.get("T_REPAIR", "1") == "1":
        await lost.repair(app.consumer, steady=tables_recovered(app))


if __name__ == "__main__":
    app.main()
