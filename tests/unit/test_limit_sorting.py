"""Sorting what Salesforce and Twenty2 answer when they mean "not now": pure functions, no server."""

from __future__ import annotations

import pytest
import requests

from worker.errors import SalesforceLimitExceeded, SalesforceUnavailable
from worker.salesforce.budget import daily_requests
from worker.salesforce.client import classify_errors
from worker.twenty2.answers import garbled_body


def limit_error(message: str) -> list[dict[str, str]]:
    return [{"message": message, "errorCode": "REQUEST_LIMIT_EXCEEDED"}]


@pytest.mark.parametrize(
    ("message", "family", "limit"),
    [
        ("TotalRequests Limit exceeded.", SalesforceLimitExceeded, "TotalRequests"),
        ("ConcurrentPerOrgLongTxn Limit exceeded.", SalesforceUnavailable, "ConcurrentPerOrgLongTxn"),
        ("ConcurrentRequests (Concurrent API Requests) Limit exceeded.", SalesforceUnavailable, "ConcurrentRequests"),
        ("ConcurrentPerOrgShortTxn Limit exceeded.", SalesforceUnavailable, "ConcurrentPerOrgShortTxn"),
        ("SomeFutureLimit Limit exceeded.", SalesforceLimitExceeded, "SomeFutureLimit"),
        ("", SalesforceLimitExceeded, ""),
    ],
)
def test_request_limit_exceeded_is_sorted_by_the_limit_its_message_names(
    message: str, family: type, limit: str
) -> None:
    error = classify_errors(limit_error(message), 403)
    assert type(error) is family and error.retryable
    assert error.code == "REQUEST_LIMIT_EXCEEDED" and error.details["limit"] == limit


def test_the_daily_limit_holds_and_the_concurrent_one_is_retried_like_a_lock() -> None:
    lock = classify_errors([{"message": "unable to obtain exclusive access", "errorCode": "UNABLE_TO_LOCK_ROW"}], 400)
    concurrent = classify_errors(limit_error("ConcurrentPerOrgLongTxn Limit exceeded."), 403)
    daily = classify_errors(limit_error("TotalRequests Limit exceeded."), 403)
    assert type(concurrent) is type(lock) is SalesforceUnavailable
    assert isinstance(daily, SalesforceLimitExceeded) and not isinstance(daily, SalesforceUnavailable)


@pytest.mark.parametrize(
    ("limits", "reading"),
    [
        ({"DailyApiRequests": {"Max": 15000, "Remaining": 14998}}, (2, 15000)),
        ({"DailyApiRequests": {"Remaining": "4980", "Max": "5000"}}, (20, 5000)),  # older API versions: strings
        ({"DailyApiRequests": {"Max": 10, "Remaining": 0}}, (10, 10)),
        ({"DailyApiRequests": {"Max": 10}}, None),
        ({"DataStorageMB": {"Max": 5, "Remaining": 5}}, None),
        ({"DailyApiRequests": "n/a"}, None),
    ],
)
def test_the_limits_resource_reads_as_used_of_max(limits: dict, reading: tuple[int, int] | None) -> None:
    assert daily_requests(limits) == reading


def response(body: bytes, content_type: str | None) -> requests.Response:
    answer = requests.Response()
    answer.status_code, answer._content = 200, body
    if content_type:
        answer.headers["Content-Type"] = content_type
    return answer


@pytest.mark.parametrize(
    ("body", "content_type", "says"),
    [
        (b'{"success": true, "call": {"id": "call_9c4d', "application/json", "application/json, 43 bytes: cut off"),
        (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html", "text/html, 50 bytes: an HTML page"),
        (b"<!DOCTYPE html><html>Maintenance</html>", "application/json", "an HTML page"),
        (b"", None, "no content type, 0 bytes: empty"),
        (b"\x1f\x8b\x08garbage", "application/json", "garbled"),
    ],
)
def test_a_garbled_body_is_described_without_its_text(body: bytes, content_type: str | None, says: str) -> None:
    described = garbled_body(body, response(body, content_type))
    assert says in described and "Gateway" not in described and "call_9c4d" not in described
