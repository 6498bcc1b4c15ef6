"""``SalesforceClient`` against the sandbox over real HTTPS: error sorting, session refresh, retries, limits."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import pytest
import requests

from worker.errors import (
    SalesforceLimitExceeded,
    SalesforceRejected,
    SalesforceSessionExpired,
    SalesforceUnavailable,
    SyncError,
)
from worker.salesforce.client import (
    SalesforceClient,
    UpsertResult,
    classify_errors,
    composite_error,
    format_soql,
    is_retryable_code,
)

EXT = "Twenty2_Call_Id__c"
V = "/services/data/v62.0"
CALL_TASK: dict[str, Any] = {"Subject": "Call", "Status": "Completed", "TaskSubtype": "Call", "CallType": "Outbound"}

if TYPE_CHECKING:
    from support.salesforce_org import SandboxOrg


@pytest.fixture
def call_task(sf_org: SandboxOrg) -> dict[str, Any]:
    return {**copy.deepcopy(CALL_TASK), "WhoId": sf_org.state.demo_ids["arjun"]}


# --- reads ----------------------------------------------------------------------------------------------


def test_query_returns_every_page(sf_org: SandboxOrg, sf_client: SalesforceClient) -> None:
    sf_org.state.query_batch_size = 2
    try:
        rows = sf_client.query("SELECT Id FROM Lead ORDER BY CreatedDate")
    finally:
        sf_org.state.query_batch_size = 2000
    assert len(rows) == 6
    assert sf_org.state.stats()["api_requests"]["query"] == 3


def test_query_with_format_soql_matches_exact_spelling(sf_org: SandboxOrg, sf_client: SalesforceClient) -> None:
    soql = format_soql("SELECT Id FROM Lead WHERE Phone IN {} OR MobilePhone IN {}", ["099999-99999"], ["x'y"])
    assert [r["Id"] for r in sf_client.query(soql)] == [sf_org.state.demo_ids["p_sharma"]]


def test_search_get_describe_limits(sf_org: SandboxOrg, sf_client: SalesforceClient) -> None:
    found = sf_client.search("FIND {9876543210} IN PHONE FIELDS RETURNING Lead(Id, Name)")
    arjun = sf_org.state.demo_ids["arjun"]
    assert [r["Name"] for r in found] == ["Arjun Nair"]
    assert sf_client.get("Lead", arjun, ["Phone"])["Phone"] == "+919876543210"
    assert sf_client.describe("Lead") is sf_client.describe("Lead")
    assert sf_org.state.stats()["api_requests"]["describe"] == 1
    assert sf_client.limits()["DailyApiRequests"]["Max"] == 100000


def test_usage_header_is_remembered(sf_client: SalesforceClient) -> None:
    assert sf_client.api_usage is None
    sf_client.limits()
    sf_client.limits()
    assert sf_client.api_usage == (2, 100000)


# --- session refresh --------------------------------------------------------------------------------------


def test_expired_session_is_refreshed_once_and_the_request_resent(
    sf_org: SandboxOrg, sf_client: SalesforceClient
) -> None:
    sf_client.limits()
    sf_org.state.expire_sessions()
    assert sf_client.limits()["DailyApiRequests"]["Max"] == 100000
    stats = sf_org.state.stats()
    assert stats["oauth"] == {"password": 2}
    assert stats["api_requests"]["limits"] == 2


def test_persistent_expiry_raises_session_expired(sf_org: SandboxOrg, sf_client: SalesforceClient) -> None:
    sf_org.state.set_faults(fail_next=2, fail_kind="expire_sessions")
    with pytest.raises(SalesforceSessionExpired) as caught:
        sf_client.limits()
    assert caught.value.retryable
    assert caught.value.code == "INVALID_SESSION_ID"
    assert sf_org.state.stats()["oauth"] == {"password": 2}


def test_revoked_access_token_cannot_be_refreshed(sf_org: SandboxOrg) -> None:
    token = sf_org.token()
    client = sf_org.client(
        settings=sf_org.settings(salesforce_instance_url=sf_org.base_url, salesforce_access_token=token)
    )
    sf_org.state.expire_sessions()
    with pytest.raises(SalesforceSessionExpired) as caught:
        client.limits()
    assert token not in str(caught.value)


# --- error sorting through the wire ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "family", "code", "status"),
    [
        ("server_unavailable", SalesforceUnavailable, "SERVER_UNAVAILABLE", 503),
        ("server_error", SalesforceUnavailable, "UNKNOWN_EXCEPTION", 500),
        ("lock", SalesforceUnavailable, "UNABLE_TO_LOCK_ROW", 500),
        ("limit", SalesforceLimitExceeded, "REQUEST_LIMIT_EXCEEDED", 403),
    ],
)
def test_injected_faults_are_sorted_by_code(
    sf_org: SandboxOrg,
    sf_client: SalesforceClient,
    call_task: dict[str, Any],
    fault: str,
    family: type[SyncError],
    code: str,
    status: int,
) -> None:
    sf_org.state.set_faults(fail_next=1, fail_kind=fault)
    with pytest.raises(family) as caught:
        sf_client.create("Task", call_task)
    assert (caught.value.code, caught.value.http_status, caught.value.retryable) == (code, status, True)


def test_lock_answered_with_400_is_still_retryable(
    sf_org: SandboxOrg, sf_client: SalesforceClient, call_task: dict[str, Any]
) -> None:
    sf_org.state.set_faults(fail_next=1, fail_kind="lock", lock_status=400)
    with pytest.raises(SalesforceUnavailable) as caught:
        sf_client.update("Task", sf_org.state.insert_raw("Task", {"Subject": "x"}), {"Priority": "High"})
    assert (caught.value.code, caught.value.http_status) == ("UNABLE_TO_LOCK_ROW", 400)


def test_validation_error_is_rejected_with_fields(sf_client: SalesforceClient, call_task: dict[str, Any]) -> None:
    with pytest.raises(SalesforceRejected) as caught:
        sf_client.create("Task", {**call_task, "CallType": "Sideways"})
    assert caught.value.code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert caught.value.details["fields"] == ["CallType"]
    assert caught.value.http_status == 400


def test_converted_lead_update_is_rejected(sf_org: SandboxOrg, sf_client: SalesforceClient) -> None:
    with pytest.raises(SalesforceRejected) as caught:
        sf_client.update("Lead", sf_org.state.demo_ids["meera"], {"Rating": "Cold"})
    assert caught.value.code == "CANNOT_UPDATE_CONVERTED_LEAD"


def test_task_subtype_on_the_update_branch_is_rejected(sf_client: SalesforceClient, call_task: dict[str, Any]) -> None:
    assert sf_client.upsert("Task", EXT, "call-9", call_task).created is True
    with pytest.raises(SalesforceRejected) as caught:
        sf_client.upsert("Task", EXT, "call-9", call_task)
    assert (caught.value.code, caught.value.details["fields"]) == ("INVALID_FIELD_FOR_INSERT_UPDATE", ["TaskSubtype"])


def test_several_matches_are_rejected_as_multiple_choices(sf_org: SandboxOrg, sf_client: SalesforceClient) -> None:
    for _ in range(2):
        sf_org.state.insert_raw("Task", {"Subject": "dup", EXT: "call/dup"})
    with pytest.raises(SalesforceRejected) as caught:
        sf_client.upsert("Task", EXT, "call/dup", {"Subject": "x"})
    assert (caught.value.code, caught.value.http_status) == ("MULTIPLE_CHOICES", 300)
    assert len(caught.value.details["records"]) == 2


def test_missing_record_and_bad_query_are_rejected(sf_client: SalesforceClient) -> None:
    with pytest.raises(SalesforceRejected) as missing:
        sf_client.get("Lead", "00Q5g00000QQQQQEAA")
    with pytest.raises(SalesforceRejected) as malformed:
        sf_client.query("SELECT Id FROM Lead WHERE Phone = 'unterminated")
    assert (missing.value.code, malformed.value.code) == ("NOT_FOUND", "MALFORMED_QUERY")


# --- retries --------------------------------------------------------------------------------------------


def test_reads_are_retried_on_unavailable(sf_org: SandboxOrg, sf_client: SalesforceClient) -> None:
    sf_org.state.set_faults(fail_next=2, fail_kind="server_unavailable")
    assert len(sf_client.query("SELECT Id FROM Lead")) == 6
    assert sf_org.state.stats()["api_requests"]["query"] == 3


def test_reads_give_up_after_the_attempts(sf_org: SandboxOrg, sf_client: SalesforceClient) -> None:
    sf_org.state.set_faults(fail_next=5, fail_kind="server_error")
    with pytest.raises(SalesforceUnavailable):
        sf_client.query("SELECT Id FROM Lead")
    assert sf_org.state.stats()["api_requests"]["query"] == 3


def test_the_limit_is_not_retried_in_process(sf_org: SandboxOrg, sf_client: SalesforceClient) -> None:
    sf_org.state.set_faults(fail_next=5, fail_kind="limit")
    with pytest.raises(SalesforceLimitExceeded):
        sf_client.query("SELECT Id FROM Lead")
    assert sf_org.state.stats()["api_requests"]["query"] == 1
    assert sf_client.api_usage == (1, 100000)


def test_writes_are_never_retried_in_process(
    sf_org: SandboxOrg, sf_client: SalesforceClient, call_task: dict[str, Any]
) -> None:
    sf_org.state.set_faults(fail_next=1, fail_kind="server_unavailable")
    with pytest.raises(SalesforceUnavailable):
        sf_client.create("Task", call_task)
    assert sf_org.state.stats()["api_requests"]["sobject"] == 1
    assert sf_org.state.records("Task") == []


def test_reply_lost_after_commit_is_unavailable_and_the_retry_updates(
    sf_org: SandboxOrg, sf_client: SalesforceClient, call_task: dict[str, Any]
) -> None:
    sf_org.state.set_faults(fail_next=1, fail_kind="drop_after_commit")
    with pytest.raises(SalesforceUnavailable) as caught:
        sf_client.upsert("Task", EXT, "call-lost", call_task)
    assert caught.value.code == "CONNECTION_ERROR"
    retry = {k: v for k, v in call_task.items() if k != "TaskSubtype"}
    assert sf_client.upsert("Task", EXT, "call-lost", retry).created is False
    assert len([t for t in sf_org.state.records("Task") if t[EXT] == "call-lost"]) == 1


def test_slow_reply_times_out_as_unavailable(sf_org: SandboxOrg) -> None:
    client = sf_org.client(settings=sf_org.settings(salesforce_timeout=0.2), read_attempts=1)
    client.limits()
    sf_org.state.set_faults(latency_ms=500)
    with pytest.raises(SalesforceUnavailable) as caught:
        client.limits()
    assert caught.value.code == "TIMEOUT"


# --- composite and collections --------------------------------------------------------------------------


def test_composite_returns_sub_results_and_composite_error_finds_the_cause(
    sf_client: SalesforceClient, call_task: dict[str, Any]
) -> None:
    subrequests = [
        {"method": "PATCH", "url": f"{V}/sobjects/Task/{EXT}/call-c1", "referenceId": "task", "body": call_task},
        {
            "method": "PATCH",
            "url": f"{V}/sobjects/Lead/{call_task['WhoId']}",
            "referenceId": "lead",
            "body": {"Status": "Qualified"},
        },
    ]
    results = sf_client.composite(subrequests, all_or_none=True)
    assert [r["httpStatusCode"] for r in results] == [400, 400]
    error = composite_error(results)
    assert isinstance(error, SalesforceRejected)
    assert (error.code, error.details["referenceId"]) == ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "lead")
    ok = sf_client.composite(subrequests[:1], all_or_none=True)
    assert composite_error(ok) is None
    assert ok[0]["body"]["created"] is True


def test_collections(sf_client: SalesforceClient, call_task: dict[str, Any]) -> None:
    created = sf_client.collection_create("Task", [call_task, {**call_task, "Priority": "Urgent"}], all_or_none=False)
    assert [r["success"] for r in created] == [True, False]
    updated = sf_client.collection_update("Task", [{"Id": created[0]["id"], "Priority": "High"}], all_or_none=True)
    assert updated == [{"id": created[0]["id"], "success": True, "errors": []}]
    upserted = sf_client.collection_upsert("Task", EXT, [{**call_task, EXT: "call-u1"}], all_or_none=True)
    assert upserted[0]["created"] is True
    with pytest.raises(ValueError, match="at most 200"):
        sf_client.collection_create("Task", [call_task] * 201, all_or_none=True)


def test_upsert_before_api_46_reports_update_without_id(sf_org: SandboxOrg, call_task: dict[str, Any]) -> None:
    client = sf_org.client(settings=sf_org.settings(salesforce_api_version="45.0"))
    created = client.upsert("Task", EXT, "call-old", call_task)
    assert created.created is True and created.id
    call_task.pop("TaskSubtype")
    assert client.upsert("Task", EXT, "call-old", call_task) == UpsertResult(None, False)


def test_verify_false_is_refused(sf_org: SandboxOrg) -> None:
    http = requests.Session()
    http.verify = False
    with pytest.raises(ValueError, match="verification"):
        SalesforceClient(sf_org.settings(), http=http)


# --- pure sorting ---------------------------------------------------------------------------------------

HALTED = {
    "errorCode": "PROCESSING_HALTED",
    "message": "The transaction was rolled back since another operation in the same transaction failed.",
}


@pytest.mark.parametrize(
    ("items", "status", "family", "code"),
    [
        (
            [{"errorCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access"}],
            400,
            SalesforceUnavailable,
            "UNABLE_TO_LOCK_ROW",
        ),
        (
            [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "x", "fields": []}],
            200,
            SalesforceUnavailable,
            "UNABLE_TO_LOCK_ROW",
        ),
        (
            [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}],
            403,
            SalesforceLimitExceeded,
            "REQUEST_LIMIT_EXCEEDED",
        ),
        ([{"errorCode": "INSUFFICIENT_ACCESS", "message": "no"}], 403, SalesforceRejected, "INSUFFICIENT_ACCESS"),
        (
            [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}],
            401,
            SalesforceSessionExpired,
            "INVALID_SESSION_ID",
        ),
        ([{"errorCode": "SOMETHING_NEW", "message": "?"}], 502, SalesforceUnavailable, "SOMETHING_NEW"),
        (
            [
                HALTED,
                {
                    "errorCode": "REQUIRED_FIELD_MISSING",
                    "message": "Required fields are missing: [LastName]",
                    "fields": ["LastName"],
                },
            ],
            400,
            SalesforceRejected,
            "REQUIRED_FIELD_MISSING",
        ),
        ([HALTED], 400, SalesforceRejected, "PROCESSING_HALTED"),
        (
            ["/services/data/v62.0/sobjects/Task/00T1", "/services/data/v62.0/sobjects/Task/00T2"],
            300,
            SalesforceRejected,
            "MULTIPLE_CHOICES",
        ),
        ([], 503, SalesforceUnavailable, "HTTP_503"),
    ],
    ids=[
        "lock-400",
        "lock-collection",
        "limit",
        "forbidden",
        "session",
        "unknown-5xx",
        "skip-halted",
        "only-halted",
        "300",
        "empty-503",
    ],
)
def test_classify_errors(items: list[Any], status: int, family: type[SyncError], code: str) -> None:
    error = classify_errors(copy.deepcopy(items), status)
    assert type(error) is family
    assert error.code == code


def test_classify_errors_collects_fields_and_masks_numbers() -> None:
    error = classify_errors(
        [
            {
                "errorCode": "STRING_TOO_LONG",
                "message": "Phone: data value too large: +91 99999 99999 ext 12345678",
                "fields": ["Phone"],
            }
        ],
        400,
    )
    assert error.details["fields"] == ["Phone"]
    assert "99999 99999" not in error.message
    assert "••••9999 ext 12345678" in error.message  # the one masker: last 4 digits; 8 digits are no phone


def test_is_retryable_code() -> None:
    assert [is_retryable_code(c) for c in ("UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED", "INVALID_FIELD", None)] == [
        True,
        True,
        False,
        False,
    ]
