"""The runs of each path on the data set: (a) naive, (b) streaming (the Procfile's processes), (c) bulk,
and the drain of a backlog at the Twenty2 limit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
import requests
from naive_sync import NaiveConfig, NaiveSync

from standins.stack.ports import free_port
from standins.stack.processes import Stack, service_env, wait_ready
from standins.stack.redis_server import RedisServer
from syncbench.dataset import Dataset
from syncbench.measure import counters, figures, ledger_latencies, ledger_outcomes, proc_cpu, round_or_none
from syncbench.options import FINAL_STATES, WEBHOOK_SECRET, BenchOptions
from syncbench.sandboxes import SandboxProcess
from worker.ledger import Ledger
from worker.runtime import Runtime
from worker.settings import Settings
from worker.sync.bulk import BulkSync

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


# --- the runner of each path ---------------------------------------------------------------------------------


RUNNERS = {
    "naive": lambda box, options, ids, work: run_naive(box, options, ids),
    "stream": lambda box, options, ids, work: run_stream(box, options, ids, work),
    "bulk": run_bulk,
}


# --- the drain ---------------------------------------------------------------------------------------------


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
        "twenty2_api_requests_per_minute": round_or_none(api_per_minute, 1),
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
