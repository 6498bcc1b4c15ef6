"""The streaming path: one call, one way: fetch (Twenty2) → look up (the Lead) → plan (pure) → write (one
composite request, all or nothing) → record (the ledger).

``sync_one`` is the whole sync of one call without the bookkeeping, so the CLI's inline ``sync`` and dry
run use exactly the worker's path; ``sync_and_record`` adds the per-call guard and the ledger (what the
Celery task ``sync_call`` runs). What the bulk path shares with this one lives in ``worker.sync.core``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog

from worker.errors import SalesforceRejected, Stage, SyncError, internal_errors
from worker.ledger import RESOLVED
from worker.plan import LeadTarget, SyncPlan, build_plan
from worker.runtime import Runtime
from worker.sync import core
from worker.sync.core import SyncOutcome
from worker.sync.services import Services
from worker.twenty2.models import CallDetail

log = structlog.get_logger(__name__)

#: Ledger sources whose syncs take only the Twenty2 budget that webhook-driven fetches leave.
BACKGROUND_SOURCES = frozenset({"reconcile"})

#: ``SyncError.details`` key under which ``sync_one`` leaves the fetched detail for ``record_error``.
DETAIL = "call_detail"


def sync_and_record(runtime: Runtime, call_id: str) -> str:
    """Sync one call under its lock and record the outcome. Returns the ledger state it left (``synced``,
    ``skipped``, ``queued``, ``failed``), ``busy`` (another worker holds the call) or ``resolved``."""
    ledger = runtime.ledger
    record = ledger.get(call_id)
    if record is not None and record.state in RESOLVED:
        log.info("sync.already_resolved", call_id=call_id, state=record.state.value)
        return "resolved"
    lock = core.call_lock(runtime, call_id)
    if not core.acquire(lock):
        log.info("sync.busy", call_id=call_id)
        return "busy"
    try:
        record = ledger.get(call_id)  # again, under the lock: resolved by a worker that just released it
        if record is not None and record.state in RESOLVED:
            log.info("sync.already_resolved", call_id=call_id, state=record.state.value)
            return "resolved"
        ledger.start(call_id)
        if not runtime.replicas.confirm():  # the lock and ``syncing`` on a replica first (worker.replicas)
            log.warning("sync.guard_not_replicated", call_id=call_id)
        structlog.contextvars.bind_contextvars(call_id=call_id)
        try:
            core.check_budget(runtime)
            with internal_errors(Stage.FETCH):
                services = runtime.services  # built on first use: a setup that fails is recorded like a crash
            if record is not None and record.source in BACKGROUND_SOURCES:
                services = services.background()  # found by reconciliation: webhook-driven fetches go first
            outcome = sync_one(services, call_id)
        except SyncError as exc:
            return core.record_error(ledger, runtime.settings, call_id, exc, detail=exc.details.get(DETAIL))
        return core.record_synced(runtime, outcome)  # and the automatic-callback hook
    finally:
        core.observe_budget(runtime)
        structlog.contextvars.unbind_contextvars("call_id")
        core.release(lock, call_id=call_id)


def plan_call(
    services: Services, call_id: str, *, now: datetime | None = None, fresh: bool = False
) -> tuple[CallDetail, SyncPlan]:
    """Fetch the call and its Lead, and plan the writes (no write). ``fresh``: read the Lead now, leaving
    the read-ahead cache alone (dry runs)."""
    detail, transcript = core.fetch_call(services, call_id)
    return detail, _plan(services, detail, _find(services, detail, fresh=fresh), transcript, now)


def sync_one(services: Services, call_id: str, *, now: datetime | None = None) -> SyncOutcome:
    """Sync one call. Raises the sorted errors of ``worker.errors``; writes all or nothing.

    When Salesforce says the Lead changed since it was read (modified: 412; converted; deleted), the Lead is
    read again, the call re-planned and written once more (``core.is_stale_target``). A call that creates a
    Lead holds its number meanwhile (``LeadFinder.creating_lead``), so two calls to one new number make one
    Lead.
    """
    detail, transcript = core.fetch_call(services, call_id)
    try:
        plan = _plan(services, detail, _find(services, detail), transcript, now)
        if not plan.creates_lead:
            return _write(services, detail, plan, transcript, now)
        with internal_errors(Stage.LOOKUP), services.finder.creating_lead(detail) as still_without_lead:
            if not still_without_lead:
                plan = _plan(services, detail, _find(services, detail, fresh=True), transcript, now)
            return _write(services, detail, plan, transcript, now)
    except SyncError as exc:
        exc.details.setdefault(DETAIL, detail)  # this call's own error: recorded with the call's (masked) number
        raise


def _find(services: Services, detail: CallDetail, *, fresh: bool = False) -> LeadTarget | None:
    with internal_errors(Stage.LOOKUP):
        return services.finder.find(detail, fresh=fresh)


def _plan(
    services: Services, detail: CallDetail, target: LeadTarget | None, transcript: str | None, now: datetime | None
) -> SyncPlan:
    with internal_errors(Stage.PLAN):
        ctx = services.context(now or datetime.now(UTC))
        return build_plan(detail, target, services.mapping, ctx, transcript=transcript)


def _write(
    services: Services, detail: CallDetail, plan: SyncPlan, transcript: str | None, now: datetime | None
) -> SyncOutcome:
    try:
        with internal_errors(Stage.WRITE):
            ids = services.writer.apply(plan)
    except SalesforceRejected as exc:
        if not core.is_stale_target(exc):
            raise
        core.lead_changed(services, plan, detail, exc)
        plan = _plan(services, detail, _find(services, detail, fresh=True), transcript, now)
        with internal_errors(Stage.WRITE):
            ids = services.writer.apply(plan)
    core.forget_written(services, plan, detail)
    return SyncOutcome(plan=plan, salesforce_ids=ids, detail=detail)
