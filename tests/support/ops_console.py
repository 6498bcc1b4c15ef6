"""Fixtures for the ops console's tests (imported by ``tests/integration/ops/conftest.py``).

- ``console``: the real intake app with the console on (uvicorn, loopback HTTP) over both stand-ins and a
  private Redis; its ledger holds a synced call, a failed one (a validation rule the org had) and a queued
  one; tokens ``alice`` and ``bob``;
- ``browser_context``: a fresh profile of Debian's Chromium (``/usr/bin/chromium``, driven by playwright;
  no browser download) at 1280×800;
- ``receiver``: a local HTTP server standing in for a Slack incoming webhook; ``sign_in`` a page.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn

from standins.stack.ports import free_port
from standins.stack.sandboxes import SEED_CALL, Sandboxes
from worker.intake.app import create_app
from worker.ratelimit import SharedRateLimit
from worker.runtime import Runtime
from worker.sync.services import Services
from worker.sync.stream import sync_and_record
from worker.twenty2.client import Twenty2Client

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
    twenty2 = Twenty2Client(settings, before_request=limit.acquire)
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


@dataclass
class Receiver:
    url: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0

    @property
    def texts(self) -> list[str]:
        return [m["text"] for m in self.messages]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            rec = box[0]
            if rec.fail_next:
                rec.fail_next -= 1
                self.send_response(500)
                self.end_headers()
                return
            assert self.headers.get("content-type") == "application/json"
            rec.messages.append(json.loads(body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.append(Receiver(f"http://127.0.0.1:{server.server_address[1]}/hooks/T000/B000"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield box[0]
    server.shutdown()


def sign_in(page: Any, console: Console, who: str = "alice") -> None:
    page.goto(f"{console.url}/ops")
    assert page.url.endswith("/ops/login")
    page.fill("#token", TOKENS[who])
    page.click("button[type=submit]")
    page.wait_for_url(f"{console.url}/ops")


def login_form(url: str) -> tuple[dict[str, str], str]:
    """The sign-in page's CSRF pair for a client without a browser: (cookies, form token). The cookie is
    Secure, which ``requests`` keeps off plain HTTP (browsers allow it on loopback): sent by hand."""
    page = requests.get(f"{url}/ops/login", timeout=10)
    nonce = page.cookies["crm_sync_ops_login"]
    assert f'name="csrf" value="{nonce}"' in page.text
    return {"crm_sync_ops_login": nonce}, nonce


def post_sign_in(url: str, token: str) -> requests.Response:
    cookies, csrf = login_form(url)
    return requests.post(
        f"{url}/ops/login", data={"token": token, "csrf": csrf}, cookies=cookies, timeout=10, allow_redirects=False
    )
