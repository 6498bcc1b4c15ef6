"""The org's daily API allowance, as every Salesforce response reports it (``Sforce-Limit-Info``).

Workers publish what they last saw to Redis (all workers share one org), ``crm-sync status --limits``
shows it, and ``check()`` holds new syncs once only the reserve is left, so the integration slows to a
stop before Salesforce starts refusing it and other integrations of the org keep their share.

Far from the reserve, a process shares its reading and reads the others' at most once per
``SHARE_EVERY`` seconds (two Redis round trips a sync saved); once the allowance left is within twice the
reserve, every sync reads and publishes, so the hold starts at the reserve, not a second late.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import redis
import structlog

from worker.errors import SalesforceLimitExceeded, Stage, redis_errors

log = structlog.get_logger(__name__)

#: Far from the reserve, how often (seconds) a process publishes its reading and reads the shared one.
SHARE_EVERY = 1.0


# Keep the newest reading: workers publish what they saw, in whatever order they finish.
_PUBLISH_NEWER = """
local seen = tonumber(redis.call('HGET', KEYS[1], 'seen_at') or '0')
if tonumber(ARGV[3]) > seen then
  redis.call('HSET', KEYS[1], 'used', ARGV[1], 'max', ARGV[2], 'seen_at', ARGV[3])
end
"""


@dataclass(frozen=True)
class Usage:
    used: int
    maximum: int
    seen_at: float

    @property
    def remaining(self) -> int:
        return max(self.maximum - self.used, 0)

    @property
    def remaining_share(self) -> float:
        return self.remaining / self.maximum if self.maximum else 1.0


class ApiBudget:
    """``reserve``: share of the daily allowance (0–1) never spent by this integration."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        reserve: float,
        prefix: str = "crm-sync",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.r = client
        self.reserve = reserve
        self.key = f"{prefix}:salesforce-usage"
        self._publish = self.r.register_script(_PUBLISH_NEWER)
        self._clock = clock
        # This process's newest reading (its own or the shared one) and when it last read / published.
        # Threads race on these harmlessly: the worst outcome is one extra round trip.
        self._known: Usage | None = None
        self._read_at = self._published_at = -math.inf

    def observe(self, usage: tuple[int, int] | None, seen_at: float) -> None:
        """Publish a reading taken at ``seen_at``, unless a newer one (from any worker) is already there.
        Far from the reserve, at most once per ``SHARE_EVERY`` seconds per process."""
        if usage is None:
            return
        reading = Usage(*usage, seen_at=seen_at)
        self._keep(reading)
        now = self._clock()
        if self._near(reading) or now - self._published_at >= SHARE_EVERY:
            self._published_at = now
            self._publish(keys=[self.key], args=[reading.used, reading.maximum, reading.seen_at])

    def last(self) -> Usage | None:
        data = cast(dict[Any, Any], self.r.hgetall(self.key))
        if not data:
            return None
        get = {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}
        return Usage(int(get["used"]), int(get["max"]), float(get["seen_at"]))

    def check(self, *, max_age: float | None = None) -> None:
        """Raise a hold (retryable, not counted as a failure) once usage has reached the reserve.

        A reading older than ``max_age`` seconds holds nothing: held syncs send no request, so only a sync
        let through can learn whether the allowance has recovered (otherwise the hold would never lift).
        """
        usage, now = self._known, self._clock()
        if usage is None or self._near(usage) or now - self._read_at >= SHARE_EVERY:
            with redis_errors(Stage.WRITE):
                shared = self.last()
            self._read_at = now
            usage = self._keep(shared)
        if usage is None or usage.remaining_share > self.reserve:
            return
        if max_age is not None and time.time() - usage.seen_at > max_age:
            return
        log.warning("salesforce.budget_reserve_reached", used=usage.used, max=usage.maximum, reserve=self.reserve)
        raise SalesforceLimitExceeded(
            f"daily API allowance down to its reserve ({usage.remaining} of {usage.maximum} left, "
            f"reserve {self.reserve:.0%}): holding new syncs",
            stage=Stage.WRITE,
            code="API_RESERVE_REACHED",
        )

    def _near(self, usage: Usage) -> bool:
        return usage.remaining_share <= 2 * self.reserve

    def _keep(self, reading: Usage | None) -> Usage | None:
        """Remember ``reading`` if it is newer than what this process knows; return the newest known."""
        known = self._known
        if reading is not None and (known is None or reading.seen_at > known.seen_at):
            self._known = known = reading
        return known
