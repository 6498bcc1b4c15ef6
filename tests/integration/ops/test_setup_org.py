"""``crm-sync setup-org`` against the Salesforce stand-in: nothing to do on a ready org, the exact Tooling API
request on a dry run, and the clicks when the field exists in a shape the API cannot fix."""

from __future__ import annotations

from standins.salesforce.schema import FieldSpec
from standins.stack.sandboxes import Sandboxes
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
