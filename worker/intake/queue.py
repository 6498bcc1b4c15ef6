"""The intake's accept path: one Redis round trip per webhook, on an asyncio client (no thread hop).

One Lua script does, atomically, what ``Ledger.accept`` + ``LeadCache.hint`` + ``Runtime.enqueue`` do in
three to five round trips and ~1.7 ms of Celery/kombu publishing code: accept the call in the ledger (the
ledger's own script, ``worker.ledger.ACCEPT_SCRIPT``), and, when the state it had calls for a sync
(``ENQUEUE_FROM``), write the Lead hint and push the Celery task message onto the broker queue. So a call is
never recorded queued without its task (or the reverse): Redis takes all of it or none, and the intake
answers 503 on none.

The message is Celery's own (``app.amqp.as_task_v2``: protocol-2 headers and body), in the envelope kombu's
Redis transport stores (``Channel._put``: ``LPUSH <queue>`` of the JSON message, body base64, a fresh
``delivery_tag``); ``tests/unit/test_intake_queue.py`` holds it equal to what ``send_task`` pushes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
import weakref
from typing import Any

import redis.asyncio as aioredis
from celery import Celery

from worker.celery_app import QUEUE
from worker.ledger import ACCEPT_SCRIPT, State
from worker.redis_clients import async_redis_client, uses_sentinel
from worker.runtime import Runtime
from worker.salesforce.lead_cache import HINT_TTL, MAX_HINTS

TASK_NAME = "crm_sync.sync_call"
#: Previous ledger state → whether a new delivery queues a sync (None: never seen). The rule, passed to the
#: script as its list of states that queue ('' = never seen).
ENQUEUE_FROM = {None: True, State.FAILED: True}
#: Redis command timeout of the intake's client (seconds): a hung Redis costs a request little.
SOCKET_TIMEOUT = 3.0
#: Redis connections per intake process (a request waits for one, as long as it takes).
POOL_SIZE = 16

# KEYS: the accept script's 7 (call, history, 5 state sets), hints hash, hint order list, queue list.
# ARGV: the accept script's 5 (id, now, event json, force, source), task message json, sealed hint ('' =
#       none), hint cap, hint ttl, then the states before which a sync is queued ('' = never seen).
_ACCEPT_AND_QUEUE = (
    "local function accept()\n"
    + ACCEPT_SCRIPT
    + """
end
local before = accept()
for i = 10, #ARGV do
  if ARGV[i] == before then
    if ARGV[7] ~= '' then
      redis.call('HSET', KEYS[8], ARGV[1], ARGV[7])
      redis.call('RPUSH', KEYS[9], ARGV[1])
      redis.call('LTRIM', KEYS[9], -tonumber(ARGV[8]), -1)
      redis.call('EXPIRE', KEYS[8], ARGV[9])
      redis.call('EXPIRE', KEYS[9], ARGV[9])
    end
    redis.call('LPUSH', KEYS[10], ARGV[6])
    return {before, 1}
  end
end
return {before, 0}
"""
)


class TaskMessages:
    """``sync_call(call_id)`` messages as kombu's Redis transport stores them on ``queue`` (see the module
    docstring). Celery's ``as_task_v2`` builds the first; the others copy it with their own ids and argument,
    the only parts that differ (as_task_v2 per message costs the intake more than its Redis round trip)."""

    def __init__(self, celery: Celery, *, queue: str = QUEUE) -> None:
        message = celery.amqp.as_task_v2("", TASK_NAME, args=[""], kwargs={}, ignore_result=None)
        self._headers = dict(message.headers)
        self._embed = message.body[2]  # callbacks, errbacks, chain, chord: all None for a plain send
        self._properties = {
            **message.properties,
            "reply_to": celery.thread_oid,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
        }

    def __call__(self, call_id: str) -> str:
        task_id = str(uuid.uuid4())
        body = json.dumps([[call_id], {}, self._embed]).encode()
        headers = {**self._headers, "id": task_id, "root_id": task_id, "argsrepr": repr([call_id])}
        properties = {**self._properties, "correlation_id": task_id, "delivery_tag": str(uuid.uuid4())}
        return json.dumps(
            {
                "body": base64.b64encode(body).decode(),
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": headers,
                "properties": properties,
            }
        )


class IntakeQueue:
    """Accepts webhooks for one runtime: ledger record, Lead hint and task message in one script call.

    The asyncio Redis client is made per event loop (a uvicorn worker has one; a test client may start
    several), each with its own connection pool, reused by every request on that loop."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._messages = TaskMessages(runtime.celery)
        self._enqueue_from = ["" if state is None else state.value for state, yes in ENQUEUE_FROM.items() if yes]

    def _script(self) -> Any:
        loop = asyncio.get_running_loop()
        script = self._clients.get(loop)
        if script is None:
            script = self._clients[loop] = self._client().register_script(_ACCEPT_AND_QUEUE)
        return script

    def _client(self) -> aioredis.Redis:
        """The Redis every part of the product uses (``worker.redis_clients``: topology, retries, name); with a
        plain URL on a bounded pool: in a burst, requests wait for one of POOL_SIZE connections (Redis answers
        each in microseconds) rather than each opening its own, which costs more than the accept itself. The
        wait is not timed out: Twenty2 does not redeliver, so a late 200 beats a 503 (a hung Redis still
        fails each command after SOCKET_TIMEOUT, and then answers 503). Sentinel's pool follows the primary
        and stays as it is."""
        client = async_redis_client(self.runtime.settings, socket_timeout=SOCKET_TIMEOUT)
        if uses_sentinel(self.runtime.settings):
            return client
        pool = client.connection_pool
        bounded = aioredis.BlockingConnectionPool(
            max_connections=POOL_SIZE, timeout=None, connection_class=pool.connection_class, **pool.connection_kwargs
        )
        return aioredis.Redis(connection_pool=bounded)  # retries are in the connection options

    async def accept(
        self, call_id: str, *, detail: dict[str, Any], phone: str | None, lead_id: str | None
    ) -> tuple[State | None, bool]:
        """(the call's ledger state before this webhook, whether a sync was queued). Raises when Redis cannot
        take it (nothing then was written)."""
        runtime = self.runtime
        keys, args = runtime.ledger.accept_call(call_id, source="webhook", detail=detail)
        hints, order = runtime.lead_cache.hint_keys
        args += [
            self._messages(call_id),
            runtime.lead_cache.sealed_hint(phone=phone, lead_id=lead_id),
            MAX_HINTS,
            HINT_TTL,
            *self._enqueue_from,
        ]
        before, queued = await self._script()(keys=[*keys, hints, order, QUEUE], args=args)
        text = before.decode() if isinstance(before, bytes) else str(before)
        return (State(text) if text else None), bool(queued)
