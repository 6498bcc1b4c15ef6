"""The final check of a phase against the Salesforce sandbox and the ledger (``measure``), and the targets
its figures must meet (``common_checks`` for every phase, plus each phase's own; ``verdicts``).

See ``chaos/README.md`` for each figure."""

from __future__ import annotations

from collections import Counter
from typing import Any

from chaos.scenario import PLANTED_CODES, Scenario
from chaos.traffic import accepted, unresolved
from standins.stack.sandboxes import Sandboxes
from worker.ledger import Ledger, Record, State
from worker.plan import CALLBACK_SUFFIX

#: A check: (what the target says, the offending count; 0 = met).
Check = tuple[str, int]


def measure(
    boxes: Sandboxes, ledger: Ledger, scenario: Scenario, answers: dict[str, int | str], seconds: float
) -> dict[str, Any]:
    """The figures of one phase (see chaos/README.md), with the call ids behind every bad count."""
    sf = boxes.salesforce
    records = {call_id: ledger.get(call_id) for call_id in scenario.order}
    states = Counter(r.state.value for r in records.values() if r is not None)
    failures: Counter[str] = Counter()
    failed_calls = []
    for call_id, record in records.items():
        if record is not None and record.state is State.FAILED:
            error = record.last_error or {}
            failures[f"{error.get('stage')}/{error.get('code')}"] += 1
            failed_calls.append(
                {
                    "call_id": call_id,
                    "planted": scenario.planted.get(call_id),
                    "stage": error.get("stage"),
                    "code": error.get("code"),
                    "retryable": error.get("retryable"),
                    "message": str(error.get("message") or "")[:160],
                }
            )
    tasks = Counter(str(t.get("Twenty2_Call_Id__c")) for t in sf.records("Task"))
    duplicates = [c for c in scenario.order if tasks[c] > 1 or tasks[c + CALLBACK_SUFFIX] > 1]
    wrong_tasks, wrong_leads = [], []
    changed = 0
    for call_id in scenario.order:
        record = records[call_id]
        synced = record is not None and record.state is State.SYNCED
        want = (1, int(scenario.callback[call_id])) if synced else (0, 0)
        have = (tasks[call_id], tasks[call_id + CALLBACK_SUFFIX])
        if have != want and call_id not in duplicates:
            state = record.state.value if record is not None else None
            wrong_tasks.append(
                {
                    "call_id": call_id,
                    "tasks (call, callback)": have,
                    "expected": want,
                    "state": state,
                    "code": _code(record),
                }
            )
        expected = scenario.expected[call_id] if synced else scenario.initial[call_id]
        lead = sf.get(scenario.lead_of[call_id]) or {}
        got = {f: lead.get(f) for f in expected}
        changed += got != scenario.initial[call_id]
        if got != expected:
            lead_id = scenario.lead_of[call_id]
            wrong_leads.append({"call_id": call_id, "lead": lead_id, "expected": expected, "got": got})
    stats = sf.stats()
    requests_made = sum(stats["api_requests"].values()) + stats["errors"].get("REQUEST_LIMIT_EXCEEDED", 0)
    synced_count = states.get(State.SYNCED.value, 0)
    planted_wrong = [
        {"call_id": c, "planted": kind, "state": r.state.value if r else None, "code": _code(r)}
        for c, kind in scenario.planted.items()
        if (r := records[c]) is None or r.state is not State.FAILED or _code(r) != PLANTED_CODES[kind]
    ]
    return {
        "events_posted": len(answers),
        "accepted": sum(accepted(a) for a in answers.values()),
        "rejected": dict(Counter(str(a) for a in answers.values() if not accepted(a))),
        "synced": synced_count,
        "skipped": states.get(State.SKIPPED.value, 0),
        "failed": states.get(State.FAILED.value, 0),
        "failure_reasons": dict(failures),
        "failed_calls": failed_calls,
        "unexpected_failures": [f["call_id"] for f in failed_calls if not f["planted"]],
        "planted_not_failed_as_planted": planted_wrong,
        "planted_not_synced": [c for c in scenario.planted if (r := records[c]) is None or r.state is not State.SYNCED],
        "lost": unresolved(answers, records),
        "duplicate_task_calls": duplicates,
        "wrong_task_calls": wrong_tasks,
        "leads_wrongly_updated": wrong_leads,
        "leads_changed": changed,
        "leads_created": len(sf.records("Lead")) - scenario.leads_before - len(scenario.lead_of),
        "salesforce_requests": requests_made,
        "salesforce_requests_per_synced_call": round(requests_made / synced_count, 2) if synced_count else None,
        "run_seconds": round(seconds, 1),
    }


def _code(record: Record | None) -> str | None:
    return None if record is None or record.last_error is None else record.last_error.get("code")


def common_checks(f: dict[str, Any]) -> list[Check]:
    """The targets every phase meets: nothing lost or duplicated, Tasks and Leads as the scenario says."""
    return [
        ("0 lost", len(f["lost"])),
        ("0 duplicate Tasks", len(f["duplicate_task_calls"])),
        ("0 wrong or missing Tasks", len(f["wrong_task_calls"])),
        ("0 Leads wrongly updated", len(f["leads_wrongly_updated"])),
        ("0 Leads created", f["leads_created"]),
    ]


def run_checks(f: dict[str, Any]) -> list[Check]:
    """After the faulted run: the common targets, every planted call failed with its reason, nothing else."""
    return [
        *common_checks(f),
        ("every planted call failed with its reason", len(f["planted_not_failed_as_planted"])),
        ("no other failure", len(f["unexpected_failures"])),
    ]


def replay_checks(f: dict[str, Any], ran: bool) -> list[Check]:
    """After ``crm-sync replay --all-failed`` (``ran``: it exited 0): the common targets, nothing failed,
    every planted call synced."""
    if not ran:
        return [("replay ran", 1)]
    return [*common_checks(f), ("0 failed", f["failed"]), ("every planted call synced", len(f["planted_not_synced"]))]


def verdicts(phase: str, checks: list[Check]) -> list[dict[str, Any]]:
    """Each target of ``phase`` with its verdict: (phase, what, the offending count, met)."""
    return [{"phase": phase, "target": what, "misses": int(bad), "ok": bad == 0} for what, bad in checks]
