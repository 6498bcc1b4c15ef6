"""The console's Callbacks page in a real Chromium: the overview's scheduled count, the due list, and a
cancel (a POST with the session's CSRF token) recorded in the source call's ledger history with the token's label."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from support.ops_console import Console, sign_in

from worker.autocall.store import CbState


def schedule(console: Console, source: str, phone: str, due: datetime) -> str:
    store = console.runtime.callbacks
    fields = {"source_call_id": source, "lead_id": "00Q5g0000000148EAA", "task_id": "00T5g0000000001AAA",
              "agent_id": "69de483c68b23495c853b43a", "caller_phone": "9999999999", "attempts": 2}  # fmt: skip
    assert store.schedule(f"cb_{source}", now=datetime.now(UTC), due=due, phone=phone, inputs={}, **fields)
    return f"cb_{source}"


def test_callbacks_page_lists_due_and_cancels(console: Console, browser_context: Any, tmp_path: Path) -> None:
    soon = datetime.now(UTC) + timedelta(hours=3)
    first = schedule(console, console.synced, "9811122233", soon)
    second = schedule(console, "call_othersource1", "9811144455", soon + timedelta(hours=1))
    page = browser_context.new_page()
    sign_in(page, console)
    assert page.inner_text("[data-metric=callbacks-scheduled]") == "2"
    page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)

    page.click("header a[href='/ops/callbacks']")
    page.wait_for_selector("#callbacks")
    rows = page.locator("#callbacks tbody tr[data-callback]")
    assert [rows.nth(i).get_attribute("data-callback") for i in range(rows.count())] == [first, second]
    assert page.inner_text(f"tr[data-callback={first}] td[data-label=number]") == "••••2233"
    assert "9811122233" not in page.content()
    page.screenshot(path=str(tmp_path / "callbacks.png"), full_page=True)

    page.check(f"tr[data-callback={first}] input[name=callback]")
    page.click("#cancel-selected")
    page.wait_for_selector("text=Cancelled 1 automatic callbacks")
    cb = console.runtime.callbacks.get(first)
    assert (
        cb is not None and cb.state is CbState.CANCELLED and cb.reason == "ops_cancelled" and "alice" in cb.reason_text
    )
    assert console.runtime.callbacks.get(second).state is CbState.SCHEDULED  # type: ignore[union-attr]
    events = [e for e in console.runtime.ledger.history(console.synced) if e.get("event") == "callback"]
    assert events[-1]["state"] == "cancelled" and events[-1]["by"] == "alice"

    page.goto(f"{console.url}/ops/calls/{console.synced}")
    assert page.inner_text("[data-field=callback]").startswith("cancelled")
    page.goto(f"{console.url}/ops/callbacks?state=cancelled")
    assert page.locator("#callbacks tbody tr[data-callback]").count() == 1
    assert page.locator("#cancel-selected").is_disabled()  # nothing on this list can still be cancelled
    page.screenshot(path=str(tmp_path / "callbacks-cancelled.png"), full_page=True)


def test_cancel_without_csrf_is_refused(console: Console, browser_context: Any) -> None:
    target = schedule(console, console.synced, "9811122233", datetime.now(UTC) + timedelta(hours=1))
    page = browser_context.new_page()
    sign_in(page, console)
    cookies = {c["name"]: c["value"] for c in browser_context.cookies()}
    session = requests.Session()
    for name, value in cookies.items():
        session.cookies.set(name, value, domain="127.0.0.1", path="/ops")
    answer = session.post(f"{console.url}/ops/callbacks/cancel", data={"callback": target, "csrf": "wrong"})
    assert answer.status_code == 403
    assert console.runtime.callbacks.get(target).state is CbState.SCHEDULED  # type: ignore[union-attr]
