"""The three error families every boundary sorts its failures into, once.

- ``RetryableError``: the same request may succeed later (network, timeouts, 429, 5xx, record locks,
  expired session after one refresh, daily API limit, a call that is not final yet). Retried with backoff,
  bounded; what exhausts the bound is recorded ``failed`` with ``retryable=True`` so ops can replay it.
- ``PermanentError``: retrying the same input cannot help (unknown call id, validation rule, bad mapping,
  forbidden field). Recorded ``failed`` at once with the reason.
- ``SkippedError``: nothing to write, on purpose (unknown number with the skip policy). Recorded ``skipped``.

Every error carries the stage it happened in and the remote system's own error code, so the ledger
and ``crm-sync failures`` can show "write / UNABLE_TO_LOCK_ROW" without parsing messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, ClassVar

import redis.exceptions
import structlog

log = structlog.get_logger(__name__)


class Disposition(StrEnum):
    RETRYABLE = "retryable"
    PERMANENT = "permanent"
    SKIPPED = "skipped"


class Stage(StrEnum):
    INTAKE = "intake"
    FETCH = "fetch"
    LOOKUP = "lookup"
    PLAN = "plan"
    WRITE = "write"
    RECORD = "record"


class SyncError(Exception):
    """Base of all sorted errors. Messages never contain secrets or full phone numbers."""

    disposition: ClassVar[Disposition] = Disposition.PERMANENT

    def __init__(
        self,
        message: str,
        *,
        stage: Stage | str = Stage.WRITE,
        code: str | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.stage = Stage(stage)
        self.code = code
        self.http_status = http_status
        self.retry_after = retry_after
        self.details = details or {}

    @property
    def retryable(self) -> bool:
        return self.disposition is Disposition.RETRYABLE

    def as_record(self) -> dict[str, Any]:
        """The error as the ledger stores it."""
        return {
            "stage": self.stage.value,
            "class": type(self).__name__,
            "code": self.code,
            "http_status": self.http_status,
            "message": self.message[:1000],
            "retryable": self.retryable,
            "disposition": self.disposition.value,
        }

    def __str__(self) -> str:
        parts = [self.stage.value]
        if self.code:
            parts.append(self.code)
        return f"[{' / '.join(parts)}] {self.message}"


class RetryableError(SyncError):
    disposition = Disposition.RETRYABLE


class PermanentError(SyncError):
    disposition = Disposition.PERMANENT


class SkippedError(SyncError):
    disposition = Disposition.SKIPPED


# --- Twenty2 ------------------------------------------------------------------------------------------


class Twenty2Error(SyncError):
    """Any error answered by (or on the way to) the Twenty2 API."""


class Twenty2Unavailable(Twenty2Error, RetryableError):
    """Connection error, timeout, 5xx."""


class Twenty2RateLimited(Twenty2Error, RetryableError):
    """429 RATE_LIMIT_EXCEEDED."""


class CallNotFinal(Twenty2Error, RetryableError):
    """The call has not ended yet (or its outputs are not ready): sync it later, never half."""


class Twenty2Unauthorized(Twenty2Error, PermanentError):
    """401 UNAUTHORIZED: key missing or invalid."""


class Twenty2Forbidden(Twenty2Error, PermanentError):
    """403 FORBIDDEN: the key cannot see this workspace or call."""


class CallNotFound(Twenty2Error, PermanentError):
    """404 CALL_NOT_FOUND."""


class Twenty2BadRequest(Twenty2Error, PermanentError):
    """400 / 422 and any other 4xx: the request itself is wrong."""


class Twenty2BadResponse(Twenty2Error, PermanentError):
    """A 2xx whose body is not the documented shape."""


# --- Salesforce ----------------------------------------------------------------------------------------


class SalesforceError(SyncError):
    """Any error answered by (or on the way to) Salesforce."""


class SalesforceUnavailable(SalesforceError, RetryableError):
    """Connection error, timeout, 5xx, UNABLE_TO_LOCK_ROW, SERVER_UNAVAILABLE."""


class SalesforceLimitExceeded(SalesforceError, RetryableError):
    """403 REQUEST_LIMIT_EXCEEDED: the org's daily allowance is spent; hold and resume."""


class SalesforceSessionExpired(SalesforceError, RetryableError):
    """401 INVALID_SESSION_ID that one refresh did not cure."""


class SalesforceAuthError(SalesforceError, PermanentError):
    """The OAuth token endpoint refused the credentials (invalid_grant, invalid_client, ...)."""


class SalesforceRejected(SalesforceError, PermanentError):
    """Validation rule, missing required field, bad value, forbidden field, converted lead, ..."""


class RedisUnavailable(RetryableError):
    """The worker's own Redis (caches, locks, rate limit, API budget) did not answer: restarting, loading,
    unreachable. The sync is tried again once it does."""


#: What redis-py raises when the server cannot be reached or answer (BusyLoadingError is a ConnectionError).
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


@contextmanager
def redis_errors(stage: Stage) -> Iterator[None]:
    """Sort a Redis outage inside the block as ``RedisUnavailable`` (retryable) at ``stage``."""
    try:
        yield
    except REDIS_DOWN as exc:
        raise RedisUnavailable(
            f"Redis unavailable: {type(exc).__name__}: {exc}"[:300], stage=stage, code="REDIS_UNAVAILABLE"
        ) from exc


class InternalError(PermanentError):
    """A bug, not bad data: an exception no boundary sorted. Permanent (kept visible; ops replay it once
    fixed), code ``INTERNAL``, at the stage it happened in (fetch, lookup, plan, write, record)."""

    @classmethod
    def wrap(cls, exc: BaseException, *, stage: Stage) -> InternalError:
        return cls(f"internal error: {type(exc).__name__}: {exc}"[:500], stage=stage, code="INTERNAL")


@contextmanager
def internal_errors(stage: Stage, **fields: Any) -> Iterator[None]:
    """Let sorted errors (``SyncError``) through; turn anything else raised inside the block into an
    ``InternalError`` at ``stage`` (logged once with its traceback, ``fields`` added to the event)."""
    try:
        yield
    except SyncError:
        raise
    except Exception as exc:
        log.exception("sync.crashed", stage=stage.value, **fields)
        raise InternalError.wrap(exc, stage=stage) from exc


class MappingError(PermanentError):
    """The mapping file is invalid, or a mapped value does not exist in the org's picklist."""
