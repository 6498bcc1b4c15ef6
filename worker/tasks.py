"""Celery tasks: thin adapters from a task message to the sync core. They take call ids, never objects;
everything is re-fetched and decided in ``worker.sync``.

- ``sync_call(call_id)``: the streaming path under its per-call guard (``worker.sync.stream.sync_and_record``).
- ``sweep()`` (beat, every 5 s): due retries and lost tasks back to the queue (``worker.sync.sweep``).
- ``auto_replay()`` (beat): retryable failures queued again, bounded (``worker.sync.sweep``).
"""

from __future__ import annotations

from worker.celery_app import app
from worker.runtime import get_runtime
from worker.sync import stream
from worker.sync import sweep as sweeping


@app.task(name="crm_sync.sync_call", acks_late=True, ignore_result=True)
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
