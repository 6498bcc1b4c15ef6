"""Celery adapter of the callback sweep (beat, every ``CRM_SYNC_AUTO_CALLBACK_SWEEP_SECONDS``)."""

from __future__ import annotations

from typing import Any

from worker.autocall.facts import SalesforceFacts
from worker.autocall.runner import Runner
from worker.celery_app import app
from worker.runtime import Runtime, get_runtime


def runner_for(runtime: Runtime, **kwargs: Any) -> Runner:
    """The sweep of ``runtime``'s workspace, on its clients."""
    s = runtime.settings
    services = runtime.services
    facts = SalesforceFacts(
        services.salesforce,
        opt_out_fields=[f.strip() for f in s.crm_sync_auto_callback_opt_out_fields.split(",") if f.strip()],
        zone_field=s.crm_sync_auto_callback_zone_field,
    )
    kwargs.setdefault("now", runtime.now)
    kwargs.setdefault("on_call_ended", lambda call_id: sync_soon(runtime, call_id))
    return Runner(s, runtime.callbacks, facts, services.twenty2, services.mapping, **kwargs)


def sync_soon(runtime: Runtime, call_id: str) -> None:
    """Queue the sync of an ended callback call unless the ledger has it already (its webhook came)."""
    if runtime.ledger.accept(call_id, source="autocall") is None:
        runtime.enqueue(call_id)


@app.task(name="crm_sync.autocall_sweep", ignore_result=True)
def autocall_sweep() -> dict[str, int]:
    """Place the automatic callbacks that came due (and resolve lost trigger answers)."""
    return runner_for(get_runtime()).sweep().as_dict()
