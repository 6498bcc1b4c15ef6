"""Liveness of the Celery processes, for the ops console: each worker and beat writes a heartbeat to Redis.

Keys: ``crm-sync:heartbeat:worker:{hostname}`` and ``crm-sync:heartbeat:beat:{hostname}``, each a JSON
``{"at", "pid", "host"}`` rewritten every ``EVERY`` seconds and expiring after ``TTL`` (a process that dies
disappears within a minute). Started from Celery's own signals (``worker_ready``, ``beat_init``), so every
machine's processes report into the one Redis the console reads.
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
PREFIX = "crm-sync:heartbeat"
_stop = threading.Event()


def key(role: str, name: str) -> str:
    return f"{PREFIX}:{role}:{name}"


def beat_once(client: redis.Redis, role: str, name: str) -> None:
    """Write one heartbeat of ``role`` (``worker`` / ``beat``) for the process ``name``."""
    payload = {"at": time.time(), "pid": os.getpid(), "host": socket.gethostname()}
    client.set(key(role, name), json.dumps(payload), ex=TTL)


def read(client: redis.Redis) -> dict[str, list[dict[str, Any]]]:
    """Every live heartbeat by role: ``{"worker": [{"name", "at", "pid", "host"}], "beat": [...]}``."""
    found: dict[str, list[dict[str, Any]]] = {"worker": [], "beat": []}
    keys = [k.decode() if isinstance(k, bytes) else str(k) for k in client.scan_iter(f"{PREFIX}:*", count=200)]
    values = cast(list[Any], client.mget(keys)) if keys else []
    for name, raw in zip(keys, values, strict=True):
        if raw is None:
            continue
        role, _, process = name[len(PREFIX) + 1 :].partition(":")
        found.setdefault(role, []).append({"name": process, **json.loads(raw)})
    for beats in found.values():
        beats.sort(key=lambda item: item["name"])
    return found


def _loop(role: str, name: str, url: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=2)
    while True:
        try:
            beat_once(client, role, name)
        except redis.RedisError as exc:  # Redis restarting: the next beat tries again
            log.warning("heartbeat.failed", role=role, error=type(exc).__name__)
        if _stop.wait(EVERY):
            client.delete(key(role, name))
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
