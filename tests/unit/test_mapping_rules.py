"""Applying a mapping to a call's output parameters and the Lead's current values."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from worker.mapping import FieldChange, Mapping, WriteMode, load_mapping, parse_mapping, plan_lead_fields

REPO = Path(__file__).resolve().parents[2]
DEFAULT_FILE = REPO / "config" / "mapping.toml"
REFERENCE_CALL = Path(__file__).resolve().parents[1] / "fixtures" / "reference" / "twenty2-get-call-detail.txt"
AGENT = "69de483c68b23495c853b43a"

RULES_FILE = f"""
[params.interested]
kind = "yes_no"
[params.interested.fields.Status]
mode = "never_downgrade"
values = {{ yes = "Working - Contacted", no = "Closed - Not Converted" }}
rank = ["Open - Not Contacted", "Working - Contacted", "Closed - Not Converted", "Closed - Converted"]
[params.interested.fields.Rating]
mode = "overwrite"
values = {{ yes = "Hot", no = "Cold" }}

[params.email]
kind = "text"
[params.email.fields.Email]
mode = "fill_if_empty"

[params.budget]
kind = "number"
[params.budget.fields.AnnualRevenue]
mode = "fill_if_empty"

[params.summary]
kind = "text"
[params.summary.fields.Description]
mode = "overwrite"

[params.temperature]
kind = "enum"
[params.temperature.fields.Rating]
mode = "overwrite"
values = {{ warm = "Warm", "very hot" = "Hot" }}

[params.opted_out]
kind = "yes_no"
[params.opted_out.fields.HasOptedOutOfEmail]
mode = "overwrite"

[params.first_note]
kind = "text"
[params.first_note.fields.Notes__c]
mode = "fill_if_empty"

[params.second_note]
kind = "text"
[params.second_note.fields.Notes__c]
mode = "fill_if_empty"

[params.wants_demo]
kind = "yes_no"
[params.wants_demo.fields.Demo__c]
mode = "overwrite"
values = {{ yes = "Requested" }}

