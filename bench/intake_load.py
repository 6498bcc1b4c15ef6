"""Intake load test: the ``web`` process under a realistic webhook mix, beside a bare endpoint's ceiling.

Usage::

    .venv/bin/python bench/intake_load.py [--seconds 10] [--rate 500] [--burst 10000] [--burst-seconds 10]
        [--baseline main] [--rounds 1] [--json]

Load generator: ``wrk`` (Debian package, installed with apt-get when missing) driven by
``bench/intake_load.lua``, which posts a prepared sequence of requests: 80% valid unique webhooks
(``call.completed`` / ``call.failed`` as the Twenty2 stand-in renders them, the secret as the path's last
segment, as Twenty2 is given it), 8% redeliveries of an earlier webhook (duplicates, fresh ``event_id``),
6% malformed (not JSON, NaN, no call id, wrong content type) and 6% unauthenticated (a wrong secret in the
path, or none). The service is the Procfile's ``web`` + ``worker`` + ``beat`` on a private redis-server, pointed
at the Twenty2 and Salesforce stand-ins (in this process). During the load the worker keeps the default Twenty2
budget (60 requests/min, as in production: a storm is a backlog for the worker, not CPU it burns beside the
intake; ``--busy-worker`` lifts it, so the worker syncs flat out on the same cores). Afterwards it is
replaced by one with the budget lifted, to drain the backlog in minutes (``--no-drain`` skips that). The
intake's per-source flood limit is off (one load generator is one source; its default, 600/min per source,
would answer most of the load 429).

Per tree (this checkout, and ``--baseline REF`` checked out into ``var/`` when given), alternating:

- **(a) bare**: the Procfile's web command serving ``bench/bare_app.py`` (answers 200, does nothing) —
  the ceiling of this machine — as fast as 64 connections go, ``--seconds``: requests/s, p50/p99/max.
- **(b) intake**: the same request sequence, same way, against the product's intake.
- **(c) steady**: ``--rate`` webhooks/s for ``--seconds`` (constant rate, wrk2-style schedule in the Lua
  script): achieved rate, p99, max, and *lost* = answered 200 but missing from the ledger, or not synced
  (or skipped) once the worker drained the backlog (``--no-drain``: neither resolved nor with its task
  waiting in the broker).
- **(d) burst**: ``--burst`` webhooks in ``--burst-seconds``: the slowest answer, and lost.

Targets: (b) >= 50% of (a)'s requests/s; (c) p99 < 100 ms and 0 lost; (d) max < 5 s.
``run(LoadOptions(...))`` returns every figure; ``--json`` prints them.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO_ROOT))

import redis  # noqa: E402
import requests  # noqa: E402

from standins.stack.ports import free_port  # noqa: E402
from standins.stack.processes import child_env, procfile  # noqa: E402
from standins.stack.redis_server import RedisServer  # noqa: E402
from standins.stack.sandboxes import Sandboxes  # noqa: E402
from worker.celery_app import QUEUE  # noqa: E402
from worker.ledger import Ledger, State  # noqa: E402

LUA = REPO_ROOT / "bench" / "intake_load.lua"
SECRET = "load-webhook-secret-8d2f41"  # the private intake of this run only
APP_SPEC = "worker.intake.app:create_app"
BARE_SPEC = "bare_app:create_app"
#: Share of each kind of request in the mix.
MIX = {"valid": 0.80, "duplicate": 0.08, "malformed": 0.06, "unauthenticated": 0.06}
#: Resolved = the call reached Salesforce (synced) or was decided not to (skipped): not lost.
DONE_STATES = (State.SYNCED, State.SKIPPED)
THROUGHPUT_CONNECTIONS = 64
WRK_THREADS = 2

TARGET_SHARE = 0.50
TARGET_STEADY_P99_MS = 100.0
TARGET_BURST_MAX_S = 5.0


@dataclass
class LoadOptions:
    seconds: int = 10
    rate: int = 500
    burst: int = 10_000
    burst_seconds: int = 10
    baseline: str | None = None
    rounds: int = 1
    drain_timeout: float = 900.0
    drain: bool = True
    busy_worker: bool = False
    steady_connections: int = 100
    burst_connections: int = 500
    work_dir: Path | None = None
    say: Callable[[str], None] = field(default=lambda text: print(text, file=sys.stderr, flush=True))


# --- the load generator -------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """``wrk``'s path, installing the Debian package first when it is missing (as scripts/_venv.sh does
    for redis-server)."""
    found = shutil.which("wrk")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], check=True, stdout=subprocess.DEVNULL)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and apt-get could not install it")
    return found


def wrk(
    url: str,
    requests_file: Path,
    *,
    connections: int,
    duration: int,
    rate: int = 0,
    limit: int = 0,
    timeout: int = 10,
) -> dict[str, Any]:
    """One wrk run; its figures (requests, duration, latency percentiles in ms, statuses, accepted ids)."""
    out = requests_file.with_suffix(f".{time.monotonic_ns()}.out")
    command = [
        ensure_wrk(),
        "-t",
        str(WRK_THREADS),
        "-c",
        str(connections),
        "-d",
        f"{duration}s",
        "--timeout",
        f"{timeout}s",
        "-s",
        str(LUA),
        url,
        "--",
        str(requests_file),
        str(rate),
        str(limit),
        str(WRK_THREADS),
    ]
    env = dict(os.environ, CRM_SYNC_LOAD_OUT=str(out))
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, timeout=duration + timeout + 60)
    lines = out.read_text().splitlines()
    head = json.loads(lines[0])
    statuses: Counter[int] = Counter()
    accepted: list[str] = []
    span = 0.0
    for line in lines[1:]:
        kind, _, rest = line.partition("\t")
        if kind == "status":
            code, n = rest.split("\t")
            statuses[int(code)] += int(n)
        elif kind == "span_ms":
            span = float(rest) / 1000
        elif kind == "accepted" and rest:
            accepted.append(rest)
    errors = head["errors"]
    # A run with a request limit idles once it is sent: its rate is over the time from the first send to
    # the last answer. (Its idle connections also count as wrk "timeouts": unanswered = limit - answered.)
    seconds = span if limit else head["duration_us"] / 1e6
    return {
        "requests": head["requests"],
        "seconds": round(seconds, 2),
        "requests_per_second": round(head["requests"] / seconds, 1) if seconds else 0.0,
        "p50_ms": head["p50_us"] / 1000,
        "p99_ms": head["p99_us"] / 1000,
        "max_ms": head["max_us"] / 1000,
        # Idle connections of a limited run are closed by the server's keep-alive timeout: read errors that
        # are no failed request; its failures are the unanswered ones.
        "socket_errors": 0 if limit else errors["connect"] + errors["read"] + errors["write"],
        "timeouts": max(0, limit - head["requests"]) if limit else errors["timeout"],
        "statuses": dict(sorted(statuses.items())),
        "accepted": accepted,
    }


# --- the requests -------------------------------------------------------------------------------------------


class Mix:
    """Writes request sequences for the Lua script: one ``path<TAB>content-type<TAB>body`` line each."""

    def __init__(self, boxes: Sandboxes, seed: int = 5) -> None:
        self.boxes = boxes
        self.rng = random.Random(seed)
        self.sent: list[str] = []  # valid call ids written so far (what duplicates redeliver)

    def write(self, path: Path, n: int) -> Path:
        kinds = self.rng.choices(list(MIX), weights=list(MIX.values()), k=n)
        fresh = iter(self.boxes.twenty2.add_generated_calls(kinds.count("valid"), seed=self.rng.randrange(2**31)))
        lines = []
        for kind in kinds:
            if kind == "duplicate" and not self.sent:
                kind = "valid"
                fresh = iter([*self.boxes.twenty2.add_generated_calls(1, seed=self.rng.randrange(2**31)), *fresh])
            lines.append(getattr(self, kind)(fresh))
        path.write_text("".join("\t".join(parts) + "\n" for parts in lines))
        return path

    def _post(self, call_id: str) -> tuple[str, str, str]:
        body = json.dumps(self.boxes.twenty2.webhook_payload(call_id), separators=(",", ":"))
        return (f"/webhooks/twenty2/{SECRET}", "application/json", body)

    def valid(self, fresh: Iterator[str]) -> tuple[str, str, str]:
        call_id = next(fresh)
        self.sent.append(call_id)
        return self._post(call_id)

    def duplicate(self, fresh: Iterator[str]) -> tuple[str, str, str]:
        return self._post(self.rng.choice(self.sent[-2000:]))

    def malformed(self, fresh: Iterator[str]) -> tuple[str, str, str]:
        path = f"/webhooks/twenty2/{SECRET}"
        return self.rng.choice(
            [
                (path, "application/json", '{"event":"call.completed","call":{"call_id":'),  # cut short: 400
                (path, "application/json", '{"call_id":NaN}'),  # 400
                (path, "application/json", '{"event":"call.completed","call":{}}'),  # no call id: 422
                (path, "text/plain", "call_id=6a100328ba090039ac8610a2"),  # 415
            ]
        )

    def unauthenticated(self, fresh: Iterator[str]) -> tuple[str, str, str]:
        body = json.dumps({"call_id": self.rng.choice(self.sent or ["6a100328ba090039ac8610a2"])})
        return self.rng.choice(
            [
                ("/webhooks/twenty2/not-the-secret", "application/json", body),
                ("/webhooks/twenty2", "application/json", body),
            ]
        )


# --- the service --------------------------------------------------------------------------------------------


@dataclass
class Service:
    """web + worker + beat of one checkout (its Procfile, its code) on a private Redis, plus the bare app."""

    tree: Path
    work: Path
    env: dict[str, str]
    busy_worker: bool = False
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    redis_server: RedisServer | None = None
    intake: str = ""
    bare: str = ""

    def start(self) -> Service:
        self.redis_server = RedisServer(self.work / "redis").start()
        entries = procfile(self.tree / "Procfile")
        web_port, bare_port = free_port(), free_port()
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
        self._spawn("worker", entries["worker"])
        self._spawn("beat", entries["beat"])
        self.intake, self.bare = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{bare_port}"
        self._wait_ready({"web", "bare", "worker"})
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
            for name, url in (("web", self.intake), ("bare", self.bare)):
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


def cpu_snapshot(service: Service) -> dict[str, float]:
    pids = {name: p.pid for name, p in service.processes.items()}
    if service.redis_server is not None and service.redis_server.process is not None:
        pids["redis"] = service.redis_server.process.pid
    pids["stand-ins"] = os.getpid()
    return {name: tree_cpu(pid) for name, pid in pids.items()}


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


# --- the phases ---------------------------------------------------------------------------------------------


def queued_call_ids(client: redis.Redis) -> set[str]:
    """Call ids whose sync task is in the broker: waiting in the queue, or held (unacked) by a worker."""
    raw = [json.loads(m) for m in client.lrange(QUEUE, 0, -1)]  # type: ignore[union-attr]
    raw += [json.loads(v)[0] for v in client.hvals("unacked")]  # type: ignore[union-attr]
    sync_calls = [m for m in raw if m["headers"].get("task") == "crm_sync.sync_call"]  # beat's share the queue
    return {json.loads(base64.b64decode(m["body"]))[0][0] for m in sync_calls}


def lost(ledger: Ledger, accepted: list[str], *, in_broker: set[str]) -> dict[str, int]:
    """Call ids answered 200 that the ledger does not have (``missing``), or that it shows neither synced nor
    skipped while no task for them waits in the broker (``not_done``: nothing would ever sync them)."""
    ids = sorted(set(accepted))
    found: dict[str, State] = {}
    for start in range(0, len(ids), 1000):
        for record in ledger.get_many(ids[start : start + 1000]):
            found[record.call_id] = record.state
    missing = len(ids) - len(found)
    not_done = sum(1 for c, state in found.items() if state not in DONE_STATES and c not in in_broker)
    return {"accepted_calls": len(ids), "missing": missing, "not_done": not_done, "lost": missing + not_done}


def wait_drained(ledger: Ledger, ids: list[str], timeout: float) -> float:
    """Seconds until every one of ``ids`` is resolved (synced, skipped or failed), or ``timeout``."""
    start = time.monotonic()
    pending = sorted(set(ids))
    while pending and time.monotonic() - start < timeout:
        states = {}
        for begin in range(0, len(pending), 1000):
            for record in ledger.get_many(pending[begin : begin + 1000]):
                states[record.call_id] = record.state
        pending = [c for c in pending if states.get(c) not in (*DONE_STATES, State.FAILED)]
        if pending:
            time.sleep(1.0)
    return time.monotonic() - start


def run_tree(label: str, service: Service, mix: Mix, options: LoadOptions, work: Path) -> dict[str, Any]:
    say = options.say
    rate_seconds = options.seconds
    # Enough requests that (b) never wraps at up to 2,000 requests/s (wrapped valid ones would be duplicates).
    throughput_file = mix.write(work / f"{label}-throughput.tsv", max(200, 2000 * options.seconds))
    figures: dict[str, Any] = {}
    say(f"[{label}] (a) bare endpoint, {options.seconds} s")
    cpu: dict[str, dict[str, Any]] = {name: {} for name in ("bare", "intake", "steady", "burst")}
    with cpu_of(service, cpu["bare"]):
        figures["bare"] = wrk(
            f"{service.bare}", throughput_file, connections=THROUGHPUT_CONNECTIONS, duration=options.seconds
        )
    say(f"[{label}] (b) intake, {options.seconds} s")
    with cpu_of(service, cpu["intake"]):
        figures["intake"] = wrk(
            f"{service.intake}", throughput_file, connections=THROUGHPUT_CONNECTIONS, duration=options.seconds
        )
    steady_n = options.rate * rate_seconds
    say(f"[{label}] (c) steady {options.rate}/s for {rate_seconds} s")
    steady_file = mix.write(work / f"{label}-steady.tsv", steady_n)
    with cpu_of(service, cpu["steady"]):
        figures["steady"] = wrk(
            service.intake,
            steady_file,
            connections=options.steady_connections,
            duration=rate_seconds + 5,
            rate=options.rate,
            limit=steady_n,
            timeout=rate_seconds + 10,
        )
    say(f"[{label}] (d) burst of {options.burst} in {options.burst_seconds} s")
    burst_file = mix.write(work / f"{label}-burst.tsv", options.burst)
    with cpu_of(service, cpu["burst"]):
        figures["burst"] = wrk(
            service.intake,
            burst_file,
            connections=options.burst_connections,
            duration=options.burst_seconds + 10,
            rate=max(1, options.burst // options.burst_seconds),
            limit=options.burst,
            timeout=options.burst_seconds + 15,
        )
    for name, spent in cpu.items():
        figures[name].update(spent)
        # The figure a shared machine does not move much: the server's CPU per answered request (how fast the
        # server answers also depends on how much CPU the other processes on the machine leave it).
        server = spent["cpu_s"].get("bare" if name == "bare" else "web", 0.0)
        figures[name]["server_cpu_ms_per_request"] = (
            round(server / figures[name]["requests"] * 1000, 3) if figures[name]["requests"] else None
        )
    ledger = service.ledger
    all_accepted = [c for name in ("intake", "steady", "burst") for c in figures[name]["accepted"]]
    figures["drain_seconds"] = None
    if options.drain:
        service.drain_worker()
        say(f"[{label}] waiting for the worker to drain {len(set(all_accepted))} accepted calls")
        figures["drain_seconds"] = round(wait_drained(ledger, all_accepted, options.drain_timeout), 1)
    in_broker = set() if options.drain else queued_call_ids(ledger.r)
    for name in ("intake", "steady", "burst"):
        figures[name]["lost"] = lost(ledger, figures[name].pop("accepted"), in_broker=in_broker)
    figures["bare"].pop("accepted")
    figures["share_of_bare"] = round(
        figures["intake"]["requests_per_second"] / figures["bare"]["requests_per_second"], 3
    )
    figures["targets"] = targets(figures, options)
    return figures


def targets(figures: dict[str, Any], options: LoadOptions) -> list[dict[str, Any]]:
    steady, burst = figures["steady"], figures["burst"]
    burst_complete = burst["requests"] >= options.burst and not burst["timeouts"] and not burst["socket_errors"]
    return [
        {
            "target": f"(b) intake >= {TARGET_SHARE:.0%} of the bare endpoint's requests/s",
            "measured": figures["share_of_bare"],
            "met": figures["share_of_bare"] >= TARGET_SHARE,
        },
        {
            "target": f"(c) steady {options.rate}/s: p99 < {TARGET_STEADY_P99_MS:.0f} ms",
            "measured": steady["p99_ms"],
            "met": steady["p99_ms"] < TARGET_STEADY_P99_MS and steady["requests_per_second"] >= 0.95 * options.rate,
        },
        {"target": "(c) steady: 0 lost", "measured": steady["lost"]["lost"], "met": steady["lost"]["lost"] == 0},
        {
            "target": f"(d) burst {options.burst} in {options.burst_seconds} s: max < {TARGET_BURST_MAX_S:.0f} s",
            "measured": burst["max_ms"] / 1000,
            "met": burst["max_ms"] / 1000 < TARGET_BURST_MAX_S and burst_complete,
        },
        {"target": "(d) burst: 0 lost", "measured": burst["lost"]["lost"], "met": burst["lost"]["lost"] == 0},
    ]


def run(options: LoadOptions) -> dict[str, Any]:
    """Every figure of the load test, per tree and round (see the module docstring)."""
    ensure_wrk()
    work = options.work_dir or Path(tempfile.mkdtemp(prefix="intake-load-", dir=_var_dir()))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict[str, Any]]] = {}
    with Sandboxes(work / "tls") as boxes:
        boxes.twenty2.configure(rate_limit_per_minute=None)
        mix = Mix(boxes)
        trees: list[tuple[str, Path]] = [("this", REPO_ROOT)]
        with contextlib_nullable(options.baseline, work) as baseline_tree:
            if baseline_tree is not None:
                trees.insert(0, (f"baseline {options.baseline}", baseline_tree))
            for round_no in range(options.rounds):
                for label, tree in trees:
                    run_work = work / f"{label.replace(' ', '-').replace('/', '_')}-{round_no}"
                    service = Service(tree, run_work, boxes.env, busy_worker=options.busy_worker).start()
                    try:
                        results.setdefault(label, []).append(run_tree(label, service, mix, options, run_work))
                        (work / "results.json").write_text(json.dumps(results, indent=2))  # kept if a later run fails
                    finally:
                        service.stop()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "options": {
            "seconds": options.seconds,
            "rate": options.rate,
            "burst": options.burst,
            "burst_seconds": options.burst_seconds,
            "baseline": options.baseline,
            "rounds": options.rounds,
            "busy_worker": options.busy_worker,
            "drain": options.drain,
        },
        "results": results,
    }


@contextmanager
def contextlib_nullable(ref: str | None, work: Path) -> Iterator[Path | None]:
    if ref is None:
        yield None
        return
    with checkout(ref, work) as tree:
        yield tree


# --- output -------------------------------------------------------------------------------------------------


def table(result: dict[str, Any]) -> str:
    rows = [
        "| tree | run | requests | req/s | p50 ms | p99 ms | max ms | statuses | errors "
        "| lost (missing + not synced) | server CPU ms/request | CPU s: server / worker / redis / wrk + stand-ins |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    names = {"bare": "(a) bare endpoint", "intake": "(b) intake", "steady": "(c) steady", "burst": "(d) burst"}
    verdicts = []
    for label, runs in result["results"].items():
        for index, figures in enumerate(runs):
            tag = label if len(runs) == 1 else f"{label} #{index + 1}"
            for key, name in names.items():
                f = figures[key]
                statuses = " ".join(f"{code}:{n}" for code, n in f["statuses"].items())
                lost_cell = "–"
                if "lost" in f:
                    lost_cell = f"{f['lost']['lost']} ({f['lost']['missing']} + {f['lost']['not_done']})"
                rows.append(
                    f"| {tag} | {name} | {f['requests']} | {f['requests_per_second']} | {f['p50_ms']:.2f} | "
                    f"{f['p99_ms']:.2f} | {f['max_ms']:.2f} | {statuses} | "
                    f"{f['socket_errors'] + f['timeouts']} | {lost_cell} | {f.get('server_cpu_ms_per_request')} | "
                    f"{_cpu_cell(key, f)} |"
                )
            for target in figures["targets"]:
                verdicts.append(
                    f"| {tag} | {target['target']} | {target['measured']} | {'yes' if target['met'] else 'NO'} |"
                )
            verdicts.append(f"| {tag} | intake / bare requests/s | {figures['share_of_bare']} | |")
            verdicts.append(f"| {tag} | worker drain after the runs, s | {figures['drain_seconds']} | |")
    return "\n".join([*rows, "", "| tree | target | measured | met |", "| --- | --- | ---: | --- |", *verdicts])


def _cpu_cell(run: str, figures: dict[str, Any]) -> str:
    cpu = figures.get("cpu_s")
    if not cpu:
        return "–"
    server = cpu.get("bare" if run == "bare" else "web", 0.0)
    worker = cpu.get("worker", 0.0) + cpu.get("beat", 0.0)
    return f"{server} / {worker} / {cpu.get('redis', 0.0)} / {cpu.get('stand-ins', 0.0)} in {figures['wall_s']} s"


def _var_dir() -> Path:
    var = REPO_ROOT / "var"
    var.mkdir(exist_ok=True)
    return var


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of (a), (b) and (c)")
    parser.add_argument("--rate", type=int, default=500, help="(c)'s constant rate, webhooks/s")
    parser.add_argument("--burst", type=int, default=10_000, help="(d)'s number of webhooks")
    parser.add_argument("--burst-seconds", type=int, default=10, help="(d)'s length")
    parser.add_argument("--baseline", help="also measure this git ref (e.g. main), alternating with this tree")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the alternation this many times")
    parser.add_argument("--drain-timeout", type=float, default=900.0, help="seconds to wait for the worker")
    parser.add_argument(
        "--busy-worker",
        action="store_true",
        help="lift the worker's Twenty2 budget during the load too (it then syncs flat out beside the intake)",
    )
    parser.add_argument(
        "--no-drain",
        action="store_true",
        help="do not wait for the sync of every accepted call: lost = not in the ledger, or neither resolved "
        "nor with its task in the broker",
    )
    parser.add_argument("--json", action="store_true", help="print every figure as JSON")
    args = parser.parse_args(argv)
    result = run(
        LoadOptions(
            seconds=args.seconds,
            rate=args.rate,
            burst=args.burst,
            burst_seconds=args.burst_seconds,
            baseline=args.baseline,
            rounds=args.rounds,
            drain_timeout=args.drain_timeout,
            busy_worker=args.busy_worker,
            drain=not args.no_drain,
        )
    )
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0 if all(t["met"] for runs in result["results"].values() for f in runs for t in f["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
