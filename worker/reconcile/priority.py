"""Twenty2's 60 requests a minute, spent webhook-first: the one rule of who gets the shared budget.

Every Twenty2 request of every process goes through the shared moving-window limit
(``worker.ratelimit.SharedRateLimit``). This module puts two doors in front of it:

- ``urgent()`` — webhook-driven fetches (``GET /call/detail`` and the transcript of a call whose webhook
  came, or which a person replayed). While such a fetch waits for the limit it is counted as *demand* in
  Redis (a sorted set of waiters, each with an expiry, so a killed worker's entry ages out), then it waits
  for a slot exactly as before.
- ``spare()`` — reconciliation (``GET /call/logs`` pages and the fetches of calls it found). It takes a
  slot only when **no** urgent request is waiting, the window keeps free after it ``reserve`` slots **plus
  as many as urgent requests took in the last window** (the webhooks' own pace, so the room they will need
  in the next minute stays free), **and** no other spare request took one in the last ``pace`` seconds
  (60 / the limit: one a second at 60/min); otherwise it polls again after ``poll`` seconds. It never waits
  in the limiter's queue, so it never stands in front of a webhook.

So a fresh webhook's fetch finds a free slot at once: reconciliation uses only what the webhooks of the
last minute left, minus the reserve. Should webhooks outgrow that (a burst above their last minute's rate
and the reserve), reconciliation stops (their demand is not zero) and, its own requests having been paced,
the slots it held free up about one per ``pace`` seconds, never all at the end of the window (measured in
``bench/reconcile_priority.py``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import redis
import structlog

from worker.errors import Stage, Twenty2RateLimited, redis_errors
from worker.ratelimit import WINDOW_SECONDS, SharedRateLimit

log = structlog.get_logger(__name__)

#: Seconds a waiter's demand entry outlives its own longest wait (a killed process's entry then expires).
DEMAND_GRACE = 30.0


class PriorityBudget:
    """Webhook-driven requests first (``urgent``), reconciliation in the room they leave (``spare``)."""

    def __init__(
        self,
        client: redis.Redis,
        limit: SharedRateLimit,
        *,
        reserve: int = 5,
        spare_max_wait: float = 120.0,
        poll: float = 0.05,
        pace: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.r = client
        self.limit = limit
        self.reserve = max(reserve, 0)
        self.spare_max_wait = spare_max_wait
        self.poll = poll
        self._sleep = sleep
        self._clock = clock
        self.demand_key = f"crm-sync:twenty2-demand:{limit.key}"
        self.pace_key = f"crm-sync:twenty2-spare-pace:{limit.key}"
        self.urgent_key = f"crm-sync:twenty2-urgent:{limit.key}"
        per_minute = max(limit.per_minute, 1)
        self.pace = 60.0 / per_minute if pace is None else max(pace, 0.0)

    def urgent(self) -> None:
        """Before a webhook-driven request: register demand, wait for the shared limit, withdraw demand."""
        if not self.limit.enabled:
            return
        token = uuid.uuid4().hex
        with redis_errors(Stage.FETCH):
            self.r.zadd(self.demand_key, {token: self._clock() + self.limit.max_wait + DEMAND_GRACE})
        try:
            self.limit.acquire()
        finally:
            now = self._clock()
            with redis_errors(Stage.FETCH):
                pipe = self.r.pipeline(transaction=False)
                pipe.zrem(self.demand_key, token)
                pipe.zadd(self.urgent_key, {token: now})
                pipe.zremrangebyscore(self.urgent_key, "-inf", now - WINDOW_SECONDS)
                pipe.execute()

    def recent_urgent(self) -> int:
        """Urgent requests sent in the last window (every process)."""
        with redis_errors(Stage.FETCH):
            return int(self.r.zcount(self.urgent_key, self._clock() - WINDOW_SECONDS, "+inf"))  # type: ignore[arg-type]

    def demand(self) -> int:
        """Webhook-driven requests waiting for the limit now (every process)."""
        with redis_errors(Stage.FETCH):
            return int(self.r.zcount(self.demand_key, self._clock(), "+inf"))  # type: ignore[arg-type]

    def spare(self) -> None:
        """Before a reconciliation request: wait until no webhook-driven request waits and a slot is free
        with ``reserve`` left over, then take it. Raises ``Twenty2RateLimited`` (retryable) after
        ``spare_max_wait`` seconds without room."""
        if not self.limit.enabled:
            return
        waited = 0.0
        while True:
            if (
                self.demand() == 0
                and self.limit.try_acquire(leave=self.reserve + self.recent_urgent(), test_only=True)
                and self._paced()
                and self.limit.try_acquire(leave=self.reserve + self.recent_urgent())
            ):
                if waited:
                    log.debug("reconcile.budget_waited", seconds=round(waited, 2))
                return
            if waited >= self.spare_max_wait:
                raise Twenty2RateLimited(
                    "no room in the Twenty2 budget for reconciliation (webhook syncs come first)",
                    code="RECONCILE_NO_ROOM",
                    stage=Stage.FETCH,
                    retry_after=self.poll * 20,
                )
            self._sleep(self.poll)
            waited += self.poll

    def _paced(self) -> bool:
        """Claim this pace interval for one spare request (True), unless another took it (False)."""
        if self.pace <= 0:
            return True
        with redis_errors(Stage.FETCH):
            return bool(self.r.set(self.pace_key, "1", nx=True, px=max(int(self.pace * 1000), 1)))

    def room(self) -> int:
        """Requests reconciliation could take now (0 while webhook-driven requests wait)."""
        if not self.limit.enabled:
            return self.limit.per_minute if self.limit.per_minute > 0 else 1_000_000
        if self.demand():
            return 0
        return max(self.limit.per_minute - self.limit.used() - self.reserve - self.recent_urgent(), 0)
