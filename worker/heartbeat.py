"""Liveness of the Celery processes, for the ops console: each worker and beat writes a heartbeat to Redis.

Keys: ``crm-sync:heartbeats`` (sorted set of ``{role}|{name}`` by the time of its last heartbeat) and
``crm-sync:heartbeat-info`` (hash: the same member → JSON ``{"at", "pid", "host"}``), rewritten every
``EVERY`` seconds. Readers take what beat within ``TTL``; entries silent for ``FORGET_AFTER`` are dropped.
Two keys, not a key per process: the console reads them every few seconds without scanning the keyspace.
Started from Celery's own signals (``worker_ready``, ``beat_init``), so every machine's processes report
into the one Redis the console reads.

Liveness (what the sweep trusts to re-queue a dead worker's calls, ``worker.sync.holders``): each worker
process also keeps ``crm-sync:alive:{owner}`` with a ``LIVE_TTL`` expiry, rewritten every ``EVERY`` seconds.
``owner`` (``owner_id()``) is unique per process (host, pid, a random part: Celery's default node name is
the same for every worker of a host); locks and holds carry it. A process that stops cleanly deletes it;
a killed one's key expires ``LIVE_TTL`` seconds after its last beat.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from typing import Any, cast

import redis
import structlog
from celery.signals import beat_init, worker_ready, worker_shutdown

from worker.settings import Settings

log = structlog.get_logger(__name__)

EVERY = 2.0
TTL = 60
#: A worker whose liveness key is older than this is presumed dead (several missed beats: never one slow beat).
LIVE_TTL = 10
FORGET_AFTER = 86400
BEATS = "crm-sync:heartbeats"
INFO = "crm-sync:heartbeat-info"
ALIVE = "crm-sync:alive:"
_stop = threading.Event()
_owner: str | None = None
_owner_lock = threading.Lock()


def owner_id() -> str:
    """This process's id as a holder of calls: ``{host}:{pid}:{random}``, made once per process."""
    global _owner
    with _owner_lock:
        if _owner is None or _owner.split(":")[-2] != str(os.getpid()):  # a forked child gets its own
            _owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        return _owner


_live = threading.Event()


def live_owner() -> str | None:
    """This process's owner id when it keeps a liveness key (a worker), else None: a process without a
    heartbeat (the CLI) must not mark calls as held, or the sweep would soon take them for a dead worker's."""
    return owner_id() if _live.is_set() else None


def alive_key(owner: str) -> str:
    return ALIVE + owner


def beat_alive(client: redis.Redis, owner: str) -> None:
    """Write (or extend) ``owner``'s liveness key for ``LIVE_TTL`` seconds."""
    client.set(alive_key(owner), repr(time.time()), ex=LIVE_TTL)


def alive(client: redis.Redis, owners: list[str]) -> set[str]:
    """Which of ``owners`` have a liveness key now (one round trip)."""
    if not owners:
        return set()
    pipe = client.pipeline(transaction=False)
    for owner in owners:
        pipe.exists(alive_key(owner))
    return {owner for owner, found in zip(owners, pipe.execute(), strict=True) if found}


def beat_once(client: redis.Redis, role: str, name: str) -> None:
    """Write one heartbeat of ``role`` (``worker`` / ``beat``) for the process ``name``."""
    now = time.time()
    member = f"{role}|{name}"
    pipe = client.pipeline(transaction=False)
    pipe.zadd(BEATS, {member: now})
    pipe.hset(INFO, member, json.dumps({"at": now, "pid": os.getpid(), "host": socket.gethostname()}))
    pipe.execute()


def forget(client: redis.Redis, role: str, name: str) -> None:
    """A process that stops cleanly removes its heartbeat."""
    pipe = client.pipeline(transaction=False)
    pipe.zrem(BEATS, f"{role}|{name}")
    pipe.hdel(INFO, f"{role}|{name}")
    pipe.execute()


def read(client: redis.Redis, now: float | None = None) -> dict[str, list[dict[str, Any]]]:
    """Heartbeats of the last ``TTL`` seconds by role: ``{"worker": [{"name", "at", "pid", "host"}], ...}``."""
    now = time.time() if now is None else now
    gone = cast(list[Any], client.zrangebyscore(BEATS, "-inf", now - FORGET_AFTER))
    if gone:
        client.zrem(BEATS, *gone)
        client.hdel(INFO, *gone)
    members = [_s(m) for m in cast(list[Any], client.zrangebyscore(BEATS, now - TTL, "+inf"))]
    found: dict[str, list[dict[str, Any]]] = {"worker": [], "beat": []}
    values = cast(list[Any], client.hmget(INFO, members)) if members else []
    for member, raw in zip(members, values, strict=True):
        role, _, process = member.partition("|")
        info = json.loads(raw) if raw else {"at": 0}
        found.setdefault(role, []).append({**info, "name": process})
    for beats in found.values():
        beats.sort(key=lambda item: item["name"])
    return found


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _loop(role: str, name: str, client: redis.Redis, owner: str | None) -> None:
    while True:
        try:
            beat_once(client, role, name)
            if owner is not None:
                beat_alive(client, owner)
        except redis.RedisError as exc:  # Redis restarting or failing over: the next beat tries again
            log.warning("heartbeat.failed", role=role, error=type(exc).__name__)
        if _stop.wait(EVERY):
            try:
                forget(client, role, name)
                if owner is not None:
                    client.delete(alive_key(owner))
            except redis.RedisError:
                pass  # the key expires on its own
            return


def start(role: str, name: str, client: redis.Redis | None = None, *, owner: str | None = None) -> threading.Thread:
    """Beat for ``role``/``name`` in a daemon thread; with ``owner``, keep its liveness key too."""
    if client is None:
        from worker.redis_clients import redis_client

        client = redis_client(Settings(), purpose="heartbeat")
    if owner is not None:
        _live.set()  # from now on this process's syncs mark their calls as held by ``owner``
    thread = threading.Thread(target=_loop, args=(role, name, client, owner), name=f"heartbeat-{role}", daemon=True)
    thread.start()
    return thread


@worker_ready.connect
def _worker_ready(sender: Any = None, **_: Any) -> None:
    owner = owner_id()
    start("worker", str(getattr(sender, "hostname", None) or "worker") + f" ({owner})", owner=owner)


@worker_shutdown.connect
def _worker_shutdown(**_: Any) -> None:
    _stop.set()


@beat_init.connect
def _beat_init(**_: Any) -> None:
    start("beat", f"beat@{socket.gethostname()}:{os.getpid()}")
