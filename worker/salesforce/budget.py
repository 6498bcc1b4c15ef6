"""The org's daily API allowance, as every Salesforce response reports it (``Sforce-Limit-Info``).

Workers publish what they last saw to Redis (all workers share one org), ``crm-sync status --limits``
shows it, and ``check()`` holds new syncs once only the reserve is left, so the integration slows to a
stop before Salesforce starts refusing it and other integrations of the org keep their share.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

import redis
import structlog

from worker.errors import SalesforceLimitExceeded, Stage, redis_errors

log = structlog.get_logger(__name__)


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

    def __init__(self, client: redis.Redis, *, reserve: float, prefix: str = "crm-sync") -> None:
        self.r = client
        self.reserve = reserve
        self.key = f"{prefix}:salesforce-usage"
        self._publish = self.r.register_script(_PUBLISH_NEWER)

    def observe(self, usage: tuple[int, int] | None, seen_at: float) -> None:
        """Publish a reading taken at ``seen_at``, unless a newer one (from any worker) is already there."""
        if usage is None:
            return
        used, maximum = usage
        self._publish(keys=[self.key], args=[used, maximum, seen_at])

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
        with redis_errors(Stage.WRITE):
            usage = self.last()
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
