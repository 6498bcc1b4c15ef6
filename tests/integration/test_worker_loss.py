"""A SIGKILLed worker's calls come back within seconds, with the default settings (visibility timeout
15 min): the sweep sees its liveness key gone, frees its locks and queues its calls again; another worker
syncs them, one Task each."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import redis
import requests

from standins.stack.ports import free_port
from standins.stack.processes import Stack, service_env, wait_ready
from standins.stack.redis_server import RedisServer
from standins.stack.sandboxes import Sandboxes
from worker.ledger import Ledger, State
from worker.sync import holders

SECRET = "worker-loss-test-secret-4b1d"
CALLS = 6


def _wait(check, timeout: float, every: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(every)


def test_a_killed_workers_calls_are_synced_by_another_within_a_minute(
    redis_server: RedisServer, boxes: Sandboxes, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    ledger = Ledger(client)
    call_ids = boxes.twenty2.add_generated_calls(CALLS, seed=41)
    port = free_port()
    env = service_env(boxes.env, redis_url=redis_server.url, secret=SECRET, work=tmp_path, port=port)
    env["WORKER_CONCURRENCY"] = str(CALLS)
    assert "CELERY_VISIBILITY_TIMEOUT" not in env  # the default: 15 minutes
    stack = Stack(env=env, log_dir=tmp_path / "log")
    try:
        for name, entry in (("web", "web"), ("worker-1", "worker"), ("beat", "beat")):
            stack.start(name, entry=entry)
        intake = f"http://127.0.0.1:{port}"
        wait_ready(intake, stack, ["worker-1"])
        boxes.twenty2.hang_randomly(1.0, seconds=120)  # every fetch hangs: worker-1 holds all the calls
        for call_id in call_ids:
            answer = requests.post(
                f"{intake}/webhooks/twenty2/{SECRET}", json=boxes.twenty2.webhook_payload(call_id), timeout=10
            )
            assert answer.status_code == 200, answer.text
        owner = _wait(lambda: _holder_of(client, set(call_ids)), 30)
        _wait(lambda: all((r := ledger.get(c)) and r.state is State.SYNCING for c in call_ids), 30)
        locks = [client.get(holders.lock_key(c)) for c in call_ids]
        assert all(lock is not None and lock.decode().startswith(owner + "|") for lock in locks)

        stack.kill("worker-1")  # SIGKILL, the whole process group
        killed_at = time.time()
        boxes.twenty2.clear_faults()
        stack.start("worker-2", entry="worker")
        _wait(lambda: all((r := ledger.get(c)) and r.state is State.SYNCED for c in call_ids), 90, every=0.5)
        synced_at = max(e["at"] for c in call_ids for e in ledger.history(c) if e.get("state") == State.SYNCED.value)
        delay = synced_at - killed_at
        print(f"kill → last of {CALLS} calls synced: {delay:.1f} s")
        assert delay < 60
        for call_id in call_ids:
            events = [e.get("event") for e in ledger.history(call_id)]
            assert "requeued_dead_worker" in events, events
        tasks = Counter(str(t.get("Twenty2_Call_Id__c")) for t in boxes.salesforce.records("Task"))
        assert all(tasks[c] == 1 for c in call_ids), {c: tasks[c] for c in call_ids}
        assert client.exists(holders.HOLDS + owner) == 0  # the dead worker's holds are gone
    finally:
        boxes.twenty2.clear_faults()
        stack.stop()


def _holder_of(client: redis.Redis, calls: set[str]) -> str | None:
    """The one owner holding all of ``calls``, once one does."""
    for raw in client.zrange(holders.HOLDERS, 0, -1):  # type: ignore[union-attr]
        owner = raw.decode()
        if set(holders.held(client, owner)) >= calls:
            return owner
    return None
