"""Celery tasks. They take call ids, re-fetch everything, and only orchestrate: sync, then record.

``sync_call`` holds a per-call Redis lock (two workers never write the same call at once: the Task
external id is not a unique field, so only this stops a race from inserting twice), skips calls the
ledger already resolved, and records the outcome: synced, skipped, failed, or queued again with a due
time (retryable errors, bounded; the daily API limit holds work without counting as a failure).
"""

from __future__ import annotations

import random
import time

import structlog

from worker.celery_app import app
from worker.errors import (
    PermanentError,
    RetryableError,
    SalesforceLimitExceeded,
    SkippedError,
    Stage,
    SyncError,
)
from worker.ledger import RESOLVED, Ledger, State
from worker.pipeline import PHONE_DETAIL, run_sync
from worker.plan import lead_phone
from worker.runtime import Runtime, get_runtime
from worker.settings import Settings

log = structlog.get_logger(__name__)

LOCK_SECONDS = 300


@app.task(name="crm_sync.sync_call", acks_late=True, ignore_result=True)
def sync_call(call_id: str) -> str:
    """Sync one call and record the outcome. Returns the ledger state it left (or ``busy``/``resolved``)."""
    return sync_and_record(get_runtime(), call_id)


@app.task(name="crm_sync.sweep", ignore_result=True)
def sweep() -> int:
    """Enqueue calls whose retry time has come, and calls whose task was lost (queued/syncing too long)."""
    runtime = get_runtime()
    ledger = runtime.ledger
    due = ledger.claim_due()
    stale_before = time.time() - 2 * runtime.settings.celery_visibility_timeout
    stale = ledger.stale(stale_before)
    for call_id in due + stale:
        try:
            runtime.enqueue(call_id)
        except Exception:
            ledger.unclaim(call_id, time.time() + 5)
            raise
        if call_id in stale:
            ledger.touch(call_id)
            ledger.note(call_id, "requeued_stale")
    if due or stale:
        log.info("sweep.enqueued", due=len(due), stale=len(stale))
    return len(due) + len(stale)


@app.task(name="crm_sync.auto_replay", ignore_result=True)
def auto_replay() -> int:
    """Queue again the failed calls whose last error was retryable (an outage outlasted their retries),
    each at most ``CRM_SYNC_AUTO_REPLAY_MAX`` times; permanent failures wait for ops."""
    return replay_retryable(get_runtime())


def replay_retryable(runtime: Runtime, limit: int = 1000) -> int:
    ledger, cap = runtime.ledger, runtime.settings.crm_sync_auto_replay_max
    queued = 0
    for record in ledger.find(states=[State.FAILED], limit=limit):
        if not record.retryable or record.auto_replays >= cap:
            continue
        if ledger.accept(record.call_id, source="auto-replay", force=True) is not State.FAILED:
            continue  # someone else moved it meanwhile
        ledger.count_auto_replay(record.call_id)
        runtime.enqueue(record.call_id)
        queued += 1
    if queued:
        log.info("auto_replay.queued", calls=queued)
    return queued


def sync_and_record(runtime: Runtime, call_id: str) -> str:
    ledger = runtime.ledger
    record = ledger.get(call_id)
    if record is not None and record.state in RESOLVED:
        log.info("sync.already_resolved", call_id=call_id, state=record.state.value)
        return "resolved"
    # Never longer than the visibility timeout: when Redis redelivers the task, its holder is presumed dead,
    # and a dead worker's lock must not turn the redelivery (and every stale re-enqueue) away as "busy".
    lock_seconds = min(LOCK_SECONDS, runtime.settings.celery_visibility_timeout)
    lock = runtime.redis.lock(f"crm-sync:lock:{call_id}", timeout=lock_seconds, blocking=False)
    if not lock.acquire():
        log.info("sync.busy", call_id=call_id)
        return "busy"
    try:
        ledger.start(call_id)
        structlog.contextvars.bind_contextvars(call_id=call_id)
        try:
            runtime.budget.check(max_age=runtime.settings.crm_sync_limit_hold_seconds)
            outcome = run_sync(runtime.services, call_id)
        except SyncError as exc:
            return record_error(ledger, runtime.settings, call_id, exc)
        except Exception as exc:  # a bug, not bad data: keep it visible and replayable
            log.exception("sync.crashed", call_id=call_id)
            return record_error(
                ledger,
                runtime.settings,
                call_id,
                PermanentError(f"internal error: {type(exc).__name__}: {exc}"[:500], stage=Stage.PLAN, code="INTERNAL"),
            )
        ledger.synced(
            call_id, salesforce_ids=outcome.salesforce_ids, summary=outcome.summary, phone=lead_phone(outcome.detail)
        )
        log.info("sync.synced", call_id=call_id, writes=len(outcome.plan.writes), ids=outcome.salesforce_ids)
        return "synced"
    finally:
        # Published with the time it was read: a held sync (no request sent) republishes nothing new.
        if runtime.has_services:
            salesforce = runtime.services.salesforce
            runtime.budget.observe(salesforce.api_usage, salesforce.api_usage_seen_at)
        structlog.contextvars.unbind_contextvars("call_id")
        try:
            lock.release()
        except Exception:  # the lock expired: another worker may own it now; nothing to undo
            log.warning("sync.lock_expired", call_id=call_id)


def record_error(ledger: Ledger, settings: Settings, call_id: str, exc: SyncError, *, phone: str | None = None) -> str:
    """Sort once: skipped, held (daily limit), retried later (bounded), or failed. ``phone``: the call's number
    when known (default: the one ``run_sync`` noted on the error), kept masked for the ops console's search."""
    fields = {"call_id": call_id, "error": str(exc), "code": exc.code, "stage": exc.stage.value}
    phone = phone or exc.details.get(PHONE_DETAIL)
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
            delay = retry_delay(failures, settings, exc.retry_after)
            ledger.retry_later(call_id, error=exc, due_at=time.time() + delay, phone=phone)
            log.warning("sync.retry_scheduled", attempt=failures, delay=round(delay, 1), **fields)
            return "queued"
        log.error("sync.retries_exhausted", attempt=failures, **fields)
    else:
        log.error("sync.failed", **fields)
    ledger.failed(call_id, error=exc, phone=phone)
    return "failed"


def retry_delay(failures: int, settings: Settings, retry_after: float | None) -> float:
    """Exponential backoff with full jitter in its upper half, at least ``retry_after``, capped."""
    base = min(settings.crm_sync_retry_max_seconds, settings.crm_sync_retry_base_seconds * 2 ** (failures - 1))
    delay = base / 2 + random.uniform(0, base / 2)
    return min(settings.crm_sync_retry_max_seconds, max(delay, retry_after or 0.0))
