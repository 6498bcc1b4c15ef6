"""Hostile call details, served by the Twenty2 sandbox, through the real fetch → plan (→ write) path.

Each example is one ``GET /call/detail`` body built around the documented shape and then bent: keys missing
or extra, wrong types, None, huge and Devanagari strings, numbers as strings, garbled costs and timestamps,
phones full of letters, quotes, backslashes and SOSL reserved characters, output parameters of every JSON
type named like the fields they must never choose (``OwnerId``, ``Id``, ``WhoId``, ``__proto__``, ...),
statuses final and not. The sandbox serves it over real HTTPS (``set_raw_detail``); ``plan_call`` fetches and
plans it (Lead lookup against the Salesforce sandbox), ``sync_one`` also writes it.

Properties of every example:

- the run gives a plan (an outcome), or raises a sorted ``SyncError`` (retryable, permanent or skipped);
  any other exception is a crash;
- Salesforce is unchanged after ``plan_call`` and after a failed ``sync_one``; after a successful one it
  holds exactly the plan's records with the plan's values (all or nothing);
- where a write goes is decided by the lookup (the phone, or the Lead id in ``input_parameters``), never by
  an output parameter: the Lead written is the one found (or a new one), every Lead field written is one the
  mapping names, a Task's ``WhoId`` is the found / created record and its ``OwnerId`` the Lead's owner or
  absent;
- every text written fits its field (Subject 255, Description 32,000, Lead fields their describe length);
  a new Lead's Phone is the number as said, never cut: one too long for the field fails the write, typed;
- no value sent reads as a composite reference (``@{lead.id}``) except the plan's own references.

The number of examples run is printed when the module finishes (``EXAMPLES``).
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from standins.salesforce import DEMO_PHONES, SalesforceState
from standins.stack.sandboxes import Sandboxes
from worker.errors import PermanentError, RetryableError, SkippedError, SyncError
from worker.mapping import Mapping, load_mapping, parse_mapping
from worker.phones import same_number
from worker.plan import CALLBACK_SUFFIX, DESCRIPTION_LIMIT, SUBJECT_LIMIT, TRIM_MARKER, Ref, SyncPlan, lead_phone
from worker.salesforce.client import SalesforceClient
from worker.sync.services import Services
from worker.sync.stream import plan_call, sync_one
from worker.twenty2.client import Twenty2Client
from worker.twenty2.models import CallDetail

EXAMPLES: Counter[str] = Counter()
OUTCOMES: Counter[str] = Counter()  # how the fetch → plan → write examples ended
MAX_EXAMPLES = 300
HUGE = 10_000  # characters of a "10 kB" value

#: Replaced by the example's call id when the body is served (call ids must be fresh per example).
CALL_ID_SLOT = "<call id>"

# --- the org each example runs against ------------------------------------------------------------------

TARGET_STORED_PHONE = "+91 98123 00441"
TARGET_SPELLINGS = (
    "9812300441",
    "+919812300441",
    "+91 98123 00441",
    "098123-00441",
    "(+91) 98123-00441",
    "0091 98123 00441",
    "981-230-0441",
)
DECOY_STORED_PHONE = "+91 90000 00999"  # no generated call dials it: only an output parameter could name it
FRESH_PHONES = ("7012345601", "7012345602", "+91 70123 45603", "6012345604")
SOSL_RESERVED = "?&|!{}[]()^~*:\\\"'+-"
TASK_FIELDS = frozenset(
    {
        "Subject",
        "TaskSubtype",
        "Status",
        "Priority",
        "ActivityDate",
        "CallObject",
        "CallDisposition",
        "CallDurationInSeconds",
        "CallType",
        "WhoId",
        "OwnerId",
        "Description",
        "ReminderDateTime",
        "IsReminderSet",
    }
)
NEW_LEAD_FIELDS = frozenset({"LastName", "FirstName", "Company", "Phone"})
TEXT_RULE = """

