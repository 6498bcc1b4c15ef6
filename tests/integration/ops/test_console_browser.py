"""The console in a real Chromium: sign in, overview figures equal the ledger's, filter the calls, open the
failed call, read its error and replay preview, replay it and find it synced in the Salesforce stand-in;
sign-in and CSRF refusals; the phone-width layout. Screenshots: docs/screenshots/ when CRM_SYNC_UPDATE_SCREENSHOTS=1."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from support.ops_console import TOKENS, Console, login_form, post_sign_in, sign_in

from worker.ledger import State

#: The README's screenshots are refreshed only when asked (``CRM_SYNC_UPDATE_SCREENSHOTS=1 pytest …``), so a
#: test run leaves the working tree clean; otherwise they go to the test's temporary directory.
README_SHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return README_SHOTS if os.environ.get("CRM_SYNC_UPDATE_SCREENSHOTS") == "1" else tmp_path


def test_sign_in_overview_filter_preview_replay(console: Console, browser_context: Any, shots: Path) -> None:
    page = browser_context.new_page()
    sign_in(page, console)
    cookie = next(c for c in browser_context.cookies() if c["name"] == "crm_sync_ops")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert TOKENS["alice"] not in cookie["value"]

    counts = console.runtime.ledger.counts()
    assert counts["synced"] == 1 and counts["failed"] == 1 and counts["queued"] == 1
    for state in State:
        assert page.inner_text(f"[data-count={state.value}]") == str(counts[state.value])
    assert page.inner_text("[data-metric=syncs-per-minute]") == "1"
    usage = console.runtime.budget.last()
    assert usage is not None and page.inner_text("[data-metric=sf-used]") == f"{usage.used} / {usage.maximum}"
    assert page.inner_text("[data-metric=queue-depth]") == "0"  # the queued call was accepted, never enqueued
    bars = page.locator("svg[role=img] rect")
    titles = [bars.nth(i).text_content() for i in range(bars.count())]
    hour = datetime.now(UTC).strftime("%H:00")
    assert sorted(titles) == [f"{hour} UTC: 1 {s}" for s in ("failed", "queued", "synced")]  # this hour's bar
    page.screenshot(path=str(shots / "overview.png"), full_page=True)

    # Filter: failed calls with the validation error's code, then the number's last four digits.
    page.goto(f"{console.url}/ops/calls")
    page.select_option("select[name=state]", "failed")
    page.fill("input[name=code]", "FIELD_CUSTOM_VALIDATION_EXCEPTION")
    page.click("#filters button[type=submit]")
    page.wait_for_selector("[data-metric=total]")
    assert page.inner_text("[data-metric=total]") == "1"
    assert page.locator("#calls tbody tr[data-call]").count() == 1
    page.fill("input[name=code]", "")
    page.select_option("select[name=state]", "")
    page.fill("input[name=q]", console.failed_phone[-4:])
    page.click("#filters button[type=submit]")
    page.wait_for_selector("[data-metric=total]")
    assert page.inner_text("[data-metric=total]") == "1"
    row = page.locator("#calls tbody tr[data-call]")
    assert row.get_attribute("data-call") == console.failed
    assert console.failed_phone[-10:] not in page.content()  # masked: ••••3210
    assert row.locator("td[data-label=number]").inner_text() == "••••" + console.failed_phone[-4:]

    # One call: the error with stage and errorCode, and the dry-run preview.
    row.locator("a").first.click()
    page.wait_for_url(f"**/ops/calls/{console.failed}")
    assert page.inner_text("[data-field=stage]") == "write"
    assert page.inner_text("[data-field=code]") == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    page.wait_for_selector("[data-preview=ok]", timeout=20_000)
    rating = page.locator("#changes tr[data-field=Rating] td")
    assert [rating.nth(i).inner_text() for i in range(4)] == ["Rating", "Warm", "Hot", "change"]
    writes = page.inner_text("#writes")
    assert "upsert Task" in writes and console.failed in writes
    page.screenshot(path=str(shots / "call.png"), full_page=True)
    tasks_before = console.boxes.tasks_for(console.failed)
    assert tasks_before == []  # the preview wrote nothing

    # Replay: confirm the count, follow the progress, find it synced.
    page.click("#replay")
    page.wait_for_selector("#confirm")
    assert "Replay 1 call?" in page.inner_text("h1")
    page.click("#confirm")
    page.wait_for_url("**/ops/jobs/*")
    page.wait_for_selector("[data-status=done]", timeout=30_000)
    assert page.inner_text("[data-outcome=synced]") == "1"
    record = console.runtime.ledger.get(console.failed)
    assert record is not None and record.state is State.SYNCED
    [task] = [t for t in console.boxes.tasks_for(console.failed) if t["Twenty2_Call_Id__c"] == console.failed]
    assert record.salesforce_ids["callTask"] == task["Id"]
    history = console.runtime.ledger.history(console.failed)
    assert any(h.get("event") == "ops_replay" and h.get("who") == "alice" for h in history)

    # The call page now links its Salesforce records into the org.
    page.goto(f"{console.url}/ops/calls/{console.failed}")
    link = page.locator(f"a[href$='/{task['Id']}']")
    assert link.get_attribute("href") == f"{console.boxes.salesforce_url}/{task['Id']}"
    assert "alice" in page.inner_text("#history")


def test_wrong_token_and_missing_csrf_are_refused(console: Console, browser_context: Any) -> None:
    page = browser_context.new_page()
    page.goto(f"{console.url}/ops/login")
    page.fill("#token", "not-a-token")
    page.click("button[type=submit]")
    assert "not valid" in page.inner_text("[role=alert]")
    assert not [c for c in browser_context.cookies() if c["name"] == "crm_sync_ops"]

    sign_in(page, console)
    cookie = next(c for c in browser_context.cookies() if c["name"] == "crm_sync_ops")
    # A POST with the session but without its CSRF token (another site's form would look like this).
    answer = requests.post(
        f"{console.url}/ops/replay",
        data={"mode": "selected", "call_id": console.failed, "confirm": "1"},
        cookies={"crm_sync_ops": cookie["value"]},
        timeout=10,
        allow_redirects=False,
    )
    assert answer.status_code == 403 and "CSRF" in answer.text
    wrong = requests.post(
        f"{console.url}/ops/replay",
        data={"mode": "selected", "call_id": console.failed, "confirm": "1", "csrf": "guessed"},
        cookies={"crm_sync_ops": cookie["value"]},
        timeout=10,
        allow_redirects=False,
    )
    assert wrong.status_code == 403
    no_session = requests.post(f"{console.url}/ops/purge", data={"days": "1"}, timeout=10, allow_redirects=False)
    assert no_session.status_code == 403
    record = console.runtime.ledger.get(console.failed)
    assert record is not None and record.state is State.FAILED  # nothing was replayed
    assert requests.get(f"{console.url}/ops/calls", timeout=10, allow_redirects=False).status_code == 303


def test_guessing_tokens_is_throttled(console: Console) -> None:
    statuses = [post_sign_in(console.url, f"guess-{n}").status_code for n in range(11)]
    assert statuses[:10] == [401] * 10 and statuses[-1] == 429  # 10 attempts a minute per address
    assert post_sign_in(console.url, TOKENS["bob"]).status_code == 429  # the limit is per address, not per guess


def test_sign_in_needs_the_forms_csrf_pair(console: Console) -> None:
    bare = requests.post(f"{console.url}/ops/login", data={"token": TOKENS["bob"]}, timeout=10, allow_redirects=False)
    assert bare.status_code == 403 and "crm_sync_ops" not in bare.cookies
    cookies, csrf = login_form(console.url)
    wrong = requests.post(
        f"{console.url}/ops/login", data={"token": TOKENS["bob"], "csrf": csrf + "x"}, cookies=cookies, timeout=10
    )
    assert wrong.status_code == 403
    right = post_sign_in(console.url, TOKENS["bob"])
    assert right.status_code == 303 and right.cookies["crm_sync_ops"]


def test_phone_width_layout(console: Console, browser_context: Any, shots: Path) -> None:
    page = browser_context.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, console)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the overview scrolls sideways at phone width ({width}px)"
    page.goto(f"{console.url}/ops/calls?state=failed")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the calls table scrolls sideways at phone width ({width}px)"
    assert page.locator("#calls thead").is_hidden()  # rows become labelled cards
    page.goto(f"{console.url}/ops/calls/{console.failed}")
    page.wait_for_selector("[data-preview=ok]", timeout=20_000)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the call page scrolls sideways at phone width ({width}px)"
    page.goto(f"{console.url}/ops/calls?state=failed")
    page.screenshot(path=str(shots / "calls-phone.png"), full_page=True)
