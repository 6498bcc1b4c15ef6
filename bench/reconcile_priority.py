"""Benchmark: does a backlog of reconciled calls delay a fresh webhook's Twenty2 fetch?

Usage: ``.venv/bin/python bench/reconcile_priority.py [--seconds 75] [--threads 4] [--json]``

One private Redis, the Twenty2 stand-in over HTTPS (each request held ``--latency-ms``), Twenty2's real
60 requests a minute shared through Redis (``SharedRateLimit``). Three phases, side by side in one run,
each on a fresh limiter window:

- **alone**: webhook-driven fetches (``GET /call/detail``) one every ``--every`` seconds, nothing else:
  what one request takes (the baseline);
- **backlog, webhook-first**: ``--threads`` reconciliation threads fetch without pause through
  ``PriorityBudget.spare`` (the product's rule) while the same webhook fetches go through ``urgent``;
- **backlog, one queue**: the same backlog through the plain limiter (what the product would do without
  the rule): reconciliation and webhooks wait in the same line.

Printed per phase: webhook fetches, their wait for the budget (p50 / max) and their whole fetch time
(p50 / max), reconciliation requests made. Target: with the backlog, webhook-first, the worst extra wait of a
webhook's fetch is at most one request's slot (60 s / 60 = 1 s) plus one request's time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import logging  # noqa: E402

import redis  # noqa: E402

from standins.stack.redis_server import RedisServer  # noqa: E402
from standins.stack.sandboxes import Sandboxes  # noqa: E402
from worker.errors import Twenty2RateLimited  # noqa: E402
from worker.logs import configure_logging  # noqa: E402
from worker.ratelimit import SharedRateLimit  # noqa: E402
from worker.reconcile.priority import PriorityBudget  # noqa: E402
from worker.twenty2.client import Twenty2Client  # noqa: E402

PER_MINUTE = 60


@dataclass(frozen=True)
class PriorityOptions:
    seconds: float = 75.0  # each backlog phase (longer than the 61 s window, so it fills)
    threads: int = 4
    every: float = 3.0  # a fresh webhook fetch every this many seconds
    latency_ms: int = 150
    reserve: int = 5
    max_wait: float = 90.0  # a webhook fetch gives up waiting after this (the limiter's max_wait)
    work_dir: Path | None = None


def _pct(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 3)


def _phase(
    name: str,
    boxes: Sandboxes,
    redis_url: str,
    options: PriorityOptions,
    *,
    backlog: bool,
    priority: bool,
    seconds: float,
) -> dict[str, Any]:
    settings = boxes.settings(redis_url=redis_url, twenty2_rate_limit_per_minute=PER_MINUTE)
    limit = SharedRateLimit(redis_url, key=f"bench:{name}", per_minute=PER_MINUTE, max_wait=options.max_wait)
    budget = PriorityBudget(
        redis.Redis.from_url(redis_url), limit, reserve=options.reserve, spare_max_wait=5.0, poll=0.02
    )
    waits: list[float] = []
    fetches: list[float] = []

    def timed(hook: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            started = time.monotonic()
            hook()
            waits.append(time.monotonic() - started)

        return run

    webhook_hook = budget.urgent if priority else limit.acquire
    webhook = Twenty2Client(settings, before_request=timed(webhook_hook))
    spare = Twenty2Client(settings, before_request=budget.spare if priority else limit.acquire)
    call_ids = boxes.twenty2.call_ids()
    stop = threading.Event()
    reconciled = [0]

    def reconcile() -> None:
        n = 0
        while not stop.is_set():
            try:
                spare.get_call_detail(call_ids[n % len(call_ids)])
                reconciled[0] += 1
            except Twenty2RateLimited:
                pass  # no room within 5 s: try again (the pass would end; the backlog goes on)
            n += 1

    threads = [threading.Thread(target=reconcile, daemon=True) for _ in range(options.threads if backlog else 0)]
    began = time.monotonic()
    for t in threads:
        t.start()
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < seconds:
        time.sleep(max(0.0, started + 2.0 + n * options.every - time.monotonic()))
        t0 = time.monotonic()
        webhook.get_call_detail(call_ids[n % len(call_ids)])
        fetches.append(time.monotonic() - t0)
        n += 1
    stop.set()
    for t in threads:
        t.join(timeout=options.max_wait + 30)
    elapsed = time.monotonic() - began
    webhook.close()
    spare.close()
    return {
        "phase": name,
        "webhook_fetches": len(fetches),
        "budget_wait_p50_s": _pct(waits, 0.5),
        "budget_wait_max_s": round(max(waits), 3) if waits else None,
        "fetch_p50_s": _pct(fetches, 0.5),
        "fetch_max_s": round(max(fetches), 3) if fetches else None,
        "reconcile_requests": reconciled[0],
        "phase_seconds": round(elapsed, 1),
        "reconcile_requests_per_minute": round(reconciled[0] * 60 / elapsed, 1),
    }


def run_priority_bench(options: PriorityOptions) -> dict[str, Any]:
    work = options.work_dir or Path(tempfile.mkdtemp(prefix="bench-priority-"))
    server = RedisServer(work / "redis").start()
    try:
        with Sandboxes(work / "tls") as boxes:
            boxes.twenty2.configure(rate_limit_per_minute=None, latency_ms=options.latency_ms)
            boxes.twenty2.add_generated_calls(50, seed=5)
            alone_seconds = min(options.seconds, 20.0)
            phases = [
                _phase("alone", boxes, server.url, options, backlog=False, priority=True, seconds=alone_seconds),
                _phase(
                    "backlog, webhook-first",
                    boxes,
                    server.url,
                    options,
                    backlog=True,
                    priority=True,
                    seconds=options.seconds,
                ),
                _phase(
                    "backlog, one queue",
                    boxes,
                    server.url,
                    options,
                    backlog=True,
                    priority=False,
                    seconds=options.seconds,
                ),
            ]
    finally:
        server.stop()
    alone, first, _queue = phases
    slot = 60.0 / PER_MINUTE
    extra = (first["fetch_max_s"] or 0) - (alone["fetch_p50_s"] or 0)
    bound = slot + (alone["fetch_p50_s"] or 0)
    return {
        "options": {k: str(v) for k, v in vars(options).items()},
        "phases": phases,
        "target": {
            "what": "backlog, webhook-first: worst webhook fetch minus a lone fetch <= one slot (1 s) + one request",
            "measured_extra_s": round(extra, 3),
            "bound_s": round(bound, 3),
            "met": extra <= bound,
        },
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| phase | webhook fetches | budget wait p50 s | budget wait max s | fetch p50 s | fetch max s "
        "| reconcile req/min |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in result["phases"]:
        lines.append(
            f"| {p['phase']} | {p['webhook_fetches']} | {p['budget_wait_p50_s']} | {p['budget_wait_max_s']} | "
            f"{p['fetch_p50_s']} | {p['fetch_max_s']} | {p['reconcile_requests_per_minute']} |"
        )
    t = result["target"]
    lines.append("")
    lines.append(
        f"Target: {t['what']}: measured {t['measured_extra_s']} s, bound {t['bound_s']} s: "
        f"{'met' if t['met'] else 'MISSED'}."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    configure_logging("console", level=logging.INFO)
    parser = argparse.ArgumentParser(description="Webhook-first Twenty2 budget under a reconciliation backlog.")
    parser.add_argument("--seconds", type=float, default=75.0, help="each backlog phase (default 75)")
    parser.add_argument("--threads", type=int, default=4, help="reconciliation threads (default 4)")
    parser.add_argument("--every", type=float, default=3.0, help="seconds between webhook fetches (default 3)")
    parser.add_argument("--latency-ms", type=int, default=150, help="Twenty2 stand-in latency (default 150)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run_priority_bench(
        PriorityOptions(seconds=args.seconds, threads=args.threads, every=args.every, latency_ms=args.latency_ms)
    )
    print(markdown(result))
    if args.json:
        print(json.dumps(result, indent=2))
    return 0 if result["target"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
