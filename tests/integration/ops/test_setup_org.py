"""``crm-sync setup-org`` against the Salesforce stand-in: nothing to do on a ready org, the exact Tooling API
request on a dry run, the field created (then waiting for field-level security), the clicks when the user
may not customize the org (INSUFFICIENT_ACCESS), and when the field exists in a shape the API cannot fix."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from standins.salesforce.schema import FieldSpec
from standins.stack.sandboxes import Sandboxes
from worker.cli import main
from worker.doctor import check_external_id
from worker.setup_org import setup_org


def test_ready_org_needs_nothing(boxes: Sandboxes) -> None:
    result = setup_org(boxes.settings(), dry_run=False)
    assert result.ok and result.lines[0].startswith("nothing to do: Task.Twenty2_Call_Id__c")


def test_dry_run_shows_the_request_and_creates_nothing(boxes: Sandboxes) -> None:
    before = boxes.salesforce.stats()["api_requests"].copy()
    result = setup_org(boxes.settings(salesforce_task_external_id_field="Call_Ref__c"), dry_run=True)
    assert result.ok
    assert "POST /services/data/v62.0/tooling/sobjects/CustomField Activity.Call_Ref__c" in result.lines[0]
    assert "'externalId': True" in result.lines[1] and "'type': 'Text'" in result.lines[1]
    after = boxes.salesforce.stats()["api_requests"]
    assert sum(after.values()) - sum(before.values()) == 1  # the describe only


def test_existing_field_that_is_not_an_external_id(boxes: Sandboxes) -> None:
    boxes.salesforce.add_field("Task", FieldSpec("Call_Ref__c", "string", 255, "Call Ref", custom=True))
    result = setup_org(boxes.settings(salesforce_task_external_id_field="Call_Ref__c"), dry_run=False)
    assert not result.ok
    assert "is not an External ID" in result.lines[1] and 'tick "External ID"' in result.lines[2]


def test_creates_the_field_then_doctor_waits_for_field_level_security(boxes: Sandboxes) -> None:
    settings = boxes.settings(salesforce_task_external_id_field="Call_Ref__c")
    result = setup_org(settings, dry_run=False)
    assert result.ok, result.lines
    field_id = boxes.salesforce.custom_field_id("Activity", "Call_Ref__c")
    assert field_id is not None and f"created Activity.Call_Ref__c (CustomField {field_id})" in result.lines[0]
    assert "Set Field-Level Security" in result.lines[1] and "crm-sync doctor" in result.lines[1]
    # Created, but visible to no profile: the doctor still finds no such field for the integration user.
    assert not check_external_id(settings, boxes.salesforce.schema.obj("Task").describe("62.0")).ok  # type: ignore[union-attr]
    boxes.salesforce.set_field_access("Task", "Call_Ref__c", visible=True, editable=True)
    assert setup_org(settings, dry_run=False).lines[0].startswith("nothing to do")


def test_without_permission_it_prints_the_clicks(boxes: Sandboxes) -> None:
    boxes.salesforce.can_customize = False
    result = setup_org(boxes.settings(salesforce_task_external_id_field="Call_Ref__c"), dry_run=False)
    assert not result.ok
    assert "(INSUFFICIENT_ACCESS)" in result.lines[0] and "Customize Application" in result.lines[0]
    assert result.lines[1].startswith("Setup → Object Manager → Activity → Fields & Relationships → New → Text")
    assert boxes.salesforce.custom_field_id("Activity", "Call_Ref__c") is None


def test_a_field_no_profile_can_see_yet(boxes: Sandboxes) -> None:
    boxes.salesforce.set_field_access("Task", "Twenty2_Call_Id__c", visible=False)
    result = setup_org(boxes.settings(), dry_run=False)
    assert not result.ok and "already exists but the integration user cannot see it" in result.lines[0]


def test_setup_org_command(boxes: Sandboxes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")
    for key, value in boxes.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SALESFORCE_TASK_EXTERNAL_ID_FIELD", "Call_Ref__c")
    dry = CliRunner().invoke(main, ["setup-org", "--dry-run"])
    assert (
        dry.exit_code == 0
        and "dry run: would send POST /services/data/v62.0/tooling/sobjects/CustomField" in dry.output
    )
    boxes.salesforce.can_customize = False
    refused = CliRunner().invoke(main, ["setup-org"])
    assert refused.exit_code == 1 and "INSUFFICIENT_ACCESS" in refused.output
    boxes.salesforce.can_customize = True
    created = CliRunner().invoke(main, ["setup-org"])
    assert created.exit_code == 0 and "created Activity.Call_Ref__c" in created.output
