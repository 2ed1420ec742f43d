import asyncio
import json

import orjson
import pytest

from models import picture
from models.contract import validate
from models.pseudonym import Pseudonymiser
from streams.stages import Days, Door, Forward, TableStep, TaskSinks, dlq_record, touched
from streams.transport import Sender, partition_of
from tests.streams.fakes import Topic, envelope
from tilannekuva.synthetic import synthesize

KEY = b"unit-test-key-0123456789"


def raw_events(n: int = 60) -> list[bytes]:
    return [line.encode() for line in synthesize(3, 11).lines[:n]]


def test_door_routes_valid_events_by_event_id_and_raises_w():
    raised: list[str] = []
    live: list[str] = []
    door = Door(Pseudonymiser(KEY), raised.append, live.append, 4, lambda: "2030-01-01T00:00:00Z")
    lines = raw_events()
    batch = [(raw, 1000.0 + i) for i, raw in enumerate(lines)]
    outs, rejected = door(batch)
    assert rejected == []
    expected = [Pseudonymiser(KEY).event(validate(raw)) for raw in lines]
    items = [item for (stage, _), group in outs.items() for item in group]
    assert sorted(json.dumps(m, sort_keys=True) for _, m, _ in items) == sorted(
        json.dumps(e, sort_keys=True) for e in expected
    )
    for (stage, part), group in outs.items():
        assert stage == "id"
        assert all(k == picture.route_key(m) and partition_of(k, 4) == part for k, m, _ in group)
    assert {t0 for _, _, t0 in items} == {1000.0 + i for i in range(len(lines))}
    assert sorted(raised) == sorted(e["occurred_at"] for e in expected)
    assert sorted(live) == sorted(e["recorded_at"] for e in expected)
    raw_persons = {orjson.loads(raw).get("person") for raw in lines} - {None}
    assert not raw_persons & {m.get("person") for _, m, _ in items}  # pseudonyms only


def test_door_sends_invalid_and_unexpected_input_to_the_dlq_with_a_reason():
    class Exploding(Pseudonymiser):
        def event(self, event):
            raise KeyError("boom")

    now = "2030-01-01T00:00:00Z"
    good = raw_events(1)[0]
    outs, rejected = Door(Pseudonymiser(KEY), lambda d: None, lambda d: None, 4, lambda: now)(
        [(b"{not json", None), (b"[1, 2]", None), (good, None)]
    )
    assert [r["reason"].split(":")[0] for r in rejected] == ["not_json", "not_object"]
    assert rejected[0] == {
        "reason": rejected[0]["reason"],
        "event": "{not json",
        "received_at": now,
    }
    assert rejected[1]["event"] == "[1, 2]"  # not an object: kept as the text it was
    assert sum(len(g) for _, g in outs.items()) == 1
    _, rejected = Door(Exploding(KEY), lambda d: None, lambda d: None, 4, lambda: now)(
        [(good, None)]
    )
    assert rejected[0]["reason"] == "internal: KeyError"
    assert rejected[0]["event"] == orjson.loads(good)


def test_dlq_record_keeps_the_parsed_original():
    from models.contract import InvalidEvent

    rec = dlq_record(b'{"a": 1}', InvalidEvent("schema", "no"), "t")
    assert rec == {"reason": "schema: no", "event": {"a": 1}, "received_at": "t"}


class CountingTable(dict):
    def __init__(self):
        super().__init__()
        self.writes: list[str] = []

    def __setitem__(self, key, value):
        self.writes.append(key)
        super().__setitem__(key, value)


def test_table_step_writes_each_touched_key_once_per_envelope_and_forwards_outputs():
    def step(state, key, msg):
        state = (state or 0) + msg["n"]
        return state, [("family", f"f-{key}", {"total": state})] if msg["n"] else []

    table = CountingTable()
    outs, pending = TableStep("test", table, step, 4).run(
        [
            envelope([["a", {"n": 1}, 5], ["a", {"n": 2}, 6], ["b", {"n": 0}, 7]]),
            envelope([["a", {"n": 3}, 8]]),
        ]
    )
    asyncio.run(pending.commit())
    assert table == {"a": 6, "b": 0}
    assert table.writes == ["a", "b", "a"]
    sent = [item for _, group in outs.items() for item in group]
    assert sent == [["f-a", {"total": 1}, 5], ["f-a", {"total": 3}, 6], ["f-a", {"total": 6}, 8]]


