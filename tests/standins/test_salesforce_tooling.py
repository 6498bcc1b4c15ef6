"""The Salesforce stand-in's Tooling API ``CustomField`` create and field-level security, as Salesforce
answers them: 201 with the id, INSUFFICIENT_ACCESS without "Customize Application", DUPLICATE_DEVELOPER_NAME,
required parts missing; a new field invisible until field-level security grants it; read-only fields."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from support.salesforce_org import SandboxOrg

FIELD = {
    "FullName": "Activity.Call_Ref__c",
    "Metadata": {"type": "Text", "length": 255, "label": "Call Ref", "externalId": True, "unique": False},
}


def create(org: SandboxOrg, body: Any = FIELD) -> Any:
    return org.rest("POST", "tooling/sobjects/CustomField", json=body)


def task_field(org: SandboxOrg, name: str) -> dict[str, Any] | None:
    fields = org.rest("GET", "sobjects/Task/describe").json()["fields"]
    return next((f for f in fields if f["name"] == name), None)


def test_create_answers_201_and_the_field_waits_for_field_level_security(sf_org: SandboxOrg) -> None:
    answer = create(sf_org)
    assert answer.status_code == 201
    body = answer.json()
    assert body["id"].startswith("00N") and len(body["id"]) == 18
    assert {k: body[k] for k in ("success", "errors", "warnings", "infos")} == {
        "success": True,
        "errors": [],
        "warnings": [],
        "infos": [],
    }
    assert task_field(sf_org, "Call_Ref__c") is None  # no profile sees it yet
    refused = sf_org.rest("POST", "sobjects/Task", json={"Subject": "x", "Call_Ref__c": "c1"})
    assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "INVALID_FIELD"

    sf_org.admin("PUT", "fields/Task/Call_Ref__c/access", {"visible": True, "editable": True})
    field = task_field(sf_org, "Call_Ref__c")
    assert field is not None
    assert (field["externalId"], field["createable"], field["updateable"], field["length"]) == (True, True, True, 255)
    upsert = sf_org.rest("PATCH", "sobjects/Task/Call_Ref__c/c1", json={"Subject": "Call"})
    assert upsert.status_code == 201 and upsert.json()["created"] is True


def test_without_customize_application_the_create_is_refused(sf_org: SandboxOrg) -> None:
    sf_org.admin("PUT", "permissions", {"customizeApplication": False})
    answer = create(sf_org)
    assert answer.status_code == 400
    [error] = answer.json()
    assert error["errorCode"] == "INSUFFICIENT_ACCESS" and "level of access" in error["message"]
    sf_org.admin("PUT", "permissions", {"customizeApplication": True})
    assert create(sf_org).status_code == 201


def test_a_field_of_that_name_already_there(sf_org: SandboxOrg) -> None:
    answer = create(sf_org, {**FIELD, "FullName": "Activity.Twenty2_Call_Id__c"})
    assert answer.status_code == 400
    assert answer.json()[0] == {
        "message": "There is already a field named Twenty2_Call_Id on Activity.",
        "errorCode": "DUPLICATE_DEVELOPER_NAME",
        "fields": [],
    }
    assert create(sf_org).status_code == 201
    assert create(sf_org).json()[0]["errorCode"] == "DUPLICATE_DEVELOPER_NAME"  # hidden, yet taken


def test_malformed_requests(sf_org: SandboxOrg) -> None:
    missing = create(sf_org, {"FullName": "Activity.Call_Ref__c"}).json()[0]
    assert missing["errorCode"] == "REQUIRED_FIELD_MISSING" and missing["fields"] == ["Metadata"]
    unlabelled = create(sf_org, {**FIELD, "Metadata": {"type": "Text", "length": 10}}).json()[0]
    assert unlabelled["fields"] == ["label"]
    assert create(sf_org, {**FIELD, "FullName": "Activity.Bad__Name__c"}).json()[0]["errorCode"] == (
        "FIELD_INTEGRITY_EXCEPTION"
    )
    assert create(sf_org, {**FIELD, "FullName": "Nope.Call_Ref__c"}).json()[0]["errorCode"] == "INVALID_TYPE"
    too_long = {**FIELD, "Metadata": {**FIELD["Metadata"], "length": 256}}  # type: ignore[dict-item]
    assert create(sf_org, too_long).json()[0]["fields"] == ["length"]


def test_read_only_field_level_security(sf_org: SandboxOrg) -> None:
    sf_org.state.set_field_access("Task", "CallType", editable=False)
    field = task_field(sf_org, "CallType")
    assert field is not None and (field["createable"], field["updateable"]) == (False, False)
    refused = sf_org.rest("POST", "sobjects/Task", json={"Subject": "x", "CallType": "Outbound"})
    assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    sf_org.state.set_field_access("Task", "CallType", visible=False)
    assert task_field(sf_org, "CallType") is None
