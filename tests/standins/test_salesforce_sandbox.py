"""The Salesforce sandbox's documented behaviours, exercised over real HTTPS with ``requests``."""

from __future__ import annotations

import copy
import threading
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

import pytest
import requests

from standins.salesforce.schema import make_id

V = "/services/data/v62.0"
EXT = "Twenty2_Call_Id__c"

CALL_TASK: dict[str, Any] = {
    "Subject": "Call: interested, call back tomorrow",
    "Status": "Completed",
    "Priority": "Normal",
    "TaskSubtype": "Call",
    "CallType": "Outbound",
    "CallDurationInSeconds": 95,
    "CallDisposition": "Interested",
    "ActivityDate": "2024-05-01",
}

if TYPE_CHECKING:
    from support.salesforce_org import SandboxOrg


@pytest.fixture
def call_task(sf_org: SandboxOrg) -> dict[str, Any]:
    """A Task logging a call on the demo Lead "Priya Sharma"."""
    return {**copy.deepcopy(CALL_TASK), "WhoId": sf_org.state.demo_ids["priya"]}


def _tasks_with(org: SandboxOrg, call_id: str) -> list[dict[str, Any]]:
    return [t for t in org.state.records("Task") if t.get(EXT) == call_id]


@pytest.fixture
def fresh_lead(sf_org: SandboxOrg) -> dict[str, Any]:
    """A Lead a rep created through the API, read back with its LastModifiedDate (as a sync reads it)."""
    created = sf_org.rest(
        "POST", "sobjects/Lead", json={"LastName": "Menon", "Company": "Menon Agencies", "Phone": "+91 98450 11223"}
    )
    fields = {"fields": "LastModifiedDate,Rating"}
    return dict(sf_org.rest("GET", f"sobjects/Lead/{created.json()['id']}", params=fields).json())


def _http_date(salesforce_datetime: str, *, shift_seconds: int = 0) -> str:
    """A Salesforce datetime (``2024-12-25T10:01:34.000+0000``) as an HTTP-date, optionally shifted."""
    moment = datetime.strptime(salesforce_datetime, "%Y-%m-%dT%H:%M:%S.%f%z") + timedelta(seconds=shift_seconds)
    return format_datetime(moment, usegmt=True)


# --- upsert by external id ------------------------------------------------------------------------------


def test_upsert_creates_201_then_updates_200(sf_org: SandboxOrg, call_task: dict[str, Any]) -> None:
    first = sf_org.rest("PATCH", f"sobjects/Task/{EXT}/call-1", json=call_task)
    assert first.status_code == 201
    assert first.json() == {"id": first.json()["id"], "success": True, "errors": [], "created": True}
    update = {k: v for k, v in call_task.items() if k != "TaskSubtype"}
    second = sf_org.rest("PATCH", f"sobjects/Task/{EXT}/call-1", json=update)
    assert second.status_code == 200
    assert second.json()["created"] is False
    assert second.json()["id"] == first.json()["id"]
    assert len(_tasks_with(sf_org, "call-1")) == 1


def test_upsert_update_before_v46_answers_204(sf_org: SandboxOrg, call_task: dict[str, Any]) -> None:
    created = sf_org.rest("PATCH", f"sobjects/Task/{EXT}/call-2", json=call_task, version="45.0")
    assert created.status_code == 201
    assert "created" not in created.json()
    call_task.pop("TaskSubtype")
    updated = sf_org.rest("PATCH", f"sobjects/Task/{EXT}/call-2", json=call_task, version="45.0")
    assert updated.status_code == 204
    assert updated.content == b""


def test_upsert_with_two_matches_answers_300_and_writes_nothing(sf_org: SandboxOrg) -> None:
    ids = [sf_org.state.insert_raw("Task", {"Subject": "dup", EXT: "call-dup"}) for _ in range(2)]
    reply = sf_org.rest("PATCH", f"sobjects/Task/{EXT}/call-dup", json={"Subject": "changed"})
    assert reply.status_code == 300
    assert sorted(reply.json()) == sorted(f"{V}/sobjects/Task/{i}" for i in ids)
    assert {t["Subject"] for t in _tasks_with(sf_org, "call-dup")} == {"dup"}


def test_upsert_on_a_field_that_is_not_an_external_id_is_404(sf_org: SandboxOrg) -> None:
    reply = sf_org.rest("PATCH", "sobjects/Task/CallObject/abc", json={"Subject": "x"})
    assert reply.status_code == 404
    assert reply.json()[0]["errorCode"] == "NOT_FOUND"


def test_upsert_with_the_external_id_in_the_body_is_refused(sf_org: SandboxOrg, call_task: dict[str, Any]) -> None:
    reply = sf_org.rest("PATCH", f"sobjects/Task/{EXT}/call-3", json={**call_task, EXT: "call-3"})
    assert reply.status_code == 400
    assert reply.json()[0]["fields"] == [EXT]
    assert _tasks_with(sf_org, "call-3") == []


def test_upsert_update_only_does_not_insert(sf_org: SandboxOrg, call_task: dict[str, Any]) -> None:
    reply = sf_org.rest("PATCH", f"sobjects/Task/{EXT}/call-4", json=call_task, params={"updateOnly": "true"})
    assert reply.status_code == 404
    assert _tasks_with(sf_org, "call-4") == []


