"""The Procfile's real processes (web, worker, beat) with the console on: workers and beat report their
heartbeats, a webhook's sync shows in the web process's ``/metrics`` and overview, and beat's alert look
reaches the webhook receiver."""

from __future__ import annotations

import time
from pathlib import Path

import redis
import requests
from support.ops_console import Receiver, post_sign_in

from standins.stack.processes import start_local_service
from standins.stack.redis_server import RedisServer
from standins.stack.sandboxes import SEED_CALL, Sandboxes
from worker import heartbeat
from worker.ledger import Ledger, State

SECRET = "ops-procfile-secret-123"
TOKEN = "ops-procfile-token-456"


def wait(predicate, timeout: float = 40.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_processes_report_heartbeats_metrics_and_alerts(
    boxes: Sandboxes,
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    server = RedisServer(tmp_path / "redis").start()
    extra = {
        "CRM_SYNC_OPS_TOKEN": f"ops:{TOKEN}",
        "CRM_SYNC_ALERT_WEBHOOK_URL": receiver.url,
        "CRM_SYNC_ALERT_CHECK_SECONDS": "1",
        "WORKER_CONCURRENCY": "2",
    }
    stack, intake = start_local_service(boxes.env, redis_url=server.url, secret=SECRET, work=tmp_path, extra=extra)
    try:
        client = redis.Redis.from_url(server.url)
        beats = wait(lambda: (lambda b: b if b["worker"] and b["beat"] else None)(heartbeat.read(client)))
        assert len(beats["worker"]) == 1 and len(beats["beat"]) == 1

        payload = boxes.twenty2.webhook_payload(SEED_CALL, event="call.completed")
        assert (
            requests.post(f"{intake}/webhooks/twenty2/{SECRET}", json=payload, timeout=5).json()["status"] == "queued"
        )
        ledger = Ledger(client)
        wait(lambda: (r := ledger.get(SEED_CALL)) is not None and r.state is State.SYNCED)
        metrics = requests.get(f"{intake}/metrics", timeout=5).text
        assert 'crm_sync_syncs_total{code="",stage="",state="synced"} 1.0' in metrics
        assert 'crm_sync_processes_alive{role="worker"} 1.0' in metrics

        signed_in = post_sign_in(intake, TOKEN)
        assert signed_in.status_code == 303
        # A Secure cookie: requests keeps it off plain HTTP (browsers allow it on loopback): sent by hand.
        overview = requests.get(f"{intake}/ops", cookies={"crm_sync_ops": signed_in.cookies["crm_sync_ops"]}, timeout=5)
        assert "1 worker alive" in overview.text and "beat alive" in overview.text

        # A call that cannot succeed (unknown in Twenty2): recorded failed, and beat's look alerts.
        missing = "call_doesnotexist1"
        requests.post(f"{intake}/webhooks/twenty2/{SECRET}", json={"call_id": missing}, timeout=5)
        wait(lambda: (r := ledger.get(missing)) is not None and r.state is State.FAILED)
        wait(lambda: receiver.messages)
        assert missing in receiver.texts[0] and "CALL_NOT_FOUND" in receiver.texts[0]
    finally:
        stack.stop()
        server.stop()