[params.note]
kind = "text"

[params.note.fields.Title]
mode = "overwrite"
"""


@dataclass(frozen=True)
class World:
    """Records of the org the examples aim at, plus ids an output parameter may try to smuggle in."""

    target_lead: str
    hostile_ids: tuple[str, ...]
    transcript_url: str
    storage_url: str


def make_world(boxes: Sandboxes) -> World:
    org = boxes.salesforce
    asha, vikram, former = org.users["asha"], org.users["vikram"], org.users["former"]
    target = org.insert_raw(
        "Lead",
        {
            "FirstName": "Tara",
            "LastName": "Kapoor",
            "Company": "Kapoor Mills",
            "Phone": TARGET_STORED_PHONE,
            "Status": "Open - Not Contacted",
            "OwnerId": asha,
        },
    )
    decoy = org.insert_raw(
        "Lead", {"LastName": "Decoy", "Company": "Elsewhere", "Phone": DECOY_STORED_PHONE, "OwnerId": vikram}
    )
    # A call whose transcript the storage route serves (35 kB: the Description must be cut to fit).
    transcript_call = boxes.twenty2.add_call(
        transcript="User: haan ji, kal baat karte hain.\n" * 1000,
        links_expire_at=datetime.now(UTC) + timedelta(days=30),
        callee_phone="7000000000",
    )
    storage = f"{boxes.twenty2_url}/storage/transcripts"
    return World(
        target_lead=target,
        hostile_ids=(
            decoy,
            decoy[:15],
            vikram,
            former,
            org.demo_ids["meera_contact"],
            org.demo_ids["karan"],
            "00Q000000000000AAA",
            "005000000000000AAA",
            "@{lead.id}",
            "' OR Id != '",
        ),
        transcript_url=f"{storage}/{transcript_call}.txt",
        storage_url=storage,
    )


def make_services(boxes: Sandboxes, redis_url: str, mapping: Mapping, **overrides: Any) -> Services:
    """Services against the sandboxes: real HTTPS, no waiting between retries, no client-side rate limit."""
    settings_ = boxes.settings(redis_url=redis_url, twenty2_rate_limit_per_minute=0, **overrides)
    return Services.from_settings(
        settings_,
        mapping=mapping,
        twenty2=Twenty2Client(settings_),
        salesforce=SalesforceClient(settings_),
    )


def close(services: Services) -> None:
    services.twenty2.close()
    services.salesforce.http.close()


@pytest.fixture(scope="module", autouse=True)
def report_examples(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print how many examples ran (and how the syncs ended) when the module is done, for the issue's report."""
    yield
    line = "hypothesis examples run: " + ", ".join(f"{k} {v}" for k, v in EXAMPLES.items())
    line += " (sync outcomes: " + ", ".join(f"{k} {v}" for k, v in OUTCOMES.most_common()) + ")"
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:  # pragma: no cover - run with -p no:capture
        print(line)
        return
    with capture.global_and_fixture_disabled():  # past pytest's output capture, as capsys.disabled() does
        print("\n" + line)


@pytest.fixture
def world(boxes: Sandboxes) -> Iterator[World]:
    boxes.twenty2.rate_limit_per_minute = None  # hundreds of fetches: the sandbox's 60/min would answer 429
    yield make_world(boxes)
    boxes.twenty2.reset()


# --- strategies -----------------------------------------------------------------------------------------

