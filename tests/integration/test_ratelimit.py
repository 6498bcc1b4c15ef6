"""The Twenty2 rate limit shared through Redis by every worker."""

from __future__ import annotations

from worker.ratelimit import SharedRateLimit


def test_limit_is_shared_between_workers(redis_url: str) -> None:
    pauses: list[float] = []
    first = SharedRateLimit(redis_url, key="twenty2:ws1", per_minute=3, max_wait=30, sleep=pauses.append)
    second = SharedRateLimit(redis_url, key="twenty2:ws1", per_minute=3, max_wait=30, sleep=pauses.append)
    first.acquire()
    second.acquire()
    first.acquire()
    assert pauses == []  # three within the minute go straight through
    second.acquire()  # the fourth waits (until it gives up: the fake sleep does not let time pass)
    assert pauses and 30 - 5 <= sum(pauses) <= 30


def test_other_workspaces_have_their_own_limit(redis_url: str) -> None:
    pauses: list[float] = []
    for key in ("twenty2:a", "twenty2:b"):
        limit = SharedRateLimit(redis_url, key=key, per_minute=1, max_wait=10, sleep=pauses.append)
        limit.acquire()
    assert pauses == []


def test_zero_disables_the_limit(redis_url: str) -> None:
    pauses: list[float] = []
    limit = SharedRateLimit(redis_url, key="twenty2:off", per_minute=0, sleep=pauses.append)
    for _ in range(100):
        limit.acquire()
    assert pauses == []
