"""What the streaming path (``worker.sync.stream``) and the bulk path (``worker.sync.bulk``) share, once.

- **The per-call guard**: the lock ``crm-sync:lock:{call_id}`` (two workers never write one call at once:
  the Task external id is not a unique field, so only this stops a race from inserting twice), its
  lifetime (``lock_seconds``), and the org's API budget: ``check_budget`` before a sync's requests (the
  reserve holds work), ``observe_budget`` after them (what Salesforce reported is shared).
- **Sorting and recording**: ``record_error`` files a ``SyncError`` as skipped, held (daily limit), due
  again later (retryable, bounded by ``CRM_SYNC_MAX_ATTEMPTS``, delayed by ``worker.retry.backoff``) or
  failed; ``record_synced`` files a written call and runs the automatic-callback hook (both paths). An
  exception no boundary sorted becomes an ``InternalError`` at the stage it happened in
  (``worker.errors.internal_errors``).
- **Shared steps**: ``fetch_call`` (the detail, then the transcript of a connected call), the stale-Lead
  rule (``is_stale_target``: Salesforce says the Lead we planned on changed, was converted or deleted,
  so the Lead is read again and the call re-planned: ``lead_changed``), and the Lead-cache drop after a
  write changed the Lead (``forget_written``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from redis.lock import Lock

from worker import heartbeat, retry
from worker.autocall.hooks import after_sync
from worker.errors import (
    RetryableError,
    SalesforceLimitExceeded,
    SalesforceRejected,
    SkippedError,
    Stage,
    SyncError,
    internal_errors,
)
from worker.ledger import Ledger
from worker.plan import SyncPlan, lead_phone
from worker.redis_clients import RetrySafeLock
from worker.runtime import Runtime
from worker.salesforce.budget import daily_requests
from worker.settings import Settings
from worker.sync import holders
from worker.sync.services import Services
from worker.twenty2.models import CallDetail

log = structlog.get_logger(__name__)

#: Longest a sync holds its call's lock (the bulk path renews it while a chunk runs).
LOCK_SECONDS = 300

#: What Salesforce answers when the Lead we planned against is no longer as we read it.
STALE_TARGET_CODES = frozenset(
    {
        "CANNOT_UPDATE_CONVERTED_LEAD",
        "ENTITY_IS_DELETED",
        "INVALID_CROSS_REFERENCE_KEY",
        "ENTITY_FAILED_IFLASTMODIFIED_ON_UPDATE",  # If-Unmodified-Since refused (412)
        "PRECONDITION_FAILED",
    }
)
#: 412 Precondition Failed: the conditional Lead update found the Lead modified since it was read.
PRECONDITION_FAILED = 412


@dataclass
class SyncOutcome:
    """A written call: its plan, the Salesforce ids by plan ref, and the detail it was planned from."""

    plan: SyncPlan
    salesforce_ids: dict[str, str]
    detail: CallDetail

    @property
    def summary(self) -> str:
        parts = [f"{ref} {sf_id}" for ref, sf_id in self.salesforce_ids.items() if sf_id]
        return ", ".join(parts) or "nothing written"


# --- the per-call guard ------------------------------------------------------------------------------------


def lock_seconds(settings: Settings) -> float:
    """Never longer than the visibility timeout: when Redis redelivers the task, its holder is presumed dead,
    and a dead worker's lock must not turn the redelivery (and every stale re-enqueue) away as "busy"."""
    return min(LOCK_SECONDS, settings.celery_visibility_timeout)


def call_lock(runtime: Runtime, call_id: str) -> Lock:
    """The call's lock (not yet taken: take it with ``acquire``; a held call is someone else's)."""
    return runtime.redis.lock(
        holders.lock_key(call_id), timeout=lock_seconds(runtime.settings), blocking=False, lock_class=RetrySafeLock
    )


def acquire(lock: Lock) -> bool:
    """Take a call lock without blocking. Its value names this process (``holders.lock_token``): the sweep
    frees the locks of a dead worker only; the release compares the token, so a late worker whose lock
    expired (or was freed) cannot release the lock another worker holds now."""
    return bool(lock.acquire(token=holders.lock_token(heartbeat.live_owner())))


def release(lock: Lock, **fields: str) -> None:
    """Release a call lock taken with ``call_lock``; one that expired meanwhile is only logged."""
    try:
        lock.release()
    except Exception:  # the lock expired: another worker may own it now; nothing to undo
        log.warning("sync.lock_expired", **fields)


def check_budget(runtime: Runtime) -> None:
    """Hold (``SalesforceLimitExceeded``) once the org's daily API allowance is down to the reserve; while
    held, one worker per hold interval probes the allowance (``probe_allowance``), ending the hold as soon
    as it is back."""
    with internal_errors(Stage.WRITE):
        runtime.budget.check(
            hold_seconds=runtime.settings.crm_sync_limit_hold_seconds, probe=lambda: probe_allowance(runtime)
        )


