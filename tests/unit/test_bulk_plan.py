"""The pure decisions of bulk mode (``worker.sync.bulk_plan``), without servers: grouping, ordering,
planning in order, the create-then-update of a new number, the merged second phase, settling."""

from __future__ import annotations

import copy
import json
from typing import Any

from test_plan import FIXTURES, MAPPING, ctx

from worker.errors import PermanentError, SalesforceUnavailable
from worker.plan import LeadTarget, Ref
from worker.salesforce.collection_writer import RecordResult
from worker.sync import bulk_plan
from worker.sync.bulk_plan import BulkCall, Group
from worker.twenty2.models import CallDetail

LATER = "2024-12-25T11:00:00Z"  # an hour after the seed call ended
LEAD_ID = "00Q000000000001AAA"
NEW_NUMBER = "9123400001"  # no Lead has it
NEW_LEAD_ID = "00Q000000000009AAA"
CTX = ctx()  # the plan tests' context: syncing right after the seed call ended, IST


def fetched(call_id: str, *, phone: str = "9999999999", ended: str = "2024-12-25T10:01:34Z", **out: Any) -> BulkCall:
    """The seed call (interested, callback tomorrow 11am) as another call id, number and end time."""
    data = copy.deepcopy(json.loads((FIXTURES / "seed_call.json").read_text()))
    data["call"].update(call_id=call_id, callee_phone=phone, caller_phone=phone, ended_at=ended)
    data["output_parameters"].update(out)
    return BulkCall(call_id, detail=CallDetail.model_validate(data))


def lead(status: str = "Open - Not Contacted") -> LeadTarget:
    return LeadTarget(record_id=LEAD_ID, sobject="Lead", owner_id=None, matched_by="phone", fields={"Status": status})


def test_calls_of_one_lead_form_one_group_in_call_order() -> None:
    later, earlier = fetched("call_b", ended=LATER), fetched("call_a")
    groups = bulk_plan.group_calls([later, earlier], {"call_b": lead(), "call_a": lead()}, CTX, region="IN")
    assert [[c.call_id for c in g.calls] for g in groups] == [["call_a", "call_b"]]
    assert groups[0].target == lead()


def test_one_new_number_in_two_spellings_is_one_group() -> None:
    calls = [fetched("call_a", phone=NEW_NUMBER), fetched("call_b", phone="+91 91234-00001"), fetched("call_c")]
    groups = bulk_plan.group_calls(calls, {}, CTX, region="IN")
    assert sorted([c.call_id for c in g.calls] for g in groups) == [["call_a", "call_b"], ["call_c"]]
    assert all(g.target is None for g in groups)


def test_a_failed_lookup_becomes_the_calls_error_and_leaves_it_out() -> None:
    call = fetched("call_a")
    error = SalesforceUnavailable("down", code="SERVER_UNAVAILABLE")
    assert bulk_plan.group_calls([call], {"call_a": error}, CTX, region="IN") == []
    assert call.error is error


def test_calls_of_one_lead_are_planned_on_what_the_one_before_left() -> None:
    first, second = fetched("call_a"), fetched("call_b", ended=LATER)
    group = bulk_plan.group_calls([first, second], {"call_a": lead(), "call_b": lead()}, CTX, region="IN")[0]
    assert bulk_plan.plan_group(group, MAPPING, CTX) is None  # nothing to create: the Lead exists
    assert first.plan is not None and second.plan is not None
    assert first.plan.write("lead") is not None
    # The second call sees the status the first one left, so it has no status change of its own to make.
    second_lead = second.plan.write("lead")
    assert second_lead is None or "Status" not in second_lead.fields


def new_number_group() -> tuple[Group, BulkCall, BulkCall]:
    """Two calls to one number no Lead has, the later one given first; planned until the create."""
    first, second = fetched("call_a", phone=NEW_NUMBER), fetched("call_b", phone=NEW_NUMBER, ended=LATER)
    group = bulk_plan.group_calls([second, first], {}, CTX, region="IN")[0]
    assert bulk_plan.plan_group(group, MAPPING, CTX) is first  # the earliest call creates the Lead
    return group, first, second


