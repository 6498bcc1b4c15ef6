"""A rate limit shared by every worker on every machine, kept in Redis (the ``limits`` library).

Twenty2 allows 60 requests a minute per workspace. Each worker thread calls ``acquire()`` before each
request; when the moving window is full it sleeps until a slot frees, so a backlog drains at the limit
instead of in 429 storms.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from limits import RateLimitItemPerSecond
from limits.strategies import MovingWindowRateLimiter

from worker.errors import Stage, redis_errors
from worker.redis_clients import limits_storage, settings_for
from worker.settings import Settings

log = structlog.get_logger(__name__)

WINDOW_SECONDS = 61


class SharedRateLimit:
    """``per_minute`` requests per minute for ``key`` across processes; ``per_minute <= 0`` disables it."""

    def __init__(
        self,
        redis: Settings | str,
        *,
        key: str,
        per_minute: int,
        max_wait: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.key = key
        self.per_minute = per_minute
        self.max_wait = max_wait
        self._sleep = sleep
        # Counted over 61 s, not 60: a request leaves some milliseconds after its slot is taken, so a window
        # exactly as long as the server's lets a burst at the window's edge arrive as the 61st (a 429).
        self._item = RateLimitItemPerSecond(max(per_minute, 1), WINDOW_SECONDS)
        self._limiter = (
            MovingWindowRateLimiter(limits_storage(settings_for(redis), key_prefix="crm-sync-rl"))
            if per_minute > 0
            else None
        )

    def acquire(self) -> None:
        """Block until a request may be sent (at most ``max_wait`` seconds, then send anyway: the client's
        own 429 handling is the backstop)."""
        if self._limiter is None:
            return
        with redis_errors(Stage.FETCH):
            self._wait()

    @property
    def enabled(self) -> bool:
        return self._limiter is not None

    def try_acquire(self, *, leave: int = 0, test_only: bool = False) -> bool:
        """Take a request slot now if one is free with ``leave`` more still free after it; never waits.
        True when the request may be sent (always, when the limit is off). ``test_only``: take nothing, say
        whether it would."""
        if self._limiter is None:
            return True
        with redis_errors(Stage.FETCH):
            if leave + 1 > self.per_minute or not self._limiter.test(self._item, self.key, cost=leave + 1):
                return False
            return True if test_only else bool(self._limiter.hit(self._item, self.key))

    def used(self) -> int:
        """Requests counted in the current window, by every process (0 when the limit is off)."""
        if self._limiter is None:
            return 0
        stats = self._limiter.get_window_stats(self._item, self.key)
        return max(self.per_minute - stats.remaining, 0)

    def _wait(self) -> None:
        assert self._limiter is not None
        waited = 0.0
        while not self._limiter.hit(self._item, self.key):
            stats = self._limiter.get_window_stats(self._item, self.key)
            pause = min(max(stats.reset_time - time.time(), 0.05), 5.0)
            if waited + pause > self.max_wait:
                log.warning("ratelimit.gave_up_waiting", key=self.key, waited=round(waited, 1))
                return
            self._sleep(pause)
            waited += pause
        if waited:
            log.debug("ratelimit.waited", key=self.key, seconds=round(waited, 2))