WORDS = (
    "yes",
    "Yes.",
    "haan",
    "ji haan",
    "हाँ",
    "नहीं",
    "no",
    "nahi",
    "not interested",
    "maybe",
    "pata nahi",
    "",
    " ",
    "N/A",
    "null",
    "true",
    "1",
    "0",
    "Tomorrow 11am",
    "kal shaam 5 baje",
    "परसों सुबह",
    "कल सुबह 10 बजे",
    "in 2 hours",
    "next Friday",
    "31st Feb 25:00",
    "०५ बजे",
    "\u200b",
    "' OR 1=1 --",
    "{!Lead.OwnerId}",
    "@{lead.id}",
    "${OwnerId}",
    "<script>alert(1)</script>",
    "\\",
    "%00",
    "\x00\x1f",
)
HOSTILE_NAMES = (
    "OwnerId",
    "Id",
    "WhoId",
    "WhatId",
    "__proto__",
    "constructor",
    "prototype",
    "Status",
    "Rating",
    "Phone",
    "LastName",
    "IsConverted",
    "RecordTypeId",
    "sobject",
    "Lead.OwnerId",
    "Twenty2_Call_Id__c",
    "$where",
    "../OwnerId",
    "salesforce_id",
    "note",
)
MAPPED_NAMES = ("interested", "callback_requested", "callback_time")


def huge_texts(size: int = HUGE) -> st.SearchStrategy[str]:
    """About ``size`` characters, cheaply (a short unit repeated)."""
    return st.builds(
        lambda unit, extra: (unit * (size // len(unit) + 1))[: size + extra],
        st.text(min_size=1, max_size=4),
        st.integers(0, 2000),
    )


texts = st.one_of(st.text(max_size=40), st.sampled_from(WORDS), huge_texts())
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)


def timestamps() -> st.SearchStrategy[Any]:
    def iso(moment: datetime, ms: bool, zone: str) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{moment.microsecond // 1000:03d}" if ms else "") + zone

    return st.one_of(
        st.none(),
        st.just(""),
        st.builds(iso, st.datetimes(), st.booleans(), st.sampled_from(["Z", "+05:30", "", "-08:00", "+14:00"])),
        st.sampled_from(
            [
                "9999-12-31T23:59:59Z",
                "9999-12-31T23:59:59-12:00",
                "0001-01-01T00:00:00Z",
                "0001-01-01T00:00:00+14:00",
                "2024-02-30T10:00:00Z",
                "2024-12-25 15:31:34",
                "25/12/2024 15:31",
                "yesterday",
                "2024-12-25T10:01:34.123456789Z",
                "1735120894",
                "  ",
            ]
        ),
        st.integers(-(10**13), 10**13),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    )


def phones() -> st.SearchStrategy[Any]:
    junk = st.text(alphabet=SOSL_RESERVED + "abcXYZ \t", min_size=1, max_size=4)
    return st.one_of(
        st.sampled_from(TARGET_SPELLINGS),
        st.just(DEMO_PHONES["converted"]),
        st.sampled_from(FRESH_PHONES),
        st.from_regex(r"\+?[0-9 ()\-]{6,18}", fullmatch=True),
        st.text(alphabet=SOSL_RESERVED + "0123456789 abcxyz", max_size=30),
        st.builds(
            lambda phone, bad, at: phone[:at] + bad + phone[at:],
            st.sampled_from(TARGET_SPELLINGS),
            junk,
            st.integers(0, 16),
        ),
        huge_texts(200),
        st.none(),
        st.integers(),
        st.just(""),
    )


def output_parameters(world: World) -> st.SearchStrategy[dict[str, Any]]:
    hostile_values = st.one_of(st.sampled_from(world.hostile_ids), json_values)
    entries = st.one_of(
        st.tuples(st.sampled_from(MAPPED_NAMES), st.one_of(st.sampled_from(WORDS), json_values)),
        st.tuples(st.sampled_from(HOSTILE_NAMES), hostile_values),
        st.tuples(st.text(max_size=12), json_values),
    )
    return st.lists(entries, max_size=8).map(dict)


def links(world: World) -> tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]:
    """(plausible, hostile) recording / transcript links."""
    future = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    plausible = st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {
                "url": st.sampled_from([world.transcript_url, f"{world.storage_url}/call_doesnotexist.txt"]),
                "expires_at": st.sampled_from([future, "2025-01-25T10:01:34Z", None]),
            }
        ),
    )
    urls = st.one_of(
        st.sampled_from(
            [
                "http://127.0.0.1/transcript.txt",
                "not a url",
                "https://[::1",
                "https://127.0.0.1:99999/x.txt",
                "https://127.0.0.1:1/x.txt",
                "",
                "ftp://127.0.0.1/x",
            ]
        ),
        st.text(max_size=20),
    )
    hostile = st.one_of(
        st.just({}),
        st.fixed_dictionaries(
            {},
            optional={
                "url": st.one_of(urls, st.none(), st.integers()),
                "expires_at": st.one_of(st.just(future), timestamps()),
                "available": st.one_of(st.booleans(), st.none(), st.text(max_size=5)),
            },
        ),
        json_values,
    )
    return plausible, hostile


