"""ApiBudget: how often a process shares the org's API usage through Redis, and when it holds syncs."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from worker.errors import SalesforceLimitExceeded
from worker.salesforce.budget import SHARE_EVERY, ApiBudget


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def calls(client: redis.Redis, command: str) -> int:
    """Successful calls of ``command`` on our own Redis so far (a first EVALSHA fails with NOSCRIPT)."""
    stats: dict[str, Any] = client.info("commandstats")  # type: ignore[assignment]
    counts = stats.get(f"cmdstat_{command}", {})
    return int(counts.get("calls", 0)) - int(counts.get("failed_calls", 0))


def sync(budget: ApiBudget, used: int, maximum: int = 100_000) -> None:
    """What a sync does with the budget: check before, publish the reading its responses carried after."""
    budget.check(hold_seconds=900)
    budget.observe((used, maximum), time.time())


def test_far_from_the_reserve_a_process_shares_its_reading_once_a_second(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    clock = Clock()
    budget = ApiBudget(client, reserve=0.10, clock=clock)
    reads, publishes = calls(client, "hgetall"), calls(client, "evalsha")
    for used in range(50_000, 50_100):  # 100 syncs within the same second
        sync(budget, used)
    assert calls(client, "hgetall") - reads == 1
    assert calls(client, "evalsha") - publishes == 1
    clock.now += SHARE_EVERY
    sync(budget, 50_100)
    assert calls(client, "hgetall") - reads == 2
    usage = budget.last()
    assert usage is not None and usage.used == 50_100  # the second's newest reading was published


def test_another_workers_reading_at_the_reserve_holds_syncs_within_a_second(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    clock = Clock()
    ours, theirs = ApiBudget(client, reserve=0.10, clock=clock), ApiBudget(client, reserve=0.10)
    sync(ours, 50_000)
    theirs.observe((91_000, 100_000), time.time())
    ours.check(hold_seconds=900)  # read less than a second ago: not asked again yet
    clock.now += SHARE_EVERY
    with pytest.raises(SalesforceLimitExceeded):
        ours.check(hold_seconds=900)


def test_near_the_reserve_every_sync_reads_and_publishes(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    ours, theirs = ApiBudget(client, reserve=0.10, clock=Clock()), ApiBudget(client, reserve=0.10)
    sync(ours, 85_000)  # 15% left: within twice the reserve
    reads = calls(client, "hgetall")
    sync(ours, 85_001)
    assert calls(client, "hgetall") - reads == 1
    usage = theirs.last()
    assert usage is not None and usage.used == 85_001
    theirs.observe((90_500, 100_000), time.time())
    with pytest.raises(SalesforceLimitExceeded):  # the same second, no clock moved: seen at once
        ours.check(hold_seconds=900)


def test_an_older_reading_never_replaces_a_newer_one(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    budget = ApiBudget(client, reserve=0.10)
    budget.observe((91_000, 100_000), time.time())
    budget.observe((50_000, 100_000), time.time() - 60)  # a slow sync's reading, taken a minute ago
    with pytest.raises(SalesforceLimitExceeded):
        budget.check(hold_seconds=900)
    usage = budget.last()
    assert usage is not None and usage.used == 91_000


# --- while held: one probe of the Limits resource per hold interval, on all workers together ----------------


class Probe:
    """A stand-in for ``GET /limits`` as the budget sees it: what it answers, and how often it was asked."""

    def __init__(self, answer: tuple[int, int] | Exception | None) -> None:
        self.answer = answer
        self.asked = 0

    def __call__(self) -> tuple[int, int] | None:
        self.asked += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def held(client: redis.Redis) -> ApiBudget:
    """A budget whose shared reading (from another worker's 403) says the allowance is spent."""
    ApiBudget(client, reserve=0.10).observe((100_000, 100_000), time.time())
    return ApiBudget(client, reserve=0.10)


def test_a_probe_that_finds_the_allowance_back_ends_the_hold_for_every_worker(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    ours, theirs, probe = held(client), ApiBudget(client, reserve=0.10), Probe((1_000, 100_000))
    ours.check(hold_seconds=60, probe=probe)  # not held: the probe read 99,000 left
    usage = theirs.last()
    assert probe.asked == 1 and usage is not None
    assert (usage.remaining, usage.source) == (99_000, "limits")  # the reading that ended it is published
    theirs.check(hold_seconds=60, probe=Probe(None))  # another worker: not held either, and no probe of its own


def test_while_the_allowance_stays_spent_one_probe_per_hold_interval(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    workers, probe = [held(client) for _ in range(3)], Probe((100_000, 100_000))
    for budget in workers * 3:
        with pytest.raises(SalesforceLimitExceeded, match="limits reading"):
            budget.check(hold_seconds=0.5, probe=probe)
    assert probe.asked == 1
    time.sleep(0.6)
    probe.answer = (2_000, 100_000)  # the org's allowance was raised meanwhile
    workers[1].check(hold_seconds=0.5, probe=probe)
    workers[2].check(hold_seconds=0.5, probe=probe)
    assert probe.asked == 2


def test_a_probe_salesforce_refuses_keeps_the_hold(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    budget = held(client)
    refused = SalesforceLimitExceeded("TotalRequests Limit exceeded.", code="REQUEST_LIMIT_EXCEEDED")
    with pytest.raises(SalesforceLimitExceeded):
        budget.check(hold_seconds=60, probe=Probe(refused))
    usage = budget.last()
    assert usage is not None and (usage.remaining, usage.source) == (0, "limits")


def test_a_probe_that_cannot_read_lets_that_one_sync_through(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    first, second = held(client), ApiBudget(client, reserve=0.10)
    first.check(hold_seconds=60, probe=Probe(None))  # no permission to /limits: this sync is the probe
    with pytest.raises(SalesforceLimitExceeded):
        second.check(hold_seconds=60, probe=Probe(None))  # the turn is taken: the others stay held
