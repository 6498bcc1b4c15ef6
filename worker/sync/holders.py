"""Which worker holds which call, and the return of a dead worker's calls within seconds.

Redis redelivers a killed worker's unacknowledged task only after the visibility timeout (15 min by
default), and the stale sweep waits twice that. This module closes the gap:

- A worker marks a call as held (``hold``) when it *receives* the task (Celery's ``task_received``: also
  the prefetched ones it has not started) and drops the mark when the task ends (``drop``). Keys:
  ``crm-sync:holds:{owner}`` (sorted set of call ids by the time taken) and ``crm-sync:holders`` (sorted set
  of owners by their last hold). ``owner`` is ``worker.heartbeat.owner_id()``; the call lock's value starts
  with it too (``lock_token``), so the sweep can tell whose a lock is.
- Each worker keeps a liveness key (``worker.heartbeat``, ``LIVE_TTL`` 10 s, rewritten every 2 s).
- Beat's sweep (``reclaim``, every 5 s) decides which holders are dead (``decide``, pure): no liveness key,
  and still none ``GRACE`` seconds after it was first found missing (``crm-sync:suspects``: a key lost in
  a Redis failover is rewritten by its live worker within one beat, so a live worker is never declared
  dead for one missing read). For each call a dead owner held that is not resolved: its lock is deleted if
  (and only if) it is still the dead owner's, and the call is queued again as a fresh task.

A worker can also die in the instant between taking a message from Redis (kombu moves it to its
``unacked`` hash) and marking it held. The sweep therefore also looks at kombu's ``unacked`` messages older
than ``ORPHAN_AFTER`` whose call no live worker holds and the ledger has not resolved (``orphans``): it
queues each such call again and removes the message from ``unacked`` (what kombu's own restore would do
after the visibility timeout, minutes earlier). A live worker's message it takes by mistake (its hold
already dropped, its ack not yet sent) only costs one more task, which the per-call guard turns away.

Last, a message can vanish altogether: a worker (or the primary, in a failover) dies between kombu's
BRPOP and its ``unacked`` write, so the message is in no queue, in no ``unacked`` hash, and in nobody's
holds; or a task ends without recording (its Redis writes failed past their retries). ``lost`` finds such
calls: queued or syncing in the ledger, not due, untouched for ``LOST_AFTER`` seconds, not locked (nobody
syncs it), and whose task is neither in ``unacked`` nor waiting in the queue (read whole while it is
shorter than ``QUEUE_SCAN_LIMIT``; a longer backlog leaves it to the stale sweep).

Why no duplicates: the later redelivery of the dead worker's own message (after the visibility timeout)
finds the call resolved in the ledger and does nothing; a Task the dead worker wrote before dying is found
again by the upsert on its external id. Worst case from a SIGKILL to the call queued again: ``LIVE_TTL`` +
one sweep + ``GRACE`` rounded up to sweeps, about 25 s; the chaos run prints the measured kill→sync delay.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import redis
import structlog

from worker import heartbeat
from worker.ledger import RESOLVED, Ledger

log = structlog.get_logger(__name__)

HOLDS = "crm-sync:holds:"
HOLDERS = "crm-sync:holders"
SUSPECTS = "crm-sync:suspects"
#: Seconds a holder's liveness key must stay missing, after the sweep first saw it missing, to be dead.
GRACE = 8.0
#: kombu's Redis transport: delivered, not yet acknowledged messages (hash by delivery tag, sorted set by time).
UNACKED = "unacked"
UNACKED_INDEX = "unacked_index"
#: An unacked message no live worker holds is an orphan after this many seconds (never a worker's message
#: in the milliseconds between its delivery and its hold).
ORPHAN_AFTER = 15.0
SYNC_TASK = "crm_sync.sync_call"
#: A queued/syncing call untouched this long, whose task is nowhere, is re-queued (``lost``).
LOST_AFTER = 30.0
#: The queue is read whole only while it holds fewer messages than this.
QUEUE_SCAN_LIMIT = 20_000
#: kombu's Redis priority lists of a queue: the bare name (priority 0, what we publish) and the others.
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)
#: A suspect seen alive again is cleared; one never seen again is dropped after this long.
FORGET_SUSPECT_AFTER = 3600.0

# Delete a call lock only if it is still the dead owner's (its value starts with "owner|").
# KEYS: lock. ARGV: owner prefix.
_FREE_IF_OWNED = """
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, string.len(ARGV[1])) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def lock_key(call_id: str) -> str:
    """The per-call guard's lock (``worker.sync.core.call_lock``)."""
    return f"crm-sync:lock:{call_id}"


