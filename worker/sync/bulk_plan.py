"""The pure decisions of bulk mode: grouping, ordering, planning in order, the second phase, settling.

No I/O here (``worker.sync.bulk`` reads, writes and records); everything is decided from the fetched
calls, the Leads found and the records' results, so it is unit-tested without servers.

- ``group_calls``: calls of one Lead/Contact form one group; calls of one unknown number (whatever its
  spelling) form one group that creates ONE Lead. Each group is in call order.
- ``plan_group``: a found record's calls are planned in order, each on the values the one before would have
  left; for a new number, calls are planned until one creates the Lead (the creator, written in phase 1).
- ``plan_after_create``: the calls after the creator are planned on the Lead it created (or share its error).
- ``second_phase``: the writes after the creates: one merged update per Lead, then the Task upserts with
  the ids phase 1 wrote.
- ``settle``: a call's outcome from its records, in plan order: the first refused record decides.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

from worker.errors import PermanentError, Stage, SyncError, internal_errors
from worker.mapping import Mapping
from worker.phones import e164
from worker.plan import LeadTarget, PlanContext, RecordWrite, Ref, SyncPlan, build_plan, call_reference_time, lead_phone
from worker.salesforce.collection_writer import RecordResult
from worker.twenty2.models import CallDetail


@dataclass
class BulkCall:
    """One call going through a chunk: its detail, plan, written ids, or the error that stopped it."""

    call_id: str
    detail: CallDetail | None = None
    transcript: str | None = None
    plan: SyncPlan | None = None
    error: SyncError | None = None
    ids: dict[str, str] = field(default_factory=dict)
    results: dict[str, RecordResult] = field(default_factory=dict)
    synced: bool = False  # every record written

    def reset(self) -> None:
        """Back to "fetched": planned and written again from a fresh read of its Lead."""
        self.error, self.plan, self.ids, self.results = None, None, {}, {}


@dataclass
class Group:
    """Calls that write to one Lead/Contact (``target``), or to one new Lead (``target`` None), in call order."""

    target: LeadTarget | None
    calls: list[BulkCall]


#: Phase-2 writes and, for each, the calls it belongs to and the plan ref its result answers.
Owners = list[tuple[list[BulkCall], str]]


def detail_of(call: BulkCall) -> CallDetail:
    assert call.detail is not None  # only fetched calls are looked up and planned
    return call.detail


def write_of(call: BulkCall, ref: str) -> RecordWrite:
    assert call.plan is not None
    write = call.plan.write(ref)
    assert write is not None
    return write


def group_calls(
    calls: list[BulkCall], targets: dict[str, LeadTarget | SyncError | None], ctx: PlanContext, *, region: str
) -> list[Group]:
    """Group fetched calls by the record they write to; a call whose lookup failed gets that error."""
    by_key: dict[str, Group] = {}
    for call in calls:
        target = targets.get(call.call_id)
        if isinstance(target, SyncError):
            call.error = target
            continue
        if target is not None:
            key = f"record:{target.record_id}"
        else:
            # One new Lead per number: the spelling does not matter, the number does.
            key = f"new:{e164(lead_phone(detail_of(call)), region) or call.call_id}"
        by_key.setdefault(key, Group(target, [])).calls.append(call)
    for group in by_key.values():
        group.calls.sort(key=lambda c: call_reference_time(detail_of(c), ctx))
    return list(by_key.values())


def plan_one(call: BulkCall, target: LeadTarget | None, mapping: Mapping, ctx: PlanContext) -> None:
    """Plan ``call`` on ``target``; a sorted error (or a crash, as ``InternalError``) becomes the call's."""
    try:
        with internal_errors(Stage.PLAN, call_id=call.call_id):
            call.plan = build_plan(detail_of(call), target, mapping, ctx, transcript=call.transcript)
    except SyncError as exc:
        call.error = exc


def plan_in_order(calls: list[BulkCall], target: LeadTarget, mapping: Mapping, ctx: PlanContext) -> None:
    for call in calls:
        plan_one(call, target, mapping, ctx)
        update = call.plan.write("lead") if call.plan is not None else None
        if update is not None and update.method == "update":
            # The next call of this Lead sees the values this one leaves.
            target = replace(target, fields={**target.fields, **update.fields})


def plan_group(group: Group, mapping: Mapping, ctx: PlanContext) -> BulkCall | None:
    """Plan a group's calls on its found record; for a new number, plan until one call creates the
    Lead (returned: it is written in phase 1) and leave the rest for after the create."""
    if group.target is not None:
        plan_in_order(group.calls, group.target, mapping, ctx)
        return None
    for call in group.calls:
        plan_one(call, None, mapping, ctx)
        if call.plan is not None:
            return call
    return None


def plan_after_create(group: Group, creator: BulkCall, mapping: Mapping, ctx: PlanContext) -> None:
    """Plan the calls after ``creator`` on the Lead it created; without one, they share its error."""
    later = group.calls[group.calls.index(creator) + 1 :]
    lead_id = creator.ids.get("lead")
    if lead_id is None:
        for call in later:
            call.error = creator.error
        return
    create = write_of(creator, "lead")
    target = LeadTarget(
        record_id=lead_id,
        sobject="Lead",
        owner_id=None,
        matched_by=f"phone (Lead created in this run by call {creator.call_id})",
        fields={k: v for k, v in create.fields.items() if not isinstance(v, Ref)},
    )
    plan_in_order(later, target, mapping, ctx)


def second_phase(groups: list[Group]) -> tuple[Owners, list[RecordWrite]]:
    """Phase-2 writes and, for each, the calls it belongs to: one merged update per Lead, then Tasks."""
    owners: Owners = []
    writes: list[RecordWrite] = []
    tasks: list[tuple[BulkCall, RecordWrite]] = []
    for group in groups:
        merged: dict[str, dict[str, Any]] = defaultdict(dict)
        members: dict[str, list[BulkCall]] = defaultdict(list)
        for call in group.calls:
            if call.plan is None or call.error is not None:
                continue
            for write in call.plan.writes:
                if write.method == "create":
                    continue  # phase 1
                if write.sobject == "Lead" and write.method == "update" and write.record_id:
                    merged[write.record_id].update(write.fields)
                    members[write.record_id].append(call)
                else:
                    tasks.append((call, resolved(write, call.ids)))
        for lead_id, fields in merged.items():
            owners.append((members[lead_id], "lead"))
            writes.append(RecordWrite(ref="lead", sobject="Lead", method="update", fields=fields, record_id=lead_id))
    for call, write in tasks:
        owners.append(([call], write.ref))
        writes.append(write)
    return owners, writes


def settle(call: BulkCall) -> None:
    """The call's outcome from its records, in plan order: the first refused record decides."""
    if call.plan is None or call.error is not None:
        return
    for write in call.plan.writes:
        result = call.results.get(write.ref)
        if result is None or result.error is not None:
            call.error = result.error if result is not None else None
            if call.error is None:
                call.error = PermanentError(f"{write.ref} was not written", stage=Stage.WRITE, code="NOT_WRITTEN")
            return
        call.ids[write.ref] = result.record_id or write.record_id or ""
    call.synced = True


def resolved(write: RecordWrite, ids: dict[str, str]) -> RecordWrite:
    """``write`` with ``Ref``s replaced by the ids phase 1 wrote."""
    if not any(isinstance(v, Ref) for v in write.fields.values()):
        return write
    return replace(write, fields={k: ids.get(v.name, v) if isinstance(v, Ref) else v for k, v in write.fields.items()})
