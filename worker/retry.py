"""One retry policy: how long every retry waits, and the one switch that makes tests not wait.

``backoff(attempt, base=..., cap=..., retry_after=...)`` is the only backoff in the service. Its users:

- the Twenty2 client's in-process retries (``Backoff`` ``TWENTY2``: 4 attempts, 0.5 s doubling, at most 8 s),
- the Salesforce client's read retries and the Lead reader's (``SALESFORCE_READS``: 3 attempts, 0.5 s
  doubling, at most 4 s), both as the ``wait`` of a tenacity loop (``Backoff.wait``),
- every Redis client's retries of a lost connection or a demoted primary during a failover (``REDIS``, and
  the intake's shorter ``REDIS_INTAKE``: it must answer within 5 s), as redis-py's ``Retry`` backoff
  (``RedisBackoff``; built in ``worker.redis_clients``),
- the ledger's due times for a retryable sync (``CRM_SYNC_RETRY_BASE_SECONDS`` doubling per failure, at most
  ``CRM_SYNC_RETRY_MAX_SECONDS``; see ``worker.sync.core.record_error``).

The wait grows ``base * 2**(attempt - 1)``, is capped at ``cap``, and is jittered in its upper half (so
retries of many calls that failed together spread out, and never come sooner than half the backoff); a
``Retry-After`` the server sent (``SyncError.retry_after``) is a floor, still capped at ``cap``.

``testing(wait=False)`` (the test suite's conftest enters it once) makes the in-process retry loops skip
their sleeps, with the same number of attempts; due times in the ledger are data, not waits, and stay
as computed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import structlog
from redis.backoff import AbstractBackoff
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

log = structlog.get_logger(__name__)

#: Exponents beyond this change nothing (every cap in use is reached long before) and would overflow.
_MAX_EXPONENT = 60

_waiting = True


def backoff(attempt: int, *, base: float, cap: float, retry_after: float | None = None, jitter: float = 0.5) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    ``base * 2**(attempt - 1)`` capped at ``cap``; its upper ``jitter`` share is random (0.5: between half
    and all of it; 0: exactly it); at least ``retry_after`` when given; never more than ``cap``.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    if min(base, cap) < 0 or not 0 <= jitter <= 1:
        raise ValueError("base and cap cannot be negative; jitter is a share between 0 and 1")
    grown = min(cap, base * 2 ** min(attempt - 1, _MAX_EXPONENT))
    delay = grown * (1 - jitter) + random.uniform(0, grown * jitter)
    return min(cap, max(delay, retry_after or 0.0))


def sleep(seconds: float) -> None:
    """Wait ``seconds``, unless tests switched waits off (``testing``)."""
    if _waiting and seconds > 0:
        time.sleep(seconds)


@contextmanager
def testing(*, wait: bool = False) -> Iterator[None]:
    """Inside the block, retry loops do (``wait=True``) or skip (``wait=False``) their sleeps."""
    global _waiting
    before, _waiting = _waiting, wait
    try:
        yield
    finally:
        _waiting = before


def logged(event: str) -> Callable[[RetryCallState], None]:
    """A tenacity ``before_sleep`` that logs ``event`` with the attempt, the wait and the sorted error."""

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            event,
            attempt=state.attempt_number,
            wait_s=round(state.upcoming_sleep, 3),
            error=type(exc).__name__,
            code=getattr(exc, "code", None),
            http_status=getattr(exc, "http_status", None),
        )

    return before_sleep


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """A bounded retry loop's policy: ``attempts`` tries in all, waits from ``backoff`` between them."""

    attempts: int
    base: float
    cap: float
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        backoff(1, base=self.base, cap=self.cap, jitter=self.jitter)  # the same checks, once

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        return backoff(attempt, base=self.base, cap=self.cap, retry_after=retry_after, jitter=self.jitter)

    def wait(self, state: RetryCallState) -> float:
        """tenacity's ``wait``: the delay after the attempt that just failed, at least its ``retry_after``."""
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        return self.delay(state.attempt_number, retry_after if isinstance(retry_after, int | float) else None)

    def retrying(
        self,
        on: type[BaseException] | tuple[type[BaseException], ...],
        *,
        event: str,
    ) -> Retrying:
        """A tenacity loop: ``attempts`` tries, retrying only ``on``, waiting ``wait`` (through ``sleep``, so
        ``testing`` applies), logging ``event`` before each wait, re-raising the last error itself rather
        than tenacity's ``RetryError``."""
        return Retrying(
            stop=stop_after_attempt(self.attempts),
            retry=retry_if_exception_type(on),
            wait=self.wait,
            sleep=sleep,
            before_sleep=logged(event),
            reraise=True,
        )


#: The Twenty2 client's retries of transient failures (connection, timeout, 429, 5xx).
TWENTY2 = Backoff(attempts=4, base=0.5, cap=8.0)
#: Salesforce reads (query, search, describe, get, limits; the Lead reader's composites) on ``SalesforceUnavailable``.
SALESFORCE_READS = Backoff(attempts=3, base=0.5, cap=4.0)


class RedisBackoff(AbstractBackoff):
    """redis-py's ``Retry`` backoff from a ``Backoff`` policy (no wait while tests switched waits off)."""

    def __init__(self, policy: Backoff) -> None:
        self.policy = policy

    def reset(self) -> None:
        """Stateless: every failure count is computed afresh."""

    def compute(self, failures: int) -> float:
        return self.policy.delay(max(failures, 1)) if _waiting else 0.0


#: Redis commands on a lost connection / a demoted primary (Sentinel failover): about 7 s of retries at
#: most, long enough for Sentinel to promote a replica (down-after + election) with short settings.
REDIS = Backoff(attempts=7, base=0.25, cap=2.0)
#: No retry at all (the intake's flood guard fails open at once instead).
ONCE = Backoff(attempts=1, base=0.0, cap=0.0)
#: The intake's Redis commands: under a second of retries, then 503 (Twenty2's budget is 5 s).
REDIS_INTAKE = Backoff(attempts=3, base=0.1, cap=0.4)
