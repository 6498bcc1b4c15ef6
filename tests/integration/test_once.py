"""Redis scripts whose answer was lost after they ran (``worker.once``): the product's clients resend the
command, and the resent call must answer as the first did and change nothing more. Each test loses one
real answer (``support.lost_reply``: the command reaches Redis, the connection drops before its answer
gets back) and checks what the caller saw and what Redis holds."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import redis
from support.lost_reply import lost_reply_proxy

from worker.autocall.store import CallbackStore, CbState
from worker.celery_app import QUEUE
from worker.intake.queue import IntakeQueue
from worker.ledger import Ledger, State
from worker.once import OnceScript, once
from worker.personal import PersonalData
from worker.redis_clients import redis_client, settings_for
from worker.runtime import Runtime
from worker.settings import Settings

NOW = datetime(2030, 1, 10, 4, 30, tzinfo=UTC)


def test_a_script_called_again_with_its_token_answers_as_before_and_does_nothing(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.hset("counted", "n", 0)
    bump = client.register_script(once("return redis.call('HINCRBY', KEYS[1], 'n', ARGV[1])"))
    assert bump(keys=["counted"], args=[5, "token-a"]) == 5
    assert bump(keys=["counted"], args=[5, "token-a"]) == 5  # what a resend is: the same arguments
    assert client.hget("counted", "n") == b"5"
    assert bump(keys=["counted"], args=[5, "token-b"]) == 10  # another call


def test_a_script_that_returns_nothing_or_leaves_no_hash(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    quiet = OnceScript(client, "redis.call('HINCRBY', KEYS[1], 'n', 1)")
    assert quiet(keys=["quiet"], args=[]) is None
    assert client.hget("quiet", "n") == b"1"
    missing = OnceScript(client, "if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end return 'ok'")
    assert missing(keys=["nothing-here"], args=[]) == b"missing"
    assert not client.exists("nothing-here")  # nothing recorded where the body wrote nothing


def test_accept_of_a_new_call_whose_answer_was_lost_still_answers_new(redis_url: str) -> None:
    with lost_reply_proxy(redis_url) as proxy:
        ledger = Ledger(redis_client(settings_for(proxy.url)))
        ledger.accept("call_warmup0001", source="cli")  # the script is loaded: the next EVALSHA runs it
        proxy.lose_next_reply(b"EVALSHA")
        before = ledger.accept("call_lostreply01", source="reconcile")
        assert proxy.lost == 1
    assert before is None  # new: the caller enqueues its sync (it answered "queued" before worker.once)
    record = Ledger(redis.Redis.from_url(redis_url)).get("call_lostreply01")
    assert record is not None and record.state is State.QUEUED
    assert record.deliveries == 1


def test_a_move_whose_answer_was_lost_counts_once(redis_url: str) -> None:
    with lost_reply_proxy(redis_url) as proxy:
        ledger = Ledger(redis_client(settings_for(proxy.url)))
        ledger.accept("call_lostmove001", source="cli")
        proxy.lose_next_reply(b"EVALSHA")
        ledger.start("call_lostmove001")
        assert proxy.lost == 1
    ledger = Ledger(redis.Redis.from_url(redis_url))
    record = ledger.get("call_lostmove001")
    assert record is not None and record.state is State.SYNCING
    assert record.attempts == 1
    assert [e["event"] for e in ledger.history("call_lostmove001")] == ["accepted", "started"]


def test_a_claim_whose_answer_was_lost_is_still_ours(redis_url: str) -> None:
    with lost_reply_proxy(redis_url) as proxy:
        store = CallbackStore(redis_client(settings_for(proxy.url)), PersonalData((b"k" * 32,)))
        assert store.schedule(
            "cb_lostclaim01", now=NOW, due=NOW - timedelta(minutes=1), phone="+919812345678", inputs={},
            lead_id="00Q000000000001AAA", source_call_id="call_src000001",
        )  # fmt: skip
        callback = store.get("cb_lostclaim01")
        assert callback is not None
        proxy.lose_next_reply(b"EVALSHA")
        answer = store.claim(
            callback, now=NOW, lease_seconds=120, max_concurrent=3, counts_seconds=600, day="2030-01-10",
            caps=(2, 100, 1000.0),
        )  # fmt: skip
        assert proxy.lost == 1
    assert answer == "ok"  # "taken" before worker.once: by nobody, so nobody would have placed the call
    store = CallbackStore(redis.Redis.from_url(redis_url), PersonalData((b"k" * 32,)))
    claimed = store.get("cb_lostclaim01")
    assert claimed is not None and claimed.state is CbState.TRIGGERED
    assert store.today("00Q000000000001AAA", "2030-01-10")[0] == 1  # counted once against the Lead's cap


def test_a_webhook_batch_whose_answer_was_lost_is_queued_once(redis_url: str) -> None:
    with lost_reply_proxy(redis_url) as proxy:
        runtime = Runtime(Settings(redis_url=proxy.url))  # type: ignore[arg-type]
        queue = IntakeQueue(runtime)

        async def webhooks() -> list[tuple[State | None, bool]]:
            await queue.accept("call_warmbatch01", detail={}, phone=None, lead_id=None)
            proxy.lose_next_reply(b"EVALSHA")
            return list(
                await asyncio.gather(
                    *(queue.accept(f"call_lostbatch0{i}", detail={}, phone=None, lead_id=None) for i in range(3))
                )
            )

        answers = asyncio.run(webhooks())
        assert proxy.lost == 1
    assert answers == [(None, True)] * 3  # new and queued, as the first run answered
    client = redis.Redis.from_url(redis_url)
    queued = [json.loads(m)["headers"]["argsrepr"] for m in client.lrange(QUEUE, 0, -1)]
    calls = ["call_warmbatch01", *(f"call_lostbatch0{i}" for i in range(3))]
    assert sorted(queued) == sorted(repr([call]) for call in calls)  # one task each, none pushed twice
    ledger = Ledger(client)
    for i in range(3):
        record = ledger.get(f"call_lostbatch0{i}")
        assert record is not None and record.deliveries == 1


def test_a_cap_place_given_back_whose_answer_was_lost_is_given_back_once(redis_url: str) -> None:
    with lost_reply_proxy(redis_url) as proxy:
        store = CallbackStore(redis_client(settings_for(proxy.url)), PersonalData((b"k" * 32,)))
        for cb_id in ("cb_lostcount01", "cb_lostcount02"):  # two claims for one Lead: 2 of its places taken
            store.schedule(
                cb_id, now=NOW, due=NOW - timedelta(minutes=1), phone="+919812345678", inputs={},
                lead_id="00Q000000000002AAA", source_call_id=f"call_{cb_id}",
            )  # fmt: skip
            callback = store.get(cb_id)
            assert callback is not None
            assert store.claim(
                callback, now=NOW, lease_seconds=120, max_concurrent=3, counts_seconds=600, day="2030-01-10",
                caps=(5, 100, 1000.0),
            ) == "ok"  # fmt: skip
        proxy.lose_next_reply(b"EVALSHA")
        store.uncount("cb_lostcount01", "00Q000000000002AAA", "2030-01-10")  # its call was not placed
        assert proxy.lost == 1
    store = CallbackStore(redis.Redis.from_url(redis_url), PersonalData((b"k" * 32,)))
    assert store.today("00Q000000000002AAA", "2030-01-10")[0] == 1  # 0 would give the Lead a call too many


def test_an_automatic_replay_whose_answer_was_lost_counts_once(redis_url: str) -> None:
    with lost_reply_proxy(redis_url) as proxy:
        ledger = Ledger(redis_client(settings_for(proxy.url)))
        ledger.accept("call_lostreplay1", source="webhook")
        ledger.count_auto_replay("call_lostreplay1")  # loads the script: the next EVALSHA runs it
        proxy.lose_next_reply(b"EVALSHA")
        ledger.count_auto_replay("call_lostreplay1")
        assert proxy.lost == 1
    record = Ledger(redis.Redis.from_url(redis_url)).get("call_lostreplay1")
    assert record is not None and record.auto_replays == 2  # 3 would cost the call one of its replays