def test_table_step_writes_a_state_again_when_the_step_returns_it_unchanged():
    """A replay after a crash: the database may hold a state its changelog lacks."""
    table = CountingTable()
    table["x"] = "state"
    table.writes.clear()
    _, pending = TableStep("test", table, lambda s, k, m: (s, []), 4).run(
        [envelope([["x", {}, None]])]
    )
    asyncio.run(pending.commit())
    assert table.writes == ["x"] and table["x"] == "state"


def test_table_step_run_stores_nothing_until_its_commit():
    table = CountingTable()
    table["b"] = 10
    table.writes.clear()

    def step(state, key, msg):
        return (state or 0) + msg["n"], []

    batch = [
        envelope([["a", {"n": 1}, 5], ["b", {"n": 1}, 5]], 1),
        envelope([["a", {"n": 2}, 6]], 1),
    ]
    _, pending = TableStep("test", table, step, 4).run(batch)
    assert table == {"b": 10} and table.writes == []
    assert pending.states == {"a": 3, "b": 11}  # the second envelope read the first's state
    asyncio.run(pending.commit())
    assert table == {"a": 3, "b": 11} and table.writes == ["a", "b", "a"]


def test_table_step_reads_states_still_being_written_over_the_table():
    """The family agent's batch before is still being written, its states not stored
    (streams/families.py::WriteBehind): the next step starts from them."""
    table = CountingTable()
    table.update({"a": 1, "b": 10})

    def step(state, key, msg):
        return (state or 0) + msg["n"], []

    _, pending = TableStep("test", table, step, 4).run(
        [envelope([["a", {"n": 1}, 5], ["b", {"n": 1}, 5], ["c", {"n": 1}, 5]])],
        unstored={"a": 100, "c": 7},
    )
    assert pending.states == {"a": 101, "b": 11, "c": 8}


def test_a_batch_stepped_from_before_it_is_stored_is_stored_as_it_was_computed():
    """The family agent's write-behind with the real family step: batch 2 steps from
    batch 1's states while batch 1 waits for Redis; batch 1 then stores its own states,
    memo of the present included, not batch 2's rows under batch 1's memo (a crash
    before batch 2's store kept such a state: a fault drill's present off by two)."""

    def residence(eid, day, postcode, municipality):
        event = {"event_id": eid, "occurred_at": day, "recorded_at": day + "T12:00:00Z"}
        data = {"postcode": postcode, "municipality": municipality}
        return {"kind": "residence", "event": {**event, "data": data}}

    member = {
        "kind": "member",
        "person": "kid",
        "since": 739000,
        "last": 739000,
        "tail": {"m": [[739000, "child", "2020-01-01"]]},
    }
    table = CountingTable()
    step = TableStep("family", table, picture.family_step, 4)
    _, first = step.run(
        [
            envelope(
                [["f", member, None], ["f", residence("r1", "2024-01-01", "33100", "837"), None]]
            )
        ]
    )
    assert picture.contribution(first.states["f"], "2025-06-01")["area"] == "33100"
    computed = orjson.dumps(first.states["f"])  # with the memo the writer just made
    _, second = step.run(
        [envelope([["f", residence("r2", "2025-01-01", "01300", "092"), None]])],
        unstored=first.states,
    )
    asyncio.run(first.commit())
    assert orjson.dumps(table["f"]) == computed
    assert picture.contribution(second.states["f"], "2025-06-01")["area"] == "01300"


def leave_step(state, key, msg):
    """A person who leaves a family: the step tells the family only while the state
    still lists it (as ``picture.person_step`` computes its recipients)."""
    families = set(state or ("f1",))
    told = sorted(families)
    families.discard(msg["leaves"])
    return sorted(families), [("family", f, {"left": key}) for f in told]


def leaving(table, topic) -> Forward:
    return Forward(TableStep("person", table, leave_step, 4), Sender({"family": topic}))


async def sent_unacknowledged(table, topic) -> asyncio.Task:
    """A Forward of p1 leaving f1, run until it waits for the broker's answer."""
    task = asyncio.create_task(leaving(table, topic)([envelope([["p1", {"leaves": "f1"}, 5]])]))
    for _ in range(10):
        await asyncio.sleep(0)
    return task


