"""Alerts against a local HTTP receiver (a Slack-compatible incoming webhook): one message per event, a
threshold or the reserve; rate-limited through Redis, never a flood, nothing lost when the receiver fails."""

from __future__ import annotations

import time
from typing import Any

from support.lost_reply import lost_reply_proxy
from support.ops_console import Receiver

from worker.alerts import Alerter, check
from worker.errors import PermanentError, SalesforceUnavailable
from worker.runtime import Runtime
from worker.settings import Settings


def runtime(redis_url: str, receiver: Receiver, **overrides: Any) -> Runtime:
    values: dict[str, Any] = {"redis_url": redis_url, "crm_sync_alert_webhook_url": receiver.url, **overrides}
    return Runtime(Settings(_env_file=None, **values))


def fail(rt: Runtime, call_id: str, error: Exception) -> None:
    rt.ledger.accept(call_id, source="webhook")
    rt.ledger.start(call_id)
    assert isinstance(error, PermanentError | SalesforceUnavailable)
    rt.ledger.failed(call_id, error=error)


def test_a_permanent_failure_sends_one_message(redis_url: str, receiver: Receiver) -> None:
    rt = runtime(redis_url, receiver)
    fail(
        rt,
        "call_alertperm001",
        PermanentError("Salesforce FIELD_CUSTOM_VALIDATION_EXCEPTION: no", code="FIELD_CUSTOM_VALIDATION_EXCEPTION"),
    )
    assert check(rt) == ["call_failed"]
    [message] = receiver.messages
    assert set(message) == {"text"}
    assert "call_alertperm001 failed (permanent error)" in message["text"]
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in message["text"]
    assert check(rt) == [] and len(receiver.messages) == 1  # looked at once


def test_an_alert_whose_window_answer_was_lost_is_still_sent(redis_url: str, receiver: Receiver) -> None:
    # The take of the window ran, its answer was lost and the client resent it: the resend must get the
    # lines it took, not "window taken" with the lines gone (worker.once).
    with lost_reply_proxy(redis_url) as proxy:
        rt = runtime(proxy.url, receiver)
        fail(rt, "call_alertlost001", PermanentError("Salesforce INVALID_FIELD: no", code="INVALID_FIELD"))
        proxy.lose_next_reply(b"crm-sync:alerts:window:call_failed")
        assert check(rt) == ["call_failed"]
        assert proxy.lost == 1
    [message] = receiver.texts
    assert "call_alertlost001 failed (permanent error)" in message


def test_a_burst_of_failures_is_one_message_then_the_rest_after_the_window(redis_url: str, receiver: Receiver) -> None:
    rt = runtime(redis_url, receiver, crm_sync_alert_repeat_minutes=2 / 60, crm_sync_alert_retryable_threshold=100)
    for n in range(30):
        fail(rt, f"call_alertburst{n:03d}", SalesforceUnavailable("Salesforce down", code="SERVER_UNAVAILABLE"))
    assert check(rt) == ["call_failed"]
    [first] = receiver.texts
    assert first.count("[crm-sync] call call_alertburst") == 10 and first.endswith("… and 20 more")
    assert "(retries exhausted)" in first
    fail(rt, "call_alertlater01", PermanentError("bad", code="INVALID_FIELD"))
    assert check(rt) == [] and len(receiver.messages) == 1  # within the window: waits
    time.sleep(2.1)
    assert check(rt) == ["call_failed"]
    assert "call_alertlater01" in receiver.texts[1] and len(receiver.messages) == 2


def test_retryable_failures_over_the_threshold_alert_once_per_window(redis_url: str, receiver: Receiver) -> None:
    rt = runtime(redis_url, receiver, crm_sync_alert_retryable_threshold=3)
    for n in range(3):
        rt.ledger.accept(f"call_alertretry{n:02d}", source="webhook")
        rt.ledger.retry_later(f"call_alertretry{n:02d}", error=SalesforceUnavailable("x"), due_at=time.time() + 60)
    assert check(rt) == []  # 3 is not over 3
    rt.ledger.retry_later("call_alertretry00", error=SalesforceUnavailable("x"), due_at=time.time() + 60)
    assert check(rt) == ["retryable_failures"]
    assert "4 retryable failures in the last 15 minutes (threshold 3)" in receiver.texts[0]
    rt.ledger.retry_later("call_alertretry01", error=SalesforceUnavailable("x"), due_at=time.time() + 60)
    assert check(rt) == [] and len(receiver.messages) == 1


def test_the_allowance_at_the_reserve_alerts(redis_url: str, receiver: Receiver) -> None:
    rt = runtime(redis_url, receiver, crm_sync_api_reserve=0.10)
    rt.budget.observe((85_000, 100_000), time.time())
    assert check(rt) == []
    rt.budget.observe((90_500, 100_000), time.time() + 1)
    assert check(rt) == ["api_reserve"]
    assert "9500 of 100000 left (reserve 10%)" in receiver.texts[0]
    assert check(rt) == []


def test_notify_for_other_modules_and_a_failing_receiver_loses_nothing(redis_url: str, receiver: Receiver) -> None:
    rt = runtime(redis_url, receiver)
    alerter = Alerter(rt.settings, rt.redis)
    receiver.fail_next = 1
    assert not alerter.notify("audit_missing", "3 calls missing in Salesforce", calls=3)
    assert receiver.messages == []
    assert alerter.flush("audit_missing")  # the window was freed: the next look sends it
    assert receiver.texts == ["[crm-sync] 3 calls missing in Salesforce calls=3"]


def test_no_url_no_alerts(redis_url: str) -> None:
    rt = Runtime(Settings(_env_file=None, redis_url=redis_url))
    fail(rt, "call_alertnourl01", PermanentError("bad"))
    assert check(rt) == []
