"""The org's daily API allowance, as every Salesforce response reports it (``Sforce-Limit-Info``).

Workers publish what they last saw to Redis (all workers share one org), ``crm-sync status --limits``
shows it, and ``check()`` holds new syncs once only the reserve is left, so the integration slows to a
stop before Salesforce starts refusing it and other integrations of the org keep their share.

Far from the reserve, a process shares its reading and reads the others' at most once per
``SHARE_EVERY`` seconds (two Redis round trips a sync saved); once the allowance left is within twice the
reserve, every sync reads and publishes, so the hold starts at the reserve, not a second late.

While syncs are held, a held sync sends no request, so no response brings a new reading. So one worker at
a time asks Salesforce (a *probe*: ``GET /limits``, ``DailyApiRequests`` ``Max``/``Remaining``), at most
once per hold interval across all workers (a ``SET NX`` key in Redis); its reading is published like any
other (``source`` ``limits``), and a reading above the reserve ends the hold for every worker at once. A
probe Salesforce refuses (403 ``REQUEST_LIMIT_EXCEEDED``) keeps the hold; one that cannot be read at all
(no permission to the Limits resource, a network error) lets that one sync through, whose own responses
then report the usage.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import redis
import structlog

from worker.errors import SalesforceLimitExceeded, Stage, SyncError, redis_errors

log = structlog.get_logger(__name__)

#: Far from the reserve, how often (seconds) a process publishes its reading and reads the shared one.
SHARE_EVERY = 1.0

#: What a probe returns: (used, max) of the daily allowance, or None when it could not be read.
Probe = Callable[[], "tuple[int, int] | None"]


# Keep the newest reading: workers publish what they saw, in whatever order they finish.
_PUBLISH_NEWER = """
local seen = tonumber(redis.call('HGET', KEYS[1], 'seen_at') or '0')
if tonumber(ARGV[3]) > seen then
  redis.call('HSET', KEYS[1], 'used', ARGV[1], 'max', ARGV[2], 'seen_at', ARGV[3], 'source', ARGV[4])
end
"""


@dataclass(frozen=True)
class Usage:
    """A reading of the daily allowance; ``source``: ``header`` (``Sforce-Limit-Info`` of a response) or
    ``limits`` (a probe of the Limits resource)."""

    used: int
    maximum: int
    seen_at: float
    source: str = "header"

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
        self.probe_key = f"{prefix}:salesforce-probe"
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
            self._send(reading)

    def _send(self, reading: Usage) -> None:
        self._publish(keys=[self.key], args=[reading.used, reading.maximum, reading.seen_at, reading.source])

    def last(self) -> Usage | None:
        data = cast(dict[Any, Any], self.r.hgetall(self.key))
        if not data:
            return None
        get = {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}
        source = get.get("source", b"header")
        return Usage(
            int(get["used"]),
            int(get["max"]),
            float(get["seen_at"]),
            source.decode() if isinstance(source, bytes) else str(source),
        )

    def check(self, *, hold_seconds: float, probe: Probe | None = None) -> None:
        """Raise a hold (retryable, not counted as a failure) once usage has reached the reserve.

        While held, ``probe`` (``GET /limits``) is asked by one worker at a time, at most once per
        ``hold_seconds`` across all workers; a reading above the reserve is published and ends the hold,
        one that Salesforce refuses keeps it, and one that cannot be read lets this sync through (see the
        module docstring). Without ``probe``, a reading older than ``hold_seconds`` holds nothing (only a
        sync let through can learn whether the allowance has recovered).
        """
        usage, now = self._known, self._clock()
        if usage is None or self._near(usage) or now - self._read_at >= SHARE_EVERY:
            with redis_errors(Stage.WRITE):
                shared = self.last()
            self._read_at = now
            usage = self._keep(shared)
        if usage is None or usage.remaining_share > self.reserve:
            return
        if probe is None:
            if time.time() - usage.seen_at > hold_seconds:
                return
        elif self._probe_turn(hold_seconds):
            reading = self._probe(probe, usage)
            if reading is None:
                log.info("salesforce.budget_probe_unread", reserve=self.reserve)
                return  # this sync is the probe: its own responses report the usage
            if reading.remaining_share > self.reserve:
                log.info("salesforce.hold_ended", used=reading.used, max=reading.maximum, remaining=reading.remaining)
                return
            usage = reading
        log.warning("salesforce.budget_reserve_reached", used=usage.used, max=usage.maximum, reserve=self.reserve)
        raise SalesforceLimitExceeded(
            f"daily API allowance down to its reserve ({usage.remaining} of {usage.maximum} left, "
            f"reserve {self.reserve:.0%}, {usage.source} reading {_age(usage)}): holding new syncs",
            stage=Stage.WRITE,
            code="API_RESERVE_REACHED",
        )

    def probe_now(self, probe: Probe) -> Usage | None:
        """Ask Salesforce now (an operator's command: no turn taken), publish and return the reading (None:
        it could not be read)."""
        with redis_errors(Stage.WRITE):
            known = self._keep(self.last())
        return self._probe(probe, known)

    def _probe_turn(self, hold_seconds: float) -> bool:
        """Whether this worker probes now: at most one probe per hold interval, on all workers together."""
        with redis_errors(Stage.WRITE):
            return bool(self.r.set(self.probe_key, 1, nx=True, px=max(1, int(hold_seconds * 1000))))

    def _probe(self, probe: Probe, known: Usage | None) -> Usage | None:
        """Run ``probe``; publish what it read. Salesforce refusing it (the daily limit) reads as spent."""
        seen_at = time.time()
        try:
            answer = probe()
        except SalesforceLimitExceeded:
            maximum = known.maximum if known is not None and known.maximum else 1
            answer = (maximum, maximum)
        except SyncError as exc:
            log.warning("salesforce.budget_probe_failed", code=exc.code)
            return None
        if answer is None:
            return None
        reading = Usage(*answer, seen_at=seen_at, source="limits")
        self._keep(reading)
        with redis_errors(Stage.WRITE):
            self._send(reading)
        return reading

    def _near(self, usage: Usage) -> bool:
        return usage.remaining_share <= 2 * self.reserve

    def _keep(self, reading: Usage | None) -> Usage | None:
        """Remember ``reading`` if it is newer than what this process knows; return the newest known."""
        known = self._known
        if reading is not None and (known is None or reading.seen_at > known.seen_at):
            self._known = known = reading
        return known


def daily_requests(limits: dict[str, Any]) -> tuple[int, int] | None:
    """(used, max) from a Limits resource answer (``DailyApiRequests`` ``Max`` / ``Remaining``; the docs
    show them as numbers and, in older versions, as strings), or None when it has no such reading."""
    daily = limits.get("DailyApiRequests")
    if not isinstance(daily, dict):
        return None
    try:
        maximum, remaining = int(daily["Max"]), int(daily["Remaining"])
    except (KeyError, TypeError, ValueError):
        return None
    return max(maximum - remaining, 0), maximum


def _age(usage: Usage) -> str:
    seconds = max(0, round(time.time() - usage.seen_at))
    return "just now" if seconds < 1 else f"{seconds} s old"
