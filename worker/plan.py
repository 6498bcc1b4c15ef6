"""Plan a sync: a pure function from (call detail, Lead as found, mapping, clock) to the Salesforce writes.

Nothing here does I/O or imports an HTTP library: the same inputs always give the same plan, which is
what ``crm-sync sync CALL_ID --dry-run`` prints and what the writer sends.

The writes, in order:

1. the Lead: update the mapped fields that change (never for a converted Lead, never on a failed call),
   or create it when the number is unknown and the policy says so;
2. the call Task (``TaskSubtype`` Call), upserted on the external-id field keyed by the call id;
3. the follow-up Task when a callback was asked for, upserted on ``{call_id}-callback``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from worker.callbacks import (
    CallbackReading,
    CallbackStatus,
    FollowUp,
    Grain,
    parse_callback_time,
    schedule_followup,
)
from worker.errors import SkippedError, Stage
from worker.mapping import LeadFieldPlan, Mapping, plan_lead_fields
from worker.phones import mask
from worker.twenty2.models import CallDetail

DESCRIPTION_LIMIT = 32_000
SUBJECT_LIMIT = 255
TRIM_MARKER = "\n[… trimmed to fit Salesforce's 32,000-character limit]"
CALL_TYPES = {"outbound": "Outbound", "inbound": "Inbound", "internal": "Internal"}
#: Fields sent only when a record is created (the upsert's update branch refuses them).
CREATE_ONLY_TASK_FIELDS = frozenset({"TaskSubtype"})
CALLBACK_SUFFIX = "-callback"


@dataclass(frozen=True)
class Ref:
    """The id of a record created earlier in the same composite request (``@{name.id}``)."""

    name: str


@dataclass(frozen=True)
class LeadTarget:
    """Where the call is logged, as the lookup found it.

    ``sobject`` is ``Lead``, or ``Contact`` when the Lead was converted (the call is logged on its
    Contact and no Lead field is touched). ``fields`` are the Lead's current values of the mapped fields.
    """

    record_id: str
    sobject: str
    owner_id: str | None
    matched_by: str
    fields: dict[str, Any] = field(default_factory=dict)
    converted_from: str | None = None
    last_modified: str | None = None  # the Lead's LastModifiedDate when read: the update is conditional on it

    @property
    def is_converted(self) -> bool:
        return self.converted_from is not None


@dataclass(frozen=True)
class RecordWrite:
    """One record write. ``method``: create, update (by ``record_id``) or upsert (by ``external_id``)."""

    ref: str
    sobject: str
    method: str
    fields: dict[str, Any]
    record_id: str | None = None
    external_id: tuple[str, str] | None = None
    create_only: frozenset[str] = frozenset()
    unmodified_since: datetime | None = None  # write only if the record did not change after this


@dataclass(frozen=True)
class PlanContext:
    """What the plan needs besides the call and the Lead: settings and the clock, as plain data."""

    now: datetime
    tz: ZoneInfo
    task_external_id_field: str
    calling_window: tuple[time, time]
    working_days: frozenset[int]
    new_lead_company: str
    create_unknown: bool
    phone_region: str = "IN"
    field_lengths: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SyncPlan:
    call_id: str
    connected: bool
    target: LeadTarget | None
    writes: tuple[RecordWrite, ...]
    lead_plan: LeadFieldPlan | None
    reading: CallbackReading | None
    followup: FollowUp | None
    notes: tuple[str, ...] = ()

    def write(self, ref: str) -> RecordWrite | None:
        return next((w for w in self.writes if w.ref == ref), None)

    @property
    def creates_lead(self) -> bool:
        """True when the plan creates a Lead (no Lead had the number)."""
        lead = self.write("lead")
        return lead is not None and lead.method == "create"


def call_reference_time(detail: CallDetail, ctx: PlanContext) -> datetime:
    """The call's end in the workspace zone: what relative callback phrases are relative to."""
    call = detail.call
    end = call.ended_at or call.answered_at or call.started_at or ctx.now
    return end.astimezone(ctx.tz)


