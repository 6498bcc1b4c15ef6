"""Liveness of the Celery processes, for the ops console: each worker and beat writes a heartbeat to Redis.

Keys: ``crm-sync:heartbeats`` (sorted set of ``{role}|{name}`` by the time of its last heartbeat) and
``crm-sync:heartbeat-info`` (hash: the same member → JSON ``{"at", "pid", "host"}``), rewritten every
``EVERY`` seconds. Readers take what beat within ``TTL``; entries silent for ``FORGET_AFTER`` are dropped.
Two keys, not a key per process: the console reads them every few seconds without scanning the keyspace.
Started from Celery's own signals (``worker_ready``, ``beat_init``), so every machine's processes report
into the one Redis the console reads.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from typing import Any, cast

import redis
import structlog
from celery.signals import beat_init, worker_ready, worker_shutdown

from worker.settings import Settings

log = structlog.get_logger(__name__)

EVERY = 10.0
TTL = 60
FORGET_AFTER = 86400
BEATS = "crm-sync:heartbeats"
INFO = "crm-sync:heartbeat-info"
_stop = threading.Event()


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


def _loop(role: str, name: str, url: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=2)
    while True:
        try:
            beat_once(client, role, name)
        except redis.RedisError as exc:  # Redis restarting: the next beat tries again
            log.warning("heartbeat.failed", role=role, error=type(exc).__name__)
        if _stop.wait(EVERY):
            forget(client, role, name)
            return


def start(role: str, name: str, url: str | None = None) -> threading.Thread:
    thread = threading.Thread(
        target=_loop, args=(role, name, url or Settings().redis_url), name=f"heartbeat-{role}", daemon=True
    )
    thread.start()
    return thread


@worker_ready.connect
def _worker_ready(sender: Any = None, **_: Any) -> None:
    start("worker", str(getattr(sender, "hostname", None) or f"worker@{socket.gethostname()}:{os.getpid()}"))


@worker_shutdown.connect
def _worker_shutdown(**_: Any) -> None:
    _stop.set()


@beat_init.connect
def _beat_init(**_: Any) -> None:
    start("beat", f"beat@{socket.gethostname()}:{os.getpid()}")