def probe_allowance(runtime: Runtime) -> tuple[int, int] | None:
    """(used, max) of the org's daily allowance, asked of Salesforce now (``GET /limits``), or None."""
    return daily_requests(runtime.services.salesforce.limits())


def observe_budget(runtime: Runtime) -> None:
    """Publish the API usage Salesforce last reported, with the time it was read: a held sync (no request
    sent) republishes nothing new. Nothing to publish before the clients exist."""
    if runtime.has_services:
        salesforce = runtime.services.salesforce
        runtime.budget.observe(salesforce.api_usage, salesforce.api_usage_seen_at)


# --- shared steps ------------------------------------------------------------------------------------------


def fetch_call(
    services: Services, call_id: str, *, on_request: Callable[[], None] | None = None
) -> tuple[CallDetail, str | None]:
    """The call's final detail and, for a connected call, its transcript (None when there is none).
    ``on_request`` runs before each of the (at most two) fetches that reach Twenty2."""
    count = on_request or (lambda: None)
    with internal_errors(Stage.FETCH, call_id=call_id):
        count()
        detail = services.twenty2.get_call_detail(call_id)
        link = detail.transcript
        if not detail.call.connected or link is None:
            return detail, None
        if link.url:
            count()
        return detail, services.twenty2.fetch_transcript(link)


def is_stale_target(error: SyncError) -> bool:
    """Salesforce refused a write because the Lead it was planned on changed since it was read (412 on the
    conditional update), was converted, or deleted: read the Lead again and plan the call again."""
    return isinstance(error, SalesforceRejected) and (
        error.code in STALE_TARGET_CODES or error.http_status == PRECONDITION_FAILED
    )


def lead_changed(services: Services, plan: SyncPlan, detail: CallDetail, error: SyncError) -> None:
    """The stale-Lead rule's first step: log it and drop the snapshot the plan was made on."""
    log.info("sync.lead_changed_meanwhile", call_id=detail.call.call_id, code=error.code, status=error.http_status)
    services.finder.forget(plan.target, detail)


def forget_written(services: Services, plan: SyncPlan, detail: CallDetail) -> None:
    """Drop the cached snapshot of a Lead this plan wrote: our own write changed it."""
    if plan.write("lead") is not None:
        with internal_errors(Stage.WRITE, call_id=detail.call.call_id):
            services.finder.forget(plan.target, detail)


# --- recording ---------------------------------------------------------------------------------------------


def record_synced(runtime: Runtime, outcome: SyncOutcome) -> str:
    """File a written call as ``synced`` and run what follows every successful sync, on both paths (the
    streaming worker's and the bulk replay/backfill): the automatic-callback hook (schedule the callback
    the call promised, or close the loop of a callback call; it never raises, and schedules at most one
    callback per call however often the call is replayed)."""
    call_id = outcome.detail.call.call_id
    phone = lead_phone(outcome.detail)
    runtime.ledger.synced(call_id, salesforce_ids=outcome.salesforce_ids, summary=outcome.summary, phone=phone)
    log.info("sync.synced", call_id=call_id, writes=len(outcome.plan.writes), ids=outcome.salesforce_ids)
    after_sync(runtime, outcome)
    return "synced"


def record_error(
    ledger: Ledger, settings: Settings, call_id: str, exc: SyncError, *, detail: CallDetail | None = None
) -> str:
    """Sort once: skipped, held (daily limit), retried later (bounded), or failed. Returns the outcome.
    ``detail``: the call as fetched, when it was (the ledger keeps its number masked, for the ops console)."""
    fields = {"call_id": call_id, "error": str(exc), "code": exc.code, "stage": exc.stage.value}
    phone = lead_phone(detail) if detail is not None else None
    if isinstance(exc, SkippedError):
        ledger.skipped(call_id, error=exc, phone=phone)
        log.info("sync.skipped", **fields)
        return "skipped"
    if isinstance(exc, SalesforceLimitExceeded):
        hold = settings.crm_sync_limit_hold_seconds
        ledger.retry_later(call_id, error=exc, due_at=time.time() + hold, counts_as_failure=False, phone=phone)
        log.warning("sync.held", **fields)
        return "queued"
    if isinstance(exc, RetryableError):
        record = ledger.get(call_id)
        failures = (record.failures if record else 0) + 1
        if failures < settings.crm_sync_max_attempts:
            delay = retry.backoff(
                failures,
                base=settings.crm_sync_retry_base_seconds,
                cap=settings.crm_sync_retry_max_seconds,
                retry_after=exc.retry_after,
            )
            ledger.retry_later(call_id, error=exc, due_at=time.time() + delay, phone=phone)
            log.warning("sync.retry_scheduled", attempt=failures, delay=round(delay, 1), **fields)
            return "queued"
        log.error("sync.retries_exhausted", attempt=failures, **fields)
    else:
        log.error("sync.failed", **fields)
    ledger.failed(call_id, error=exc, phone=phone)
    return "failed"
