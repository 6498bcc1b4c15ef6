"""What beat runs: a dead worker's calls, due retries and lost tasks back to the queue, and automatic
replays of retryable failures.

Long waits are due times in the ledger (``Ledger.retry_later``), never Celery countdowns; ``sweep`` is what
turns a due time into a queued task again.
"""

from __future__ import annotations

import time

import structlog

from worker.celery_app import QUEUE
from worker.ledger import State
from worker.runtime import Runtime
from worker.sync import holders

log = structlog.get_logger(__name__)


def sweep(runtime: Runtime) -> int:
    """Enqueue the calls of dead workers (``worker.sync.holders``), calls whose retry time has come, and
    calls whose task was lost otherwise (queued/syncing too long)."""
    ledger = runtime.ledger
    reclaimed = holders.reclaim(runtime.redis, ledger, runtime.enqueue, queue=QUEUE)
    due = ledger.claim_due()
    stale_before = time.time() - 2 * runtime.settings.celery_visibility_timeout
    stale = ledger.stale(stale_before)
    for n, call_id in enumerate(due + stale):
        try:
            runtime.enqueue(call_id)
        except Exception:
            # Every claimed call not queued yet goes back to the due set (not only this one: the rest would
            # otherwise wait for the stale sweep, 2 × the visibility timeout).
            for unqueued in due[n:]:
                ledger.unclaim(unqueued, time.time() + 5)
            raise
        if call_id in stale:
            ledger.touch(call_id)
            ledger.note(call_id, "requeued_stale")
    if due or stale or reclaimed:
        log.info("sweep.enqueued", due=len(due), stale=len(stale), dead_workers=len(reclaimed))
    return len(due) + len(stale) + len(reclaimed)


def replay_retryable(runtime: Runtime, limit: int = 1000) -> int:
    """Queue again the failed calls whose last error was retryable (an outage outlasted their retries),
    each at most ``CRM_SYNC_AUTO_REPLAY_MAX`` times; permanent failures wait for ops."""
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