def test_a_new_number_is_created_by_its_earliest_call_the_others_update_it() -> None:
    group, first, second = new_number_group()
    assert second.plan is None
    assert bulk_plan.write_of(first, "lead").method == "create"
    first.ids["lead"] = NEW_LEAD_ID
    bulk_plan.plan_after_create(group, first, MAPPING, CTX)
    assert second.plan is not None and second.plan.target is not None
    assert second.plan.target.record_id == NEW_LEAD_ID
    assert all(w.method != "create" for w in second.plan.writes)


def test_calls_waiting_for_a_lead_that_was_not_created_share_its_error() -> None:
    group, first, second = new_number_group()
    first.error = PermanentError("validation rule", code="FIELD_CUSTOM_VALIDATION_EXCEPTION")
    bulk_plan.plan_after_create(group, first, MAPPING, CTX)
    assert second.error is first.error and second.plan is None


def test_second_phase_merges_one_update_per_lead_then_the_tasks_with_phase_one_ids() -> None:
    first, second = fetched("call_a"), fetched("call_b", ended=LATER, interested="no")
    groups = bulk_plan.group_calls([first, second], {"call_a": lead(), "call_b": lead()}, CTX, region="IN")
    bulk_plan.plan_group(groups[0], MAPPING, CTX)
    owners, writes = bulk_plan.second_phase(groups)
    updates = [w for w in writes if w.sobject == "Lead"]
    assert len(updates) == 1 and updates[0].record_id == LEAD_ID and updates[0].method == "update"
    assert writes[0] is updates[0]  # the Lead first, then the Tasks
    lead_members = next(members for members, ref in owners if ref == "lead")
    assert {c.call_id for c in lead_members} <= {"call_a", "call_b"}
    tasks = [w for w in writes if w.sobject == "Task"]
    assert tasks and all(w.method == "upsert" for w in tasks)
    assert not any(isinstance(v, Ref) for w in writes for v in w.fields.values())


def test_refs_are_resolved_with_the_ids_phase_one_wrote() -> None:
    call = fetched("call_a", phone=NEW_NUMBER)
    group = bulk_plan.group_calls([call], {}, CTX, region="IN")[0]
    assert bulk_plan.plan_group(group, MAPPING, CTX) is call
    call_task = bulk_plan.write_of(call, "callTask")
    assert any(isinstance(v, Ref) for v in call_task.fields.values())
    resolved = bulk_plan.resolved(call_task, {"lead": NEW_LEAD_ID})
    assert NEW_LEAD_ID in resolved.fields.values() and not any(isinstance(v, Ref) for v in resolved.fields.values())


def test_settle_synced_when_every_record_was_written() -> None:
    call = fetched("call_a")
    bulk_plan.plan_one(call, lead(), MAPPING, CTX)
    assert call.plan is not None
    call.results = {w.ref: RecordResult(record_id=f"id-{w.ref}") for w in call.plan.writes}
    bulk_plan.settle(call)
    assert call.synced and call.error is None
    assert call.ids == {w.ref: f"id-{w.ref}" for w in call.plan.writes}


def test_settle_the_first_refused_record_decides() -> None:
    call = fetched("call_a")
    bulk_plan.plan_one(call, lead(), MAPPING, CTX)
    assert call.plan is not None
    refs = [w.ref for w in call.plan.writes]
    refused = SalesforceUnavailable("locked", code="UNABLE_TO_LOCK_ROW")
    call.results = {ref: RecordResult(record_id="x") for ref in refs}
    call.results[refs[1]] = RecordResult(error=refused)
    bulk_plan.settle(call)
    assert not call.synced and call.error is refused


def test_settle_a_record_without_result_was_not_written() -> None:
    call = fetched("call_a")
    bulk_plan.plan_one(call, lead(), MAPPING, CTX)
    bulk_plan.settle(call)
    assert not call.synced and call.error is not None and call.error.code == "NOT_WRITTEN"


def test_a_plan_that_crashes_is_an_internal_error_at_the_plan_stage() -> None:
    call = BulkCall("call_a", detail=fetched("call_a").detail)
    bulk_plan.plan_one(call, lead(), MAPPING, None)  # type: ignore[arg-type]  # a bug: no context
    assert call.error is not None and call.plan is None
    assert (call.error.code, call.error.stage.value, type(call.error).__name__) == ("INTERNAL", "plan", "InternalError")
