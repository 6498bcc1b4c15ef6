"""The pure plan: from a call detail, the Lead as found and the mapping, the exact Salesforce writes.

One fixture per real-world call under tests/fixtures/calls/, one test per fixture.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from worker.errors import SkippedError
from worker.mapping import load_mapping
from worker.plan import DESCRIPTION_LIMIT, TRIM_MARKER, LeadTarget, PlanContext, Ref, SyncPlan, build_plan
from worker.settings import REPO_ROOT
from worker.twenty2.models import CallDetail

FIXTURES = Path(__file__).parents[1] / "fixtures" / "calls"
MAPPING = load_mapping(REPO_ROOT / "config" / "mapping.toml")
IST = ZoneInfo("Asia/Kolkata")
# Syncing right after the seed call ended (15:31:34 IST on Wed 25 Dec 2024).
SOON_AFTER = datetime(2024, 12, 25, 10, 2, 0, tzinfo=UTC)
OWNER = "005000000000001AAA"


def detail(name: str, **call_changes: Any) -> CallDetail:
    data = copy.deepcopy(json.loads((FIXTURES / f"{name}.json").read_text()))
    data["call"].update(call_changes)
    return CallDetail.model_validate(data)


def ctx(now: datetime = SOON_AFTER, tz: ZoneInfo = IST, *, create_unknown: bool = True) -> PlanContext:
    return PlanContext(
        now=now,
        tz=tz,
        task_external_id_field="Twenty2_Call_Id__c",
        calling_window=(time(9), time(21)),
        working_days=frozenset(range(6)),
        new_lead_company="Unknown (Twenty2 call)",
        create_unknown=create_unknown,
    )


def lead(status: str = "Open - Not Contacted", rating: str | None = None, owner: str = OWNER) -> LeadTarget:
    return LeadTarget(
        record_id="00Q000000000001AAA",
        sobject="Lead",
        owner_id=owner,
        matched_by="phone",
        fields={"Status": status, "Rating": rating},
    )


def fields(plan: SyncPlan, ref: str) -> dict[str, Any]:
    write = plan.write(ref)
    assert write is not None, f"no {ref} write in {[w.ref for w in plan.writes]}"
    return write.fields


def test_seed_call(tmp_path: Path) -> None:
    plan = build_plan(detail("seed_call"), lead(), MAPPING, ctx())
    assert fields(plan, "lead") == {"Status": "Working - Contacted", "Rating": "Hot"}
    task = fields(plan, "callTask")
    assert (task["TaskSubtype"], task["CallType"], task["CallDurationInSeconds"]) == ("Call", "Outbound", 94)
    assert task["ActivityDate"] == "2024-12-25" and task["OwnerId"] == OWNER and task["WhoId"] == "00Q000000000001AAA"
    assert "recordings/call_9c4d7e12ab.mp3 (link expires 25 Jan 2025 10:01 UTC)" in task["Description"]
    assert "Cost: 15.67 INR" in task["Description"]
    follow = fields(plan, "followUp")
    assert follow["ActivityDate"] == "2024-12-26" and follow["ReminderDateTime"] == "2024-12-26T05:30:00.000Z"
    assert follow["Priority"] == "High" and follow["IsReminderSet"] is True and follow["OwnerId"] == OWNER
    assert plan.write("followUp") is not None and plan.write("followUp").external_id == (  # type: ignore[union-attr]
        "Twenty2_Call_Id__c",
        "call_9c4d7e12ab-callback",
    )


def test_failed_call() -> None:
    plan = build_plan(detail("failed_call"), lead(), MAPPING, ctx())
    assert plan.write("lead") is None and plan.write("followUp") is None
    task = fields(plan, "callTask")
    assert "not connected" in task["Subject"] and task["CallDisposition"] == "failed"


def test_call_ending_2350_ist() -> None:
    # Ended 23:50 IST on the 25th = 18:20 UTC: the call's date is the 25th, "kal" is the 26th.
    now = datetime(2024, 12, 25, 18, 21, tzinfo=UTC)
    plan = build_plan(detail("call_ending_2350_ist"), lead(), MAPPING, ctx(now))
    assert fields(plan, "callTask")["ActivityDate"] == "2024-12-25"
    follow = fields(plan, "followUp")
    assert follow["ActivityDate"] == "2024-12-26" and follow["ReminderDateTime"] == "2024-12-26T04:30:00.000Z"


def test_call_ending_2350_ist_in_a_dst_zone() -> None:
    # The same instant read in New York (EST, UTC-5): 13:20 on the 25th, "kal subah 10" = 26th 10:00 EST.
    ny = ZoneInfo("America/New_York")
    plan = build_plan(
        detail("call_ending_2350_ist"), lead(), MAPPING, ctx(datetime(2024, 12, 25, 18, 21, tzinfo=UTC), ny)
    )
    follow = fields(plan, "followUp")
    assert follow["ReminderDateTime"] == "2024-12-26T15:00:00.000Z" and follow["ActivityDate"] == "2024-12-26"


def test_callback_without_time() -> None:
    plan = build_plan(detail("callback_without_time"), lead(), MAPPING, ctx())
    follow = fields(plan, "followUp")
    assert "as soon as possible" in follow["Subject"]
    # 15:31 IST is inside the calling window: due right away, not tomorrow.
    assert follow["ActivityDate"] == "2024-12-25"


def test_vague_callback() -> None:
    plan = build_plan(detail("vague_callback"), lead(), MAPPING, ctx())
    follow = fields(plan, "followUp")
    assert "time unclear, check" in follow["Subject"] and "baad mein call karo" in follow["Subject"]
    assert follow["ActivityDate"] == "2024-12-26"  # the next working day (a Thursday)
    assert "baad mein call karo" in follow["Description"]


def test_ambiguous_callback() -> None:
    plan = build_plan(detail("ambiguous_callback"), lead(), MAPPING, ctx())
    assert "confirm time" in fields(plan, "followUp")["Subject"]


def test_unknown_values_and_extras() -> None:
    plan = build_plan(detail("unknown_values_and_extras"), lead(), MAPPING, ctx())
    assert plan.write("lead") is None and plan.write("followUp") is None
    description = fields(plan, "callTask")["Description"]
    assert "interested = 'pata nahi': value not understood" in description
    assert "budget: 50k" in description
    # An output parameter named like a field is data, never a field write.
    assert fields(plan, "callTask")["OwnerId"] == OWNER and "OwnerId: 005000000000001AAA" in description


def test_inbound_call() -> None:
    plan = build_plan(detail("inbound_call"), None, MAPPING, ctx())
    new_lead = plan.write("lead")
    assert new_lead is not None and new_lead.method == "create" and new_lead.fields["Phone"] == "+91 98765 43210"
    assert fields(plan, "callTask")["CallType"] == "Inbound" and fields(plan, "callTask")["WhoId"] == Ref("lead")


def test_unknown_number_skipped_by_policy() -> None:
    with pytest.raises(SkippedError) as info:
        build_plan(detail("seed_call"), None, MAPPING, ctx(create_unknown=False))
    assert info.value.code == "UNKNOWN_NUMBER" and "9999999999" not in info.value.message


def test_converted_lead_target() -> None:
    contact = LeadTarget(
        record_id="003000000000001AAA",
        sobject="Contact",
        owner_id=OWNER,
        matched_by="phone",
        converted_from="00Q000000000001AAA",
    )
    plan = build_plan(detail("seed_call"), contact, MAPPING, ctx())
    assert plan.write("lead") is None and fields(plan, "callTask")["WhoId"] == "003000000000001AAA"
    assert plan.write("followUp") is None  # no outcome mapping on a converted lead, so no callback either


def test_closed_lead_is_not_reopened() -> None:
    plan = build_plan(detail("seed_call"), lead("Closed - Not Converted", "Cold"), MAPPING, ctx())
    assert fields(plan, "lead") == {"Rating": "Hot"}


def test_queue_owner_is_not_copied_to_tasks() -> None:
    plan = build_plan(detail("seed_call"), lead(owner="00G000000000001AAA"), MAPPING, ctx())
    assert "OwnerId" not in fields(plan, "callTask") and "OwnerId" not in fields(plan, "followUp")


def test_long_transcript_is_trimmed_with_a_marker() -> None:
    plan = build_plan(detail("seed_call"), lead(), MAPPING, ctx(), transcript="Agent: namaste\n" * 5000)
    description = fields(plan, "callTask")["Description"]
    assert len(description) == DESCRIPTION_LIMIT and description.endswith(TRIM_MARKER)


def test_past_callback_moves_to_now_on_a_late_replay() -> None:
    later = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)  # a Monday, 11:30 IST, months after the call
    follow = fields(build_plan(detail("seed_call"), lead(), MAPPING, ctx(later)), "followUp")
    assert follow["ActivityDate"] == "2025-03-03" and follow["ReminderDateTime"] >= "2025-03-03T06:00:00.000Z"