[agents."{AGENT}"]
drop = ["budget"]
[agents."{AGENT}".params.interested]
kind = "yes_no"
[agents."{AGENT}".params.interested.fields.Rating]
mode = "overwrite"
values = {{ yes = "Warm", no = "Cold" }}
[agents."{AGENT}".callback]
requested_param = "wants_callback"
time_param = "when"
priority = "Normal"
"""


@pytest.fixture(scope="module")
def default_mapping() -> Mapping:
    return load_mapping(DEFAULT_FILE)


@pytest.fixture(scope="module")
def mapping() -> Mapping:
    return parse_mapping(RULES_FILE, source="rules.toml")


def _reference_outputs() -> dict[str, Any]:
    """The output_parameters of the documented example call (a fresh copy each time)."""
    text = REFERENCE_CALL.read_text(encoding="utf-8")
    body, _ = json.JSONDecoder().raw_decode(text[text.index("{") :])
    return copy.deepcopy(body["output_parameters"])


def _plan(mapping: Mapping, outputs: dict[str, Any], current: dict[str, Any] | None = None, **kw: Any) -> Any:
    return plan_lead_fields(
        mapping, agent_id=kw.pop("agent_id", None), output_parameters=outputs, current=current or {}, **kw
    )


def _change(plan: Any, field: str, param: str | None = None) -> FieldChange:
    (found,) = [c for c in plan.changes if c.field == field and (param is None or c.param == param)]
    return found


# --- the default file ------------------------------------------------------------------------------------


def test_seed_call_on_an_open_lead(default_mapping: Mapping) -> None:
    outputs = _reference_outputs()
    assert outputs == {"interested": "yes", "callback_requested": "yes", "callback_time": "Tomorrow 11am"}
    plan = _plan(default_mapping, outputs, {"Status": "Open - Not Contacted", "Rating": None}, agent_id=AGENT)
    assert plan.updates == {"Status": "Working - Contacted", "Rating": "Hot"}
    assert _change(plan, "Status") == FieldChange(
        field="Status",
        param="interested",
        raw="yes",
        old="Open - Not Contacted",
        new="Working - Contacted",
        mode=WriteMode.NEVER_DOWNGRADE,
        applied=True,
        reason="never_downgrade: 'Working - Contacted' ranks above 'Open - Not Contacted'",
    )
    assert _change(plan, "Rating").reason == "overwrite"
    assert (plan.callback_requested, plan.callback_phrase) == (True, "Tomorrow 11am")
    assert plan.unknown == ()
    assert plan.other == {}


def test_unmapped_params_go_to_the_description(default_mapping: Mapping) -> None:
    outputs = {
        "interested": "yes",
        "callback_requested": "yes",
        "callback_time": "Tomorrow 11am",
        "budget": "50k",
    }
    plan = _plan(default_mapping, outputs, {"Status": "Open - Not Contacted"})
    assert plan.other == {"budget": "50k"}
    assert "budget" not in str(plan.updates)


def test_seed_call_on_a_lead_being_created(default_mapping: Mapping) -> None:
    plan = _plan(default_mapping, _reference_outputs(), {})
    assert plan.updates == {"Status": "Working - Contacted", "Rating": "Hot"}
    assert _change(plan, "Status").reason == "never_downgrade: field was empty"


def test_not_interested_closes_a_working_lead(default_mapping: Mapping) -> None:
    plan = _plan(default_mapping, {"interested": "nahi"}, {"Status": "Working - Contacted", "Rating": "Warm"})
    assert plan.updates == {"Status": "Closed - Not Converted", "Rating": "Cold"}


def test_interested_never_reopens_a_closed_lead(default_mapping: Mapping) -> None:
    plan = _plan(default_mapping, {"interested": "haan"}, {"Status": "Closed - Not Converted", "Rating": "Cold"})
    status = _change(plan, "Status")
    assert not status.applied
    assert status.reason == "kept: 'Closed - Not Converted' ranks above 'Working - Contacted'"
    assert plan.updates == {"Rating": "Hot"}


def test_a_status_outside_the_rank_is_left_alone(default_mapping: Mapping) -> None:
    plan = _plan(default_mapping, {"interested": "yes"}, {"Status": "Qualified", "Rating": "Hot"})
    status = _change(plan, "Status")
    assert (status.applied, status.old, status.new) == (False, "Qualified", "Working - Contacted")
    assert status.reason == (
        "kept: current value 'Qualified' is not in the rank, so 'Working - Contacted' might be a downgrade"
    )
    assert plan.updates == {}


def test_same_rank_is_applied_but_writes_nothing(default_mapping: Mapping) -> None:
    plan = _plan(default_mapping, {"interested": True}, {"Status": "working - contacted", "Rating": "Hot"})
    assert _change(plan, "Status").reason == "never_downgrade: same rank"
    assert _change(plan, "Rating").applied
    assert plan.updates == {"Status": "Working - Contacted"}  # case differs: the mapped spelling is written


def test_a_converted_lead_is_never_downgraded(default_mapping: Mapping) -> None:
    plan = _plan(default_mapping, {"interested": "no"}, {"Status": "Closed - Converted", "Rating": "Hot"})
    assert _change(plan, "Status").reason == "kept: 'Closed - Converted' ranks above 'Closed - Not Converted'"
    assert plan.updates == {"Rating": "Cold"}


# --- write modes -----------------------------------------------------------------------------------------


def test_overwrite_replaces_a_set_value(mapping: Mapping) -> None:
    plan = _plan(mapping, {"summary": "  Wants a demo next week. "}, {"Description": "Old notes"})
    change = _change(plan, "Description")
    assert (change.applied, change.reason, change.new) == (True, "overwrite", "Wants a demo next week.")
    assert plan.updates == {"Description": "Wants a demo next week."}


def test_overwrite_with_the_same_value_writes_nothing(mapping: Mapping) -> None:
    plan = _plan(mapping, {"summary": "Same"}, {"Description": "Same"})
    assert _change(plan, "Description").applied
    assert plan.updates == {}


@pytest.mark.parametrize("empty", [None, "", "   "], ids=repr)
def test_fill_if_empty_fills_an_empty_field(mapping: Mapping, empty: Any) -> None:
    plan = _plan(mapping, {"email": "a@example.com"}, {"Email": empty})
    assert _change(plan, "Email").reason == "fill_if_empty: field was empty"
    assert plan.updates == {"Email": "a@example.com"}


def test_fill_if_empty_keeps_a_set_field(mapping: Mapping) -> None:
    plan = _plan(mapping, {"email": "new@example.com"}, {"Email": "old@example.com"})
    change = _change(plan, "Email")
    assert (change.applied, change.reason, change.old) == (
        False,
        "kept: field already set",
        "old@example.com",
    )
    assert plan.updates == {}


def test_number_and_checkbox_values(mapping: Mapping) -> None:
    plan = _plan(mapping, {"budget": "1.5 lakh", "opted_out": "ji"}, {"HasOptedOutOfEmail": False})
    assert plan.updates == {"AnnualRevenue": 150000, "HasOptedOutOfEmail": True}


def test_current_values_are_matched_case_insensitively(mapping: Mapping) -> None:
    plan = _plan(mapping, {"email": "new@example.com"}, {"email": "old@example.com"})
    assert plan.updates == {}


# --- several rules on one field ----------------------------------------------------------------------------


def test_a_later_overwrite_rule_wins(mapping: Mapping) -> None:
    plan = _plan(mapping, {"interested": "yes", "temperature": "Warm."}, {"Rating": "Cold"})
    first, second = [c for c in plan.changes if c.field == "Rating"]
    assert (first.param, first.new, first.applied) == ("interested", "Hot", True)
    assert (second.param, second.old, second.new, second.applied) == ("temperature", "Hot", "Warm", True)
    assert plan.updates["Rating"] == "Warm"


def test_a_later_fill_if_empty_rule_loses_to_an_earlier_fill(mapping: Mapping) -> None:
    plan = _plan(mapping, {"second_note": "second", "first_note": "first"}, {})
    first, second = [c for c in plan.changes if c.field == "Notes__c"]
    assert (first.param, first.applied) == ("first_note", True)
    assert (second.param, second.applied, second.reason) == ("second_note", False, "kept: field already set")
    assert plan.updates == {"Notes__c": "first"}


def test_setting_a_field_back_to_its_value_writes_nothing(mapping: Mapping) -> None:
    plan = _plan(mapping, {"interested": "yes", "temperature": "warm"}, {"Rating": "Warm"})
    assert [c.applied for c in plan.changes if c.field == "Rating"] == [True, True]
    assert "Rating" not in plan.updates


# --- unknown and unmapped values ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["maybe", "pata nahi", "", "shayad", None], ids=repr)
def test_unknown_values_write_nothing_and_are_reported(default_mapping: Mapping, raw: Any) -> None:
    plan = _plan(default_mapping, {"interested": raw}, {"Status": "Open - Not Contacted", "Rating": "Warm"})
    assert plan.unknown == (("interested", raw),)
    assert plan.changes == ()
    assert plan.updates == {}
    assert plan.other == {}


def test_a_known_value_no_field_maps_goes_to_the_description(mapping: Mapping) -> None:
    plan = _plan(mapping, {"wants_demo": "no"}, {})
    assert plan.changes == ()
    assert plan.unknown == ()
    assert plan.other == {"wants_demo": "no"}


def test_an_output_param_can_never_name_a_field(mapping: Mapping) -> None:
    outputs = {"OwnerId": "005000000000001AAA", "Status": "Closed - Converted", "interested": "yes"}
    plan = _plan(mapping, outputs, {"Status": "Open - Not Contacted"})
    assert plan.updates == {"Status": "Working - Contacted", "Rating": "Hot"}
    assert plan.other == {"OwnerId": "005000000000001AAA", "Status": "Closed - Converted"}


# --- text length -------------------------------------------------------------------------------------------


def test_text_is_cut_to_the_field_length(mapping: Mapping) -> None:
    lengths = {"Description": 10, "Rating": 40}
    plan = _plan(mapping, {"summary": "Call back after Diwali"}, {}, field_lengths=lengths)
    change = _change(plan, "Description")
    assert change.new == "Call back"  # 10 characters, trailing space trimmed
    assert change.reason == "overwrite (cut to 10 characters)"
    rerun = _plan(mapping, {"summary": "Call back after Diwali"}, {"Description": "Call back"}, field_lengths=lengths)
    assert rerun.updates == {}


# --- callback ----------------------------------------------------------------------------------------------


_UNCLEAR = (("callback_requested", "maybe"),)


@pytest.mark.parametrize(
    ("outputs", "requested", "phrase", "unknown"),
    [
        pytest.param(
            {"callback_requested": "yes", "callback_time": " Tomorrow 11am "},
            True,
            "Tomorrow 11am",
            (),
            id="yes-with-time",
        ),
        pytest.param({"callback_time": "kal shaam 5 baje"}, True, "kal shaam 5 baje", (), id="time-only-counts"),
        pytest.param(
            {"callback_requested": "no", "callback_time": "Tomorrow 11am"},
            False,
            None,
            (),
            id="no-wins-over-time",
        ),
        pytest.param({"callback_requested": "haan"}, True, None, (), id="yes-without-time"),
        pytest.param(
            {"callback_requested": "yes", "callback_time": "N/A"},
            True,
            None,
            (),
            id="yes-with-placeholder-time",
        ),
        pytest.param({"callback_time": "N/A"}, False, None, (), id="placeholder-time-only"),
        pytest.param({"callback_time": "no"}, False, None, (), id="time-says-no"),
        pytest.param({"callback_time": ""}, False, None, (), id="empty-time"),
        pytest.param(
            {"callback_requested": "maybe", "callback_time": "Monday"},
            True,
            "Monday",
            _UNCLEAR,
            id="unclear-with-time",
        ),
        pytest.param({"callback_requested": "maybe"}, False, None, _UNCLEAR, id="unclear-without-time"),
        pytest.param({}, False, None, (), id="nothing"),
    ],
)
def test_callback_decision(
    default_mapping: Mapping,
    outputs: dict[str, Any],
    requested: bool,
    phrase: str | None,
    unknown: tuple[Any, ...],
) -> None:
    plan = _plan(default_mapping, copy.deepcopy(outputs), {})
    assert (plan.callback_requested, plan.callback_phrase, plan.unknown) == (requested, phrase, unknown)
    assert plan.other == {}  # callback params never go to the description list


# --- per-agent overrides -----------------------------------------------------------------------------------


def test_agent_rule_replaces_the_default(mapping: Mapping) -> None:
    plan = _plan(mapping, {"interested": "yes"}, {"Status": "Open - Not Contacted"}, agent_id=AGENT)
    assert plan.updates == {"Rating": "Warm"}  # this agent's rule sets Rating only, and to Warm
    assert _plan(mapping, {"interested": "yes"}, {}, agent_id="another-agent").updates == {
        "Status": "Working - Contacted",
        "Rating": "Hot",
    }


def test_agent_dropped_rule_goes_to_the_description(mapping: Mapping) -> None:
    plan = _plan(mapping, {"budget": "50k"}, {}, agent_id=AGENT)
    assert plan.updates == {}
    assert plan.other == {"budget": "50k"}


def test_agent_callback_params(mapping: Mapping) -> None:
    outputs = {"wants_callback": "ji haan", "when": "Friday", "callback_requested": "no"}
    plan = _plan(mapping, outputs, {}, agent_id=AGENT)
    assert (plan.callback_requested, plan.callback_phrase) == (True, "Friday")
    assert plan.other == {"callback_requested": "no"}  # not this agent's callback parameter
    assert mapping.callback_rule(AGENT).priority == "Normal"
