"""Sync benchmark: the same N calls through the naive sync, the product's streaming path and its bulk mode.

Usage::

    .venv/bin/python bench/sync_benchmark.py [--calls 2000] [--twenty2-latency-ms 120]
        [--salesforce-latency-ms 80] [--concurrency 16] [--workers 1] [--paths naive,stream,bulk]
        [--drain [--drain-calls 600] [--drain-limit 60] [--drain-only]] [--json]

The two sandboxes run in child processes, one each (``crm-sync sandbox --only``: the real services are
separate hosts), so the CPU this process spends is the sync's own; each request waits the injected latency
(Twenty2 120 ms, Salesforce 80 ms by default). The org is reset to the same start before each path: the same
Leads (with the same ids), the same N calls (35% name their Lead by id, 45% reach it by a number stored in
one of several spellings, 20% are numbers no Lead has).

- **(a) naive**: ``bench/naive_sync.py`` on a thread pool as large as the workers' (concurrency x workers);
  latency = each call's wall time.
- **(b) stream**: the Procfile's web + worker(s) + beat on a private Redis, N webhooks posted to the intake,
  until the ledger shows every call resolved. ``TWENTY2_RATE_LIMIT_PER_MINUTE=0`` and the sandbox's limit
  lifted. Latency = ledger ``accepted`` → ``synced``; CPU = utime + stime of the worker processes (/proc).
- **(c) bulk**: ``worker.sync.bulk`` (what ``crm-sync backfill --from-file`` runs) in this process on the same
  ids; latency = start of the run → ``synced`` (a backfill hands every id over at once).

Per path: Salesforce requests per call (the sandbox's own count), Twenty2 requests per call (detail +
transcript downloads), calls/second, p50/p95 latency, CPU-seconds per 1,000 calls, and the ratios of (b)
and (c) to (a). The ceiling of a per-call path is concurrency / (its requests per call x their latency).

``--drain``: a backlog of ``--drain-calls`` webhooks through the streaming path with Twenty2 limited to
``--drain-limit``/min (the sandbox AND the product's shared limiter): drain time, its ratio to
calls / limit, the sandbox's 429 answers; then the same backlog with the limit lifted, against the ceiling.

``run_benchmark(BenchOptions(...))`` returns every figure (and ``--json`` prints them).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
for path in (REPO_ROOT, REPO_ROOT / "bench"):  # run as a plain script from a checkout
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import redis  # noqa: E402
import requests  # noqa: E402
from naive_sync import NaiveConfig, NaiveSync  # noqa: E402

from standins import SERVICES  # noqa: E402
from standins.stack.ports import free_port  # noqa: E402
from standins.stack.processes import Stack, child_env, service_env, wait_ready  # noqa: E402
from standins.stack.redis_server import RedisServer  # noqa: E402
from worker.ledger import Ledger  # noqa: E402
from worker.logs import configure_logging  # noqa: E402
from worker.runtime import Runtime  # noqa: E402
from worker.settings import Settings  # noqa: E402
from worker.sync.bulk import BulkSync  # noqa: E402

WEBHOOK_SECRET = "bench-webhook-secret-5c1e9a"  # the private intake of this run only
PATHS = ("naive", "stream", "bulk")
LABELS = {"naive": "(a) naive", "stream": "(b) streaming", "bulk": "(c) bulk"}
FINAL_STATES = ("synced", "skipped", "failed")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

#: Targets the figures are reported against.
TARGET_STREAM_SF_PER_CALL = 1.05
TARGET_BULK_SF_PER_CALL = 0.02
TARGET_STREAM_CEILING_SHARE = 0.80


@dataclass
class BenchOptions:
    calls: int = 2000
    twenty2_latency_ms: float = 120.0
    salesforce_latency_ms: float = 80.0
    concurrency: int = 16
    workers: int = 1
    paths: tuple[str, ...] = PATHS
    drain: bool = False
    drain_only: bool = False
    drain_calls: int = 600
    drain_limit: int = 60
    seed: int = 7
    unknown_share: float = 0.2
    timeout: float = 3600.0
    work_dir: Path | None = None
    say: Callable[[str], None] = field(default=lambda text: print(text, file=sys.stderr, flush=True))


# --- the sandboxes, one child process each ------------------------------------------------------------------


class SandboxProcess:
    """The Twenty2 and Salesforce sandboxes, each in its own child process (``crm-sync sandbox --only``), as
    the real services are separate hosts: one sandbox's load does not hold up the other's answers. Driven
    over their admin endpoints; ``env`` holds both's settings and a CA bundle trusting both."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.processes: list[subprocess.Popen[bytes]] = []
        self.env: dict[str, str] = {}
        self.http = requests.Session()
        self.http.trust_env = False

    def __enter__(self) -> SandboxProcess:
        try:
            bundle = []
            for service in SERVICES:
                directory = self.directory / service
                self.env |= self._start(service, directory)
                bundle.append((directory / "ca.pem").read_text())
            ca_bundle = self.directory / "ca-bundle.pem"
            ca_bundle.write_text("".join(bundle))
            self.env["CRM_SYNC_CA_BUNDLE"] = str(ca_bundle)
            self.http.verify = str(ca_bundle)
            self.sf("GET", "health")
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self, service: str, directory: Path) -> dict[str, str]:
        """Start ``crm-sync sandbox --only service`` in ``directory``; its settings once it serves."""
        directory.mkdir(parents=True, exist_ok=True)
        env_file = directory / "sandbox.env"
        env_file.unlink(missing_ok=True)
        log = (directory / "sandbox.log").open("ab")
        command = ["sandbox", "--dir", str(directory), "--only", service]
        process = subprocess.Popen(
            [sys.executable, "-c", "from worker.cli import main; main()", *command],
            cwd=REPO_ROOT,
            env=child_env({}),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        deadline = time.monotonic() + 60
        while not env_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {service} sandbox did not start; see {directory / 'sandbox.log'}")
            time.sleep(0.1)
        time.sleep(0.1)  # the file is written in one go; let the writer close it
        env = {}
        for line in env_file.read_text().splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = shlex.split(value)[0] if value else ""
        return env

    def __exit__(self, *exc: object) -> None:
        self.http.close()
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()

    @property
    def twenty2_root(self) -> str:
        return self.env["TWENTY2_BASE_URL"].removesuffix("/api")

    def sf(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(
            method, f"{self.env['SALESFORCE_LOGIN_URL']}/_sandbox/{path}", json=body, timeout=60
        )
        response.raise_for_status()
        return response.json()

    def t2(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
        response = self.http.request(
            method, f"{self.twenty2_root}/_sandbox/{path}", json=body, params=params, timeout=60
        )
        response.raise_for_status()
        return response.json()


# --- the data set ------------------------------------------------------------------------------------------


#: How Leads store their numbers: reps type them every which way.
SPELLINGS: tuple[Callable[[str], str], ...] = (
    lambda d: d,
    lambda d: f"+91 {d[:5]} {d[5:]}",
    lambda d: f"0{d[:5]}-{d[5:]}",
    lambda d: f"+91{d}",
)


@dataclass
class Dataset:
    call_ids: list[str]
    leads: list[dict[str, Any]]

    @classmethod
    def build(cls, box: SandboxProcess, n: int, seed: int, unknown_share: float = 0.2) -> Dataset:
        """``n`` calls: 35/80 of the known ones name their Lead's id, the rest are found by phone, and
        ``unknown_share`` of all are to numbers no Lead has (a Lead is created for each)."""
        rng = random.Random(seed)
        known = n - round(unknown_share * n)
        by_id = round(known * 35 / 80)
        by_phone = known - by_id
        numbers = list(dict.fromkeys(rng.choice("789") + f"{rng.randrange(10**9):09d}" for _ in range(3 * n)))
        numbers = numbers[: by_id + by_phone]
        rows = []
        for i, number in enumerate(numbers):
            field_name = "MobilePhone" if i % 5 == 4 else "Phone"
            rows.append(
                {
                    "FirstName": "Bench",
                    "LastName": f"Lead {i}",
                    "Company": "Bench Co",
                    "Status": "Open - Not Contacted",
                    field_name: SPELLINGS[i % len(SPELLINGS)](number),
                }
            )
        box.sf("POST", "reset", {"demo": False})
        ids = box.sf("POST", "records/Lead", rows)["ids"]
        leads = [{"Id": lead_id, **row} for lead_id, row in zip(ids, rows, strict=True)]
        call_ids: list[str] = []
        groups = [
            {"generate": by_id, "seed": seed + 1, "lead_ids": ids[:by_id], "phones": numbers[:by_id]},
            {"generate": by_phone, "seed": seed + 2, "phones": numbers[by_id:]},
            {"generate": n - by_id - by_phone, "seed": seed + 3},
        ]
        for group in groups:
            if group["generate"]:
                call_ids += box.t2("POST", "calls", group)["call_ids"]
        rng.shuffle(call_ids)
        return cls(call_ids, leads)

    def reset(
        self, box: SandboxProcess, *, twenty2_latency_ms: float, salesforce_latency_ms: float, limit: int | None
    ) -> None:
        """The org back to its start (same Leads, same ids), Twenty2's counters cleared, latency and limit set."""
        box.sf("POST", "reset", {"demo": False})
        for start in range(0, len(self.leads), 1000):
            box.sf("POST", "records/Lead", self.leads[start : start + 1000])
        box.sf("PUT", "faults", {"latency_ms": salesforce_latency_ms})
        box.t2("POST", "reset", params={"keep_calls": "true"})
        config: dict[str, Any] = {"latency_ms": twenty2_latency_ms}
        config.update({"lift_rate_limit": True} if limit is None else {"rate_limit_per_minute": limit})
        box.t2("POST", "config", config)


# --- measuring ---------------------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(share * 100) - 1]


def proc_cpu(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def counters(box: SandboxProcess) -> dict[str, Any]:
    sf = box.sf("GET", "stats")
    t2 = box.t2("GET", "stats")
    by_path: dict[str, int] = t2.get("by_path", {})
    return {
        "salesforce": sum(sf.get("api_requests", {}).values()),
        "salesforce_by_kind": dict(sf.get("api_requests", {})),
        "twenty2": int(t2.get("requests", 0)),
        "twenty2_detail": sum(v for k, v in by_path.items() if k == "/api/call/detail"),
        "twenty2_storage": sum(v for k, v in by_path.items() if k.startswith("/api/storage/")),
        "twenty2_429": int(t2.get("by_status", {}).get("429", 0)),
    }


def figures(
    path: str,
    options: BenchOptions,
    n: int,
    *,
    seconds: float,
    latencies: list[float],
    cpu: float,
    counts: dict[str, Any],
    outcomes: dict[str, int],
) -> dict[str, Any]:
    sf_per_call = counts["salesforce"] / n
    t2_per_call = counts["twenty2"] / n
    per_call_latency = (t2_per_call * options.twenty2_latency_ms + sf_per_call * options.salesforce_latency_ms) / 1000
    ceiling = None
    if path != "bulk" and per_call_latency > 0:
        ceiling = options.concurrency * options.workers / per_call_latency
    rate = n / seconds if seconds > 0 else None
    return {
        "path": path,
        "calls": n,
        "outcomes": outcomes,
        "seconds": round(seconds, 3),
        "calls_per_second": round(rate, 2) if rate else None,
        "salesforce_requests": counts["salesforce"],
        "salesforce_per_call": round(sf_per_call, 4),
        "salesforce_by_kind": counts["salesforce_by_kind"],
        "twenty2_requests": counts["twenty2"],
        "twenty2_per_call": round(t2_per_call, 3),
        "twenty2_detail_per_call": round(counts["twenty2_detail"] / n, 3),
        "twenty2_transcript_per_call": round(counts["twenty2_storage"] / n, 3),
        "twenty2_429": counts["twenty2_429"],
        "latency_p50_seconds": _round(percentile(latencies, 0.50)),
        "latency_p95_seconds": _round(percentile(latencies, 0.95)),
        "cpu_seconds": round(cpu, 3),
        "cpu_seconds_per_1000_calls": round(cpu / n * 1000, 3),
        "ceiling_calls_per_second": _round(ceiling),
        "share_of_ceiling": round(rate / ceiling, 3) if rate and ceiling else None,
    }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def ledger_latencies(
    ledger: Ledger, call_ids: list[str], *, since: float | None = None
) -> tuple[list[float], float, float]:
    """Seconds from acceptance (or ``since``) to ``synced`` per synced call, and the first accept / last outcome."""
    latencies, first, last = [], float("inf"), 0.0
    for call_id in call_ids:
        history = ledger.history(call_id)
        accepted = next((h["at"] for h in history if h.get("event") == "accepted"), None)
        synced = next((h["at"] for h in reversed(history) if h.get("event") == "synced"), None)
        ended = next((h["at"] for h in reversed(history) if h.get("event") in FINAL_STATES), None)
        start = since if since is not None else accepted
        if start is not None:
            first = min(first, start)
            if synced is not None:
                latencies.append(synced - start)
        if ended is not None:
            last = max(last, ended)
    return latencies, first, last


def ledger_outcomes(ledger: Ledger) -> dict[str, int]:
    return {state: count for state, count in ledger.counts().items() if count}


# --- (a) naive ---------------------------------------------------------------------------------------------


def run_naive(box: SandboxProcess, options: BenchOptions, call_ids: list[str]) -> dict[str, Any]:
    naive = NaiveSync(NaiveConfig.from_env(box.env))
    latencies: list[float] = []
    failed = 0

    def one(call_id: str) -> None:
        nonlocal failed
        started = time.perf_counter()
        try:
            naive.sync(call_id)
        except requests.RequestException:
            failed += 1
            return
        latencies.append(time.perf_counter() - started)

    cpu, wall = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=options.concurrency * options.workers) as pool:
        list(pool.map(one, call_ids))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    outcomes = {"synced": len(latencies), "failed": failed}
    return figures(
        "naive",
        options,
        len(call_ids),
        seconds=wall,
        latencies=latencies,
        cpu=cpu,
        counts=counters(box),
        outcomes=outcomes,
    )


# --- (b) the streaming path ----------------------------------------------------------------------------------


@contextmanager
def service(
    box: SandboxProcess, options: BenchOptions, work: Path, *, limit: int
) -> Iterator[tuple[str, Stack, Ledger, list[str]]]:
    """web + worker(s) + beat from the Procfile on a fresh private Redis; yields (intake URL, stack, ledger,
    worker names)."""
    redis_server = RedisServer(work / "redis").start()
    port = free_port()
    env = service_env(box.env, redis_url=redis_server.url, secret=WEBHOOK_SECRET, work=work, port=port) | {
        "WORKER_CONCURRENCY": str(options.concurrency),
        "TWENTY2_RATE_LIMIT_PER_MINUTE": str(limit),
        "CRM_SYNC_INTAKE_RATE_LIMIT_PER_MINUTE": "0",  # one poster sends the whole backlog
        "CRM_SYNC_LOG_FORMAT": "json",
    }
    stack = Stack(env=env, log_dir=work / "log")
    workers = [f"worker-{i + 1}" for i in range(options.workers)]
    try:
        for name in ("web", *workers, "beat"):
            stack.start(name, entry="worker" if name.startswith("worker") else name)
        intake = f"http://127.0.0.1:{port}"
        wait_ready(intake, stack, workers)
        yield intake, stack, Ledger(redis.Redis.from_url(redis_server.url, socket_timeout=10)), workers
    finally:
        stack.stop()
        redis_server.stop()


def post_webhooks(box: SandboxProcess, intake: str, call_ids: list[str]) -> None:
    payloads = [box.t2("GET", f"calls/{c}/webhook") for c in call_ids]
    with requests.Session() as http, ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(
                lambda p: http.post(f"{intake}/webhooks/twenty2/{WEBHOOK_SECRET}", json=p, timeout=30).status_code,
                payloads,
            )
        )
    refused = [a for a in answers if a != 200]
    if refused:
        raise RuntimeError(f"the intake refused {len(refused)} webhooks ({sorted(set(refused))})")


def wait_resolved(ledger: Ledger, n: int, timeout: float, stack: Stack) -> None:
    deadline = time.monotonic() + timeout
    while sum(ledger.counts().get(s, 0) for s in FINAL_STATES) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"not every call resolved after {timeout:.0f}s: {ledger.counts()} (logs in {stack.log_dir})"
            )
        time.sleep(0.25)


def run_stream(
    box: SandboxProcess, options: BenchOptions, call_ids: list[str], work: Path, *, limit: int = 0
) -> dict[str, Any]:
    with service(box, options, work, limit=limit) as (intake, stack, ledger, workers):
        pids = [stack.processes[name].pid for name in workers]
        cpu = sum(proc_cpu(pid) for pid in pids)
        post_webhooks(box, intake, call_ids)
        wait_resolved(ledger, len(call_ids), options.timeout, stack)
        cpu = sum(proc_cpu(pid) for pid in pids) - cpu
        latencies, first, last = ledger_latencies(ledger, call_ids)
        outcomes = ledger_outcomes(ledger)
    return figures(
        "stream",
        options,
        len(call_ids),
        seconds=last - first,
        latencies=latencies,
        cpu=cpu,
        counts=counters(box),
        outcomes=outcomes,
    )


# --- (c) bulk ----------------------------------------------------------------------------------------------


def run_bulk(box: SandboxProcess, options: BenchOptions, call_ids: list[str], work: Path) -> dict[str, Any]:
    redis_server = RedisServer(work / "redis").start()
    try:
        values: dict[str, Any] = {k.lower(): v for k, v in box.env.items()}
        values.update(
            redis_url=redis_server.url, twenty2_rate_limit_per_minute=0, worker_concurrency=options.concurrency
        )
        runtime = Runtime(Settings(_env_file=None, **values))
        started = time.time()
        cpu, wall = time.process_time(), time.perf_counter()
        report = BulkSync(runtime, threads=options.concurrency * options.workers).run(
            call_ids, source="backfill", force=False
        )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        latencies, _first, _last = ledger_latencies(runtime.ledger, call_ids, since=started)
        outcomes = {k: v for k, v in report.as_dict()["outcomes"].items() if v}
    finally:
        redis_server.stop()
    return figures(
        "bulk",
        options,
        len(call_ids),
        seconds=wall,
        latencies=latencies,
        cpu=cpu,
        counts=counters(box),
        outcomes=outcomes,
    )


# --- the runs ----------------------------------------------------------------------------------------------


RUNNERS = {
    "naive": lambda box, options, ids, work: run_naive(box, options, ids),
    "stream": lambda box, options, ids, work: run_stream(box, options, ids, work),
    "bulk": run_bulk,
}


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    base = results.get("naive")
    if base is None:
        return {}
    keys = (
        "salesforce_per_call",
        "twenty2_per_call",
        "calls_per_second",
        "latency_p50_seconds",
        "latency_p95_seconds",
        "cpu_seconds_per_1000_calls",
    )
    out: dict[str, dict[str, float | None]] = {}
    for path in ("stream", "bulk"):
        if path in results:
            out[path] = {k: _ratio(results[path][k], base[k]) for k in keys}
    return out


def _ratio(value: float | None, base: float | None) -> float | None:
    return round(value / base, 3) if value is not None and base else None


def targets(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    if "stream" in results:
        s = results["stream"]
        out.append(
            {
                "target": f"(b) Salesforce requests per call <= {TARGET_STREAM_SF_PER_CALL}",
                "value": s["salesforce_per_call"],
                "met": s["salesforce_per_call"] <= TARGET_STREAM_SF_PER_CALL,
            }
        )
        share = s["share_of_ceiling"]
        out.append(
            {
                "target": f"(b) throughput >= {TARGET_STREAM_CEILING_SHARE:.0%} of concurrency / per-call latency",
                "value": share,
                "met": share is not None and share >= TARGET_STREAM_CEILING_SHARE,
            }
        )
    if "bulk" in results:
        b = results["bulk"]
        out.append(
            {
                "target": f"(c) Salesforce requests per call <= {TARGET_BULK_SF_PER_CALL}",
                "value": b["salesforce_per_call"],
                "met": b["salesforce_per_call"] <= TARGET_BULK_SF_PER_CALL,
            }
        )
    return out


def run_drain(box: SandboxProcess, options: BenchOptions, dataset: Dataset, work: Path) -> dict[str, Any]:
    n = min(options.drain_calls, len(dataset.call_ids))
    ids = dataset.call_ids[:n]
    limit = options.drain_limit
    options.say(f"drain: {n} calls with Twenty2 at {limit}/min (sandbox and product)")
    dataset.reset(
        box,
        twenty2_latency_ms=options.twenty2_latency_ms,
        salesforce_latency_ms=options.salesforce_latency_ms,
        limit=limit,
    )
    limited = run_stream(box, options, ids, work / "drain-limited", limit=limit)
    ideal = n / limit * 60
    detail_requests = round(limited["twenty2_detail_per_call"] * n)
    api_per_minute = detail_requests / limited["seconds"] * 60 if limited["seconds"] else None
    options.say(f"drain: {n} calls with the limit lifted")
    dataset.reset(
        box,
        twenty2_latency_ms=options.twenty2_latency_ms,
        salesforce_latency_ms=options.salesforce_latency_ms,
        limit=None,
    )
    lifted = run_stream(box, options, ids, work / "drain-lifted", limit=0)
    return {
        "calls": n,
        "limit_per_minute": limit,
        "drain_seconds": limited["seconds"],
        "ideal_seconds": round(ideal, 1),
        "ratio_to_limit": round(limited["seconds"] / ideal, 3) if ideal else None,
        "twenty2_api_requests_per_minute": _round(api_per_minute, 1),
        "twenty2_429": limited["twenty2_429"],
        "twenty2_transcript_per_call": limited["twenty2_transcript_per_call"],
        "limited": limited,
        "lifted": {
            "calls_per_second": lifted["calls_per_second"],
            "ceiling_calls_per_second": lifted["ceiling_calls_per_second"],
            "share_of_ceiling": lifted["share_of_ceiling"],
            "figures": lifted,
        },
    }


def run_benchmark(options: BenchOptions) -> dict[str, Any]:
    """Run the chosen paths (and the drain) on one data set; returns every figure."""
    work = options.work_dir or Path(tempfile.mkdtemp(prefix="bench-", dir=_var_dir()))
    work.mkdir(parents=True, exist_ok=True)
    paths = () if options.drain_only else tuple(p for p in PATHS if p in options.paths)
    size = max(options.calls if paths else 0, options.drain_calls if options.drain or options.drain_only else 0)
    with SandboxProcess(work / "sandbox") as box:
        options.say(f"building {size} calls and their Leads")
        dataset = Dataset.build(box, size, options.seed, options.unknown_share)
        ids = dataset.call_ids[: options.calls]
        results: dict[str, dict[str, Any]] = {}
        for path in paths:
            options.say(f"{LABELS[path]}: {len(ids)} calls")
            dataset.reset(
                box,
                twenty2_latency_ms=options.twenty2_latency_ms,
                salesforce_latency_ms=options.salesforce_latency_ms,
                limit=None,
            )
            results[path] = r = RUNNERS[path](box, options, ids, work / path)
            options.say(
                f"{LABELS[path]}: {r['salesforce_per_call']:.3f} Salesforce req/call, "
                f"{r['calls_per_second']} calls/s, outcomes {r['outcomes']}"
            )
        drain = run_drain(box, options, dataset, work) if options.drain or options.drain_only else None
    return {
        "options": {
            "calls": options.calls,
            "twenty2_latency_ms": options.twenty2_latency_ms,
            "salesforce_latency_ms": options.salesforce_latency_ms,
            "concurrency": options.concurrency,
            "workers": options.workers,
            "seed": options.seed,
        },
        "results": results,
        "ratios_to_naive": ratios(results),
        "targets": targets(results),
        "drain": drain,
        "work_dir": str(work),
    }


# --- printing ----------------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(result: dict[str, Any]) -> str:
    o = result["options"]
    lines = []
    if result["results"]:
        lines += [
            f"{o['calls']} calls; injected latency Twenty2 {o['twenty2_latency_ms']:.0f} ms, Salesforce "
            f"{o['salesforce_latency_ms']:.0f} ms per request; concurrency {o['concurrency']} x {o['workers']} "
            "worker(s); Twenty2 limit lifted.",
            "",
            "| path | Salesforce req/call | Twenty2 req/call (detail + transcript) | calls/s | ceiling calls/s | "
            "p50 latency s | p95 latency s | CPU-s / 1,000 calls | outcomes |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for path, r in result["results"].items():
            t2 = (
                f"{r['twenty2_per_call']:.2f} "
                f"({r['twenty2_detail_per_call']:.2f} + {r['twenty2_transcript_per_call']:.2f})"
            )
            outcomes = ", ".join(f"{k} {v}" for k, v in r["outcomes"].items())
            lines.append(
                f"| {LABELS[path]} | {r['salesforce_per_call']:.3f} | {t2} | {_fmt(r['calls_per_second'], 1)} | "
                f"{_fmt(r['ceiling_calls_per_second'], 1)} | {_fmt(r['latency_p50_seconds'])} | "
                f"{_fmt(r['latency_p95_seconds'])} | {_fmt(r['cpu_seconds_per_1000_calls'])} | {outcomes} |"
            )
        if result["ratios_to_naive"]:
            lines += [
                "",
                "| vs (a) naive | Salesforce req/call | Twenty2 req/call | calls/s | p50 latency | p95 latency "
                "| CPU / call |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            ]
            for path, r in result["ratios_to_naive"].items():
                lines.append(
                    f"| {LABELS[path]} | {_fmt(r['salesforce_per_call'], 3)} | {_fmt(r['twenty2_per_call'])} | "
                    f"{_fmt(r['calls_per_second'])} | {_fmt(r['latency_p50_seconds'])} | "
                    f"{_fmt(r['latency_p95_seconds'])} | {_fmt(r['cpu_seconds_per_1000_calls'])} |"
                )
        if result["targets"]:
            lines += ["", "| target | measured | met |", "| --- | ---: | --- |"]
            for t in result["targets"]:
                lines.append(f"| {t['target']} | {_fmt(t['value'], 3)} | {'yes' if t['met'] else 'NO'} |")
    drain = result.get("drain")
    if drain:
        lifted = drain["lifted"]
        lines += [
            "",
            f"Drain: a backlog of {drain['calls']} calls through the streaming path.",
            "",
            "| Twenty2 limit | drain time s | ideal (calls / limit) s | ratio | Twenty2 API req/min | 429s | calls/s | "
            "ceiling calls/s | share of ceiling |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {drain['limit_per_minute']}/min (sandbox and product) | {drain['drain_seconds']:.0f} | "
            f"{drain['ideal_seconds']:.0f} | {_fmt(drain['ratio_to_limit'])} | "
            f"{_fmt(drain['twenty2_api_requests_per_minute'], 1)} | {drain['twenty2_429']} | "
            f"{_fmt(drain['limited']['calls_per_second'])} | – | – |",
            f"| lifted | {lifted['figures']['seconds']:.0f} | – | – | – | {lifted['figures']['twenty2_429']} | "
            f"{_fmt(lifted['calls_per_second'], 1)} | {_fmt(lifted['ceiling_calls_per_second'], 1)} | "
            f"{_fmt(lifted['share_of_ceiling'])} |",
        ]
    return "\n".join(lines)


def _var_dir() -> Path:
    var = REPO_ROOT / "var"
    var.mkdir(exist_ok=True)
    return var


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--twenty2-latency-ms", type=float, default=120.0)
    parser.add_argument("--salesforce-latency-ms", type=float, default=80.0)
    parser.add_argument("--concurrency", type=int, default=16, help="Threads per worker (and the naive pool).")
    parser.add_argument("--workers", type=int, default=1, help="Worker processes of the streaming path.")
    parser.add_argument("--paths", default=",".join(PATHS), help="Which of naive,stream,bulk to run.")
    parser.add_argument("--drain", action="store_true", help="Also drain a backlog at the Twenty2 limit.")
    parser.add_argument("--drain-only", action="store_true", help="Only the drain.")
    parser.add_argument("--drain-calls", type=int, default=600)
    parser.add_argument("--drain-limit", type=int, default=60, help="Twenty2 requests per minute in the drain.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--unknown-share", type=float, default=0.2, help="Share of calls to numbers no Lead has (a Lead is created)."
    )
    parser.add_argument("--json", action="store_true", help="Print every figure as JSON after the table.")
    args = parser.parse_args(argv)
    unknown = set(args.paths.split(",")) - set(PATHS)
    if unknown:
        parser.error(f"unknown paths: {sorted(unknown)}")
    options = BenchOptions(
        calls=args.calls,
        twenty2_latency_ms=args.twenty2_latency_ms,
        salesforce_latency_ms=args.salesforce_latency_ms,
        concurrency=args.concurrency,
        workers=args.workers,
        paths=tuple(args.paths.split(",")),
        drain=args.drain,
        drain_only=args.drain_only,
        drain_calls=args.drain_calls,
        drain_limit=args.drain_limit,
        seed=args.seed,
        unknown_share=args.unknown_share,
    )
    configure_logging("console", level=logging.WARNING)  # the bulk path runs here: keep its info lines quiet
    result = run_benchmark(options)
    print(markdown(result))
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
