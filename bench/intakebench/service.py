"""The service under load: one checkout's web + worker + beat on a private Redis, the bare app, CPU readings."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import requests

from intakebench.options import APP_SPEC, BARE_FASTAPI_SPEC, BARE_SPEC, REPO_ROOT, SECRET
from standins.stack.ports import free_port
from standins.stack.processes import child_env, procfile
from standins.stack.redis_server import RedisServer
from worker.ledger import Ledger


@dataclass
class Service:
    """web + worker + beat of one checkout (its Procfile, its code) on a private Redis, plus the bare apps."""

    tree: Path
    work: Path
    env: dict[str, str]
    busy_worker: bool = False
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    redis_server: RedisServer | None = None
    intake: str = ""
    bare: str = ""
    bare_fastapi: str = ""

    def start(self) -> Service:
        self.redis_server = RedisServer(self.work / "redis").start()
        entries = procfile(self.tree / "Procfile")
        web_port, bare_port, fastapi_port = free_port(), free_port(), free_port()
        env = {
            **self.env,
            "REDIS_URL": self.redis_server.url,
            "TWENTY2_WEBHOOK_SECRET": SECRET,
            "CRM_SYNC_HTTP_HOST": "127.0.0.1",
            "CELERY_BEAT_SCHEDULE": str(self.work / "beat-schedule"),
            "CRM_SYNC_INTAKE_RATE_LIMIT_PER_MINUTE": "0",
            "CRM_SYNC_LOG_FORMAT": "json",
            "PYTHONPATH": f"{self.tree}{os.pathsep}{REPO_ROOT / 'bench'}",
        }
        if APP_SPEC not in entries["web"]:
            raise RuntimeError(f"the web command of {self.tree / 'Procfile'} does not serve {APP_SPEC}")
        if self.busy_worker:
            env["TWENTY2_RATE_LIMIT_PER_MINUTE"] = "0"
        self._env, self._entries = env, entries
        self._spawn("web", entries["web"], web_port)
        self._spawn("bare", entries["web"].replace(APP_SPEC, BARE_SPEC), bare_port)
        self._spawn("bare-fastapi", entries["web"].replace(APP_SPEC, BARE_FASTAPI_SPEC), fastapi_port)
        self._spawn("worker", entries["worker"])
        self._spawn("beat", entries["beat"])
        self.intake, self.bare = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{bare_port}"
        self.bare_fastapi = f"http://127.0.0.1:{fastapi_port}"
        self._wait_ready({"web", "bare", "bare-fastapi", "worker"})
        return self

    def _spawn(self, name: str, command: str, port: int = 0, extra: dict[str, str] | None = None) -> None:
        log_dir = self.work / "log"
        log_dir.mkdir(parents=True, exist_ok=True)
        log = (log_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [shutil.which("bash") or "/bin/bash", "-c", f"exec {command}"],  # as a Procfile runner runs it
            cwd=self.tree,
            env=child_env({**self._env, "PORT": str(port), **(extra or {})}),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def drain_worker(self) -> None:
        """Replace the worker with one whose Twenty2 budget is lifted, so the backlog drains in minutes, not at
        60/min (the queued messages stay in Redis; the old worker finishes what it holds first)."""
        if self.busy_worker:
            return
        self._stop("worker")
        self._spawn("drain-worker", self._entries["worker"], extra={"TWENTY2_RATE_LIMIT_PER_MINUTE": "0"})
        self._wait_ready({"drain-worker"})

    def _stop(self, name: str) -> None:
        process = self.processes.pop(name)
        if process.poll() is None:
            os.killpg(process.pid, 15)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()

    def _wait_ready(self, pending: set[str], timeout: float = 120.0) -> None:
        log_dir = self.work / "log"
        deadline = time.monotonic() + timeout
        while pending:
            for name, url in (("web", self.intake), ("bare", self.bare), ("bare-fastapi", self.bare_fastapi)):
                try:
                    if name in pending and requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                        pending.discard(name)
                except requests.RequestException:
                    pass
            for name in [p for p in pending if "worker" in p]:
                if " ready." in (log_dir / f"{name}.log").read_text(errors="replace"):
                    pending.discard(name)
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}; see {log_dir}")
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {timeout:.0f} s: {sorted(pending)} (logs in {log_dir})")
            time.sleep(0.2)

    @property
    def ledger(self) -> Ledger:
        assert self.redis_server is not None
        return Ledger(redis.Redis.from_url(self.redis_server.url, socket_timeout=30))

    def stop(self) -> None:
        for name in list(self.processes):
            self._stop(name)
        if self.redis_server is not None:
            self.redis_server.stop()


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its live descendants (uvicorn's workers, say)."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def own_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` itself plus its children it has waited for (``wrk``, once a run returns), but
    not its live ones (the service's processes, counted on their own)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLOCK_TICKS


def cpu_snapshot(service: Service) -> dict[str, float]:
    pids = {name: p.pid for name, p in service.processes.items()}
    if service.redis_server is not None and service.redis_server.process is not None:
        pids["redis"] = service.redis_server.process.pid
    snapshot = {name: tree_cpu(pid) for name, pid in pids.items()}
    snapshot["stand-ins"] = own_cpu(os.getpid())
    return snapshot


@contextmanager
def cpu_of(service: Service, into: dict[str, Any]) -> Iterator[None]:
    """CPU seconds each process spent during the block, into ``into["cpu_s"]``."""
    before, start = cpu_snapshot(service), time.monotonic()
    yield
    after = cpu_snapshot(service)
    into["cpu_s"] = {name: round(after[name] - before.get(name, 0.0), 2) for name in after}
    into["wall_s"] = round(time.monotonic() - start, 2)


@contextmanager
def checkout(ref: str, work: Path) -> Iterator[Path]:
    """``ref`` of this repository as a detached worktree under ``work`` (removed afterwards)."""
    tree = work / f"tree-{ref.replace('/', '_')}"
    subprocess.run(
        ["git", "-C", str(REPO_ROOT), "worktree", "add", "--detach", "-f", str(tree), ref],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield tree
    finally:
        subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force", str(tree)], check=False)
