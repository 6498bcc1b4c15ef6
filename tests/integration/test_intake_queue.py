"""The intake's one-round-trip accept (``worker.intake.queue``): the task message it pushes is the one Celery's
``send_task`` pushes, and ledger record, Lead hint and message are written together, in one script call."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import redis

from worker.celery_app import QUEUE
from worker.errors import SalesforceUnavailable
from worker.intake.queue import IntakeQueue, TaskMessages
from worker.ledger import State
from worker.redis_clients import NoReplicasError
from worker.runtime import Runtime
from worker.settings import Settings

#: Parts of a message that differ between any two messages (fresh ids).
FRESH_HEADERS = {"id", "root_id"}
FRESH_PROPERTIES = {"correlation_id", "delivery_tag"}


def runtime_for(redis_url: str) -> Runtime:
    return Runtime(Settings(redis_url=redis_url))  # type: ignore[arg-type]


def messages(redis_url: str) -> list[dict[str, Any]]:
    return [json.loads(m) for m in redis.Redis.from_url(redis_url).lrange(QUEUE, 0, -1)]


def test_task_message_is_what_send_task_pushes(redis_url: str) -> None:
    runtime = runtime_for(redis_url)
    runtime.enqueue("call_9c4d7e12ab")
    [sent] = messages(redis_url)
    ours = json.loads(TaskMessages(runtime.celery)("call_9c4d7e12ab"))
    assert set(ours) == set(sent)
    assert base64.b64decode(ours["body"]) == base64.b64decode(sent["body"])
    assert {k: v for k, v in ours["headers"].items() if k not in FRESH_HEADERS} == {
        k: v for k, v in sent["headers"].items() if k not in FRESH_HEADERS
    }
    assert {k: v for k, v in ours["properties"].items() if k not in FRESH_PROPERTIES} == {
        k: v for k, v in sent["properties"].items() if k not in FRESH_PROPERTIES
    }
    assert ours["headers"]["id"] == ours["headers"]["root_id"] == ours["properties"]["correlation_id"]
    assert ours["properties"]["delivery_tag"] != ours["headers"]["id"]


def test_task_message_carries_any_call_id_intact(redis_url: str) -> None:
    # The message is a template filled per call: a call id with JSON's and Python's special characters
    # must come out as Celery would write it, not break the JSON around it.
    call_id = 'call_"quoted"\\back\'slash{braces}\u00e9'
    messages = TaskMessages(runtime_for(redis_url).celery)
    first, second = json.loads(messages(call_id)), json.loads(messages(call_id))
    assert json.loads(base64.b64decode(first["body"])) == [
        [call_id],
        {},
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
    ]
    assert first["headers"]["argsrepr"] == repr([call_id])
    assert first["headers"]["id"] != second["headers"]["id"]
    assert first["properties"]["delivery_tag"] != second["properties"]["delivery_tag"]


def test_accept_records_hints_and_queues_in_one_script_call(redis_url: str) -> None:
    runtime = runtime_for(redis_url)
    queue = IntakeQueue(runtime)
    client = redis.Redis.from_url(redis_url)

    async def deliver(call_id: str) -> tuple[State | None, bool]:
        return await queue.accept(call_id, detail={"webhook_event": "call.completed"}, phone="9999999999", lead_id=None)

    async def twice() -> list[tuple[State | None, bool]]:
        first = await deliver("6a100328ba090039ac8610a2")  # may load the script (NOSCRIPT, SCRIPT LOAD)
        client.echo("second webhook")
        return [first, await deliver("call_9c4d7e12ab")]

    with client.monitor() as monitor:
        assert asyncio.run(twice()) == [(None, True), (None, True)]
        client.echo("end-of-test")
        sent: list[str] = []
        while (command := monitor.next_command())["command"] != "ECHO end-of-test":
            if command["client_type"] != "lua":  # commands a script ran are not round trips
                sent.append(command["command"].split()[0] if "ECHO" not in command["command"] else command["command"])
    # The second webhook: one EVALSHA from the client (and, every 10 s, the pool's health-check PING).
    second = sent[sent.index("ECHO second webhook") + 1 :]
    assert [c for c in second if c != "PING"] == ["EVALSHA"], sent
    runtime.lead_cache.take_hints(1)  # the first call's hint

    record = runtime.ledger.get("call_9c4d7e12ab")
    assert record is not None and record.state is State.QUEUED and record.deliveries == 1
    assert [h["event"] for h in runtime.ledger.history("call_9c4d7e12ab")] == ["accepted"]
    newest = messages(redis_url)[0]  # LPUSH: the newest first
    assert json.loads(base64.b64decode(newest["body"]))[0] == ["call_9c4d7e12ab"]
    [hint] = runtime.lead_cache.take_hints(10)
    assert hint["phone"] == "9999999999"

    # A redelivery while queued: counted, not queued again, no second hint.
    assert asyncio.run(deliver("call_9c4d7e12ab")) == (State.QUEUED, False)
    assert len(messages(redis_url)) == 2 and runtime.lead_cache.take_hints(10) == []
    record = runtime.ledger.get("call_9c4d7e12ab")
    assert record is not None and record.deliveries == 2


def test_a_failed_call_is_queued_again(redis_url: str) -> None:
    runtime = runtime_for(redis_url)
    runtime.ledger.accept("6a100328ba090039ac8610a2", source="webhook")
    runtime.ledger.failed("6a100328ba090039ac8610a2", error=SalesforceUnavailable("Salesforce is down"))
    queue = IntakeQueue(runtime)
    before, queued = asyncio.run(queue.accept("6a100328ba090039ac8610a2", detail={}, phone=None, lead_id=None))
    assert (before, queued) == (State.FAILED, True)
    assert len(messages(redis_url)) == 1
    record = runtime.ledger.get("6a100328ba090039ac8610a2")
    assert record is not None and record.state is State.QUEUED


def test_webhooks_arriving_together_share_script_calls(redis_url: str) -> None:
    runtime = runtime_for(redis_url)
    queue = IntakeQueue(runtime)
    client = redis.Redis.from_url(redis_url)
    ids = [f"call_{n:04d}" for n in range(150)]
    # Each id twice, the redelivery right behind the first (often in the same batch), plus one hint each.
    arrivals = [call_id for call_id in ids for _ in range(2)]

    async def storm() -> list[tuple[State | None, bool]]:
        return await asyncio.gather(*(queue.accept(c, detail={}, phone="9999999999", lead_id=None) for c in arrivals))

    with client.monitor() as monitor:
        answers = asyncio.run(storm())
        client.echo("end-of-test")
        scripts = 0
        while (command := monitor.next_command())["command"] != "ECHO end-of-test":
            if command["client_type"] != "lua" and command["command"].split()[0] in {"EVALSHA", "EVAL"}:
                scripts += 1
    # Each call queued by one of its two webhooks, the other a duplicate (which one: whichever Redis ran first).
    assert all(set(answers[i : i + 2]) == {(None, True), (State.QUEUED, False)} for i in range(0, 300, 2))
    assert scripts <= len(arrivals) // 8, scripts  # 300 webhooks, MAX_BATCH per call, 2 calls out at once
    queued = [json.loads(base64.b64decode(m["body"]))[0][0] for m in messages(redis_url)]
    assert sorted(queued) == ids  # one task per call
    assert len(runtime.lead_cache.take_hints(1000)) == len(ids)
    for call_id in ids:
        record = runtime.ledger.get(call_id)
        assert record is not None and record.state is State.QUEUED and record.deliveries == 2


def test_a_failed_script_call_fails_every_webhook_in_it(redis_url: str) -> None:
    # A Redis that refuses writes (as a replica does): each waiting webhook gets the error (the intake's 503).
    runtime = runtime_for(redis_url)
    queue = IntakeQueue(runtime)
    client = redis.Redis.from_url(redis_url)

    async def storm() -> list[Any]:
        accepts = (queue.accept(f"call_{n}", detail={}, phone=None, lead_id=None) for n in range(40))
        return await asyncio.gather(*accepts, return_exceptions=True)

    client.config_set("min-replicas-to-write", 1)  # no replica here: every write is refused
    try:
        answers = asyncio.run(storm())
    finally:
        client.config_set("min-replicas-to-write", 0)
    assert len(answers) == 40 and all(isinstance(a, NoReplicasError) for a in answers), answers
    assert client.llen(QUEUE) == 0 and runtime.ledger.get("call_0") is None
