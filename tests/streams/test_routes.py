import asyncio

from streams.routes import Routes
from streams.transport import Envelopes


class Group:
    """What the worker's routes ask of Faust: owned partitions, committed offsets, end
    offsets (the broker's answer held until :meth:`answer` with ``hold``)."""

    def __init__(self, owned, committed, ends, hold=False):
        self.owned_now = set(owned)
        self.committed_at = dict(committed)
        self.ends_at = dict(ends)
        self.hold = hold
        self.asked: list[list] = []
        self.gate = asyncio.Event()

    def owned(self):
        return set(self.owned_now)

    def committed(self, part):
        return self.committed_at.get(part, 0)

    async def ends(self, parts):
        self.asked.append(parts)
        if self.hold:
            await self.gate.wait()
        return {p: self.ends_at[p] for p in parts if p in self.ends_at}

    def routes(self) -> Routes:
        return Routes(("person", "family"), self.owned, self.committed, self.ends)


async def test_an_owned_partition_turns_in_place_only_once_committed_to_its_end():
    group = Group(
        owned={("family", 0), ("family", 1), ("person", 0)},
        committed={("family", 0): 40, ("family", 1): 39, ("person", 0): 0},
        ends={("family", 0): 40, ("family", 1): 40, ("person", 0): 0},
    )
    routes = group.routes()
    await routes.refresh()
    # family 1 has a message not committed yet: handed over in place, a newer tail
    # could overtake it
    assert routes.here == {"family": {0}, "person": {0}}
    group.committed_at[("family", 1)] = 40
    await routes.refresh()
    assert routes.here == {"family": {0, 1}, "person": {0}}
    group.asked.clear()
    await routes.refresh()
    assert group.asked == []  # nothing left to ask of the broker


async def test_a_partition_no_longer_owned_or_revoked_goes_back_to_kafka():
    group = Group(
        owned={("family", 0), ("family", 1)},
        committed={("family", 0): 5, ("family", 1): 5},
        ends={("family", 0): 5, ("family", 1): 5},
    )
    routes = group.routes()
    await routes.refresh()
    assert routes.here["family"] == {0, 1}
    routes.forget({("family", 1)})  # a rebalance revoked it
    assert routes.here["family"] == {0}
    group.owned_now = set()  # the tables are recovering
    await routes.refresh()
    assert routes.here["family"] == set()


async def test_no_partition_turns_in_place_while_a_send_to_it_is_in_flight():
    group = Group(owned={("family", 2)}, committed={("family", 2): 7}, ends={("family", 2): 7})
    routes = group.routes()
    away = Envelopes(4)
    away.add("family", "f9", {}, None)  # partition 2
    with routes.sending(away):
        await routes.refresh()
        assert routes.here["family"] == set() and group.asked == []
    await routes.refresh()
    assert routes.here["family"] == {2}


async def test_a_send_begun_while_the_end_was_asked_keeps_the_partition_in_kafka():
    """The end the broker gave may be before that send's message: it may still be
    unread, and the next tail handed over in place would overtake it."""
    group = Group(
        owned={("family", 2)}, committed={("family", 2): 7}, ends={("family", 2): 7}, hold=True
    )
    routes = group.routes()
    refresh = asyncio.create_task(routes.refresh())
    for _ in range(5):
        await asyncio.sleep(0)
    assert group.asked == [[("family", 2)]]
    away = Envelopes(4)
    away.add("family", "f9", {}, None)
    with routes.sending(away):
        pass  # sent and answered while the end was asked
    group.gate.set()
    await refresh
    assert routes.here["family"] == set()
    await routes.refresh()  # asked again: committed 7 against the same end
    assert routes.here["family"] == {2}


async def test_a_partition_revoked_while_the_end_was_asked_does_not_turn_in_place():
    group = Group(
        owned={("family", 2)}, committed={("family", 2): 7}, ends={("family", 2): 7}, hold=True
    )
    routes = group.routes()
    refresh = asyncio.create_task(routes.refresh())
    for _ in range(5):
        await asyncio.sleep(0)
    group.owned_now = set()
    group.gate.set()
    await refresh
    assert routes.here["family"] == set()


def test_items_of_stages_not_routed_are_always_sent():
    routes = Routes(("family",))
    routes.here["family"].update(range(4))
    outs = Envelopes(4)
    outs.add("learner", "f1", {}, None)
    outs.add("family", "f1", {}, None)
    here, away = routes.split(outs)
    assert list(here) == ["family"] and [stage for stage, _ in away.groups] == ["learner"]


async def test_ready_waits_sending_nothing_until_an_owned_partition_is_committed_to_its_end():
    """Under a steady flow: the end moves on while the stage sends, so it stops sending
    and waits; the agent drains the partition and the group commits it."""
    polled: list[float] = []
    group = Group(
        owned={("family", 2), ("family", 3)},
        committed={("family", 2): 5},
        ends={("family", 2): 7, ("family", 3): 0},
    )

    async def sleep(s):
        polled.append(s)
        if len(polled) == 3:
            group.committed_at[("family", 2)] = 7  # the agent finished 5 and 6; committed

    routes = Routes(("family",), group.owned, group.committed, group.ends, sleep=sleep)
    outs = Envelopes(4)
    outs.add("family", "f9", {}, None)  # partition 2
    outs.add("family", "f5", {}, None)  # partition 1, another worker's
    await routes.ready(outs)
    assert len(polled) == 3 and routes.here["family"] == {2}
    here, away = routes.split(outs)
    assert [e.message.partition for e in here["family"]] == [2]
    assert list(away.groups) == [("family", 1)]


async def test_ready_gives_up_after_its_polls_and_the_items_go_through_kafka():
    group = Group(owned={("family", 2)}, committed={("family", 2): 5}, ends={("family", 2): 7})

    async def sleep(s):
        pass

    routes = Routes(("family",), group.owned, group.committed, group.ends, polls=4, sleep=sleep)
    outs = Envelopes(4)
    outs.add("family", "f9", {}, None)
    await routes.ready(outs)
    assert len(group.asked) == 4 and routes.here["family"] == set()
    _, away = routes.split(outs)
    assert list(away.groups) == [("family", 2)]
