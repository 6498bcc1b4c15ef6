"""What the sync path does for automatic callbacks, after a call synced (``worker.sync.stream``).

- A call whose plan has an ``ok`` callback reading, a follow-up Task and a Lead, by an agent whose mapping
  opts in: its callback is scheduled (``propose`` is the pure part, also what ``callbacks dry-run`` prints).
- A call that IS a callback call (its ``input_parameters`` carry the callback id, the source call id, the
  Salesforce id and the attempt): a connected one completes the follow-up Task with its outcome in the
  description and links the two calls; an unanswered one is tried again per the mapping (``attempts``,
  ``gap_minutes``), then the Task is left open for a human.

Nothing here may fail the sync it follows: errors are logged and noted in the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from worker.autocall.facts import SalesforceFacts
from worker.autocall.rules import NOT_SCHEDULED
from worker.autocall.runner import ATTEMPT_PARAM, CALLBACK_ID_PARAM, SOURCE_CALL_PARAM, day_of
from worker.autocall.store import CallbackStore, CbState
from worker.autocall.window import next_opening, windows_for
from worker.callbacks import CallbackStatus
from worker.mapping import Mapping
from worker.plan import SyncPlan, lead_phone
from worker.settings import Settings
from worker.twenty2.models import CallDetail

if TYPE_CHECKING:
    from worker.runtime import Runtime
    from worker.sync.core import SyncOutcome

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Proposal:
    """Whether a synced call's promise becomes an automatic callback, and with what."""

    reason: str  # "schedule", or a key of rules.NOT_SCHEDULED
    due: datetime | None = None
    fields: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        if self.reason == "schedule" and self.due is not None:
            return f"scheduled for {self.due:%Y-%m-%d %H:%M} UTC"
        return NOT_SCHEDULED[self.reason]


def callback_id(source_call_id: str) -> str:
    return f"cb_{source_call_id}"


def propose(
    detail: CallDetail, plan: SyncPlan, salesforce_ids: dict[str, str], mapping: Mapping, settings: Settings
) -> Proposal:
    """Pure: the callback the sync of ``detail`` (planned as ``plan``, written as ``salesforce_ids``) promises."""
    call = detail.call
    if plan.reading is None or plan.followup is None:
        return Proposal("no_callback")
    if plan.reading.status is not CallbackStatus.OK or plan.followup.needs_human or plan.followup.confirm_time:
        return Proposal("not_confident")
    rule = mapping.auto_callback_rule(call.agent_id)
    if not rule.enabled:
        return Proposal("disabled")
    target = plan.target
    lead_id = salesforce_ids.get("lead") or (
        target.record_id if target is not None and target.sobject == "Lead" and not target.is_converted else ""
    )
    if not lead_id:
        return Proposal("no_lead")
    task_id = salesforce_ids.get("followUp", "")
    if not task_id:
        return Proposal("no_task")
    phone = lead_phone(detail)
    if not phone:
        return Proposal("no_phone")
    due = next_opening(windows_for(settings.tz, settings.auto_callback_window), plan.followup.due)
    ended = call.ended_at or call.started_at or datetime.now(UTC)
    fields = {
        "source_call_id": call.call_id,
        "lead_id": lead_id,
        "task_id": task_id,
        "task_external_id": call.call_id + "-callback",
        "task_due_at": plan.followup.due.timestamp(),
        "source_agent_id": call.agent_id or "",
        "agent_id": rule.placing_agent(call.agent_id) or "",
        "caller_phone": rule.caller_phone,
        "attempts": rule.attempts,
        "gap_minutes": rule.gap_minutes,
        "source_ended_at": ended.timestamp(),
        "phone": phone,
        "inputs": {k: v for k, v in detail.input_parameters.items() if k not in _OUR_PARAMS},
    }
    return Proposal("schedule", due=due, fields=fields)


_OUR_PARAMS = frozenset({SOURCE_CALL_PARAM, CALLBACK_ID_PARAM, ATTEMPT_PARAM})


def schedule(store: CallbackStore, proposal: Proposal, *, now: datetime) -> bool:
    """Record the proposed callback (False when one exists for that call already)."""
    assert proposal.due is not None and proposal.fields is not None
    fields = dict(proposal.fields)
    phone, inputs = fields.pop("phone"), fields.pop("inputs")
    cb_id = callback_id(fields["source_call_id"])
    return store.schedule(cb_id, now=now, due=proposal.due, phone=phone, inputs=inputs, **fields)


