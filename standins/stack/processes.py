"""Run the Procfile's processes as child processes (the private Redis they may use: ``redis_server``).

Used by ``crm-sync run`` / ``demo``, the integration tests, the benchmark and the chaos run, so all of
them exercise the Procfile lines exactly as written.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from standins.stack.ports import free_port
from worker.settings import REPO_ROOT


def procfile(path: Path = REPO_ROOT / "Procfile") -> dict[str, str]:
    """``{name: command}`` from a Procfile."""
    entries = {}
    for line in path.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not name.startswith("#"):
            entries[name.strip()] = command.strip()
    return entries


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment for child processes: ours, the venv's bin first on PATH, plus ``extra``."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class Stack:
    """Child processes started from the Procfile with a shared environment."""

    env: dict[str, str]
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The children run in sessions of their own (so a kill takes their whole group): stop them when we exit.
        atexit.register(self.stop)

    def start(
        self, name: str, *, entry: str | None = None, extra_env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        command = procfile()[entry or name]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(  # noqa: S603 - the Procfile line, run by bash as a Procfile runner would
            [shutil.which("bash") or "/bin/bash", "-c", f"exec {command}"],
            cwd=REPO_ROOT,
            env=child_env({**self.env, **(extra_env or {})}),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name] = process
        return process

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes.get(name)
        if process and process.poll() is None:
            os.killpg(process.pid, sig)
            process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM to every process group at once, then SIGKILL to those still up after 30 s (a worker's warm
        shutdown waits for the tasks it runs; one stuck in a hung request must not fail the teardown)."""
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()


def wait_http(url: str, timeout: float = 30.0) -> None:
    """Return once ``url`` answers 200; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s")
        time.sleep(0.1)


def wait_ready(intake: str, stack: Stack, workers: list[str], timeout: float = 90.0) -> None:
    """Return once the intake answers ``/readyz`` and each named worker has logged Celery's "ready."."""
    deadline = time.monotonic() + timeout
    pending = {"web", *workers}
    while pending:
        if "web" in pending:
            try:
                if requests.get(f"{intake}/readyz", timeout=1).status_code == 200:
                    pending.discard("web")
            except requests.RequestException:
                pass
        for name in [w for w in pending if w != "web"]:
            log = stack.log_dir / f"{name}.log"
            if log.exists() and " ready." in log.read_text(errors="replace"):
                pending.discard(name)
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"not ready after {timeout:.0f}s: {sorted(pending)} (logs in {stack.log_dir})")
        time.sleep(0.1)


def service_env(
    env: dict[str, str], *, redis_url: str, secret: str, work: Path, port: int, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The Procfile processes' environment for a service on loopback port ``port``: ``env`` (e.g. the
    sandboxes'), the Redis, the webhook secret, a beat schedule file under ``work``, then ``extra``."""
    return {
        **env,
        "REDIS_URL": redis_url,
        "TWENTY2_WEBHOOK_SECRET": secret,
        "PORT": str(port),
        "CRM_SYNC_HTTP_HOST": "127.0.0.1",
        "CELERY_BEAT_SCHEDULE": str(work / "beat-schedule"),
        **(extra or {}),
    }


def start_local_service(
    env: dict[str, str],
    *,
    redis_url: str,
    secret: str,
    work: Path,
    port: int | None = None,
    names: tuple[str, ...] = ("web", "worker", "beat"),
    extra: dict[str, str] | None = None,
) -> tuple[Stack, str]:
    """Start the Procfile's processes on loopback with ``env`` (e.g. the sandboxes'); wait until the
    intake is ready. Returns the stack and the intake's base URL."""
    port = port or free_port()
    stack = Stack(
        env=service_env(env, redis_url=redis_url, secret=secret, work=work, port=port, extra=extra),
        log_dir=work / "log",
    )
    for name in names:
        stack.start(name)
    intake = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{intake}/readyz")
    except RuntimeError:
        stack.stop()
        raise
    return stack, intake
