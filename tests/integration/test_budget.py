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
    budget.check(max_age=900)
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
    ours.check(max_age=900)  # read less than a second ago: not asked again yet
    clock.now += SHARE_EVERY
    with pytest.raises(SalesforceLimitExceeded):
        ours.check(max_age=900)


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
        ours.check(max_age=900)


def test_an_older_reading_never_replaces_a_newer_one(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    budget = ApiBudget(client, reserve=0.10)
    budget.observe((91_000, 100_000), time.time())
    budget.observe((50_000, 100_000), time.time() - 60)  # a slow sync's reading, taken a minute ago
    with pytest.raises(SalesforceLimitExceeded):
        budget.check(max_age=900)
    usage = budget.last()
    assert usage is not None and usage.used == 91_000
