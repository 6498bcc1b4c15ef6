"""The intake's accept path: at most one Redis round trip per webhook, on an asyncio client (no thread hop),
and under load one for many (the webhooks that arrive while earlier ones are out go together).

One Lua script does, atomically for each webhook, what ``Ledger.accept`` + ``LeadCache.hint`` +
``Runtime.enqueue`` do in three to five round trips and ~1.7 ms of Celery/kombu publishing code: accept the
call in the ledger (the ledger's own script, ``worker.ledger.ACCEPT_SCRIPT``), and, when the state it had
calls for a sync (``ENQUEUE_FROM``), write the Lead hint and push the Celery task message onto the broker
queue. So a call is never recorded queued without its task (or the reverse): Redis takes all of it or none,
and the intake answers 503 on none. A batch is the same script run over each webhook in turn.

The message is Celery's own (``app.amqp.as_task_v2``: protocol-2 headers and body), in the envelope kombu's
Redis transport stores (``Channel._put``: ``LPUSH <queue>`` of the JSON message, body base64, a fresh
``delivery_tag``); ``tests/integration/test_intake_queue.py`` holds it equal to what ``send_task`` pushes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
import weakref
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from celery import Celery

from worker.celery_app import QUEUE
from worker.ledger import ACCEPT_SCRIPT, State
from worker.once import LUA_HELPERS, token
from worker.redis_clients import async_redis_client, uses_sentinel
from worker.replicas import ReplicaConfirm
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

#: Webhooks per script call at most, and script calls in flight per event loop at once (see ``_Lane``).
MAX_BATCH = 64
MAX_IN_FLIGHT = 2
#: Keys and arguments of one webhook in the batch script (its call and history keys; the state sets are
#: the same for every webhook and go once, with the shared keys).
ITEM_KEYS, ITEM_ARGS = 2, 8
#: The accept script's state sets (``Ledger.state_keys``: one per state), after its ITEM_KEYS.
STATE_SETS = len(State)

# A batch of webhooks, each as it would be alone, in arrival order (a duplicate of an earlier one in the
# same batch sees it queued). Per webhook: accept the call in the ledger, and when the state it had calls
# for a sync, write the Lead hint and push the task message; once per token (``worker.once``): a batch that
# redis-py resends after its answer was lost gets its first answers back and pushes nothing again.
# KEYS: per webhook the accept script's first 2 (call, history); then its STATE_SETS state sets, hints
#       hash, hint order list, queue list.
# ARGV: webhooks n, hint cap, hint ttl, m, the m states before which a sync is queued ('' = never seen);
#       then per webhook the accept script's 5 (id, now, event json, force, source), task message json,
#       sealed hint ('' = none), token.
# Returns per webhook: the state before ('' = never seen), 1/0 queued.
_ACCEPT_AND_QUEUE = (
    LUA_HELPERS
    + "local function accept(KEYS, ARGV)\n"  # the parameters stand in for the globals the script reads
    + ACCEPT_SCRIPT
    + """
