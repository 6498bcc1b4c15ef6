"""Redis locks (``worker.redis_clients.RetrySafeLock``) when redis-py retries an acquisition whose
connection was lost after the ``SET NX`` had landed: the retry finds the key set to its own token."""

from __future__ import annotations

import redis

from worker.redis_clients import RetrySafeLock
from worker.sync import holders

KEY = holders.lock_key("call_retriedlock01")


def test_a_retried_acquire_whose_first_set_landed_holds_the_lock(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set(KEY, "vm:1:worker|token-of-this-acquisition", px=60_000)  # what the lost first try left
    lock = client.lock(KEY, timeout=60, blocking=False, lock_class=RetrySafeLock)
    assert lock.acquire(token="vm:1:worker|token-of-this-acquisition")
    assert lock.owned()
    lock.release()
    assert client.get(KEY) is None


def test_a_lock_held_with_another_token_is_not_taken(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set(KEY, "vm:2:other|its-token", px=60_000)
    lock = client.lock(KEY, timeout=60, blocking=False, lock_class=RetrySafeLock)
    assert not lock.acquire(token="vm:1:worker|token-of-this-acquisition")
    assert not lock.owned()
    assert client.get(KEY) == b"vm:2:other|its-token"
