"""The one backoff (``worker.retry``) and the stale-Lead rule the two sync paths share, without servers."""

from __future__ import annotations

import time

import pytest

from worker import retry
from worker.errors import InternalError, SalesforceRejected, SalesforceUnavailable, Stage, internal_errors
from worker.sync.core import is_stale_target


def test_backoff_doubles_up_to_the_cap_jittered_in_its_upper_half() -> None:
    for attempt, full in ((1, 10.0), (2, 20.0), (3, 40.0), (7, 600.0), (500, 600.0)):
        waits = [retry.backoff(attempt, base=10, cap=600) for _ in range(200)]
        assert all(full / 2 <= w <= full for w in waits)
        assert max(waits) - min(waits) > full / 10  # jittered, not one value


def test_backoff_retry_after_is_a_floor_still_capped() -> None:
    assert retry.backoff(1, base=10, cap=900, retry_after=120, jitter=0) == 120
    assert retry.backoff(5, base=10, cap=900, retry_after=1, jitter=0) == 160
    assert retry.backoff(1, base=10, cap=900, retry_after=5000) == 900


def test_backoff_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        retry.backoff(0, base=1, cap=2)
    with pytest.raises(ValueError):
        retry.backoff(1, base=1, cap=2, jitter=1.5)


def test_the_tests_switch_skips_sleeps_and_restores() -> None:
    started = time.monotonic()
    with retry.testing(wait=False):
        retry.sleep(5)
    assert time.monotonic() - started < 1
    with retry.testing(wait=True):
        started = time.monotonic()
        retry.sleep(0.05)
        assert time.monotonic() - started >= 0.05


def test_412_precondition_failed_is_a_stale_lead() -> None:
    refused = SalesforceRejected("changed", code="PRECONDITION_FAILED", http_status=412)
    assert is_stale_target(refused)
    assert is_stale_target(SalesforceRejected("modified", code="SOMETHING_NEW", http_status=412))
    assert is_stale_target(SalesforceRejected("converted", code="CANNOT_UPDATE_CONVERTED_LEAD", http_status=400))
    assert not is_stale_target(SalesforceRejected("rule", code="FIELD_CUSTOM_VALIDATION_EXCEPTION", http_status=400))
    assert not is_stale_target(SalesforceUnavailable("down", code="SERVER_UNAVAILABLE", http_status=503))


def test_an_unsorted_exception_becomes_an_internal_error_at_its_stage() -> None:
    with pytest.raises(InternalError) as caught, internal_errors(Stage.FETCH):
        raise KeyError("call")
    assert (caught.value.stage, caught.value.code, caught.value.retryable) == (Stage.FETCH, "INTERNAL", False)
    sorted_error = SalesforceUnavailable("down")
    with pytest.raises(SalesforceUnavailable) as passed, internal_errors(Stage.WRITE):
        raise sorted_error
    assert passed.value is sorted_error