def test_concurrent_upserts_of_a_new_non_unique_value_both_insert(
    sf_org: SandboxOrg, call_task: dict[str, Any]
) -> None:
    sf_org.state.set_faults(upsert_race_ms=300)
    token = sf_org.token()
    statuses: list[int] = []

    def upsert() -> None:
        statuses.append(sf_org.rest("PATCH", f"sobjects/Task/{EXT}/call-race", json=call_task, token=token).status_code)

    threads = [threading.Thread(target=upsert) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [201, 201]
    assert len(_tasks_with(sf_org, "call-race")) == 2
    later = sf_org.rest("PATCH", f"sobjects/Task/{EXT}/call-race", json={"Subject": "again"}, token=token)
    assert later.status_code == 300


# --- errors, validation, limits -----------------------------------------------------------------------------


def test_unknown_field_error_is_a_json_list(sf_org: SandboxOrg) -> None:
    reply = sf_org.rest("POST", "sobjects/Lead", json={"LastName": "X", "Company": "Y", "Shoe_Size__c": 9})
    assert reply.status_code == 400
    assert reply.json() == [
        {"message": "No such column 'Shoe_Size__c' on sobject of type Lead", "errorCode": "INVALID_FIELD", "fields": []}
    ]


@pytest.mark.parametrize(
    ("sobject", "body", "code", "fields"),
    [
        ("Lead", {"LastName": "Rao"}, "REQUIRED_FIELD_MISSING", ["Company"]),
        ("Task", {"Subject": "x" * 256}, "STRING_TOO_LONG", ["Subject"]),
        (
            "Lead",
            {"LastName": "Rao", "Company": "C", "Status": "Hot Prospect"},
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            ["Status"],
        ),
        ("Task", {"WhoId": "not-an-id"}, "MALFORMED_ID", ["WhoId"]),
        ("Task", {"WhoId": "001000000000001AAA"}, "FIELD_INTEGRITY_EXCEPTION", ["WhoId"]),
        ("Task", {"WhoId": make_id("00Q", 999_999)}, "INVALID_CROSS_REFERENCE_KEY", ["WhoId"]),
        ("Task", {"IsClosed": True}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["IsClosed"]),
        ("Task", {"ActivityDate": "2024-05-01T10:00:00Z"}, "JSON_PARSER_ERROR", []),
    ],
    ids=[
        "required",
        "too-long",
        "restricted-picklist",
        "malformed-id",
        "wrong-id-type",
        "missing-who",
        "read-only",
        "datetime-in-date",
    ],
)
def test_create_validation_errors(
    sf_org: SandboxOrg, sobject: str, body: dict[str, Any], code: str, fields: list[str]
) -> None:
    reply = sf_org.rest("POST", f"sobjects/{sobject}", json=body)
    assert reply.status_code == 400
    assert reply.json()[0]["errorCode"] == code
    assert reply.json()[0]["fields"] == fields


def test_converted_lead_refuses_updates_and_new_tasks(sf_org: SandboxOrg, call_task: dict[str, Any]) -> None:
    meera = sf_org.state.demo_ids["meera"]
    update = sf_org.rest("PATCH", f"sobjects/Lead/{meera}", json={"Rating": "Cold"})
    assert update.status_code == 400
    assert update.json()[0] == {
        "message": "cannot reference converted lead",
        "errorCode": "CANNOT_UPDATE_CONVERTED_LEAD",
        "fields": [],
    }
    task = sf_org.rest("POST", "sobjects/Task", json={**call_task, "WhoId": meera})
    assert task.json()[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"


def test_task_on_a_lead_converted_later_cannot_be_updated(sf_org: SandboxOrg, call_task: dict[str, Any]) -> None:
    arjun = sf_org.state.demo_ids["arjun"]
    task_id = sf_org.state.insert_raw("Task", {"Subject": "old call", "WhoId": arjun})
    sf_org.state.insert_raw("Lead", {"Id": arjun, "LastName": "Nair", "Company": "N", "IsConverted": True})
    reply = sf_org.rest("PATCH", f"sobjects/Task/{task_id}", json={"Description": "more notes"})
    assert reply.json()[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"


def test_task_subtype_cannot_be_updated(sf_org: SandboxOrg, call_task: dict[str, Any]) -> None:
    created = sf_org.rest("POST", "sobjects/Task", json=call_task).json()
    reply = sf_org.rest("PATCH", f"sobjects/Task/{created['id']}", json={"TaskSubtype": "Call"})
    assert reply.status_code == 400
    assert reply.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert reply.json()[0]["fields"] == ["TaskSubtype"]


def test_record_crud_round_trip(sf_org: SandboxOrg, call_task: dict[str, Any]) -> None:
    created = sf_org.rest("POST", "sobjects/Task", json=call_task)
    assert created.status_code == 201
    task_id = created.json()["id"]
    got = sf_org.rest("GET", f"sobjects/Task/{task_id}", params={"fields": "Subject,TaskSubtype"}).json()
    assert got == {
        "attributes": {"type": "Task", "url": f"{V}/sobjects/Task/{task_id}"},
        "Id": task_id,
        "Subject": call_task["Subject"],
        "TaskSubtype": "Call",
    }
    assert sf_org.rest("PATCH", f"sobjects/Task/{task_id}", json={"Priority": "High"}).status_code == 204
    assert sf_org.state.get(task_id)["Priority"] == "High"  # type: ignore[index]
    assert sf_org.rest("DELETE", f"sobjects/Task/{task_id}").status_code == 204
    assert sf_org.rest("GET", f"sobjects/Task/{task_id}").json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    assert sf_org.rest("GET", "sobjects/Task/00T5g00000QQQQQEAA").status_code == 404


def test_every_rest_reply_carries_the_usage_header(sf_org: SandboxOrg) -> None:
    token = sf_org.token()
    first = sf_org.rest("GET", "limits", token=token)
    second = sf_org.rest("GET", "sobjects/Lead/describe", token=token)
    assert first.headers["Sforce-Limit-Info"] == "api-usage=1/100000"
    assert second.headers["Sforce-Limit-Info"] == "api-usage=2/100000"
    assert first.json()["DailyApiRequests"] == {"Max": 100000, "Remaining": 99999}


def test_spent_allowance_answers_403_request_limit_exceeded(sf_org: SandboxOrg) -> None:
    assert sf_org.admin("PUT", "usage", {"used": 500, "max": 500}).json() == {"used": 500, "max": 500}
    reply = sf_org.rest("GET", "limits")
    assert reply.status_code == 403
    assert reply.json() == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert reply.headers["Sforce-Limit-Info"] == "api-usage=500/500"


def test_restored_allowance_is_served_again_at_once(sf_org: SandboxOrg) -> None:
    sf_org.admin("PUT", "usage", {"used": 500, "max": 500})
    assert sf_org.rest("GET", "limits").status_code == 403
    assert sf_org.admin("PUT", "usage", {"used": 0}).json() == {"used": 0, "max": 500}
    reply = sf_org.rest("GET", "limits")
    assert reply.status_code == 200 and reply.json()["DailyApiRequests"] == {"Max": 500, "Remaining": 499}


def test_concurrent_limit_fault_answers_as_salesforce_does(sf_org: SandboxOrg) -> None:
    sf_org.state.set_faults(fail_next=1, fail_kind="concurrent")
    reply = sf_org.rest("GET", "limits")
    assert reply.status_code == 403
    assert reply.json() == [
        {"message": "ConcurrentPerOrgLongTxn Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    assert sf_org.rest("GET", "limits").status_code == 200  # gone a moment later


def test_missing_or_unknown_token_is_401_invalid_session(sf_org: SandboxOrg) -> None:
    reply = sf_org.rest("GET", "limits", token="00Dxx!not-a-token")
    assert reply.status_code == 401
    assert reply.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def test_versions_list_needs_no_login(sf_org: SandboxOrg) -> None:
    with sf_org.http() as http:
        versions = http.get(f"{sf_org.base_url}/services/data/", verify=sf_org.verify, timeout=10).json()
    assert versions[0] == {"label": "Spring '18", "url": "/services/data/v42.0", "version": "42.0"}
    assert {"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"} in versions
    assert sf_org.rest("GET", "limits", version="41.0").status_code == 404


def test_describe_shows_fields_and_picklists(sf_org: SandboxOrg) -> None:
    fields = {f["name"]: f for f in sf_org.rest("GET", "sobjects/Task/describe").json()["fields"]}
    assert fields["TaskSubtype"]["createable"] is True
    assert fields["TaskSubtype"]["updateable"] is False
    assert fields[EXT]["externalId"] is True
    assert fields[EXT]["unique"] is False
    assert [v["value"] for v in fields["CallType"]["picklistValues"]] == ["Internal", "Inbound", "Outbound"]
    assert fields["Description"]["length"] == 32000
    lead = {f["name"]: f for f in sf_org.rest("GET", "sobjects/Lead/describe").json()["fields"]}
    assert lead["Status"]["restrictedPicklist"] is True
    assert lead["Company"]["nillable"] is False


# --- conditional requests -------------------------------------------------------------------------------


def test_if_unmodified_since_is_412_when_modified_after_and_proceeds_when_equal(
    sf_org: SandboxOrg, fresh_lead: dict[str, Any]
) -> None:
    lead_id, modified = fresh_lead["Id"], fresh_lead["LastModifiedDate"]
    assert modified.endswith(".000+0000")  # whole seconds, so the HTTP-date below round-trips exactly
    stale = sf_org.rest(
        "PATCH",
        f"sobjects/Lead/{lead_id}",
        json={"Rating": "Hot"},
        headers={"If-Unmodified-Since": _http_date(modified, shift_seconds=-1)},
    )
    assert stale.status_code == 412
    assert [(e["errorCode"], e["fields"]) for e in stale.json()] == [("ENTITY_FAILED_IFLASTMODIFIED_ON_UPDATE", [])]
    assert sf_org.state.get(lead_id)["Rating"] is None  # type: ignore[index]
    same_second = sf_org.rest(
        "PATCH",
        f"sobjects/Lead/{lead_id}",
        json={"Rating": "Hot"},
        headers={"If-Unmodified-Since": _http_date(modified)},
    )
    assert same_second.status_code == 204
    assert sf_org.state.get(lead_id)["Rating"] == "Hot"  # type: ignore[index]


def test_if_modified_since_on_get_is_304_when_not_modified(sf_org: SandboxOrg, fresh_lead: dict[str, Any]) -> None:
    path, modified = f"sobjects/Lead/{fresh_lead['Id']}", fresh_lead["LastModifiedDate"]
    unchanged = sf_org.rest("GET", path, headers={"If-Modified-Since": _http_date(modified)})
    assert (unchanged.status_code, unchanged.content) == (304, b"")
    changed = sf_org.rest("GET", path, headers={"If-Modified-Since": _http_date(modified, shift_seconds=-1)})
    assert (changed.status_code, changed.json()["Id"]) == (200, fresh_lead["Id"])


def test_invalid_if_unmodified_since_is_400_on_patch_and_ignored_on_get(
    sf_org: SandboxOrg, fresh_lead: dict[str, Any]
) -> None:
    path, header = f"sobjects/Lead/{fresh_lead['Id']}", {"If-Unmodified-Since": fresh_lead["LastModifiedDate"]}
    refused = sf_org.rest("PATCH", path, json={"Rating": "Cold"}, headers=header)  # ISO 8601 is no HTTP-date
    assert (refused.status_code, refused.json()[0]["errorCode"]) == (400, "INVALID_HEADER")
    assert sf_org.state.get(fresh_lead["Id"])["Rating"] is None  # type: ignore[index]
    assert sf_org.rest("GET", path, headers=header).status_code == 200


def test_composite_subrequest_412_rolls_back_an_all_or_none_composite(
    sf_org: SandboxOrg, fresh_lead: dict[str, Any], call_task: dict[str, Any]
) -> None:
    lead_id, modified = fresh_lead["Id"], fresh_lead["LastModifiedDate"]

    def body(since: str) -> dict[str, Any]:
        return {
            "allOrNone": True,
            "compositeRequest": [
                {
                    "method": "POST",
                    "url": f"{V}/sobjects/Task",
                    "referenceId": "task",
                    "body": {**call_task, "WhoId": lead_id},
                },
                {
                    "method": "PATCH",
                    "url": f"{V}/sobjects/Lead/{lead_id}",
                    "referenceId": "lead",
                    "body": {"Rating": "Warm"},
                    "httpHeaders": {"If-Unmodified-Since": since},
                },
            ],
        }

    stale = sf_org.rest("POST", "composite", json=body(_http_date(modified, shift_seconds=-1))).json()
    results = {r["referenceId"]: r for r in stale["compositeResponse"]}
    assert results["lead"]["httpStatusCode"] == 412
    assert results["lead"]["body"][0]["errorCode"] == "ENTITY_FAILED_IFLASTMODIFIED_ON_UPDATE"
    assert (results["task"]["httpStatusCode"], results["task"]["body"][0]["errorCode"]) == (400, "PROCESSING_HALTED")
    assert [t for t in sf_org.state.records("Task") if t["WhoId"] == lead_id] == []
    current = sf_org.rest("POST", "composite", json=body(_http_date(modified))).json()["compositeResponse"]
    assert [r["httpStatusCode"] for r in current] == [201, 204]
    assert sf_org.state.get(lead_id)["Rating"] == "Warm"  # type: ignore[index]


def test_composite_subrequest_may_not_set_inherited_headers(sf_org: SandboxOrg, fresh_lead: dict[str, Any]) -> None:
    sub = {
        "method": "GET",
        "url": f"{V}/sobjects/Lead/{fresh_lead['Id']}",
        "referenceId": "lead",
        "httpHeaders": {"Content-Type": "application/xml"},
    }
    reply = sf_org.rest("POST", "composite", json={"compositeRequest": [sub]})
    assert reply.status_code == 400


# --- composite ------------------------------------------------------------------------------------------


def test_composite_all_or_none_rolls_back_and_halts_the_others(sf_org: SandboxOrg, call_task: dict[str, Any]) -> None:
    body = {
        "allOrNone": True,
        "compositeRequest": [
            {
                "method": "POST",
                "url": f"{V}/sobjects/Lead",
                "referenceId": "newLead",
                "body": {"LastName": "Kapoor", "Company": "Kapoor & Sons", "Phone": "+91 90000 00001"},
            },
            {
                "method": "POST",
                "url": f"{V}/sobjects/Task",
                "referenceId": "badTask",
                "body": {**call_task, "WhoId": "@{newLead.id}", "CallType": "Sideways"},
            },
            {"method": "GET", "url": f"{V}/query?q=SELECT+Id+FROM+Lead+LIMIT+1", "referenceId": "later"},
        ],
    }
    reply = sf_org.rest("POST", "composite", json=body)
    assert reply.status_code == 200
    results = {r["referenceId"]: r for r in reply.json()["compositeResponse"]}
    halted = [
        {
            "errorCode": "PROCESSING_HALTED",
            "message": "The transaction was rolled back since another operation in the same transaction failed.",
        }
    ]
    assert results["newLead"]["httpStatusCode"] == 400
    assert results["newLead"]["body"] == halted
    assert results["badTask"]["httpStatusCode"] == 400
    assert results["badTask"]["body"][0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert results["later"]["body"] == halted
    assert not [lead for lead in sf_org.state.records("Lead") if lead["LastName"] == "Kapoor"]


def test_composite_reference_to_an_empty_query_is_invalid(sf_org: SandboxOrg, call_task: dict[str, Any]) -> None:
    body = {
        "allOrNone": False,
        "compositeRequest": [
            {"method": "GET", "url": f"{V}/query?q=SELECT+Id+FROM+Lead+WHERE+Phone+%3D+%27000%27", "referenceId": "q"},
            {
                "method": "POST",
                "url": f"{V}/sobjects/Task",
                "referenceId": "task",
                "body": {**call_task, "WhoId": "@{q.records[0].Id}"},
            },
            {"method": "POST", "url": f"{V}/sobjects/Task", "referenceId": "other", "body": call_task},
        ],
    }
    results = sf_org.rest("POST", "composite", json=body).json()["compositeResponse"]
    assert [r["httpStatusCode"] for r in results] == [200, 400, 201]
    assert results[1]["body"] == [
        {
            "errorCode": "PROCESSING_HALTED",
            "message": "Invalid reference specified. No value for q.records[0].Id found in q.",
        }
    ]


def test_composite_dependent_on_a_failed_subrequest_is_not_run(sf_org: SandboxOrg, call_task: dict[str, Any]) -> None:
    body = {
        "allOrNone": False,
        "compositeRequest": [
            {"method": "POST", "url": f"{V}/sobjects/Lead", "referenceId": "lead", "body": {"LastName": "NoCompany"}},
            {
                "method": "POST",
                "url": f"{V}/sobjects/Task",
                "referenceId": "task",
                "body": {**call_task, "WhoId": "@{lead.id}"},
            },
        ],
    }
    results = sf_org.rest("POST", "composite", json=body).json()["compositeResponse"]
    assert results[0]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert results[1]["body"][0]["message"] == "Invalid reference specified. No value for lead.id found in lead."


def test_composite_counts_as_one_api_call(sf_org: SandboxOrg) -> None:
    subrequests = [
        {"method": "GET", "url": f"{V}/sobjects/Lead/{i}", "referenceId": f"r{n}"}
        for n, i in enumerate(sf_org.state.demo_ids.values())
        if i.startswith("00Q")
    ]
    reply = sf_org.rest("POST", "composite", json={"compositeRequest": subrequests})
    assert [r["httpStatusCode"] for r in reply.json()["compositeResponse"]] == [200] * len(subrequests)
    assert reply.headers["Sforce-Limit-Info"] == "api-usage=1/100000"


def test_composite_over_25_subrequests_is_refused(sf_org: SandboxOrg) -> None:
    subrequests = [{"method": "GET", "url": f"{V}/limits", "referenceId": f"r{n}"} for n in range(26)]
    reply = sf_org.rest("POST", "composite", json={"compositeRequest": subrequests})
    assert reply.status_code == 400


def _limits_sub(n: int) -> dict[str, Any]:
    return {"method": "GET", "url": f"{V}/limits", "referenceId": f"l{n}"}


def _query_sub(n: int) -> dict[str, Any]:
    return {"method": "GET", "url": f"{V}/query?q=SELECT+Id+FROM+Lead+LIMIT+1", "referenceId": f"q{n}"}


def _collection_sub(n: int) -> dict[str, Any]:
    body = {"allOrNone": False, "records": [{"attributes": {"type": "Lead"}, "LastName": f"L{n}", "Company": "C"}]}
    return {"method": "POST", "url": f"{V}/composite/sobjects", "referenceId": f"c{n}", "body": body}


@pytest.mark.parametrize(
    ("subrequests", "message"),
    [
        ([_limits_sub(n) for n in range(26)], "The request can’t contain more than 25 operations."),
        (
            [_query_sub(n) for n in range(4)] + [_collection_sub(n) for n in range(2)],
            "The request can’t contain more than 5 sObject Collections or query operations.",
        ),
    ],
    ids=["26-subrequests", "6-queries-or-collections"],
)
def test_composite_over_its_limits_is_refused_whole(
    sf_org: SandboxOrg, subrequests: list[dict[str, Any]], message: str
) -> None:
    before = len(sf_org.state.records("Lead"))
    reply = sf_org.rest("POST", "composite", json={"allOrNone": False, "compositeRequest": subrequests})
    assert reply.status_code == 400
    assert reply.json() == {
        "compositeResponse": [
            {
                "body": [{"errorCode": "LIMIT_EXCEEDED", "message": message}],
                "httpHeaders": {},
                "httpStatusCode": 400,
                "referenceId": None,
            }
        ]
    }
    assert len(sf_org.state.records("Lead")) == before


def test_composite_of_25_with_5_queries_or_collections_is_served(sf_org: SandboxOrg) -> None:
    subrequests = [_query_sub(n) for n in range(3)] + [_collection_sub(n) for n in range(2)]
    subrequests += [_limits_sub(n) for n in range(20)]
    reply = sf_org.rest("POST", "composite", json={"allOrNone": True, "compositeRequest": subrequests})
    assert reply.status_code == 200
    assert {r["httpStatusCode"] for r in reply.json()["compositeResponse"]} == {200}


def _collections_composite(call_task: dict[str, Any], *, all_or_none: bool) -> dict[str, Any]:
    """A new Lead, a Task collection whose second record is invalid, and a collection upsert of two calls."""
    tasks = [{"attributes": {"type": "Task"}, **call_task}, {"attributes": {"type": "Task"}, "Priority": "Urgent"}]
    calls = [
        {"attributes": {"type": "Task"}, EXT: "call-c1", **call_task},
        {"attributes": {"type": "Task"}, EXT: "call-c2", **call_task, "CallType": "Sideways"},
    ]
    return {
        "allOrNone": all_or_none,
        "compositeRequest": [
            {
                "method": "POST",
                "url": f"{V}/sobjects/Lead",
                "referenceId": "lead",
                "body": {"LastName": "Pillai", "Company": "Pillai Traders"},
            },
            {
                "method": "POST",
                "url": f"{V}/composite/sobjects",
                "referenceId": "tasks",
                "body": {"allOrNone": False, "records": tasks},
            },
            {
                "method": "PATCH",
                "url": f"{V}/composite/sobjects/Task/{EXT}",
                "referenceId": "calls",
                "body": {"allOrNone": False, "records": calls},
            },
        ],
    }


def test_collection_subrequests_report_per_record_when_composite_is_not_all_or_none(
    sf_org: SandboxOrg, call_task: dict[str, Any]
) -> None:
    body = _collections_composite(call_task, all_or_none=False)
    follow_up = {"method": "PATCH", "url": f"{V}/sobjects/Task/@{{tasks[0].id}}", "body": {"Priority": "High"}}
    body["compositeRequest"].append({**follow_up, "referenceId": "followUp"})  # a 200 collection can be referenced
    reply = sf_org.rest("POST", "composite", json=body)
    results = {r["referenceId"]: r for r in reply.json()["compositeResponse"]}
    assert [results[ref]["httpStatusCode"] for ref in ("lead", "tasks", "calls", "followUp")] == [201, 200, 200, 204]
    tasks, calls = results["tasks"]["body"], results["calls"]["body"]
    assert [r["success"] for r in tasks] == [True, False]
    assert tasks[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert [(r["success"], r.get("created")) for r in calls] == [(True, True), (False, None)]
    assert sf_org.state.get(tasks[0]["id"]) is not None
    assert (len(_tasks_with(sf_org, "call-c1")), len(_tasks_with(sf_org, "call-c2"))) == (1, 0)


def test_collection_failure_rolls_back_an_all_or_none_composite(sf_org: SandboxOrg, call_task: dict[str, Any]) -> None:
    before = {name: len(sf_org.state.records(name)) for name in ("Lead", "Task")}
    reply = sf_org.rest("POST", "composite", json=_collections_composite(call_task, all_or_none=True))
    results = {r["referenceId"]: r for r in reply.json()["compositeResponse"]}
    assert (results["lead"]["httpStatusCode"], results["lead"]["body"][0]["errorCode"]) == (400, "PROCESSING_HALTED")
    # As the documented example shows: the collection keeps its own per-record report, though rolled back.
    assert results["tasks"]["httpStatusCode"] == 200
    assert [r["success"] for r in results["tasks"]["body"]] == [True, False]
    assert results["calls"]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert {name: len(sf_org.state.records(name)) for name in ("Lead", "Task")} == before


# --- collections ----------------------------------------------------------------------------------------


def test_collection_create_partial_failure_keeps_input_order(sf_org: SandboxOrg, call_task: dict[str, Any]) -> None:
    records = [
        {"attributes": {"type": "Task"}, **call_task},
        {"attributes": {"type": "Task"}, **call_task, "Priority": "Urgent"},
        {"attributes": {"type": "Lead"}, "LastName": "Bose", "Company": "Bose Audio"},
    ]
    reply = sf_org.rest("POST", "composite/sobjects", json={"allOrNone": False, "records": records})
    results = reply.json()
    assert reply.status_code == 200
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert results[1]["errors"][0]["fields"] == ["Priority"]
    assert results[0]["id"].startswith("00T")
    assert results[2]["id"].startswith("00Q")


def test_collection_all_or_none_rolls_back_every_record(sf_org: SandboxOrg, call_task: dict[str, Any]) -> None:
    before = len(sf_org.state.records("Task"))
    records = [{"attributes": {"type": "Task"}, **call_task}, {"attributes": {"type": "Task"}, "Subject": "x" * 300}]
    results = sf_org.rest("POST", "composite/sobjects", json={"allOrNone": True, "records": records}).json()
    assert results[0] == {
        "success": False,
        "errors": [
            {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the request was using "
                "AllOrNone header",
                "fields": [],
            }
        ],
    }
    assert results[1]["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    assert len(sf_org.state.records("Task")) == before


def test_collection_upsert_reports_created_per_record(sf_org: SandboxOrg, call_task: dict[str, Any]) -> None:
    sf_org.rest("PATCH", f"sobjects/Task/{EXT}/call-a", json=call_task)
    update = {k: v for k, v in call_task.items() if k != "TaskSubtype"}
    records = [
        {"attributes": {"type": "Task"}, EXT: "call-a", **update},
        {"attributes": {"type": "Task"}, EXT: "call-b", **call_task},
    ]
    reply = sf_org.rest("PATCH", f"composite/sobjects/Task/{EXT}", json={"allOrNone": False, "records": records})
    assert [(r["success"], r["created"]) for r in reply.json()] == [(True, False), (True, True)]
    assert reply.headers["Sforce-Limit-Info"].startswith("api-usage=2/")


def test_collection_over_200_records_is_refused(sf_org: SandboxOrg) -> None:
    records = [{"attributes": {"type": "Task"}, "Subject": f"t{n}"} for n in range(201)]
    reply = sf_org.rest("POST", "composite/sobjects", json={"allOrNone": False, "records": records})
    assert reply.status_code == 400
    assert reply.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_collection_get_returns_null_for_missing_ids(sf_org: SandboxOrg) -> None:
    priya = sf_org.state.demo_ids["priya"]
    reply = sf_org.rest(
        "GET", "composite/sobjects/Lead", params={"ids": f"{priya},00Q5g00000ZZZZZEAA", "fields": "Phone"}
    )
    assert reply.json() == [
        {"attributes": {"type": "Lead", "url": f"{V}/sobjects/Lead/{priya}"}, "Id": priya, "Phone": "9999999999"},
        None,
    ]


# --- SOQL and SOSL --------------------------------------------------------------------------------------


def _query(org: SandboxOrg, soql: str) -> requests.Response:
    return org.rest("GET", "query", params={"q": soql})


def test_soql_phone_equality_is_exact_not_normalised(sf_org: SandboxOrg) -> None:
    rows = _query(
        sf_org, "SELECT Id, Phone, MobilePhone FROM Lead WHERE Phone = '9999999999' OR MobilePhone = '9999999999'"
    ).json()["records"]
    assert [r["Id"] for r in rows] == [sf_org.state.demo_ids["priya"]]
    spaced = _query(sf_org, "SELECT Id FROM Lead WHERE MobilePhone IN ('+91 99999 99999', '099999-99999')").json()
    assert [r["Id"] for r in spaced["records"]] == [sf_org.state.demo_ids["priya_mobile"]]


def test_soql_string_equality_ignores_case(sf_org: SandboxOrg) -> None:
    rows = _query(sf_org, "SELECT Name FROM Lead WHERE LastName = 'NAIR' AND IsConverted = false").json()["records"]
    assert [r["Name"] for r in rows] == ["Arjun Nair"]


def test_soql_escapes_in_string_literals(sf_org: SandboxOrg) -> None:
    sf_org.state.insert_raw("Lead", {"LastName": 'O\'Brien \\ "Jr"', "Company": "Irish Tea"})
    rows = _query(sf_org, r"SELECT LastName FROM Lead WHERE LastName = 'O\'Brien \\ \"Jr\"'").json()["records"]
    assert [r["LastName"] for r in rows] == ['O\'Brien \\ "Jr"']


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        (r"SELECT Id FROM Lead WHERE LastName = 'a\d'", "MALFORMED_QUERY"),
        (r"SELECT Id FROM Lead WHERE LastName = 'a\%'", "MALFORMED_QUERY"),
        ("SELECT Id FROM Lead WHERE LastName = 'unterminated", "MALFORMED_QUERY"),
        ("SELECT Id FROM Lead WHERE", "MALFORMED_QUERY"),
        ("SELECT Id FROM Lead WHERE LastName = 'a' AND Company = 'b' OR Phone = 'c'", "MALFORMED_QUERY"),
        ("SELECT Id, Shoe_Size__c FROM Lead", "INVALID_FIELD"),
        ("SELECT Id FROM Lead WHERE Description = 'x'", "INVALID_FIELD"),
        ("SELECT Id FROM Leed", "INVALID_TYPE"),
        ("SELECT Id FROM Lead WHERE Phone = 9999999999", "INVALID_QUERY_FILTER_OPERATOR"),
    ],
    ids=[
        "bad-escape",
        "like-escape-outside-like",
        "unterminated",
        "dangling-where",
        "and-or-mix",
        "unknown-field",
        "long-text-filter",
        "unknown-object",
        "unquoted-phone",
    ],
)
def test_soql_refusals(sf_org: SandboxOrg, soql: str, code: str) -> None:
    reply = _query(sf_org, soql)
    assert reply.status_code == 400
    assert reply.json()[0]["errorCode"] == code


def test_soql_like_order_limit_and_count(sf_org: SandboxOrg) -> None:
    rows = _query(
        sf_org,
        "SELECT LastName, FirstName FROM Lead WHERE (Company LIKE 'sharma%' OR Company LIKE "
        r"'Ir\_sh%') AND NOT FirstName = 'P.' ORDER BY Company DESC LIMIT 5",
    ).json()["records"]
    assert [(r["FirstName"], r["LastName"]) for r in rows] == [("Priya", "Sharma"), ("Priya", "Sharma")]
    count = _query(sf_org, "SELECT COUNT() FROM Lead WHERE IsConverted = true").json()
    assert (count["totalSize"], count["records"]) == (1, [])


def test_query_pages_follow_next_records_url(sf_org: SandboxOrg) -> None:
    sf_org.state.query_batch_size = 4
    try:
        first = _query(sf_org, "SELECT Id FROM Lead").json()
        assert (first["totalSize"], first["done"], len(first["records"])) == (6, False, 4)
        path = first["nextRecordsUrl"].removeprefix(V + "/")
        rest = sf_org.rest("GET", path).json()
        assert (rest["done"], len(rest["records"])) == (True, 2)
    finally:
        sf_org.state.query_batch_size = 2000


def test_sosl_phone_search_matches_trailing_digits(sf_org: SandboxOrg) -> None:
    sosl = "FIND {9999999999} IN PHONE FIELDS RETURNING Lead(Id, Phone, MobilePhone WHERE IsConverted = false), Contact"
    found = sf_org.rest("GET", "search", params={"q": sosl}).json()["searchRecords"]
    ids = sf_org.state.demo_ids
    assert [r["Id"] for r in found] == [ids["priya"], ids["priya_mobile"], ids["p_sharma"]]
    contact = sf_org.rest("GET", "search", params={"q": "FIND {9123456789} IN PHONE FIELDS RETURNING Contact(Id)"})
    assert [r["Id"] for r in contact.json()["searchRecords"]] == [ids["meera_contact"]]


def test_sosl_reserved_characters_must_be_escaped(sf_org: SandboxOrg) -> None:
    unescaped = sf_org.rest("GET", "search", params={"q": "FIND {+91 99999-99999} IN PHONE FIELDS RETURNING Lead"})
    assert unescaped.status_code == 400
    assert unescaped.json()[0]["errorCode"] == "MALFORMED_SEARCH"
    escaped = sf_org.rest("GET", "search", params={"q": r"FIND {\+91 99999\-99999} IN PHONE FIELDS RETURNING Lead"})
    assert [r["Id"] for r in escaped.json()["searchRecords"]] == [sf_org.state.demo_ids["priya_mobile"]]


def test_sosl_or_of_numbers_and_quoted_phrases_matches_each_by_trailing_digits(sf_org: SandboxOrg) -> None:
    sosl = 'FIND {9876543210 OR 9999999999 OR "080 4123 4567" OR 9812345678} IN PHONE FIELDS RETURNING Lead(Id)'
    found = sf_org.rest("GET", "search", params={"q": sosl}).json()["searchRecords"]
    ids = sf_org.state.demo_ids
    assert [r["Id"] for r in found] == [ids[k] for k in ("priya", "priya_mobile", "p_sharma", "arjun", "karan")]


def test_sosl_operators_follow_the_documented_precedence(sf_org: SandboxOrg) -> None:
    def search(query: str) -> requests.Response:
        return sf_org.rest("GET", "search", params={"q": f"FIND {{{query}}} RETURNING Lead(Id)"})

    ids = sf_org.state.demo_ids
    found = search("Nair OR Sharma AND Pvt").json()["searchRecords"]  # OR last: Nair OR (Sharma AND Pvt)
    assert [r["Id"] for r in found] == [ids["priya_mobile"], ids["arjun"]]
    # AND / AND NOT right to left: Sharma AND NOT (Pvt AND Ltd), not (Sharma AND NOT Pvt) AND Ltd
    right_to_left = search("Sharma AND NOT Pvt AND Ltd").json()["searchRecords"]
    assert [r["Id"] for r in right_to_left] == [ids["priya"], ids["p_sharma"]]
    grouped = search('(Nair OR Sharma) AND "Pvt Ltd"').json()["searchRecords"]
    assert [r["Id"] for r in grouped] == [ids["priya_mobile"]]
    unclosed = search('"Sharma Textiles')
    assert (unclosed.status_code, unclosed.json()[0]["errorCode"]) == (400, "MALFORMED_SEARCH")


def test_sosl_long_search_strings_lose_operators_then_rows(sf_org: SandboxOrg) -> None:
    def found(query: str) -> list[str]:
        reply = sf_org.rest("GET", "search", params={"q": f"FIND {{{query}}} RETURNING Lead(Id)"})
        return [r["Id"] for r in reply.json()["searchRecords"]]

    ids, query = sf_org.state.demo_ids, "Sharma AND NOT Pvt"
    padded = query + " zq" * ((4_001 - len(query)) // 3 + 1)  # over 4,000 characters: operators removed
    assert found(query) == [ids["priya"], ids["p_sharma"]]
    assert found(padded) == [ids["priya"], ids["priya_mobile"], ids["p_sharma"]]
    assert found(query + " zq" * 3_400) == []  # over 10,000 characters: no rows


def test_new_records_reach_search_late(sf_org: SandboxOrg) -> None:
    sf_org.state.set_faults(search_index_lag_ms=60_000)
    sf_org.rest("POST", "sobjects/Lead", json={"LastName": "Late", "Company": "L", "Phone": "+91 95555 12345"})
    search = sf_org.rest("GET", "search", params={"q": "FIND {9555512345} IN PHONE FIELDS RETURNING Lead(Id)"})
    assert search.json()["searchRecords"] == []
    assert _query(sf_org, "SELECT Id FROM Lead WHERE Phone = '+91 95555 12345'").json()["totalSize"] == 1


# --- OAuth (sandbox-only grant) -------------------------------------------------------------------------


def test_refresh_token_grant(sf_org: SandboxOrg) -> None:
    refresh = sf_org.state.issue_refresh_token()
    with sf_org.http() as http:
        form = {"grant_type": "refresh_token", "client_id": sf_org.oauth.client_id, "refresh_token": refresh}
        good = http.post(f"{sf_org.base_url}/services/oauth2/token", data=form, verify=sf_org.verify, timeout=10)
        bad = http.post(
            f"{sf_org.base_url}/services/oauth2/token",
            data={**form, "refresh_token": "nope"},
            verify=sf_org.verify,
            timeout=10,
        )
    assert good.status_code == 200
    assert sf_org.rest("GET", "limits", token=good.json()["access_token"]).status_code == 200
    assert bad.json() == {"error": "invalid_grant", "error_description": "expired access/refresh token"}


def test_unsupported_grant_type(sf_org: SandboxOrg) -> None:
    with sf_org.http() as http:
        reply = http.post(
            f"{sf_org.base_url}/services/oauth2/token",
            data={"grant_type": "authorization_code"},
            verify=sf_org.verify,
            timeout=10,
        )
    assert (reply.status_code, reply.json()["error"]) == (400, "unsupported_grant_type")


# --- faults ---------------------------------------------------------------------------------------------


def test_fail_next_n_requests_with_503(sf_org: SandboxOrg) -> None:
    sf_org.admin("PUT", "faults", {"fail_next": 2, "fail_kind": "server_unavailable"})
    token = sf_org.token()
    replies = [sf_org.rest("GET", "limits", token=token) for _ in range(3)]
    assert [r.status_code for r in replies] == [503, 503, 200]
    assert replies[0].json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert sf_org.admin("GET", "stats").json()["faults"] == {"server_unavailable": 2}


def test_fail_rate_is_repeatable_with_a_seed(sf_org: SandboxOrg) -> None:
    token = sf_org.token()

    def run() -> list[int]:
        sf_org.admin("PUT", "faults", {"fail_rate": 0.5, "fail_kind": "server_error", "seed": 7})
        return [sf_org.rest("GET", "limits", token=token).status_code for _ in range(8)]

    first, second = run(), run()
    assert first == second
    assert set(first) == {200, 500}


def test_fail_scope_limits_faults_to_request_kinds(sf_org: SandboxOrg) -> None:
    sf_org.state.set_faults(fail_next=1, fail_kind="server_error", fail_scope=["composite"])
    token = sf_org.token()
    assert sf_org.rest("GET", "limits", token=token).status_code == 200
    composite = {"compositeRequest": [{"method": "GET", "url": f"{V}/limits", "referenceId": "l"}]}
    assert sf_org.rest("POST", "composite", json=composite, token=token).json()[0]["errorCode"] == "UNKNOWN_EXCEPTION"


def test_lock_fault_fails_the_write(sf_org: SandboxOrg, call_task: dict[str, Any]) -> None:
    sf_org.state.set_faults(fail_next=1, fail_kind="lock")
    token = sf_org.token()
    assert sf_org.rest("GET", "limits", token=token).status_code == 200  # reads never take a row lock
    reply = sf_org.rest("PATCH", f"sobjects/Task/{EXT}/call-lock", json=call_task, token=token)
    assert reply.status_code == 500
    assert reply.json()[0]["errorCode"] == "UNABLE_TO_LOCK_ROW"
    assert reply.json()[0]["message"].startswith("unable to obtain exclusive access to this record or 1 records: ")
    assert _tasks_with(sf_org, "call-lock") == []


def test_lock_fault_inside_a_composite_fails_that_subrequest(sf_org: SandboxOrg, call_task: dict[str, Any]) -> None:
    sf_org.state.set_faults(fail_next=1, fail_kind="lock", lock_status=400)
    body = {
        "allOrNone": True,
        "compositeRequest": [
            {"method": "GET", "url": f"{V}/query?q=SELECT+Id+FROM+Lead", "referenceId": "q"},
            {"method": "PATCH", "url": f"{V}/sobjects/Task/{EXT}/call-l2", "referenceId": "task", "body": call_task},
        ],
    }
    reply = sf_org.rest("POST", "composite", json=body)
    assert reply.status_code == 200
    results = reply.json()["compositeResponse"]
    assert [r["httpStatusCode"] for r in results] == [400, 400]
    assert results[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert results[1]["body"][0]["errorCode"] == "UNABLE_TO_LOCK_ROW"


def test_expire_sessions_fault_invalidates_every_token(sf_org: SandboxOrg) -> None:
    token = sf_org.token()
    sf_org.admin("PUT", "faults", {"fail_next": 1, "fail_kind": "expire_sessions"})
    assert sf_org.rest("GET", "limits", token=token).status_code == 401
    assert sf_org.rest("GET", "limits", token=token).status_code == 401
    assert sf_org.rest("GET", "limits").status_code == 200  # a fresh login works


def test_drop_after_commit_applies_the_write_and_sends_nothing(sf_org: SandboxOrg, call_task: dict[str, Any]) -> None:
    sf_org.state.set_faults(fail_next=1, fail_kind="drop_after_commit")
    with pytest.raises(requests.ConnectionError):
        sf_org.rest("PATCH", f"sobjects/Task/{EXT}/call-drop", json=call_task)
    assert len(_tasks_with(sf_org, "call-drop")) == 1


def test_validation_rule_rejects_matching_writes(sf_org: SandboxOrg, call_task: dict[str, Any]) -> None:
    karan = sf_org.state.demo_ids["karan"]
    rules = [{"sobject": "Task", "field": "WhoId", "equals": karan, "message": "Karan opted out of calls"}]
    assert sf_org.admin("PUT", "faults", {"validation_rules": rules}).status_code == 200
    refused = sf_org.rest("POST", "sobjects/Task", json={**call_task, "WhoId": karan})
    assert refused.json() == [
        {"message": "Karan opted out of calls", "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "fields": []}
    ]
    assert sf_org.rest("POST", "sobjects/Task", json=call_task).status_code == 201


def test_latency_fault_delays_replies(sf_org: SandboxOrg) -> None:
    sf_org.state.set_faults(latency_ms=150)
    reply = sf_org.rest("GET", "limits")
    assert reply.elapsed.total_seconds() >= 0.15


def test_unknown_fault_settings_are_refused(sf_org: SandboxOrg) -> None:
    assert sf_org.admin("PUT", "faults", {"fail_kind": "meteor"}).status_code == 400
    assert sf_org.admin("PUT", "faults", {"colour": "red"}).status_code == 400


# --- admin ----------------------------------------------------------------------------------------------


def test_admin_convert_moves_tasks_to_the_contact(sf_org: SandboxOrg, call_task: dict[str, Any]) -> None:
    arjun = sf_org.state.demo_ids["arjun"]
    task_id = sf_org.rest("POST", "sobjects/Task", json={**call_task, "WhoId": arjun}).json()["id"]
    converted = sf_org.admin("POST", f"convert/{arjun}").json()
    lead = next(r for r in sf_org.admin("GET", "records/Lead").json() if r["Id"] == arjun)
    assert (lead["IsConverted"], lead["ConvertedContactId"]) == (True, converted["contactId"])
    assert sf_org.state.get(task_id)["WhoId"] == converted["contactId"]  # type: ignore[index]
    assert sf_org.admin("POST", f"convert/{arjun}").status_code == 409


def test_admin_inserts_raw_records_and_resets(sf_org: SandboxOrg) -> None:
    inserted = sf_org.admin("POST", "records/Lead", [{"LastName": "Raw", "Company": "R", "Phone": "12"}]).json()
    assert inserted["ids"][0].startswith("00Q")
    assert sf_org.admin("POST", "reset", {"demo": False}).json()["ok"] is True
    assert sf_org.state.records("Lead") == []
    assert len(sf_org.state.records("User")) == 4
