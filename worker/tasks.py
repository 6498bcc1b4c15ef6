"""Celery tasks: thin adapters from a task message to the sync core. They take call ids, never objects;
everything is re-fetched and decided in ``worker.sync``.

- ``sync_call(call_id)``: the streaming path under its per-call guard (``worker.sync.stream.sync_and_record``).
- ``sweep()`` (beat, every 5 s): due retries and lost tasks back to the queue (``worker.sync.sweep``).
- ``auto_replay()`` (beat): retryable failures queued again, bounded (``worker.sync.sweep``).
- ``reconcile()`` (beat): one reconciliation pass over ``GET /call/logs`` (``worker.reconcile.run``).
- ``audit()`` (beat): the three-way audit of the last hours, published (``worker.reconcile.audit_run``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from celery.signals import task_postrun, task_received

from worker import heartbeat
from worker.celery_app import app
from worker.runtime import get_runtime
from worker.sync import holders, stream
from worker.sync import sweep as sweeping

log = structlog.get_logger(__name__)
SYNC_CALL = "crm_sync.sync_call"


@app.task(name=SYNC_CALL, acks_late=True, ignore_result=True)
def sync_call(call_id: str) -> str:
    """Sync one call and record the outcome. Returns the ledger state it left (or ``busy``/``resolved``)."""
    return stream.sync_and_record(get_runtime(), call_id)


@app.task(name="crm_sync.sweep", ignore_result=True)
def sweep() -> int:
    """Enqueue calls whose retry time has come, and calls whose task was lost (queued/syncing too long)."""
    return sweeping.sweep(get_runtime())


@app.task(name="crm_sync.auto_replay", ignore_result=True)
def auto_replay() -> int:
    """Queue again the failed calls whose last error was retryable, each at most ``CRM_SYNC_AUTO_REPLAY_MAX``
    times; permanent failures wait for ops."""
    return sweeping.replay_retryable(get_runtime())


# --- which worker holds which call (``worker.sync.holders``) ----------------------------------------------


@task_received.connect
def _held(request: Any = None, **_: Any) -> None:
    """A worker received a sync (reserved, maybe not started yet): mark the call as held by this process,
    so the sweep re-queues it if the process dies. A failure here only costs the fast return."""
    owner = heartbeat.live_owner()
    if owner is None or request is None or getattr(request, "task_name", None) != SYNC_CALL or not request.args:
        return
    try:
        holders.hold(get_runtime().redis, owner, str(request.args[0]))
    except Exception as exc:
        log.warning("holders.hold_failed", error=type(exc).__name__)


@task_postrun.connect
def _done(sender: Any = None, args: Any = None, **_: Any) -> None:
    owner = heartbeat.live_owner()
    if owner is None or getattr(sender, "name", None) != SYNC_CALL or not args:
        return
    try:
        holders.drop(get_runtime().redis, owner, str(args[0]))
    except Exception as exc:  # left behind: the sweep drops it once this worker stops (the call is resolved)
        log.warning("holders.drop_failed", error=type(exc).__name__)


@app.task(name="crm_sync.reconcile", ignore_result=True)
def reconcile() -> int:
    """Queue the finished calls Twenty2 lists that the ledger never heard of (their webhook never came)."""
    from worker.reconcile.run import run_once

    report = run_once(get_runtime())
    return len(report.queued) if report else 0


#: The scheduled audit does not judge calls this recent (their webhook or reconciliation may be on its way).
AUDIT_SETTLE = timedelta(minutes=10)


@app.task(name="crm_sync.audit", ignore_result=True)
def audit() -> int:
    """Compare Twenty2, the ledger and Salesforce over the last ``CRM_SYNC_AUDIT_WINDOW_HOURS``; publish the
    summary (metric, log event, alert). Returns the number of findings; fixes are for ops (``audit --fix``)."""
    from worker.reconcile.audit_run import publish, run_audit

    runtime = get_runtime()
    since = datetime.now(UTC) - timedelta(hours=runtime.settings.crm_sync_audit_window_hours)
    report, cost = run_audit(runtime, since=since, settle=AUDIT_SETTLE)
    publish(runtime, report, cost)
    return len(report.findings)