def lock_token(owner: str | None) -> str:
    """A call lock's value: the holder's owner id and a random part (``{owner}|{hex}``; ``-`` without)."""
    return f"{owner or '-'}|{uuid.uuid4().hex}"


def hold(client: redis.Redis, owner: str, call_id: str, now: float | None = None) -> None:
    """``owner`` has received the task of ``call_id`` (one round trip)."""
    now = time.time() if now is None else now
    pipe = client.pipeline(transaction=False)
    pipe.zadd(HOLDS + owner, {call_id: now})
    pipe.zadd(HOLDERS, {owner: now})
    pipe.execute()


def drop(client: redis.Redis, owner: str, call_id: str) -> None:
    """``owner``'s task of ``call_id`` ended (whatever its outcome)."""
    client.zrem(HOLDS + owner, call_id)


def held(client: redis.Redis, owner: str) -> list[str]:
    """The calls ``owner`` holds now."""
    return [_s(m) for m in cast(list[Any], client.zrange(HOLDS + owner, 0, -1))]


@dataclass(frozen=True)
class Verdict:
    """What one sweep concludes: owners now dead, newly suspected (missing for the first time), cleared."""

    dead: list[str]
    suspected: list[str]
    cleared: list[str]


def decide(
    holders: list[str], alive: set[str], suspects: dict[str, float], now: float, grace: float = GRACE
) -> Verdict:
    """Pure: a holder with a liveness key is alive (a suspicion of it is cleared); one without is suspected
    when first seen so, and dead once it has been suspected for ``grace`` seconds."""
    dead, suspected = [], []
    for owner in holders:
        if owner in alive:
            continue
        since = suspects.get(owner)
        if since is None:
            suspected.append(owner)
        elif now - since >= grace:
            dead.append(owner)
    cleared = [owner for owner in suspects if owner in alive or (owner not in holders and owner not in dead)]
    return Verdict(dead=dead, suspected=suspected, cleared=cleared)


def call_of(raw: bytes | str) -> str | None:
    """Pure: the call id of a kombu ``unacked`` entry (``[message, exchange, routing_key]``) when it is a
    ``crm_sync.sync_call`` task (protocol 2: the body is base64 JSON ``[args, kwargs, embed]``), else None."""
    try:
        message = json.loads(raw)[0]
        if message.get("headers", {}).get("task") != SYNC_TASK:
            return None
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, binascii.Error):
        return None
    return str(args[0]) if isinstance(args, list) and args and isinstance(args[0], str) else None


def orphans(client: redis.Redis, live: list[str], now: float, older_than: float = ORPHAN_AFTER) -> dict[str, str]:
    """Delivery tag → call id of the ``unacked`` sync messages older than ``older_than`` that none of the
    ``live`` owners holds."""
    tags = [_s(t) for t in cast(list[Any], client.zrangebyscore(UNACKED_INDEX, "-inf", now - older_than))]
    if not tags:
        return {}
    raws = cast(list[Any], client.hmget(UNACKED, tags))
    calls = {tag: call for tag, raw in zip(tags, raws, strict=True) if raw and (call := call_of(raw))}
    if not calls:
        return {}
    pipe = client.pipeline(transaction=False)
    for owner in live:
        pipe.zrange(HOLDS + owner, 0, -1)
    held_now = {_s(m) for members in pipe.execute() for m in members}
    return {tag: call for tag, call in calls.items() if call not in held_now}