def call_keys() -> tuple[dict[str, st.SearchStrategy[Any]], dict[str, st.SearchStrategy[Any]]]:
    """(plausible, hostile) strategies for the keys of the ``call`` object."""

    def iso(moment: datetime, ms: bool) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{moment.microsecond // 1000:03d}" if ms else "") + "Z"

    moments = st.builds(iso, st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1)), st.booleans())
    texts_or_json = st.one_of(st.none(), texts, json_values)
    plausible: dict[str, st.SearchStrategy[Any]] = {
        "agent_id": st.sampled_from(["69de483c68b23495c853b43a", "6a02dc5d92b9cbce7962a2b5"]),
        "status": st.sampled_from(
            ["completed"] * 6 + ["Completed", " COMPLETED ", "failed", "busy", "no-answer", "in-progress", "queued"]
        ),
        "direction": st.sampled_from(["outbound", "outbound", "inbound", "INBOUND"]),
        "callee_phone": phones(),
        "caller_phone": phones(),
        "duration_seconds": st.one_of(st.integers(0, 3600), st.just("94")),
        "cost": st.sampled_from(["15.67 INR", "INR 15.67", 15.67, 0, None, "0.00 INR"]),
        "started_at": moments,
        "ended_at": moments,
        "disconnection_reason": st.sampled_from(["user_hangup", "agent_hangup", "unanswered", None]),
    }
    statuses = st.one_of(
        st.sampled_from(["processing", "ringing", "in_progress", "voicemail", "cancelled", "error", ""]),
        st.text(max_size=12),
        st.none(),
        st.integers(),
        st.booleans(),
    )
    costs = st.one_of(
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(
            [
                "₹15.67",
                "15,67 INR",
                "USD 1 INR",
                "1e5",
                "-0.5 INR",
                "Rs. 15",
                "NaN",
                "Infinity",
                "inr15.67",
                "15.67.1",
                "१५.६७ INR",
            ]
        ),
        st.text(max_size=12),
        st.booleans(),
    )
    durations = st.one_of(
        st.integers(),
        st.sampled_from([" 94 ", "94.0", "ninety", "-1", "1e3", "९४"]),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
    )
    hostile: dict[str, st.SearchStrategy[Any]] = {
        "call_id": st.one_of(st.sampled_from(["call_other123", "00000000000000000000000a", ""]), json_values),
        "agent_id": texts_or_json,
        "assistant_id": texts_or_json,
        "status": statuses,
        "direction": texts_or_json,
        "callee_phone": json_values,
        "to_number": phones(),
        "from_number": phones(),
        "duration_seconds": durations,
        "billed_duration_seconds": durations,
        "cost": costs,
        "call_cost_inr": costs,
        "started_at": timestamps(),
        "answered_at": timestamps(),
        "ended_at": timestamps(),
        "disconnection_reason": texts_or_json,
        "extra": json_values,
    }
    return plausible, hostile