def build_plan(
    detail: CallDetail,
    target: LeadTarget | None,
    mapping: Mapping,
    ctx: PlanContext,
    *,
    transcript: str | None = None,
) -> SyncPlan:
    """The writes that put ``detail`` into Salesforce. Raises SkippedError (unknown number, skip policy)."""
    call = detail.call
    ended = call_reference_time(detail, ctx)
    notes: list[str] = []
    lead_plan: LeadFieldPlan | None = None
    writes: list[RecordWrite] = []

    if target is not None and target.is_converted:
        notes.append(f"Lead {target.converted_from} is converted: logged on Contact {target.record_id}, Lead untouched")
    if not call.connected:
        notes.append(f"call not connected ({call.status or 'unknown status'}): Lead fields untouched")

    current = target.fields if target is not None and not target.is_converted else {}
    if call.connected and (target is None or not target.is_converted):
        lead_plan = plan_lead_fields(
            mapping,
            agent_id=call.agent_id,
            output_parameters=detail.output_parameters,
            current=current,
            field_lengths=ctx.field_lengths or None,
        )

    who: str | Ref
    if target is None:
        if not ctx.create_unknown:
            raise SkippedError(
                f"no Lead or Contact has the number {mask(lead_phone(detail))}; unknown numbers are skipped",
                stage=Stage.LOOKUP,
                code="UNKNOWN_NUMBER",
            )
        writes.append(_new_lead(detail, lead_plan, ctx))
        who = Ref("lead")
        notes.append(f"no Lead for {mask(lead_phone(detail))}: a Lead is created")
    else:
        who = target.record_id
        updates = lead_plan.updates if lead_plan is not None else {}
        if updates and target.sobject == "Lead":
            writes.append(
                RecordWrite(
                    ref="lead",
                    sobject="Lead",
                    method="update",
                    fields=updates,
                    record_id=target.record_id,
                    unmodified_since=_salesforce_time(target.last_modified),
                )
            )

    owner = target.owner_id if target is not None else None
    reading, followup = _callback(detail, lead_plan, mapping, ended, ctx)
    writes.append(_call_task(detail, who, owner, lead_plan, reading, followup, ended, ctx, transcript, notes))
    if followup is not None and reading is not None and lead_plan is not None:
        writes.append(_followup_task(detail, who, owner, mapping, reading, followup, ctx))
    return SyncPlan(
        call_id=call.call_id,
        connected=call.connected,
        target=target,
        writes=tuple(writes),
        lead_plan=lead_plan,
        reading=reading,
        followup=followup,
        notes=tuple(notes),
    )


def _salesforce_time(value: str | None) -> datetime | None:
    """``2024-12-25T10:01:34.000+0000`` (Salesforce's datetime) → aware datetime; None when absent/unreadable."""
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None


def lead_phone(detail: CallDetail) -> str | None:
    """The lead's number: the callee of an outbound call, the caller of an inbound one."""
    call = detail.call
    return call.caller_phone if (call.direction or "").lower() == "inbound" else call.callee_phone


_NAME_KEYS = ("lead_name", "leadName", "customerName", "customer_name", "name", "full_name", "fullName")


def _new_lead(detail: CallDetail, lead_plan: LeadFieldPlan | None, ctx: PlanContext) -> RecordWrite:
    params = detail.input_parameters
    name = next(
        (str(params[k]).strip() for k in _NAME_KEYS if isinstance(params.get(k), str) and params[k].strip()),
        "",
    )
    first, _, last = name.rpartition(" ")
    fields: dict[str, Any] = {
        "LastName": _cut(last or first or f"Caller {mask(lead_phone(detail))}", ctx.field_lengths.get("LastName", 80)),
        "Company": _cut(ctx.new_lead_company, ctx.field_lengths.get("Company", 255)),
        "Phone": lead_phone(detail),
    }
    if first and last:
        fields["FirstName"] = _cut(first, ctx.field_lengths.get("FirstName", 40))
    if lead_plan is not None:
        fields.update(lead_plan.updates)
    return RecordWrite(ref="lead", sobject="Lead", method="create", fields=fields)


