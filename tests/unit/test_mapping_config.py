"""Loading and validating mapping files, and checking a mapping against an org's describe."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from worker.errors import MappingError, PermanentError
from worker.mapping import CallbackRule, Mapping, ValueKind, WriteMode, load_mapping, parse_mapping

REPO = Path(__file__).resolve().parents[2]
DEFAULT_FILE = REPO / "config" / "mapping.toml"
BAD_FILES = Path(__file__).resolve().parents[1] / "fixtures" / "mapping"
AGENT = "69de483c68b23495c853b43a"
# Where the default file declares the Status rule (found, not hard-coded, so comments can be edited).
STATUS_LINE = DEFAULT_FILE.read_text(encoding="utf-8").splitlines().index("[params.interested.fields.Status]") + 1

# Each bad file: (line, dotted key, what the message must say). One real-world mistake per file.
BAD_FILE_ERRORS: dict[str, tuple[int, str, str]] = {
    "unknown_top_level_key": (
        4,
        "param",
        "unknown key (expected one of: sobject, callback, auto_callback, params, agents); did you mean 'params'?",
    ),
    "unknown_kind": (3, "params.interested.kind", "'boolean' is not one of yes_no, text, number, enum"),
    "unknown_mode": (
        6,
        "params.interested.fields.Rating.mode",
        "'sometimes' is not one of overwrite, fill_if_empty, never_downgrade",
    ),
    "missing_mode": (5, "params.interested.fields.Rating", "mode is missing"),
    "unknown_field_key": (7, "params.interested.fields.Rating.value", "did you mean 'values'?"),
    "value_not_a_string": (7, "params.interested.fields.Rating.values.no", "0 is not text"),
    "empty_value": (7, "params.interested.fields.Rating.values.no", "is blank"),
    "yes_no_key_not_yes_or_no": (
        7,
        "params.interested.fields.Rating.values.maybe",
        "'maybe' is not yes or no",
    ),
    "enum_duplicate_keys": (7, 'params.temperature.fields.Rating.values."hot."', "'hot.' repeats 'Hot'"),
    "enum_without_values": (5, "params.temperature.fields.Rating", "kind enum needs a values map"),
    "values_for_text_kind": (
        7,
        "params.notes.fields.Description.values",
        "a values map is only for yes_no and enum",
    ),
    "never_downgrade_without_rank": (6, "params.interested.fields.Status.mode", "never_downgrade needs rank"),
    "mapped_value_missing_from_rank": (
        7,
        "params.interested.fields.Status.values.yes",
        "'Working' is not in rank",
    ),
    "rank_listed_twice": (8, "params.interested.fields.Status.rank", "'working - contacted' is listed twice"),
    "rank_without_never_downgrade": (
        8,
        "params.interested.fields.Status.rank",
        "only used by mode never_downgrade",
    ),
    "forbidden_owner_id": (
        12,
        "params.agent_name.fields.OwnerId",
        "'OwnerId' is a system or ownership field",
    ),
    "forbidden_relationship_field": (
        5,
        "params.company_duns.fields.DandbCompanyId",
        "relationship (Id) field",
    ),
    "field_name_with_space": (
        5,
        'params.interested.fields."Lead Status"',
        "'Lead Status' is not a field API name",
    ),
    "same_field_twice_in_param": (
        9,
        "params.interested.fields.status",
        "sets the same Lead field as fields.Status",
    ),
    "duplicate_param_table": (
        9,
        "params.interested",
        "TOML syntax error: Cannot declare ('params', 'interested') twice",
    ),
    "toml_syntax_error": (
        6,
        "params.interested.fields.Rating.mode",
        "TOML syntax error: Invalid value (column 8)",
    ),
    "param_not_a_table": (3, "params.interested", "must be a table (kind and fields), not str 'Status'"),
    "sobject_not_lead": (2, "sobject", "'Contact' is not supported"),
    "callback_same_param": (4, "callback.time_param", "must differ from requested_param"),
    "drop_unknown_param": (10, f"agents.{AGENT}.drop", "'intrested' has no default rule to drop"),
    "drop_and_replace_same_param": (10, f"agents.{AGENT}.drop", "'interested' is both dropped and replaced"),
    "agent_forbidden_field": (
        12,
        f"agents.{AGENT}.params.converted.fields.IsConverted",
        "'IsConverted' is a system",
    ),
}


def _load_error(path: Path) -> MappingError:
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    return caught.value


@pytest.mark.parametrize("name", sorted(BAD_FILE_ERRORS))
def test_bad_mapping_file(name: str) -> None:
    path = BAD_FILES / f"{name}.toml"
    line, key, fragment = BAD_FILE_ERRORS[name]
    error = _load_error(path)
    first = error.message.splitlines()[0]
    assert first.startswith(f"{path}:{line}: {key}: "), first
    assert fragment in first
    assert error.code == "MAPPING_INVALID"
    assert isinstance(error, PermanentError)


def test_every_bad_file_has_its_test() -> None:
    assert sorted(path.stem for path in BAD_FILES.glob("*.toml")) == sorted(BAD_FILE_ERRORS)


def test_every_problem_is_reported_in_line_order(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    path.write_text(
        "[params.interested]\n"
        'kind = "yes_no"\n'
        "[params.interested.fields.OwnerId]\n"
        'mode = "overwrite"\n'
        "[params.budget]\n"
        'kind = "money"\n'
        "[agents.a1]\n"
        'drop = ["budgte"]\n',
        encoding="utf-8",
    )
    lines = _load_error(path).message.splitlines()
    assert [line.split(": ")[0] for line in lines] == [f"{path}:3", f"{path}:6", f"{path}:8"]
    assert lines[1] == f"{path}:6: params.budget.kind: 'money' is not one of yes_no, text, number, enum"


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert f"{missing}: cannot read the mapping file" in _load_error(missing).message


def test_quoted_and_dotted_keys_are_located(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    path.write_text(
        '# comment\n[params."lead score"]\nkind = "number"\n"fields".Rating = { mode = "sometimes" }\n',
        encoding="utf-8",
    )
    first = _load_error(path).message.splitlines()[0]
    assert first.startswith(f'{path}:4: params."lead score".fields.Rating.mode: ')


def test_default_file_loads_with_the_documented_rules() -> None:
    mapping = load_mapping(DEFAULT_FILE)
    assert mapping.sobject == "Lead"
    (interested,) = mapping.rules_for(None)
    assert (interested.param, interested.kind) == ("interested", ValueKind.YES_NO)
    status, rating = interested.fields
    assert (status.field, status.mode) == ("Status", WriteMode.NEVER_DOWNGRADE)
    assert dict(status.values or {}) == {"yes": "Working - Contacted", "no": "Closed - Not Converted"}
    assert status.rank == (
        "Open - Not Contacted",
        "Working - Contacted",
        "Closed - Not Converted",
        "Closed - Converted",
    )
    assert (rating.field, rating.mode) == ("Rating", WriteMode.OVERWRITE)
    assert dict(rating.values or {}) == {"yes": "Hot", "no": "Cold"}
    assert mapping.callback_rule(None) == CallbackRule("callback_requested", "callback_time", "High", "Callback")
    assert mapping.lead_fields() == frozenset({"Status", "Rating"})
    assert status.where == f"{DEFAULT_FILE}:{STATUS_LINE} params.interested.fields.Status"


AGENT_FILE = f"""
[params.interested]
kind = "yes_no"
[params.interested.fields.Rating]
mode = "overwrite"
values = {{ yes = "Hot", no = "Cold" }}