end
local n, m = tonumber(ARGV[1]), tonumber(ARGV[4])
local queues = {}
for i = 5, 4 + m do queues[ARGV[i]] = true end
local shared = n * ITEM_KEYS
local after = shared + STATE_SETS
local hints, order, queue = KEYS[after + 1], KEYS[after + 2], KEYS[after + 3]
local keys = {}
for j = 1, STATE_SETS do keys[ITEM_KEYS + j] = KEYS[shared + j] end
local out = {}
for w = 0, n - 1 do
  local k, a = w * ITEM_KEYS, 4 + m + w * ITEM_ARGS
  local args = {}
  keys[1], keys[2] = KEYS[k + 1], KEYS[k + 2]
  for j = 1, ITEM_ARGS - 3 do args[j] = ARGV[a + j] end
  local token = ARGV[a + ITEM_ARGS]  -- each webhook's last argument
  local replayed, before = once_seen(keys[1], token)
  local queued = 0
  if replayed then
    if queues[before] then queued = 1 end
  else
    before = accept(keys, args)
    if queues[before] then
      local id, hint = ARGV[a + 1], ARGV[a + 7]
      if hint ~= '' then
        redis.call('HSET', hints, id, hint)
        redis.call('RPUSH', order, id)
        redis.call('LTRIM', order, -tonumber(ARGV[2]), -1)
        redis.call('EXPIRE', hints, ARGV[3])
        redis.call('EXPIRE', order, ARGV[3])
      end
      redis.call('LPUSH', queue, ARGV[a + 6])
      queued = 1
    end
    once_keep(keys[1], token, before)
  end
  out[#out + 1] = before
  out[#out + 1] = queued
end
return out
""".replace("ITEM_KEYS", str(ITEM_KEYS))
    .replace("ITEM_ARGS", str(ITEM_ARGS))
    .replace("STATE_SETS", str(STATE_SETS))
)


class NotReplicated(Exception):
    """Redis took the webhook, but no replica confirmed it within ``REDIS_WAIT_REPLICAS_MS``
    (``worker.replicas``): the intake answers 503 so the sender retries."""


@dataclass
class _Webhook:
    keys: list[str]
    args: list[Any]
    answer: asyncio.Future[tuple[State | None, bool]]


class _Lane:
    """One event loop's way to Redis: webhooks wait in ``pending`` while ``MAX_IN_FLIGHT`` script calls are
    out, and go together in the next one (at most ``MAX_BATCH``). A lone webhook goes at once; under load,
    one round trip and one script call serve many, which is what Redis and this process spend least on.

    When there are replicas to wait for, one confirmation (``ReplicaConfirm.confirm``, in a thread: WAIT
    blocks) follows each script call and covers every webhook in it: it starts after the script returned,
    and a replica that has its mark has every write before it."""

    def __init__(self, script: Any, replicas: ReplicaConfirm, shared_keys: list[str], shared_args: list[Any]) -> None:
        self.script = script
        self.replicas = replicas
        self.shared_keys, self.shared_args = shared_keys, shared_args
        self.pending: list[_Webhook] = []
        self.in_flight = 0
        self.tasks: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak references

    def add(self, webhook: _Webhook) -> None:
        self.pending.append(webhook)
        if self.in_flight < MAX_IN_FLIGHT:
            self.in_flight += 1
            task = asyncio.get_running_loop().create_task(self._drain())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _drain(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
                await self._send(batch)
        finally:
            self.in_flight -= 1

    async def _send(self, batch: list[_Webhook]) -> None:
        keys = [key for webhook in batch for key in webhook.keys]
        args = [len(batch), *self.shared_args, *(arg for webhook in batch for arg in webhook.args)]
        try:
            out = await self.script(keys=[*keys, *self.shared_keys], args=args)
            if self.replicas.must_wait() and not await asyncio.to_thread(self.replicas.confirm):
                raise NotReplicated
        except Exception as exc:  # each webhook of the batch answers for itself (503)
            for webhook in batch:
                if not webhook.answer.done():
                    webhook.answer.set_exception(exc)
            return
        for webhook, before, queued in zip(batch, out[::2], out[1::2], strict=True):
            if not webhook.answer.done():  # a request cancelled meanwhile
                text = before.decode() if isinstance(before, bytes) else str(before)
                webhook.answer.set_result(((State(text) if text else None), bool(queued)))


#: The parts of a task message that differ from one message to the next.
_VARYING = ("body", "task_id", "argsrepr", "delivery_tag")


class TaskMessages:
    """``sync_call(call_id)`` messages as kombu's Redis transport stores them on ``queue`` (see the module
    docstring). Celery's ``as_task_v2`` builds the first; the others copy it with their own ids and argument,
    the only parts that differ (as_task_v2 per message costs the intake more than its Redis round trip)."""

    def __init__(self, celery: Celery, *, queue: str = QUEUE) -> None:
        message = celery.amqp.as_task_v2("", TASK_NAME, args=[""], kwargs={}, ignore_result=None)
        self._embed = json.dumps(message.body[2])  # callbacks, errbacks, chain, chord: all None for a plain send
        marks = {name: f"@@{name}@@" for name in _VARYING}  # stand-ins for the varying parts, split out below
        envelope = json.dumps(
            {
                "body": marks["body"],
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": {
                    **message.headers,
                    "id": marks["task_id"],
                    "root_id": marks["task_id"],
                    "argsrepr": marks["argsrepr"],
                },
                "properties": {
                    **message.properties,
                    "correlation_id": marks["task_id"],
                    "reply_to": celery.thread_oid,
                    "delivery_mode": 2,
                    "delivery_info": {"exchange": "", "routing_key": queue},
                    "priority": 0,
                    "body_encoding": "base64",
                    "delivery_tag": marks["delivery_tag"],
                },
            }
        )
        # The envelope as a format string with a field per varying part (json.dumps of a whole message per
        # call cost more than the rest of this method).
        template = envelope.replace("{", "{{").replace("}", "}}")
        for name, mark in marks.items():
            template = template.replace(mark, f"{{{name}}}")
        self._template = template

    def __call__(self, call_id: str) -> str:
        task_id = str(uuid.uuid4())
        quoted = json.dumps(call_id)
        body = f"[[{quoted}], {{}}, {self._embed}]".encode()  # as json.dumps([[call_id], {}, embed]) writes it
        return self._template.format(
            body=base64.b64encode(body).decode(),
            task_id=task_id,
            argsrepr=json.dumps(repr([call_id]))[1:-1],
            delivery_tag=str(uuid.uuid4()),
        )


class IntakeQueue:
    """Accepts webhooks for one runtime: ledger record, Lead hint and task message in one script call, with
    the webhooks that arrive meanwhile (``_Lane``).

    The asyncio Redis client is made per event loop (a uvicorn worker has one; a test client may start
    several), each with its own connection pool and lane, reused by every request on that loop."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._lanes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Lane] = weakref.WeakKeyDictionary()
        self._messages = TaskMessages(runtime.celery)
        queue_from = ["" if state is None else state.value for state, yes in ENQUEUE_FROM.items() if yes]
        self._shared_keys = [*runtime.ledger.state_keys, *runtime.lead_cache.hint_keys, QUEUE]
        self._shared_args: list[Any] = [MAX_HINTS, HINT_TTL, len(queue_from), *queue_from]

    def _lane(self) -> _Lane:
        loop = asyncio.get_running_loop()
        lane = self._lanes.get(loop)
        if lane is None:
            script = self._client().register_script(_ACCEPT_AND_QUEUE)
            lane = self._lanes[loop] = _Lane(script, self.runtime.replicas, self._shared_keys, self._shared_args)
        return lane

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
        """(the call's ledger state before this webhook, whether a sync was queued), once Redis has it and,
        when there are replicas to wait for, a replica too. Raises ``NotReplicated`` when none confirmed in
        time, and Redis's error when it could not take the script call this webhook went in (then Redis
        wrote none of it, or, if the script failed midway, the earlier webhooks of its batch: their senders
        retry and find them queued)."""
        runtime = self.runtime
        keys, args = runtime.ledger.accept_call(call_id, source="webhook", detail=detail)
        args += [self._messages(call_id), runtime.lead_cache.sealed_hint(phone=phone, lead_id=lead_id), token()]
        answer: asyncio.Future[tuple[State | None, bool]] = asyncio.get_running_loop().create_future()
        self._lane().add(_Webhook(keys[:ITEM_KEYS], args, answer))  # the state sets go once per batch
        return await answer
