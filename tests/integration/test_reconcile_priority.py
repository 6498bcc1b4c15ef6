"""Webhook-driven Twenty2 requests first, reconciliation in the room they leave (``worker.reconcile.priority``)."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from worker.errors import Twenty2RateLimited
from worker.ratelimit import SharedRateLimit
from worker.reconcile.priority import PriorityBudget


def budget(
    redis_url: str, key: str, *, per_minute: int, reserve: int, max_wait: float = 1.0, pace: float = 0.0
) -> PriorityBudget:
    limit = SharedRateLimit(redis_url, key=key, per_minute=per_minute, max_wait=30)
    return PriorityBudget(
        redis.Redis.from_url(redis_url), limit, reserve=reserve, spare_max_wait=max_wait, poll=0.01, pace=pace
    )


def test_reconciliation_leaves_the_reserve_to_webhooks(redis_url: str) -> None:
    b = budget(redis_url, "twenty2:reserve", per_minute=10, reserve=3)
    for _ in range(7):
        b.spare()
    with pytest.raises(Twenty2RateLimited):
        b.spare()  # 7 used, 3 left: the reserve is not reconciliation's
    started = time.monotonic()
    for _ in range(3):
        b.urgent()  # the webhooks' three go straight through
    assert time.monotonic() - started < 0.5
    assert b.limit.used() == 10


def test_reconciliation_waits_while_a_webhook_fetch_waits(redis_url: str) -> None:
    b = budget(redis_url, "twenty2:demand", per_minute=10, reserve=0, max_wait=0.3)
    client = redis.Redis.from_url(redis_url)
    client.zadd(b.demand_key, {"waiting-webhook": time.time() + 60})
    assert b.demand() == 1 and b.room() == 0
    with pytest.raises(Twenty2RateLimited):
        b.spare()
    assert b.limit.used() == 0  # it took nothing while the webhook waited
    client.zrem(b.demand_key, "waiting-webhook")
    b.spare()
    assert b.limit.used() == 1


def test_a_dead_waiters_demand_expires(redis_url: str) -> None:
    b = budget(redis_url, "twenty2:expired", per_minute=10, reserve=0)
    redis.Redis.from_url(redis_url).zadd(b.demand_key, {"killed-worker": time.time() - 1})
    assert b.demand() == 0
    b.spare()


def test_urgent_withdraws_its_demand_when_done(redis_url: str) -> None:
    b = budget(redis_url, "twenty2:withdraw", per_minute=10, reserve=0)
    b.urgent()
    assert b.demand() == 0 and b.limit.used() == 1


def test_a_webhook_fetch_amid_a_reconciliation_backlog_does_not_wait(redis_url: str) -> None:
    """Four reconciliation threads keep the window as full as they may; a webhook fetch still finds a slot."""
    # Paced as in production (there one a second), which also serializes the takers' test-then-hit.
    b = budget(redis_url, "twenty2:backlog", per_minute=30, reserve=2, max_wait=5, pace=0.2)
    stop = threading.Event()
    taken = [0]
    counting = threading.Lock()

    def backlog() -> None:
        while not stop.is_set():
            try:
                b.spare()
                with counting:
                    taken[0] += 1
            except Twenty2RateLimited:
                pass

    threads = [threading.Thread(target=backlog) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 15
        while b.limit.used() < 28 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        # The backlog took all but the reserve (a race of two takers between test and hit may take one more).
        assert 28 <= b.limit.used() <= 29
        started = time.monotonic()
        b.urgent()
        waited = time.monotonic() - started
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert waited < 0.5, waited
    assert 28 <= taken[0] <= 29, taken


def test_reconciliation_requests_are_paced_across_processes(redis_url: str) -> None:
    """Two processes' reconciliation together take one slot per pace interval, never a burst."""
    first = budget(redis_url, "twenty2:paced", per_minute=60, reserve=0, max_wait=5, pace=0.5)
    second = budget(redis_url, "twenty2:paced", per_minute=60, reserve=0, max_wait=5, pace=0.5)
    started = time.monotonic()
    for b in (first, second, first, second):
        b.spare()
    elapsed = time.monotonic() - started
    assert 1.4 <= elapsed < 3.0 and first.limit.used() == 4
    assert PriorityBudget(redis.Redis.from_url(redis_url), first.limit).pace == 1.0  # 60/min: one a second


def test_reconciliation_leaves_the_room_the_last_minutes_webhooks_used(redis_url: str) -> None:
    """Three webhook requests in the last minute: reconciliation keeps 3 + the reserve free for the next ones."""
    b = budget(redis_url, "twenty2:pace-of-webhooks", per_minute=10, reserve=2)
    for _ in range(3):
        b.urgent()
    assert b.recent_urgent() == 3 and b.room() == 2
    b.spare()
    b.spare()  # 5 used: 5 free, all of them kept
    with pytest.raises(Twenty2RateLimited):
        b.spare()
    started = time.monotonic()
    for _ in range(5):
        b.urgent()  # the webhooks' next five go straight through
    assert time.monotonic() - started < 0.5 and b.limit.used() == 10