def input_parameters(world: World) -> st.SearchStrategy[dict[str, Any]]:
    lead_ids = st.sampled_from(
        [world.target_lead, world.target_lead[:15], world.target_lead.lower(), "00Qbogus", "' OR Id != '", ""]
    )
    return st.fixed_dictionaries(
        {},
        optional={
            "salesforce_id": st.one_of(lead_ids, json_values),
            "customerName": st.one_of(st.sampled_from(["Lakshay Gupta", "राहुल शर्मा", " "]), texts, json_values),
            "agentName": texts,
        },
    )


@st.composite
def detail_bodies(draw: st.DrawFn, world: World) -> Any:
    """The documented shape with plausible values, then up to four keys of ``call`` and one or two top-level
    keys bent (a hostile value or deleted); now and then not an object at all."""
    if draw(st.integers(0, 30)) == 0:
        return draw(st.one_of(json_values, st.just("<html>maintenance</html>")))
    plausible, hostile = call_keys()
    call: dict[str, Any] = {"call_id": CALL_ID_SLOT, **{key: draw(value) for key, value in plausible.items()}}
    bends = draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3, 4]))  # mostly plausible: the lookup and write get reached
    for key in draw(st.lists(st.sampled_from(sorted(hostile)), unique=True, min_size=bends, max_size=bends)):
        if draw(st.integers(0, 4)) == 0:
            call.pop(key, None)
        else:
            call[key] = draw(hostile[key])
    good_link, bad_link = links(world)
    body: dict[str, Any] = {
        "success": True,
        "call": call,
        "input_parameters": draw(input_parameters(world)),
        "output_parameters": draw(output_parameters(world)),
        "recording": draw(good_link),
        "transcript": draw(good_link),
    }
    top_hostile: dict[str, st.SearchStrategy[Any]] = {
        "success": st.one_of(st.none(), st.just(False), st.text(max_size=4)),
        "error": st.one_of(json_values, st.just({"code": "CALL_NOT_FOUND", "message": "gone"})),
        "call": json_values,
        "input_parameters": json_values,
        "output_parameters": json_values,
        "recording": bad_link,
        "transcript": bad_link,
    }
    bends = draw(st.sampled_from([0, 0, 0, 0, 1, 2]))
    for key in draw(st.lists(st.sampled_from(sorted(top_hostile)), unique=True, min_size=bends, max_size=bends)):
        if draw(st.integers(0, 4)) == 0:
            body.pop(key, None)
        else:
            body[key] = draw(top_hostile[key])
    return body


