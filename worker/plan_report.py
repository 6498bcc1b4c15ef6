"""A sync plan as plain data for people: the CLI's dry run and ``--json`` print it; phone numbers in what
callers said are masked."""

from __future__ import annotations

from typing import Any

from worker.phones import mask_numbers
from worker.plan import Ref, SyncPlan


def plan_as_dict(plan: SyncPlan) -> dict[str, Any]:
    """The plan for people and ``--json``; what callers said is shown with phone numbers masked."""

    def value(v: Any) -> Any:
        if isinstance(v, Ref):
            return f"@{{{v.name}.id}}"
        return mask_numbers(v) if isinstance(v, str) else v

    target = plan.target
    return {
        "call_id": plan.call_id,
        "connected": plan.connected,
        "target": None
        if target is None
        else {
            "sobject": target.sobject,
            "id": target.record_id,
            "matched_by": target.matched_by,
            "converted_from": target.converted_from,
        },
        "field_changes": [
            {
                "field": c.field,
                "param": c.param,
                "raw": value(c.raw),
                "old": value(c.old),
                "new": value(c.new),
                "mode": c.mode.value,
                "applied": c.applied,
                "reason": c.reason,
            }
            for c in (plan.lead_plan.changes if plan.lead_plan else ())
        ],
        "callback": None
        if plan.reading is None or plan.followup is None
        else {
            "phrase": value(plan.reading.text),
            "status": plan.reading.status.value,
            "due_utc": plan.followup.due.isoformat(),
            "activity_date": plan.followup.activity_date.isoformat(),
            "note": value(plan.followup.note),
        },
        "writes": [
            {
                "ref": w.ref,
                "sobject": w.sobject,
                "method": w.method,
                "record_id": w.record_id,
                "external_id": list(w.external_id) if w.external_id else None,
                "fields": {k: value(v) for k, v in w.fields.items()},
            }
            for w in plan.writes
        ],
        "notes": [value(n) for n in plan.notes],
    }