[params.budget]
kind = "number"
[params.budget.fields.AnnualRevenue]
mode = "fill_if_empty"

[agents."{AGENT}".params.interested]
kind = "yes_no"
[agents."{AGENT}".params.interested.fields.Rating]
mode = "overwrite"
values = {{ yes = "Warm" }}

[agents."{AGENT}".params.plan]
kind = "enum"
[agents."{AGENT}".params.plan.fields.Plan__c]
mode = "overwrite"
values = {{ gold = "Gold", silver = "Silver" }}

[agents."{AGENT}".callback]
priority = "Normal"

[agents.dropper]
drop = ["interested", "budget"]
"""


def test_agent_override_replaces_in_place_and_appends_new_rules() -> None:
    mapping = parse_mapping(AGENT_FILE, source="agents.toml")
    rules = mapping.rules_for(AGENT)
    assert [rule.param for rule in rules] == ["interested", "budget", "plan"]
    assert dict(rules[0].fields[0].values or {}) == {"yes": "Warm"}
    assert [rule.param for rule in mapping.rules_for("someone-else")] == ["interested", "budget"]
    assert [rule.param for rule in mapping.rules_for(None)] == ["interested", "budget"]


def test_agent_drop_removes_default_rules() -> None:
    mapping = parse_mapping(AGENT_FILE, source="agents.toml")
    assert mapping.rules_for("dropper") == ()


def test_agent_callback_override_changes_only_its_keys() -> None:
    mapping = parse_mapping(AGENT_FILE, source="agents.toml")
    assert mapping.callback_rule(AGENT) == CallbackRule("callback_requested", "callback_time", "Normal", "Callback")
    assert mapping.callback_rule("dropper") == mapping.callback_rule(None)
    assert mapping.callback_rule(None).priority == "High"


def test_lead_fields_include_agent_fields() -> None:
    mapping = parse_mapping(AGENT_FILE, source="agents.toml")
    assert mapping.lead_fields() == frozenset({"Rating", "AnnualRevenue", "Plan__c"})


# --- describe checks --------------------------------------------------------------------------------------

_CLASSIC_STATUSES = [
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
]
_LEAD_DESCRIBE: dict[str, Any] = {
    "name": "Lead",
    "fields": [
        {
            "name": "Id",
            "type": "id",
            "length": 18,
            "updateable": False,
            "createable": False,
            "picklistValues": [],
        },
        {
            "name": "Status",
            "type": "picklist",
            "length": 255,
            "updateable": True,
            "createable": True,
            "picklistValues": [{"value": v, "label": v, "active": True} for v in _CLASSIC_STATUSES],
        },
        {
            "name": "Rating",
            "type": "picklist",
            "length": 255,
            "updateable": True,
            "createable": True,
            "picklistValues": [{"value": v, "label": v, "active": True} for v in ("Hot", "Warm", "Cold")],
        },
        {"name": "Description", "type": "textarea", "length": 32000, "updateable": True, "createable": True},
        {"name": "AnnualRevenue", "type": "currency", "length": 0, "updateable": True, "createable": True},
        {
            "name": "HasOptedOutOfEmail",
            "type": "boolean",
            "length": 0,
            "updateable": True,
            "createable": True,
        },
        {"name": "Plan__c", "type": "string", "length": 4, "updateable": True, "createable": True},
        {"name": "Referrer__c", "type": "reference", "length": 18, "updateable": True, "createable": True},
        {"name": "Score__c", "type": "double", "length": 0, "updateable": False, "createable": False},
    ],
}
_TASK_DESCRIBE: dict[str, Any] = {
    "name": "Task",
    "fields": [
        {
            "name": "Priority",
            "type": "picklist",
            "length": 40,
            "updateable": True,
            "picklistValues": [
                {"value": "High", "active": True},
                {"value": "Normal", "active": True},
                {"value": "Low", "active": True},
                {"value": "Urgent", "active": False},
            ],
        }
    ],
}


def _lead_describe() -> dict[str, Any]:
    return copy.deepcopy(_LEAD_DESCRIBE)


def _one_field_mapping(kind: str, field: str, extra: str = "") -> Mapping:
    return parse_mapping(
        f'[params.p]\nkind = "{kind}"\n[params.p.fields.{field}]\nmode = "overwrite"\n{extra}',
        source="m.toml",
    )


def test_default_mapping_fits_a_standard_org() -> None:
    mapping = load_mapping(DEFAULT_FILE)
    assert mapping.check_against_describe("Lead", _lead_describe()) == []
    assert mapping.check_against_describe("Task", copy.deepcopy(_TASK_DESCRIBE)) == []


def test_missing_picklist_value_is_reported() -> None:
    describe = _lead_describe()
    status = next(field for field in describe["fields"] if field["name"] == "Status")
    status["picklistValues"] = [{"value": v, "active": True} for v in ("New", "Working", "Qualified")]
    status["picklistValues"].append({"value": "Closed - Not Converted", "active": False})
    problems = load_mapping(DEFAULT_FILE).check_against_describe("Lead", describe)
    where = f"{DEFAULT_FILE}:{STATUS_LINE} params.interested.fields.Status"
    assert problems == [
        f"{where}: 'Working - Contacted' is not an active value of the Lead.Status picklist; "
        "active: New, Working, Qualified",
        f"{where}: 'Closed - Not Converted' is not an active value of the Lead.Status picklist; "
        "active: New, Working, Qualified",
    ]


def test_picklist_value_in_other_case_gets_a_hint() -> None:
    mapping = _one_field_mapping("yes_no", "Rating", 'values = { yes = "hot" }')
    (problem,) = mapping.check_against_describe("Lead", _lead_describe())
    assert "'hot' is not an active value of the Lead.Rating picklist (did you mean 'Hot'?)" in problem


def test_non_updateable_field_is_reported() -> None:
    mapping = _one_field_mapping("number", "Score__c")
    assert mapping.check_against_describe("Lead", _lead_describe()) == [
        "m.toml:3 params.p.fields.Score__c: Lead.Score__c is not updateable"
    ]


def test_missing_field_is_reported() -> None:
    mapping = _one_field_mapping("text", "Budget__c")
    assert mapping.check_against_describe("Lead", _lead_describe()) == [
        "m.toml:3 params.p.fields.Budget__c: Lead.Budget__c does not exist in this org"
    ]


def test_custom_lookup_field_is_reported() -> None:
    mapping = _one_field_mapping("text", "Referrer__c")
    assert mapping.check_against_describe("Lead", _lead_describe()) == [
        "m.toml:3 params.p.fields.Referrer__c: Lead.Referrer__c is a reference field; "
        "an output parameter may not set it"
    ]


@pytest.mark.parametrize(
    ("kind", "field", "extra", "writes"),
    [
        ("text", "Rating", "", "free text (a picklist needs kind enum with a values map)"),
        ("yes_no", "Description", "", "true/false (yes_no without a values map)"),
        ("number", "Description", "", "a number"),
        ("yes_no", "HasOptedOutOfEmail", 'values = { yes = "Y" }', "text from its values map"),
    ],
    ids=["text-into-picklist", "bool-into-text", "number-into-text", "text-into-checkbox"],
)
def test_field_type_mismatch_is_reported(kind: str, field: str, extra: str, writes: str) -> None:
    problems = _one_field_mapping(kind, field, extra).check_against_describe("Lead", _lead_describe())
    assert problems and problems[0].endswith(f"; this rule writes {writes}")


def test_matching_kinds_fit() -> None:
    describe = _lead_describe()
    assert _one_field_mapping("yes_no", "HasOptedOutOfEmail").check_against_describe("Lead", describe) == []
    assert _one_field_mapping("number", "AnnualRevenue").check_against_describe("Lead", describe) == []
    assert _one_field_mapping("text", "Description").check_against_describe("Lead", describe) == []


def test_mapped_value_longer_than_the_field_is_reported() -> None:
    mapping = _one_field_mapping("enum", "Plan__c", 'values = { gold = "Gold", platinum = "Platinum" }')
    assert mapping.check_against_describe("Lead", _lead_describe()) == [
        "m.toml:3 params.p.fields.Plan__c: 'Platinum' is longer than Lead.Plan__c allows (4 characters)"
    ]


def test_task_priority_not_in_picklist_is_reported() -> None:
    text = AGENT_FILE.replace('priority = "Normal"', 'priority = "Urgent"')
    mapping = parse_mapping(text, source="agents.toml")
    assert mapping.check_against_describe("Task", copy.deepcopy(_TASK_DESCRIBE)) == [
        f"agents.toml:25 agents.{AGENT}.callback: priority 'Urgent' is not an active Task.Priority value "
        "(active: High, Normal, Low)"
    ]


def test_other_objects_have_nothing_to_check() -> None:
    assert load_mapping(DEFAULT_FILE).check_against_describe("Contact", {"fields": []}) == []


def test_field_lengths_from_describe() -> None:
    lengths = Mapping.field_lengths(_lead_describe())
    assert lengths["Plan__c"] == 4
    assert lengths["Description"] == 32000
    assert "AnnualRevenue" not in lengths


def test_a_file_saved_with_bom_and_crlf_loads(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    text = DEFAULT_FILE.read_text(encoding="utf-8").replace("\n", "\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert [rule.param for rule in load_mapping(path).rules_for(None)] == ["interested"]
