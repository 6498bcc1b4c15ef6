"""The live stack of a chaos run, built from ``standins.stack``: the sandboxes (in this process), and web +
N workers + beat from the Procfile on the run's private Redis, with the run's settings; and
``crm-sync replay --all-failed`` run against it as ops would."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from chaos.options import WEBHOOK_SECRET
from standins.stack.ports import free_port
from standins.stack.processes import Stack, child_env, service_env, wait_ready
from standins.stack.redis_server import RedisServer
from standins.stack.sandboxes import Sandboxes
from worker.ledger import Ledger

REPO_ROOT = Path(__file__).resolve().parents[1]


def work_dir(given: Path | None) -> Path:
    """``given``, or a new ``var/chaos-*`` directory of the checkout: Redis files, TLS files and logs."""
    if given is None:
        var = REPO_ROOT / "var"
        var.mkdir(exist_ok=True)
        given = Path(tempfile.mkdtemp(prefix="chaos-", dir=var))
    given.mkdir(parents=True, exist_ok=True)
    return given


@contextmanager
def sandboxes(work: Path) -> Iterator[Sandboxes]:
    """Both sandboxes over HTTPS on loopback, the Twenty2 sandbox's own 60/min limit lifted."""
    with Sandboxes(work / "tls") as boxes:
        boxes.twenty2.configure(rate_limit_per_minute=None)  # the sandbox's own 60/min, lifted
        yield boxes


@dataclass
class Services:
    """The Procfile processes of a run: their environment, the intake's URL, the worker names (updated as
    workers are killed and restarted) and the ledger on the run's Redis."""

    env: dict[str, str]
    processes: Stack
    workers: list[str]
    intake: str
    ledger: Ledger


def start_services(
    boxes: Sandboxes, redis_server: RedisServer, work: Path, workers: int, settings: dict[str, str]
) -> Services:
    """Start web, ``workers`` workers and beat with ``settings`` (environment variables) on top of the
    sandboxes' and the Redis'; return once the intake and every worker are ready (on failure the started
    processes are stopped)."""
    port = free_port()
    env = service_env(
        boxes.env, redis_url=redis_server.url, secret=WEBHOOK_SECRET, work=work, port=port, extra=settings
    )
    processes = Stack(env=env, log_dir=work / "log")
    names = [f"worker-{i + 1}" for i in range(workers)]
    try:
        for name in ("web", *names, "beat"):
            processes.start(name, entry="worker" if name.startswith("worker") else name)
        intake = f"http://127.0.0.1:{port}"
        wait_ready(intake, processes, names)
    except BaseException:
        processes.stop()
        raise
    ledger = Ledger(redis.Redis.from_url(redis_server.url, socket_timeout=5))
    return Services(env=env, processes=processes, workers=names, intake=intake, ledger=ledger)


def replay_all_failed(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``crm-sync replay --all-failed``, as ops would run it, with the service's environment."""
    command = [str(Path(sys.executable).parent / "crm-sync"), "replay", "--all-failed"]
    return subprocess.run(
        command, env=child_env(env), cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False
    )
