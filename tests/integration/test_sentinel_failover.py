"""A real Sentinel deployment (a primary, two replicas, three Sentinels, passwords on both) loses its
primary: the product's clients (built by ``worker.redis_clients``) follow the failover without a restart,
an accepted call confirmed on a replica is still in the ledger, and the per-call lock keeps working."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from standins.stack.sentinels import SentinelTopology
from worker.intake.app import create_app
from worker.intake.queue import IntakeQueue
from worker.ledger import Ledger, State
from worker.redis_clients import redis_client, sentinel
from worker.replicas import ReplicaConfirm
from worker.runtime import Runtime
from worker.settings import Settings
from worker.sync import holders


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[SentinelTopology]:
    deployment = SentinelTopology(tmp_path / "sentinel").start()
    yield deployment
    deployment.stop()


def sentinel_settings(topology: SentinelTopology) -> Settings:
    env = {k.lower(): v for k, v in topology.env().items()}
    return Settings(_env_file=None, **env)  # type: ignore[arg-type]


def test_ledger_and_locks_follow_a_failover_without_a_restart(topology: SentinelTopology) -> None:
    settings = sentinel_settings(topology)
    client = redis_client(settings, purpose="test")
    ledger = Ledger(client)
    confirm = ReplicaConfirm(client, timeout_ms=1000)
    assert sentinel(settings).discover_master(topology.env()["REDIS_SENTINEL_MASTER"])[1] == topology.nodes[0].port

    assert ledger.accept("call-before", source="webhook") is None
    assert confirm.confirm() is True  # on a replica before the "200"
    lock = client.lock(holders.lock_key("call-before"), timeout=60, blocking=False)
    assert lock.acquire(token=holders.lock_token("worker-a"))
    assert confirm.confirm() is True

    old = topology.kill_primary()
    killed = time.monotonic()
    new = topology.wait_new_primary(old)
    assert new.port != old.port
    topology.wait_sentinels_agree(new)

    # The same client objects, no restart: reads and writes reach the new primary.
    record = ledger.get("call-before")
    recovered = time.monotonic() - killed
    assert record is not None and record.state is State.QUEUED
    assert ledger.accept("call-after", source="webhook") is None
    assert ledger.accept("call-before", source="webhook") is State.QUEUED  # a redelivery is a duplicate
    # The lock confirmed on a replica survived: another worker is turned away, the owner releases it.
    other = client.lock(holders.lock_key("call-before"), timeout=60, blocking=False)
    assert not other.acquire(token=holders.lock_token("worker-b"))
    lock.release()
    assert other.acquire(token=holders.lock_token("worker-b"))
    print(f"first ledger read after the primary's SIGKILL: {recovered:.1f} s")

    # The old primary comes back as a replica of the new one; replica confirmation works again.
    topology.restart_as_replica(old)
    deadline = time.monotonic() + 30
    while topology.node_client(old).info("replication")["role"] != "slave" or not confirm.confirm():
        assert time.monotonic() < deadline, "the old primary did not rejoin as a replica"
        time.sleep(0.2)
    assert topology.node_client(old).hget("crm-sync:call:call-after", "state") == b"queued"


def test_without_replicas_there_is_nothing_to_wait_for(redis_url: str) -> None:
    client = redis_client(Settings(_env_file=None, redis_url=redis_url), purpose="test")  # type: ignore[call-arg]
    assert ReplicaConfirm(client, timeout_ms=1000).confirm() is True


def test_no_replica_confirming_means_no(topology: SentinelTopology) -> None:
    """Replicas that stop acknowledging (paused) make the confirmation fail within its timeout."""
    settings = sentinel_settings(topology)
    client = redis_client(settings, purpose="test")
    confirm = ReplicaConfirm(client, timeout_ms=300)
    # The replicas acknowledge once their first sync is over (a loaded machine may take longer than 300 ms).
    deadline = time.monotonic() + 15
    while not confirm.confirm():
        assert time.monotonic() < deadline, "the replicas never acknowledged"
        time.sleep(0.2)
    for node in topology.nodes[1:]:
        assert node.process is not None
        node.process.send_signal(signal.SIGSTOP)  # connected, silent
    try:
        started = time.monotonic()
        assert confirm.confirm() is False
        assert time.monotonic() - started < 2
    finally:
        for node in topology.nodes[1:]:
            assert node.process is not None
            node.process.send_signal(signal.SIGCONT)


def test_the_intake_answers_200_only_once_a_replica_has_the_call(topology: SentinelTopology) -> None:
    """Through Sentinel: 200 with replicas acknowledging; 503 NOT_REPLICATED (within the WAIT timeout)
    while they are silent; 200 again once they are back."""
    fixture = json.loads((Path(__file__).parents[1] / "fixtures" / "webhooks" / "call_completed.json").read_text())
    env = {k.lower(): v for k, v in topology.env().items()}
    settings = Settings(_env_file=None, twenty2_webhook_secret="intake-wait-secret", redis_wait_replicas_ms=300, **env)  # type: ignore[arg-type]
    client = TestClient(create_app(Runtime(settings)))
    url = "/webhooks/twenty2/intake-wait-secret"
    first = client.post(url, json=fixture)
    assert first.status_code == 200 and first.json()["status"] == "queued"
    for node in topology.nodes[1:]:
        assert node.process is not None
        node.process.send_signal(signal.SIGSTOP)
    try:
        refused = client.post(url, json={"call_id": "call_9c4d7e12ff"})
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "NOT_REPLICATED"
    finally:
        for node in topology.nodes[1:]:
            assert node.process is not None
            node.process.send_signal(signal.SIGCONT)
    deadline = time.monotonic() + 20
    while (again := client.post(url, json={"call_id": "call_9c4d7e12ff"})).status_code != 200:
        assert time.monotonic() < deadline, again.text
        time.sleep(0.2)
    assert again.json()["status"] in {"queued", "duplicate"}


def test_one_replica_wait_covers_each_batch_of_webhooks(topology: SentinelTopology) -> None:
    """Webhooks accepted together (one script call) share one WAIT: fewer WAITs than webhooks, every one
    of them confirmed and recorded."""
    runtime = Runtime(sentinel_settings(topology))
    queue = IntakeQueue(runtime)
    primary = topology.node_client(topology.node_on(topology.primary_port()))
    ids = [f"call_wait_{n:03d}" for n in range(120)]

    async def storm() -> list[tuple[State | None, bool]]:
        return await asyncio.gather(*(queue.accept(c, detail={}, phone=None, lead_id=None) for c in ids))

    with primary.monitor() as monitor:
        answers = asyncio.run(storm())
        primary.echo("end-of-test")
        sent: list[str] = []
        while (command := monitor.next_command())["command"] != "ECHO end-of-test":
            if command["client_type"] != "lua":
                sent.append(command["command"].split()[0])
    assert answers == [(None, True)] * len(ids)
    scripts, waits = sent.count("EVALSHA") + sent.count("EVAL"), sent.count("WAIT")
    assert 1 <= waits <= scripts < len(ids) // 4, (scripts, waits)
    assert all((r := runtime.ledger.get(c)) and r.state is State.QUEUED for c in ids)