def _callback(
    detail: CallDetail, lead_plan: LeadFieldPlan | None, mapping: Mapping, ended: datetime, ctx: PlanContext
) -> tuple[CallbackReading | None, FollowUp | None]:
    if lead_plan is None or not lead_plan.callback_requested:
        return None, None
    phrase = lead_plan.callback_phrase
    if phrase is None:
        # A callback was asked for with no time: as soon as the calling window allows.
        reading = CallbackReading(
            text="",
            status=CallbackStatus.OK,
            grain=Grain.INSTANT,
            earliest=ended,
            latest=ended,
            reason="no time said: next calling slot",
        )
    else:
        reading = parse_callback_time(phrase, reference=ended)
    followup = schedule_followup(
        reading,
        reference=ended,
        now=ctx.now.astimezone(ctx.tz),
        window=ctx.calling_window,
        working_days=ctx.working_days,
    )
    return reading, followup


def _call_task(
    detail: CallDetail,
    who: str | Ref,
    owner: str | None,
    lead_plan: LeadFieldPlan | None,
    reading: CallbackReading | None,
    followup: FollowUp | None,
    ended: datetime,
    ctx: PlanContext,
    transcript: str | None,
    notes: list[str],
) -> RecordWrite:
    call = detail.call
    outcome = _outcome_label(detail, lead_plan)
    fields: dict[str, Any] = {
        "Subject": _cut(f"AI call: {outcome}", SUBJECT_LIMIT),
        "TaskSubtype": "Call",
        "Status": "Completed",
        "Priority": "Normal",
        "ActivityDate": ended.date().isoformat(),
        "CallObject": call.call_id,
        "CallDisposition": _cut(_disposition(detail), 255),
        "CallDurationInSeconds": call.duration_seconds or 0,
        "WhoId": who,
        "Description": _description(detail, lead_plan, reading, followup, ended, transcript, notes),
    }
    call_type = CALL_TYPES.get((call.direction or "").lower())
    if call_type:
        fields["CallType"] = call_type
    if _is_user(owner):
        fields["OwnerId"] = owner
    return RecordWrite(
        ref="callTask",
        sobject="Task",
        method="upsert",
        fields=fields,
        external_id=(ctx.task_external_id_field, call.call_id),
        create_only=CREATE_ONLY_TASK_FIELDS,
    )


def _followup_task(
    detail: CallDetail,
    who: str | Ref,
    owner: str | None,
    mapping: Mapping,
    reading: CallbackReading,
    followup: FollowUp,
    ctx: PlanContext,
) -> RecordWrite:
    rule = mapping.callback_rule(detail.call.agent_id)
    phrase = reading.text.strip()
    if not phrase:
        subject = f"{rule.subject_prefix}: as soon as possible (no time said)"
    elif followup.needs_human:
        subject = f'{rule.subject_prefix} (time unclear, check): "{phrase}"'
    elif followup.confirm_time:
        subject = f'{rule.subject_prefix} (confirm time): "{phrase}"'
    else:
        subject = f'{rule.subject_prefix}: "{phrase}"'
    due_local = followup.due.astimezone(ctx.tz)
    description = "\n".join(
        [
            f'The caller asked to be called back: "{phrase}"',
            f"Reading: {reading.status.value}" + (f" ({reading.reason})" if reading.reason else ""),
            f"Due: {due_local:%a %d %b %Y %H:%M} ({ctx.tz.key})",
            followup.note,
            f"Twenty2 call: {detail.call.call_id}",
        ]
    )
    fields: dict[str, Any] = {
        "Subject": _cut(subject, SUBJECT_LIMIT),
        "Status": "Not Started",
        "Priority": rule.priority,
        "ActivityDate": followup.activity_date.isoformat(),
        "ReminderDateTime": followup.due.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "IsReminderSet": True,
        "WhoId": who,
        "Description": _cut(description, DESCRIPTION_LIMIT),
    }
    if _is_user(owner):
        fields["OwnerId"] = owner
    return RecordWrite(
        ref="followUp",
        sobject="Task",
        method="upsert",
        fields=fields,
        external_id=(ctx.task_external_id_field, detail.call.call_id + CALLBACK_SUFFIX),
    )


