"""The ops console served by the real intake app (uvicorn, loopback HTTP) over both stand-ins and a private
Redis, with a ledger holding calls in every outcome, and a real Chromium (Debian's, driven by playwright).

- ``console``: the running app (``url``), its ``runtime`` and the stand-ins; tokens ``alice`` and ``bob``;
- ``browser_context``: a fresh Chromium profile per test (no browser download: ``/usr/bin/chromium``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from worker.intake.app import create_app
from worker.pipeline import Services
from worker.ratelimit import SharedRateLimit
from worker.runtime import Runtime
from worker.sandbox.local import SEED_CALL, Sandboxes
from worker.sandbox.serve import free_port
from worker.tasks import sync_and_record
from worker.twenty2.client import RetryPolicy, Twenty2Client

TOKENS = {"alice": "alice-token-0123456789", "bob": "bob-token-9876543210"}
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: A Lead validation rule the org had while the call was synced: its sync failed for it.
HOT_RULE = {"sobject": "Lead", "field": "Rating", "equals": "Hot", "message": "Hot leads need a manager's approval"}


@dataclass
class Console:
    url: str
    runtime: Runtime
    boxes: Sandboxes
    synced: str
    failed: str
    failed_phone: str


def make_runtime(boxes: Sandboxes, redis_url: str, **overrides: object) -> Runtime:
    boxes.twenty2.configure(rate_limit_per_minute=None)
    values = {
        "redis_url": redis_url,
        "twenty2_rate_limit_per_minute": 60,
        "crm_sync_ops_token": ",".join(f"{k}:{v}" for k, v in TOKENS.items()),
        **overrides,
    }
    settings = boxes.settings(**values)
    # Twenty2 requests go through the shared limiter, as in the workers (the console shows its window).
    limit = SharedRateLimit(
        settings.redis_url,
        key=f"twenty2:{settings.twenty2_workspace_id}",
        per_minute=settings.twenty2_rate_limit_per_minute,
    )
    twenty2 = Twenty2Client(settings, retry=RetryPolicy.instant(), before_request=limit.acquire)
    services = Services.from_settings(settings, twenty2=twenty2)
    return Runtime(settings, _services=services)


@pytest.fixture
def console(boxes: Sandboxes, redis_url: str) -> Iterator[Console]:
    rt = make_runtime(boxes, redis_url)
    rt.ledger.accept(SEED_CALL, source="webhook")
    assert sync_and_record(rt, SEED_CALL) == "synced"
    # A call to a demo Lead (Warm) saying "interested": its sync met a validation rule since removed.
    lead = boxes.salesforce.get(boxes.salesforce.demo_ids["arjun"]) or {}
    phone = str(lead.get("Phone") or lead.get("MobilePhone"))
    failed = boxes.twenty2.add_call(callee_phone=phone, output_parameters={"interested": "yes"})
    rt.ledger.accept(failed, source="webhook")
    boxes.salesforce.set_faults(validation_rules=[HOT_RULE])
    outcome = sync_and_record(rt, failed)
    boxes.salesforce.set_faults(validation_rules=[])
    rt.ledger.accept("call_queuedonly01", source="webhook")
    port = free_port()
    config = uvicorn.Config(create_app(rt), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "console did not start"
        time.sleep(0.02)
    assert outcome == "failed", rt.ledger.get(failed)
    try:
        yield Console(f"http://127.0.0.1:{port}", rt, boxes, SEED_CALL, failed, phone)
    finally:
        server.should_exit = True
        server.force_exit = True
        thread.join(timeout=10)


@pytest.fixture
def browser_context(tmp_path: Path) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "scripts/test installs Debian's chromium"
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 800},
        )
        try:
            yield context
        finally:
            context.close()