async def test_forward_stores_its_states_only_once_the_broker_has_their_outputs():
    table, topic = CountingTable(), Topic(hold=True)
    task = await sent_unacknowledged(table, topic)
    assert topic.sent and not task.done()  # sent, not yet acknowledged
    assert table.writes == []  # a crash now replays from no state: f1 is told again
    topic.acknowledge()
    await task
    assert table == {"p1": []}


async def test_forward_stores_nothing_when_the_broker_refuses():
    table, topic = CountingTable(), Topic(hold=True)
    task = await sent_unacknowledged(table, topic)
    topic.acknowledge(RuntimeError("not leader"))
    with pytest.raises(RuntimeError):
        await task
    assert table.writes == []
    # Replayed, the batch tells f1 again: from the stored state it would tell nobody.
    again = Topic()
    await leaving(table, again)([envelope([["p1", {"leaves": "f1"}, 5]])])
    assert [k for s in again.sent for k, _, _ in s["value"]["items"]] == ["f1"]


def test_touched_maps_every_key_to_its_envelope_partition():
    batch = [envelope([["a", {}, 1], ["b", {}, 2]], 1), envelope([["c", {}, 3]], 3)]
    assert touched(batch) == {"a": 1, "b": 1, "c": 3}


def test_days_writes_its_span_again_when_unchanged():
    """A replay after a crash: the database may hold a span its changelog lacks."""
    table = CountingTable()
    days = Days(table)
    ev = {"occurred_at": "2024-03-01", "recorded_at": "2024-03-02T08:00:00Z"}
    batch = [envelope([["e1", ev, None]], 1)]
    days(batch)
    days(batch)
    assert table.writes == ["1", "1"]
    assert table == {"1": ["2024-03-01", "2024-03-01", "2024-03-02"]}


def test_days_keeps_each_partitions_first_and_last_day_and_when_it_went_live():
    table: dict = {}
    days = Days(table)
    ev = [
        {"occurred_at": o, "recorded_at": r + "T10:00:00Z"}
        for o, r in (
            ("2024-03-01", "2025-01-03"),
            ("2023-07-01", "2025-01-02"),
            ("2024-01-10", "2025-01-01"),
            ("2025-02-02", "2025-02-03"),
        )
    ]
    days([envelope([["e1", ev[0], None], ["e2", ev[1], None]], 1), envelope([], 2)])
    days([envelope([["e3", ev[2], None]], 1), envelope([["e4", ev[3], None]], 3)])
    assert table == {
        "1": ["2023-07-01", "2024-03-01", "2025-01-01"],
        "3": ["2025-02-02", "2025-02-02", "2025-02-03"],
    }
    assert days.span([1, 2]) == ("2023-07-01", "2024-03-01")
    assert days.span([1, 3]) == ("2023-07-01", "2025-02-02")
    assert days.span([0, 2]) is None
    assert days.live([3]) == "2025-02-03" and days.live([1, 3]) == "2025-01-01"
    assert days.live([0, 2]) is None


def test_a_span_kept_before_the_live_day_was_gets_it_from_its_next_batch():
    table: dict = {"1": ["2023-07-01", "2024-03-01"]}
    days = Days(table)
    assert days.span([1]) == ("2023-07-01", "2024-03-01") and days.live([1]) is None
    ev = {"occurred_at": "2024-02-01", "recorded_at": "2025-01-05T10:00:00Z"}
    days([envelope([["e1", ev, None]], 1)])
    assert table == {"1": ["2023-07-01", "2024-03-01", "2025-01-05"]}


@pytest.mark.integration
async def test_task_sinks_are_never_seen_half_set_up(aredis):
    """A timer's ``ready()`` beside the agent's: a sink with one script loaded and the
    others not yet would be flushed with None arguments (a worker crash seen in a drill
    while Redis restarted)."""
    sinks = TaskSinks(aredis, now=lambda: "2024-01-01T00:00:00Z")
    all_sinks = (sinks.ingest, sinks.family, sinks.sweep, sinks.model, sinks.restore)
    task = asyncio.create_task(sinks.ready())
    while not task.done():
        for sink in all_sinks:
            shas = (sink.apply_sha, sink.history_sha, sink.wm_sha, sink.count_sha)
            assert all(shas) or not any(shas), shas
        await asyncio.sleep(0)
    await task
    assert all(s.apply_sha and s.history_sha and s.wm_sha and s.count_sha for s in all_sinks)
