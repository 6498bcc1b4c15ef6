"""``crm-sync callbacks dry-run CALL_ID``: what a call's sync would schedule, and what the rules would say at
its due time with the Lead as it is now. Reads only (the call, the Lead); writes and places nothing."""

from __future__ import annotations

from typing import Any

from worker.autocall.facts import SalesforceFacts
from worker.autocall.rules import Facts, TaskFacts, decide
from worker.autocall.runner import day_of
from worker.autocall.window import windows_for
from worker.runtime import Runtime
from worker.sync.stream import plan_call


def explain(runtime: Runtime, call_id: str) -> dict[str, Any]:
    from worker.autocall.hooks import propose

    s = runtime.settings
    services = runtime.services
    detail, plan = plan_call(services, call_id, fresh=True)
    target = plan.target
    ids = {"followUp": "(would be written)"} if plan.write("followUp") is not None else {}
    if target is not None and target.sobject == "Lead" and not target.is_converted:
        ids["lead"] = target.record_id
    proposal = propose(detail, plan, ids, services.mapping, s)
    report: dict[str, Any] = {
        "call": call_id,
        "callback reading": f"{plan.reading.status.value} ({plan.reading.text!r})" if plan.reading else "none",
        "proposal": proposal.text,
    }
    if proposal.due is None or proposal.fields is None:
        return report
    facts_reader = SalesforceFacts(
        services.salesforce,
        opt_out_fields=[f.strip() for f in s.crm_sync_auto_callback_opt_out_fields.split(",") if f.strip()],
        zone_field=s.crm_sync_auto_callback_zone_field,
    )
    lead, zone = facts_reader.lead(ids["lead"])
    rule = services.mapping.auto_callback_rule(detail.call.agent_id)
    lead_today, ws_today, cost_today = runtime.callbacks.today(ids["lead"], day_of(proposal.due, s))
    facts = Facts(
        now=proposal.due,
        due=proposal.due,
        task_due=proposal.due,
        kill_switch=s.crm_sync_auto_callback_kill_switch,
        rule=rule,
        task=TaskFacts(status="Not Started", is_closed=False, due=proposal.due),
        lead=lead,
        newer_call=False,
        windows=windows_for(zone or s.tz, s.auto_callback_window),
        closed_statuses=frozenset(v.strip() for v in s.crm_sync_auto_callback_closed_statuses.split(",") if v.strip()),
        lead_calls_today=lead_today,
        workspace_calls_today=ws_today,
        cost_today=cost_today,
    )
    decision = decide(facts)
    report["placed by"] = f"agent {proposal.fields['agent_id']} from {proposal.fields['caller_phone']}"
    report["attempts"] = f"{rule.attempts}, {rule.gap_minutes:g} min apart"
    report["at its due time, with the Lead as it is now"] = f"{decision.action.value}: {decision.text}"
    return report