def after_sync(runtime: Runtime, outcome: SyncOutcome) -> None:
    """The sync path's hook (never raises: a failure is logged and noted on the call's ledger record)."""
    call_id = outcome.detail.call.call_id
    try:
        services = runtime.services
        store = runtime.callbacks
        now = runtime.now()
        cb_id = outcome.detail.input_parameters.get(CALLBACK_ID_PARAM)
        if isinstance(cb_id, str) and cb_id:
            facts = SalesforceFacts(services.salesforce, opt_out_fields=())
            done = callback_call_ended(store, facts, runtime.settings, outcome.detail, cb_id, now=now)
            source = outcome.detail.input_parameters.get(SOURCE_CALL_PARAM)
            runtime.ledger.note(call_id, "callback_call", callback_id=cb_id, source_call_id=source, outcome=done)
        proposal = propose(outcome.detail, outcome.plan, outcome.salesforce_ids, services.mapping, runtime.settings)
        if proposal.reason == "schedule":
            if schedule(store, proposal, now=now):
                log.info("autocall.scheduled", call_id=call_id, due=proposal.due.isoformat() if proposal.due else None)
        else:
            log.debug("autocall.not_scheduled", call_id=call_id, reason=proposal.reason)
    except Exception as exc:  # the sync itself succeeded; the callback bookkeeping must not undo that
        log.error("autocall.hook_failed", call_id=call_id, error=type(exc).__name__)
        runtime.ledger.note(call_id, "callback_hook_failed", error=type(exc).__name__)


def callback_call_ended(
    store: CallbackStore, sf: SalesforceFacts, settings: Settings, detail: CallDetail, cb_id: str, *, now: datetime
) -> str:
    """A callback call synced: close the loop. Returns what was done (``completed``, ``retry``,
    ``unanswered``, or ``ignored`` for a call that is not this callback's current attempt)."""
    cb = store.get(cb_id)
    call = detail.call
    if cb is None or cb.state is not CbState.TRIGGERED:
        return "ignored"
    if cb.call_id and cb.call_id != call.call_id:
        return "ignored"
    if not cb.call_id:
        store.placed(cb_id, call.call_id, now=now, how="webhook")
    store.call_ended(cb_id)
    if call.cost is not None:
        store.add_cost(cb_id, day_of(call.started_at or now, settings), float(call.cost.amount))
    ids = f"callback call {call.call_id} (attempt {cb.attempt} of {cb.attempts}), promised on call {cb.source_call_id}"
    if call.connected:
        outcome = _outcome_line(detail)
        before = sf.task_description(cb.task_id)
        sf.complete_task(cb.task_id, f"{before}\n\nCalled back automatically: {ids}.\nOutcome: {outcome}".strip())
        store.move(cb_id, now=now, expected=(CbState.TRIGGERED,), to=CbState.DONE, outcome="completed",
                   reason="", reason_text=f"answered: {outcome}")  # fmt: skip
        return "completed"
    if cb.attempt < cb.attempts:
        windows = windows_for(settings.tz, settings.auto_callback_window)
        due = next_opening(windows, now + timedelta(minutes=cb.gap_minutes))
        store.move(cb_id, now=now, expected=(CbState.TRIGGERED,), to=CbState.SCHEDULED, due=due, event="retry",
                   attempt=cb.attempt + 1, call_id="", outcome=f"attempt {cb.attempt} unanswered")  # fmt: skip
        return "retry"
    before = sf.task_description(cb.task_id)
    sf.note_on_task(cb.task_id, f"{before}\n\nAutomatic callback unanswered: {ids}. Left open for a rep.".strip())
    text = f"unanswered after {cb.attempts} attempt(s): the Task stays open"
    store.move(cb_id, now=now, expected=(CbState.TRIGGERED,), to=CbState.DONE, outcome="unanswered",
               reason="unanswered", reason_text=text)  # fmt: skip
    return "unanswered"


def _outcome_line(detail: CallDetail) -> str:
    outputs = ", ".join(f"{k} = {v}" for k, v in detail.output_parameters.items()) or "no outputs"
    return f"{detail.call.status}, {detail.call.duration_seconds or 0} s; {outputs}"
