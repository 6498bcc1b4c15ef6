"""``crm-sync run`` and ``crm-sync demo``: the whole service on one machine, from the Procfile.

With Twenty2 and Salesforce credentials set, it runs intake + worker + beat against them. Without, it
starts the local sandboxes and a private Redis (so a demo never writes into a Redis it does not own),
sends sample calls through the intake, and prints what the Salesforce sandbox received.
"""

from __future__ import annotations

import secrets
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
import requests
from rich.console import Console
from rich.table import Table

from standins.stack.processes import Stack, start_local_service
from standins.stack.redis_server import RedisServer
from worker.ledger import Ledger, State
from worker.settings import REPO_ROOT, Settings

console = Console()

#: The sample calls sent in sandbox mode: the docs' example, the docs' failed call, and a few Hinglish ones.
SAMPLE_COUNT = 4


def run_service(*, port: int | None, send_samples: bool, stay: bool, force_sandbox: bool = False) -> int:
    settings = Settings()
    sandbox = force_sandbox or not (settings.has_twenty2_credentials and settings.has_salesforce_credentials)
    if not sandbox:
        return _run_real(settings, port)
    return _run_sandbox(settings, port, send_samples=send_samples, stay=stay)


def _run_real(settings: Settings, port: int | None) -> int:
    if not settings.webhook_secrets:
        console.print("[red]TWENTY2_WEBHOOK_SECRET is not set: the intake would refuse every webhook.[/red]")
        return 2
    stack = Stack(env={"PORT": str(port or settings.crm_sync_http_port)}, log_dir=REPO_ROOT / "var" / "log")
    for name in ("web", "worker", "beat"):
        stack.start(name)
    console.print(f"intake on port {port or settings.crm_sync_http_port}; logs in var/log/. Ctrl-C stops.")
    return _wait(stack)


def _run_sandbox(settings: Settings, port: int | None, *, send_samples: bool, stay: bool) -> int:
    from standins.stack.sandboxes import Sandboxes

    var = REPO_ROOT / "var"
    var.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="crm-sync-", dir=var))
    redis_server = RedisServer(work / "redis").start()
    secret = secrets.token_urlsafe(24)
    with Sandboxes(work / "tls") as boxes:
        stack, intake = start_local_service(boxes.env, redis_url=redis_server.url, secret=secret, work=work, port=port)
        try:
            console.print(
                f"[bold]sandbox mode[/bold]: no credentials set, so Twenty2 and Salesforce are local stand-ins "
                f"({boxes.twenty2_url}, {boxes.salesforce_url}); Redis {redis_server.url}; logs {work / 'log'}"
            )
            code = 0
            if send_samples:
                code = _send_samples(boxes, intake, secret, Ledger(redis.Redis.from_url(redis_server.url)))
            if stay:
                console.print(f"webhook URL: {intake}/webhooks/twenty2/<secret in {work / 'secret'}>  — Ctrl-C stops")
                (work / "secret").write_text(secret)
                (work / "secret").chmod(0o600)
                return _wait(stack)
            return code
        finally:
            stack.stop()
            redis_server.stop()


def _send_samples(boxes: Any, intake: str, secret: str, ledger: Ledger) -> int:
    call_ids = boxes.sample_call_ids(SAMPLE_COUNT)
    for call_id in call_ids:
        payload = boxes.twenty2.webhook_payload(call_id)
        response = requests.post(f"{intake}/webhooks/twenty2/{secret}", json=payload, timeout=5)
        console.print(
            f"POST /webhooks/twenty2 {payload.get('event')} {call_id} → "
            f"{response.status_code} {response.json().get('status')}"
        )
    deadline = time.monotonic() + 90
    pending = set(call_ids)
    while pending and time.monotonic() < deadline:
        for call_id in list(pending):
            record = ledger.get(call_id)
            if record and record.state in (State.SYNCED, State.SKIPPED, State.FAILED):
                pending.discard(call_id)
        time.sleep(0.2)
    table = Table("call", "state", "salesforce ids / reason", title="sync ledger")
    for call_id in call_ids:
        record = ledger.get(call_id)
        if record is None:
            table.add_row(call_id, "missing", "")
            continue
        detail = ", ".join(f"{k} {v}" for k, v in record.salesforce_ids.items()) or (record.last_error or {}).get(
            "message", ""
        )
        table.add_row(call_id, record.state.value, str(detail))
    console.print(table)
    boxes.print_salesforce(console, call_ids)
    return 1 if pending else 0


def _wait(stack: Stack) -> int:
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping:
        for name, process in stack.processes.items():
            if process.poll() is not None:
                console.print(f"[red]{name} exited with {process.returncode}[/red]")
                stack.stop()
                return 1
        time.sleep(0.5)
    stack.stop()
    return 0