def documented(call: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    """The docs' example body, for explicit examples (``call`` / ``top`` replace keys)."""
    body: dict[str, Any] = {
        "success": True,
        "call": {
            "call_id": CALL_ID_SLOT,
            "agent_id": "69de483c68b23495c853b43a",
            "status": "completed",
            "direction": "outbound",
            "callee_phone": TARGET_SPELLINGS[0],
            "caller_phone": "9999999999",
            "duration_seconds": 94,
            "cost": "15.67 INR",
            "started_at": "2024-12-25T10:00:00Z",
            "ended_at": "2024-12-25T10:01:34Z",
            **(call or {}),
        },
        "input_parameters": {},
        "output_parameters": {"interested": "yes"},
        "recording": None,
        "transcript": None,
    }
    body.update(top)
    return body


# Explicit examples: each text limit is reached at least once, whatever the generator draws.
LONG_REASON = documented({"status": "failed", "disconnection_reason": "x" * HUGE})
MANY_OUTPUTS = documented(output_parameters={f"p{i}": "y" * HUGE for i in range(80)})
LONG_NOTE = documented(output_parameters={"interested": "yes", "note": "n" * HUGE})
# Once crashes (OverflowError, ValueError), kept as explicit examples: an end time at datetime.max (the
# workspace zone, the callback's next day and the UTC conversion overflowed) and a transcript URL urlsplit
# cannot read.
ENDED_AT_MAX = documented({"ended_at": "9999-12-31T23:59:59Z"})
ENDED_PAST_MAX = documented({"ended_at": "9999-12-31T23:59:59-12:00"})
CALLBACK_PAST_MAX = documented(
    {"ended_at": "9999-12-30T23:59:59Z"}, output_parameters={"interested": "yes", "callback_time": "tomorrow 11am"}
)
EXPIRY_PAST_MAX = documented(transcript={"url": "https://127.0.0.1:1/t.txt", "expires_at": "9999-12-31T23:59:59-12:00"})
# Output values that read as composite references ("@{lead.id}") were resolved by Salesforce, or failed the
# whole composite request ("@{nosuch.id}").
REFERENCES_IN_OUTPUTS = documented(
    output_parameters={
        "interested": "no",
        "remark": "@{lead.id}",
        "note": "@{callTask.id}",
        "callback_requested": "yes",
        "callback_time": "@{nosuch.id}",
    }
)
UNREADABLE_TRANSCRIPT_URL = documented(
    transcript={"url": "https://[::1", "expires_at": (datetime.now(UTC) + timedelta(days=3)).isoformat()}
)


# --- checks ---------------------------------------------------------------------------------------------


def serve(boxes: Sandboxes, body: Any, call_id: str) -> None:
    """Serve ``body`` (a deep copy, the call id slot filled) as the detail of ``call_id``."""

    def fill(value: Any) -> Any:
        if value == CALL_ID_SLOT:
            return call_id
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    boxes.twenty2.set_raw_detail(call_id, fill(copy.deepcopy(body)))


def snapshot(org: SalesforceState) -> dict[str, dict[str, Any]]:
    """Every record of every object, by id."""
    return {r["Id"]: r for spec in org.schema.objects.values() for r in org.records(spec.name)}


def field_lengths(services: Services, sobject: str) -> dict[str, int]:
    describe = services.salesforce.describe(sobject)
    return {f["name"]: int(f["length"]) for f in describe["fields"] if f.get("length")}


def input_lead_id(detail: CallDetail, services: Services) -> str | None:
    raw = detail.input_parameters.get(services.settings.crm_sync_lead_id_param)
    return raw.strip() if isinstance(raw, str) and raw.strip() else None


def check_target(plan: SyncPlan, detail: CallDetail, before: dict[str, dict[str, Any]], named_id: str | None) -> None:
    """The record the plan logs on was found by the lookup: by the call's phone or the input Lead id."""
    target = plan.target
    if target is None:
        return
    lead_id = target.converted_from or target.record_id
    lead = before[lead_id]  # it existed before this sync: not made up from the outputs
    assert lead_id.startswith("00Q")
    by_phone = any(same_number(lead.get(f), lead_phone(detail)) for f in ("Phone", "MobilePhone"))
    by_input = named_id is not None and lead_id.casefold().startswith(named_id[:15].casefold())
    assert by_phone or by_input, f"target {lead_id} matches neither the call's phone nor the input Lead id"
    assert target.owner_id == lead.get("OwnerId")
    if target.is_converted:
        assert (target.sobject, target.record_id) == ("Contact", lead["ConvertedContactId"])
    else:
        assert (target.sobject, target.record_id) == ("Lead", lead_id)


def check_plan(
    plan: SyncPlan,
    detail: CallDetail,
    call_id: str,
    services: Services,
    before: dict[str, dict[str, Any]],
    lengths: dict[str, dict[str, int]],
    trims: Counter[str],
) -> None:
    """Where each write goes and what it holds (see the module docstring)."""
    check_target(plan, detail, before, input_lead_id(detail, services))
    target = plan.target
    who: str | Ref = Ref("lead") if target is None else target.record_id
    owner = target.owner_id if target is not None else None
    lead_fields = services.mapping.lead_fields()
    for write in plan.writes:
        assert write.sobject in {"Lead", "Task"}
        limits = lengths[write.sobject]
        for name, value in write.fields.items():
            if isinstance(value, str) and name in limits and name != "Phone":  # the number as said: not cut
                assert len(value) <= limits[name], f"{write.sobject}.{name}: {len(value)} > {limits[name]}"
        if write.sobject == "Lead" and write.method == "update":
            assert target is not None and target.sobject == "Lead" and write.record_id == target.record_id
            assert set(write.fields) <= lead_fields
        elif write.sobject == "Lead":
            assert write.method == "create" and target is None and write.record_id is None
            assert set(write.fields) <= lead_fields | NEW_LEAD_FIELDS
            assert write.fields["Phone"] == lead_phone(detail)
        else:
            assert write.method == "upsert" and set(write.fields) <= TASK_FIELDS
            assert write.fields["WhoId"] == who
            if owner is not None and owner.startswith("005"):
                assert write.fields["OwnerId"] == owner
            else:
                assert "OwnerId" not in write.fields
            assert write.external_id is not None
            key_field, key = write.external_id
            assert key_field == services.settings.salesforce_task_external_id_field
            assert key.casefold() in {call_id.casefold(), (call_id + CALLBACK_SUFFIX).casefold()}
            assert len(write.fields["Subject"]) <= SUBJECT_LIMIT
            assert len(write.fields["Description"]) <= DESCRIPTION_LIMIT
        sent = services.writer.subrequests([write])[0]["body"]
        for name, value in write.fields.items():
            if isinstance(value, Ref):
                assert sent[name] == f"@{{{value.name}.id}}"
            elif isinstance(value, str):
                assert "@{" not in sent[name], f"{write.sobject}.{name}: data would read as a composite reference"
            if isinstance(value, str) and name in limits and len(value) == limits[name]:
                trims[f"{write.sobject}.{name}"] += 1
            if name == "Description" and isinstance(value, str) and value.endswith(TRIM_MARKER):
                trims["Task.Description marker"] += 1


def check_written(
    plan: SyncPlan,
    ids: dict[str, str],
    services: Services,
    before: dict[str, dict[str, Any]],
    after: dict[str, dict[str, Any]],
) -> None:
    """A successful write: exactly the plan's records changed, each holding the values sent for it (the plan's
    values as the writer renders them; a reference only where the plan has one)."""
    changed = {rid for rid, record in after.items() if before.get(rid) != record}
    # A record the plan wrote may look unchanged: the values it got were already there, and Salesforce's
    # LastModifiedDate has whole seconds (an update in the same second as the last one leaves it as it was).
    # The loop below checks that every written record holds what was sent.
    assert changed <= {rid for rid in ids.values() if rid}, "records changed that the plan did not write"
    for write in plan.writes:
        stored = after[ids[write.ref]]
        sent = services.writer.subrequests([write])[0]["body"]
        for name, value in write.fields.items():
            expected = ids[value.name] if isinstance(value, Ref) else sent[name]
            if name in {"Subject", "Description", "CallDisposition", "WhoId", "OwnerId", "Phone"} or (
                write.sobject == "Lead" and name not in NEW_LEAD_FIELDS
            ):
                assert stored.get(name) == expected, f"{write.sobject}.{name} stored differs from the plan"


# --- tests ----------------------------------------------------------------------------------------------

SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
SYNC_ERRORS = (PermanentError, RetryableError, SkippedError)


def test_hostile_details_plan_or_fail_typed_and_write_nothing(boxes: Sandboxes, redis_url: str, world: World) -> None:
    """fetch → plan: a plan or a sorted error; Salesforce untouched; the plan aims only where the lookup says."""
    services = {
        create: make_services(
            boxes,
            redis_url,
            load_mapping(Path(__file__).parents[2] / "config" / "mapping.toml"),
            crm_sync_unknown_number="create" if create else "skip",
        )
        for create in (True, False)
    }
    lengths = {name: field_lengths(services[True], name) for name in ("Lead", "Task")}
    numbers = itertools.count()
    trims: Counter[str] = Counter()

    @SETTINGS
    @given(body=detail_bodies(world), create_unknown=st.booleans())
    @example(body=LONG_REASON, create_unknown=True)
    @example(body=MANY_OUTPUTS, create_unknown=True)
    @example(body=ENDED_AT_MAX, create_unknown=True)
    @example(body=ENDED_PAST_MAX, create_unknown=True)
    @example(body=CALLBACK_PAST_MAX, create_unknown=True)
    @example(body=EXPIRY_PAST_MAX, create_unknown=True)
    @example(body=UNREADABLE_TRANSCRIPT_URL, create_unknown=True)
    @example(body=REFERENCES_IN_OUTPUTS, create_unknown=True)
    def check(body: Any, create_unknown: bool) -> None:
        EXAMPLES["fetch→plan"] += 1
        call_id = f"call_plan{next(numbers):06d}"
        serve(boxes, body, call_id)
        before = snapshot(boxes.salesforce)
        try:
            detail, plan = plan_call(services[create_unknown], call_id)
        except SyncError as exc:
            assert isinstance(exc, SYNC_ERRORS)
        else:
            check_plan(plan, detail, call_id, services[create_unknown], before, lengths, trims)
        assert snapshot(boxes.salesforce) == before, "plan_call wrote to Salesforce"

    try:
        check()
    finally:
        for each in services.values():
            close(each)
    assert trims["Task.Subject"] and trims["Task.CallDisposition"] and trims["Task.Description marker"]


def test_hostile_details_sync_all_or_nothing(boxes: Sandboxes, redis_url: str, world: World) -> None:
    """fetch → plan → write: synced with exactly the plan's records, or a sorted error and nothing written."""
    mapping_text = (Path(__file__).parents[2] / "config" / "mapping.toml").read_text(encoding="utf-8")
    mapping = parse_mapping(mapping_text + TEXT_RULE, source="mapping.toml + note → Title")
    services = {
        create: make_services(boxes, redis_url, mapping, crm_sync_unknown_number="create" if create else "skip")
        for create in (True, False)
    }
    lengths = {name: field_lengths(services[True], name) for name in ("Lead", "Task")}
    numbers = itertools.count()
    trims: Counter[str] = Counter()

    @SETTINGS
    @given(body=detail_bodies(world), create_unknown=st.booleans())
    @example(body=LONG_NOTE, create_unknown=True)
    @example(body=MANY_OUTPUTS, create_unknown=False)
    @example(body=ENDED_AT_MAX, create_unknown=True)
    @example(body=ENDED_PAST_MAX, create_unknown=True)
    @example(body=CALLBACK_PAST_MAX, create_unknown=True)
    @example(body=EXPIRY_PAST_MAX, create_unknown=True)
    @example(body=UNREADABLE_TRANSCRIPT_URL, create_unknown=True)
    @example(body=REFERENCES_IN_OUTPUTS, create_unknown=True)
    def check(body: Any, create_unknown: bool) -> None:
        EXAMPLES["fetch→plan→write"] += 1
        call_id = f"call_sync{next(numbers):06d}"
        serve(boxes, body, call_id)
        before = snapshot(boxes.salesforce)
        try:
            outcome = sync_one(services[create_unknown], call_id)
        except SyncError as exc:
            assert isinstance(exc, SYNC_ERRORS)
            OUTCOMES[type(exc).__name__] += 1
            assert snapshot(boxes.salesforce) == before, f"{type(exc).__name__} after a partial write"
            return
        OUTCOMES["synced"] += 1
        check_plan(outcome.plan, outcome.detail, call_id, services[create_unknown], before, lengths, trims)
        check_written(
            outcome.plan, outcome.salesforce_ids, services[create_unknown], before, snapshot(boxes.salesforce)
        )

    try:
        check()
    finally:
        for each in services.values():
            close(each)
    assert trims["Lead.Title"] and trims["Task.Description marker"] and OUTCOMES["synced"]