def _is_user(owner: str | None) -> bool:
    # A Lead may be owned by a queue (00G…); a Task cannot be, so only users (005…) are copied.
    return bool(owner and owner.startswith("005"))


def _disposition(detail: CallDetail) -> str:
    call = detail.call
    if call.connected:
        return call.disconnection_reason or "completed"
    return call.disconnection_reason or call.status or "not connected"


def _outcome_label(detail: CallDetail, lead_plan: LeadFieldPlan | None) -> str:
    call = detail.call
    if not call.connected:
        return f"not connected ({_disposition(detail)})"
    if lead_plan is None:
        return "connected"
    labels = [f"{c.param} = {c.raw}" for c in lead_plan.changes if c.param not in {"callback_time"}]
    seen: dict[str, None] = dict.fromkeys(labels)
    return "connected" + (f" ({', '.join(seen)})" if seen else "")


def _description(
    detail: CallDetail,
    lead_plan: LeadFieldPlan | None,
    reading: CallbackReading | None,
    followup: FollowUp | None,
    ended: datetime,
    transcript: str | None,
    notes: list[str],
) -> str:
    call = detail.call
    lines = [
        f"Twenty2 AI call {call.call_id} ({call.direction or 'direction unknown'}), status {call.status or 'unknown'}",
        f"Ended: {ended:%a %d %b %Y %H:%M:%S} ({ended.tzinfo})",
        f"Duration: {call.duration_seconds or 0} s"
        + (f", billed {call.billed_duration_seconds} s" if call.billed_duration_seconds is not None else ""),
    ]
    if call.cost is not None:
        lines.append(f"Cost: {call.cost}")
    if call.agent_id:
        lines.append(f"Agent: {call.agent_id}")
    if call.disconnection_reason:
        lines.append(f"Disconnection reason: {call.disconnection_reason}")
    lines += [f"Note: {n}" for n in notes]
    if lead_plan is not None:
        if lead_plan.changes:
            lines.append("")
            lines.append("Outcome fields:")
            for change in lead_plan.changes:
                verb = f"set to {change.new!r}" if change.applied and change.new != change.old else change.reason
                lines.append(f"- {change.param} = {change.raw!r} → {change.field}: {verb}")
        for param, raw in lead_plan.unknown:
            lines.append(f"- {param} = {raw!r}: value not understood, nothing written")
        if lead_plan.other:
            lines.append("")
            lines.append("Other outputs:")
            lines += [f"- {key}: {_short(value)}" for key, value in lead_plan.other.items()]
    elif detail.output_parameters:
        lines.append("")
        lines.append("Outputs (not applied):")
        lines += [f"- {key}: {_short(value)}" for key, value in detail.output_parameters.items()]
    if reading is not None and followup is not None:
        lines.append("")
        lines.append(f'Callback asked: "{reading.text}" → {reading.status.value}; {followup.note}')
    for label, link in (("Recording", detail.recording), ("Transcript", detail.transcript)):
        if link is not None and link.url:
            expiry = f" (link expires {link.expires_at:%d %b %Y %H:%M} UTC)" if link.expires_at else ""
            lines.append(f"{label}: {link.url}{expiry}")
    if transcript:
        lines.append("")
        lines.append("Transcript:")
        lines.append(transcript.strip())
    return _cut("\n".join(lines), DESCRIPTION_LIMIT, marker=TRIM_MARKER)


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 500 else text[:500] + "…"


def _cut(text: str, limit: int, *, marker: str = "") -> str:
    if len(text) <= limit:
        return text
    return text[: limit - len(marker)] + marker


__all__ = [
    "CALLBACK_SUFFIX",
    "CREATE_ONLY_TASK_FIELDS",
    "CallbackStatus",
    "LeadTarget",
    "PlanContext",
    "RecordWrite",
    "Ref",
    "SyncPlan",
    "build_plan",
    "call_reference_time",
    "lead_phone",
]
