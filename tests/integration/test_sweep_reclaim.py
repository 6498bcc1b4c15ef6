"""The sweep's return of calls (``worker.sync.holders.reclaim``) on a real Redis: a dead holder's calls,
an orphaned task message, a task that vanished. ``enqueue`` is recorded instead of publishing."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import redis

from worker import heartbeat
from worker.ledger import Ledger
from worker.sync import holders

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "kombu" / "unacked_sync_call.json"
FIXTURE_CALL = "e03a6b0c0acc35a0f3af1bd5"


def test_a_dead_holders_calls_are_queued_again_and_only_its_locks_freed(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    ledger, queued = Ledger(client), []
    for call_id in ("c1", "c2", "c3"):
        ledger.accept(call_id, source="webhook")
    now = time.time()
    holders.hold(client, "dead:1:aa", "c1", now)
    holders.hold(client, "dead:1:aa", "c2", now)
    holders.hold(client, "live:2:bb", "c3", now)
    heartbeat.beat_alive(client, "live:2:bb")
    client.set(holders.lock_key("c1"), "dead:1:aa|t1")
    client.set(holders.lock_key("c2"), "live:2:bb|t2")  # taken over meanwhile: not the dead one's to free

    assert holders.reclaim(client, ledger, queued.append, now=now) == []  # first seen missing: suspected
    assert holders.reclaim(client, ledger, queued.append, now=now + holders.GRACE - 1) == []
    requeued = holders.reclaim(client, ledger, queued.append, now=now + holders.GRACE)
    assert sorted(requeued) == ["c1", "c2"] == sorted(queued)
    assert client.get(holders.lock_key("c1")) is None and client.get(holders.lock_key("c2")) == b"live:2:bb|t2"
    assert holders.held(client, "dead:1:aa") == [] and holders.held(client, "live:2:bb") == ["c3"]
    assert "requeued_dead_worker" in [e["event"] for e in ledger.history("c1")]
    assert holders.reclaim(client, ledger, queued.append, now=now + 2 * holders.GRACE) == []  # once only


def test_a_resolved_call_of_a_dead_holder_is_left_alone(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    ledger, queued = Ledger(client), []
    ledger.accept("done", source="webhook")
    ledger.synced("done", salesforce_ids={}, summary="")
    now = time.time()
    holders.hold(client, "dead:3:cc", "done", now)
    holders.reclaim(client, ledger, queued.append, now=now)
    holders.reclaim(client, ledger, queued.append, now=now + holders.GRACE)
    assert queued == [] and holders.held(client, "dead:3:cc") == []


def test_an_orphaned_task_message_is_queued_again_and_taken_out_of_unacked(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    ledger, queued = Ledger(client), []
    ledger.accept(FIXTURE_CALL, source="webhook")
    now = time.time()
    client.hset(holders.UNACKED, "tag-1", FIXTURE.read_bytes().strip())
    client.zadd(holders.UNACKED_INDEX, {"tag-1": now - holders.ORPHAN_AFTER - 1})
    assert holders.reclaim(client, ledger, queued.append, now=now) == [FIXTURE_CALL] == queued
    assert client.hlen(holders.UNACKED) == 0 and client.zcard(holders.UNACKED_INDEX) == 0


def test_a_fresh_or_held_message_is_no_orphan(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    ledger, queued = Ledger(client), []
    ledger.accept(FIXTURE_CALL, source="webhook")
    now = time.time()
    client.hset(holders.UNACKED, "tag-1", FIXTURE.read_bytes().strip())
    client.zadd(holders.UNACKED_INDEX, {"tag-1": now - 1})  # just delivered
    assert holders.reclaim(client, ledger, queued.append, now=now) == []
    client.zadd(holders.UNACKED_INDEX, {"tag-1": now - 60})
    holders.hold(client, "live:4:dd", FIXTURE_CALL, now)
    heartbeat.beat_alive(client, "live:4:dd")
    assert holders.reclaim(client, ledger, queued.append, now=now) == [] and queued == []


def test_a_task_that_vanished_is_queued_again_but_not_one_waiting_or_locked(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    ledger, queued = Ledger(client), []
    for call_id in ("gone", "waiting", "locked"):
        ledger.accept(call_id, source="webhook")
    message = json.loads(FIXTURE.read_text())[0]  # the fixture's task, re-pointed at "waiting"
    message["body"] = base64.b64encode(json.dumps([["waiting"], {}, {}]).encode()).decode()
    client.lpush("crm-sync", json.dumps(message))
    client.set(holders.lock_key("locked"), "someone:5:ee|t")
    later = time.time() + holders.LOST_AFTER + 1
    assert holders.reclaim(client, ledger, queued.append, now=later) == ["gone"] == queued
    assert "requeued_lost_message" in [e["event"] for e in ledger.history("gone")]
