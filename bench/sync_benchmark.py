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

This module is the CLI and the order of the runs; the parts live in ``bench/syncbench/`` (see its
``__init__``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
for path in (REPO_ROOT, REPO_ROOT / "bench"):  # run as a plain script from a checkout
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from syncbench.dataset import Dataset  # noqa: E402
from syncbench.measure import ratios, targets  # noqa: E402
from syncbench.options import LABELS, PATHS, BenchOptions  # noqa: E402
from syncbench.paths import RUNNERS, run_drain  # noqa: E402
from syncbench.report import markdown  # noqa: E402
from syncbench.sandboxes import SandboxProcess  # noqa: E402

from worker.logs import configure_logging  # noqa: E402

__all__ = ["PATHS", "BenchOptions", "main", "markdown", "run_benchmark"]


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
