"""Writes that must survive the loss of the Redis primary reach a replica first (``WAIT``), when the
primary has replicas. Two users:

- the intake, before it answers 200: the ledger record and the queued task are on a replica (503 if no
  replica confirmed in time, so the sender retries);
- the per-call guard (``worker.sync.stream``), before a sync reads or writes anything: the call's lock and
  its ``syncing`` state are on a replica, so a failover cannot hand the call to a second worker while the
  first one writes it (a redelivered copy of the task then finds the lock held).

``ReplicaConfirm.confirm()`` is one round trip on one connection: a tiny write (the ``crm-sync:replica-mark``
key) and ``WAIT 1 <REDIS_WAIT_REPLICAS_MS>``. Redis replicates one ordered stream, so a replica that has
this connection's write also has every write that completed before it, on any connection: the ledger
record and the task message the intake wrote just before. 0 replicas within the timeout → False (the
intake answers 503, the sender retries). Without replicas (a single Redis, or a managed one that hides
them) there is nothing to wait for: whether the primary has replicas is read from ``INFO replication`` at
most every ``CHECK_EVERY`` seconds. With Sentinel, replicas are required: a primary without any is the
old one of a failover that has not noticed yet (split brain), and a write it takes is lost when it is
turned into a replica, so it is never trusted (run the data nodes with ``min-replicas-to-write 1`` too).

Not guaranteed (see README, "Redis topologies"): WAIT is not strong consistency; a failover may still
promote a replica that lacked the write (Sentinel picks the most up-to-date reachable one, but a partition
can make an older one win), and a write answered 503 may still be in Redis and get synced (harmless: the
retried webhook finds it and the sync is idempotent).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
import structlog

from worker.redis_clients import has_replicas

log = structlog.get_logger(__name__)

MARK = "crm-sync:replica-mark"
CHECK_EVERY = 5.0


class ReplicaConfirm:
    """Confirms that this process's accepted writes reached a replica (see the module docstring)."""

    def __init__(self, client: redis.Redis, *, timeout_ms: int, required: bool = False) -> None:
        """``required``: replicas are part of the deployment (Sentinel): always wait, and a primary that has
        none (say one left behind by a failover, still taking writes) is refused, not trusted."""
        self.client = client
        self.timeout_ms = timeout_ms
        self.required = required
        self._lock = threading.Lock()
        self._replicas: bool | None = None
        self._checked_at = 0.0

    def must_wait(self) -> bool:
        """Whether ``confirm`` has anything to wait for (no Redis call, but an ``INFO`` every ``CHECK_EVERY``):
        lets asyncio code (the intake) leave the event loop only when it must."""
        return self.timeout_ms > 0 and (self.required or self._has_replicas())

    def confirm(self) -> bool:
        """True when a replica has the writes made so far, or when there is no replica to wait for."""
        if not self.must_wait():
            return True
        pipe = self.client.pipeline(transaction=False)
        pipe.set(MARK, repr(time.time()))
        pipe.execute_command("WAIT", 1, self.timeout_ms)
        _, acked = pipe.execute()
        if int(acked) >= 1:
            return True
        with self._lock:
            self._checked_at = 0.0  # look again at once: the replicas may be gone for good
        log.warning("redis.not_replicated", timeout_ms=self.timeout_ms)
        return False

    def _has_replicas(self) -> bool:
        now = time.monotonic()
        with self._lock:
            fresh = self._replicas is not None and now - self._checked_at < CHECK_EVERY
            if fresh:
                return bool(self._replicas)
        found = has_replicas(self.client)
        with self._lock:
            self._replicas, self._checked_at = found, now
        return found

    def status(self) -> dict[str, Any]:
        return {"timeout_ms": self.timeout_ms, "replicas": self._replicas, "required": self.required}
