"""Console actions in Chromium: sort by time, replay the selected calls, replay all that match a filter,
purge old failures; each recorded with who did it."""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import expect
from support.ops_console import Console, sign_in

from worker.errors import SalesforceUnavailable
from worker.ledger import State
from worker.ops.jobs import actions


def test_sort_replay_selected_and_all_matching(console: Console, browser_context: Any) -> None:
    page = browser_context.new_page()
    sign_in(page, console, who="bob")
    page.goto(f"{console.url}/ops/calls")
    newest_first = page.locator("#calls tbody tr[data-call]").evaluate_all("rows => rows.map(r => r.dataset.call)")
    assert newest_first[0] == "call_queuedonly01"
    page.click("#sort-time")
    page.wait_for_url("**order=old**")
    oldest_first = page.locator("#calls tbody tr[data-call]").evaluate_all("rows => rows.map(r => r.dataset.call)")
    assert oldest_first == list(reversed(newest_first))

    # Replay two selected calls (the synced one and the failed one).
    for call_id in (console.synced, console.failed):
        page.check(f"input[name=call_id][value='{call_id}']")
    page.click("#replay-selected button[type=submit]")
    page.wait_for_selector("#confirm")
    assert "Replay 2 calls?" in page.inner_text("h1")
    page.click("#confirm")
    page.wait_for_selector("[data-status=done]", timeout=30_000)
    assert page.inner_text("[data-outcome=synced]") == "2"
    assert all(
        h.get("who") == "bob" for h in console.runtime.ledger.history(console.failed) if h["event"] == "ops_replay"
    )

    # All matching a filter: the failed ones (one: failed again, as after a Salesforce outage).
    ledger = console.runtime.ledger
    ledger.accept(console.failed, source="webhook", force=True)
    ledger.start(console.failed)
    ledger.failed(console.failed, error=SalesforceUnavailable("Salesforce down", code="SERVER_UNAVAILABLE"))
    page.goto(f"{console.url}/ops/calls?state=failed")
    assert page.inner_text("[data-metric=total]") == "1"
    page.click("#replay-all button[type=submit]")
    page.wait_for_selector("#confirm")
    assert "Replay 1 call?" in page.inner_text("h1") and console.failed in page.inner_text(".card")
    page.click("#confirm")
    page.wait_for_selector("[data-status=done]", timeout=30_000)
    record = console.runtime.ledger.get(console.failed)
    assert record is not None and record.state is State.SYNCED
    logged = [a for a in actions(console.runtime) if a["what"].startswith("replay")]
    assert [a["who"] for a in logged] == ["bob", "bob"] and logged[0]["what"] == "replay all matching state=failed"


def test_purge_old_failures(console: Console, browser_context: Any) -> None:
    ledger = console.runtime.ledger
    ledger.r.zadd(ledger.state_key(State.FAILED), {console.failed: time.time() - 40 * 86400})  # failed 40 days ago
    page = browser_context.new_page()
    sign_in(page, console)
    page.fill("input[name=days]", "30")
    page.click("form[action='/ops/purge'] button")
    page.wait_for_selector("#confirm")
    assert "Purge 1 failed call?" in page.inner_text("h1")
    page.click("#confirm")
    assert "Purged 1 failed calls older than 30 days." in page.inner_text("[role=status]")
    assert ledger.get(console.failed) is None and ledger.get(console.synced) is not None
    [purge] = [a for a in actions(console.runtime) if a["what"] == "purge failures"]
    assert purge["who"] == "alice" and purge["removed"] == 1


def test_overview_refreshes_itself_and_health_runs_the_doctor(console: Console, browser_context: Any) -> None:
    page = browser_context.new_page()
    sign_in(page, console)
    assert page.inner_text("[data-count=synced]") == "1"
    ledger = console.runtime.ledger
    ledger.start("call_queuedonly01")
    ledger.synced("call_queuedonly01", salesforce_ids={}, summary="")
    # No reload: ops.js fetches the overview fragment every 5 s (a string-eval wait would break the page's CSP).
    expect(page.locator("[data-count=synced]")).to_have_text("2", timeout=12_000)
    assert page.inner_text("[data-count=queued]") == "0"

    page.goto(f"{console.url}/ops/health")
    rows = page.locator("#checks tbody tr")
    results = {
        rows.nth(i).get_attribute("data-check"): rows.nth(i).locator("td").nth(1).inner_text()
        for i in range(rows.count())
    }
    assert results["Twenty2 credentials"] == "ok" and results["Task external-id field Twenty2_Call_Id__c"] == "ok"
    assert set(results.values()) == {"ok"}, results