def lost(client: redis.Redis, ledger: Ledger, queue: str, now: float) -> list[str]:
    """Calls whose task vanished (see the module docstring): to be queued again."""
    candidates = ledger.stale(now - LOST_AFTER)
    if not candidates:
        return []
    keys = [queue, *(f"{queue}{_PRIORITY_SEPARATOR}{step}" for step in _PRIORITY_STEPS)]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.llen(key)
    if sum(int(n) for n in pipe.execute()) > QUEUE_SCAN_LIMIT:
        return []  # a long backlog: the stale sweep is the fallback
    pipe = client.pipeline(transaction=False)
    for call_id in candidates:
        pipe.exists(lock_key(call_id))
    pipe.hvals(UNACKED)
    for key in keys:
        pipe.lrange(key, 0, -1)
    results = pipe.execute()
    n = len(candidates)
    locked = {call_id for call_id, found in zip(candidates, results[:n], strict=True) if found}
    unacked = {call for raw in results[n] if (call := call_of(raw))}
    waiting = {call for items in results[n + 1 :] for raw in items if (call := queued_call(raw))}
    return [c for c in candidates if c not in locked and c not in unacked and c not in waiting]


def queued_call(raw: bytes | str) -> str | None:
    """The call id of a message waiting in a kombu queue list (the message itself, not wrapped)."""
    return call_of(b"[" + (raw if isinstance(raw, bytes) else raw.encode()) + b"]")


def reclaim(
    client: redis.Redis,
    ledger: Ledger,
    enqueue: Callable[[str], None],
    now: float | None = None,
    queue: str = "crm-sync",
) -> list[str]:
    """One sweep: queue again the unresolved calls of dead holders (see the module docstring). Returns them.
    ``enqueue(call_id)`` queues a fresh task; ``queue``: the Celery queue the sync tasks wait in."""
    now = time.time() if now is None else now
    # Holders whose last hold is old and who hold nothing are forgotten (a worker that stopped cleanly).
    holders = [_s(m) for m in cast(list[Any], client.zrange(HOLDERS, 0, -1))]
    for owner in holders:
        if not client.exists(HOLDS + owner):
            client.zrem(HOLDERS, owner)
    holders = [owner for owner in holders if client.exists(HOLDS + owner)]
    suspects = {_s(k): float(_s(v)) for k, v in cast(dict[Any, Any], client.hgetall(SUSPECTS)).items()}
    verdict = decide(holders, heartbeat.alive(client, holders), suspects, now)
    if verdict.suspected:
        client.hset(SUSPECTS, mapping=dict.fromkeys(verdict.suspected, repr(now)))
    stale_suspects = [o for o, since in suspects.items() if now - since > FORGET_SUSPECT_AFTER]
    if verdict.cleared or stale_suspects:
        client.hdel(SUSPECTS, *{*verdict.cleared, *stale_suspects})
    requeued: list[str] = []
    for owner in verdict.dead:
        calls = held(client, owner)
        for call_id in calls:
            record = ledger.get(call_id)
            if record is not None and record.state in RESOLVED:
                continue  # finished before it died: its own redelivery will find it resolved too
            client.eval(_FREE_IF_OWNED, 1, lock_key(call_id), f"{owner}|")
            enqueue(call_id)
            ledger.note(call_id, "requeued_dead_worker", worker=owner)
            requeued.append(call_id)
        pipe = client.pipeline(transaction=False)
        pipe.delete(HOLDS + owner)
        pipe.zrem(HOLDERS, owner)
        pipe.hdel(SUSPECTS, owner)
        pipe.execute()
        log.warning("sweep.dead_worker", worker=owner, held=len(calls), requeued=sum(c in requeued for c in calls))
    live = [owner for owner in holders if owner not in verdict.dead]
    for tag, call_id in orphans(client, live, now).items():
        record = ledger.get(call_id)
        if call_id not in requeued and (record is None or record.state not in RESOLVED):
            enqueue(call_id)
            ledger.note(call_id, "requeued_orphan_message")
            requeued.append(call_id)
        pipe = client.pipeline(transaction=False)
        pipe.hdel(UNACKED, tag)
        pipe.zrem(UNACKED_INDEX, tag)
        pipe.execute()
        log.warning("sweep.orphan_message", call_id=call_id, requeued=call_id in requeued)
    for call_id in lost(client, ledger, queue, now):
        if call_id in requeued:
            continue
        enqueue(call_id)
        ledger.touch(call_id)
        ledger.note(call_id, "requeued_lost_message")
        requeued.append(call_id)
        log.warning("sweep.lost_message", call_id=call_id)
    return requeued


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
