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

- **(a) bare**: the Procfile's web command serving ``bench/bare_app.py`` (answers 200, does nothing) as a
  plain ASGI app, as the product's webhook route is served — the ceiling of this machine — as fast as 64
  connections go, ``--seconds``: requests/s, p50/p99/max.
- **(a') bare FastAPI**: the same app behind FastAPI's routing (what the framework alone costs; the
  product's other paths are served so).
- **(b) intake**: the same request sequence, same way, against the product's intake.
- **(c) steady**: ``--rate`` webhooks/s for ``--steady-seconds`` (default ``--seconds``; constant rate,
  wrk2-style schedule in the Lua script): achieved rate, p99, max, and *lost* = answered 200 but missing
  from the ledger, or not synced (or skipped) once the worker drained the backlog (``--no-drain``, or a
  drain cut off by ``--drain-timeout``: neither resolved, nor with its task waiting in the broker, nor due
  again in the ledger; those still waiting are counted beside).
- **(d) burst**: ``--burst`` webhooks in ``--burst-seconds``: the slowest answer, and lost.

Targets: (b) >= 50% of (a)'s requests/s (its share of (a') is printed too); (c) p99 < 100 ms and 0 lost;
(d) max < 5 s.
``run(LoadOptions(...))`` returns every figure; ``--json`` prints them.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO_ROOT))

from intakebench.load import Mix, ensure_wrk, wrk  # noqa: E402
from intakebench.options import (  # noqa: E402
    DONE_STATES,
    TARGET_BURST_MAX_S,
    TARGET_SHARE,
    TARGET_STEADY_P99_MS,
    THROUGHPUT_CONNECTIONS,
    LoadOptions,
)
from intakebench.service import Service, checkout, cpu_of  # noqa: E402

from standins.stack.sandboxes import Sandboxes  # noqa: E402
from worker.celery_app import QUEUE  # noqa: E402
from worker.ledger import Ledger, State  # noqa: E402

# --- the phases ---------------------------------------------------------------------------------------------


def waiting_call_ids(ledger: Ledger) -> set[str]:
    """Call ids something will still sync: their task is in the broker (waiting in the queue, or held
    unacked by a worker), or the ledger has them due again (a retry or a hold, which beat's sweep
    re-queues at its due time)."""
    client = ledger.r
    raw = [json.loads(m) for m in client.lrange(QUEUE, 0, -1)]  # type: ignore[union-attr]
    raw += [json.loads(v)[0] for v in client.hvals("unacked")]  # type: ignore[union-attr]
    sync_calls = [m for m in raw if m["headers"].get("task") == "crm_sync.sync_call"]  # beat's share the queue
    due = {m.decode() if isinstance(m, bytes) else m for m in client.zrange(ledger.due_key, 0, -1)}  # type: ignore[union-attr]
    return {json.loads(base64.b64decode(m["body"]))[0][0] for m in sync_calls} | due


def lost(ledger: Ledger, accepted: list[str], *, waiting_ids: set[str]) -> dict[str, int]:
    """Call ids answered 200 that the ledger does not have (``missing``), or that it shows neither synced nor
    skipped while nothing will sync them (``not_done``: no task in the broker, not due again); those still
    waiting for a sync are counted apart (``waiting``)."""
    ids = sorted(set(accepted))
    found: dict[str, State] = {}
    for start in range(0, len(ids), 1000):
        for record in ledger.get_many(ids[start : start + 1000]):
            found[record.call_id] = record.state
    missing = len(ids) - len(found)
    open_ids = [c for c, state in found.items() if state not in DONE_STATES]
    waiting = sum(1 for c in open_ids if c in waiting_ids)
    not_done = len(open_ids) - waiting
    return {
        "accepted_calls": len(ids),
        "missing": missing,
        "not_done": not_done,
        "lost": missing + not_done,
        "waiting": waiting,  # not synced yet: its task in the broker, or due again
    }


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
    rate_seconds = options.steady_seconds or options.seconds
    # Enough requests that (b) never wraps at up to 8,000 requests/s (wrapped valid ones would be duplicates).
    throughput_file = mix.write(work / f"{label}-throughput.tsv", max(200, 8000 * options.seconds))
    figures: dict[str, Any] = {}
    cpu: dict[str, dict[str, Any]] = {name: {} for name in ("bare", "bare-fastapi", "intake", "steady", "burst")}
    # (a), (a') and (b): the same requests, as fast as the connections go.
    for name, title, url in (
        ("bare", "(a) bare endpoint", service.bare),
        ("bare-fastapi", "(a') bare FastAPI endpoint", service.bare_fastapi),
        ("intake", "(b) intake", service.intake),
    ):
        say(f"[{label}] {title}, {options.seconds} s")
        with cpu_of(service, cpu[name]):
            figures[name] = wrk(
                url,
                throughput_file,
                connections=THROUGHPUT_CONNECTIONS,
                duration=options.seconds,
                limit=options.throughput_limit,
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
        server = spent["cpu_s"].get(_server(name), 0.0)
        figures[name]["server_cpu_ms_per_request"] = (
            round(server / figures[name]["requests"] * 1000, 3) if figures[name]["requests"] else None
        )
    ledger = service.ledger
    all_accepted = [c for name in ("intake", "steady", "burst") for c in figures[name]["accepted"]]
    figures["drain_seconds"] = None
    drained = False
    if options.drain:
        service.drain_worker()
        say(f"[{label}] waiting for the worker to drain {len(set(all_accepted))} accepted calls")
        figures["drain_seconds"] = round(wait_drained(ledger, all_accepted, options.drain_timeout), 1)
        drained = figures["drain_seconds"] < options.drain_timeout
    # Not drained (or not asked to): a call whose task still waits in the broker, or that is due again, is not
    # lost, only not synced yet.
    waiting_ids = set() if drained else waiting_call_ids(ledger)
    for name in ("intake", "steady", "burst"):
        figures[name]["lost"] = lost(ledger, figures[name].pop("accepted"), waiting_ids=waiting_ids)
    intake_rate = figures["intake"]["requests_per_second"]
    for name, share in (("bare", "share_of_bare"), ("bare-fastapi", "share_of_bare_fastapi")):
        figures[name].pop("accepted")
        figures[share] = round(intake_rate / figures[name]["requests_per_second"], 3)
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
            "measured": round(burst["max_ms"] / 1000, 3),
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
        mix = Mix(boxes)
        trees: list[tuple[str, Path]] = [("this", REPO_ROOT)]
        with contextlib_nullable(options.baseline, work) as baseline_tree:
            if baseline_tree is not None:
                trees.insert(0, (f"baseline {options.baseline}", baseline_tree))
            for round_no in range(options.rounds):
                for label, tree in trees:
                    run_work = work / f"{label.replace(' ', '-').replace('/', '_')}-{round_no}"
                    fresh_sandboxes(boxes, mix)
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


def fresh_sandboxes(boxes: Sandboxes, mix: Mix) -> None:
    """Both stand-ins as new, for the next service (tree and round): left with an earlier run's calls, its
    reconciliation (on a fresh Redis) would find them all unknown and sync them, spending the worker's CPU
    beside the intake (seen: 128,241 calls listed, 23 s of worker CPU in (b) of a second round)."""
    boxes.twenty2.reset()
    boxes.twenty2.configure(rate_limit_per_minute=None)
    boxes.salesforce.reset(demo=True)
    mix.sent.clear()


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
        "| lost (missing + not synced); task waiting | server CPU ms/request "
        "| CPU s: server / worker / redis / wrk + stand-ins |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    names = {
        "bare": "(a) bare endpoint",
        "bare-fastapi": "(a') bare FastAPI endpoint",
        "intake": "(b) intake",
        "steady": "(c) steady",
        "burst": "(d) burst",
    }
    verdicts = []
    for label, runs in result["results"].items():
        for index, figures in enumerate(runs):
            tag = label if len(runs) == 1 else f"{label} #{index + 1}"
            for key, name in names.items():
                f = figures[key]
                statuses = " ".join(f"{code}:{n}" for code, n in f["statuses"].items())
                lost_cell = "–"
                if "lost" in f:
                    found = f["lost"]
                    lost_cell = (
                        f"{found['lost']} ({found['missing']} + {found['not_done']}); {found['waiting']} waiting"
                    )
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
            verdicts.append(f"| {tag} | intake / bare FastAPI requests/s | {figures['share_of_bare_fastapi']} | |")
            verdicts.append(f"| {tag} | worker drain after the runs, s | {figures['drain_seconds']} | |")
    return "\n".join([*rows, "", "| tree | target | measured | met |", "| --- | --- | ---: | --- |", *verdicts])


def _cpu_cell(run: str, figures: dict[str, Any]) -> str:
    cpu = figures.get("cpu_s")
    if not cpu:
        return "–"
    server = cpu.get(_server(run), 0.0)
    worker = cpu.get("worker", 0.0) + cpu.get("beat", 0.0)
    return f"{server} / {worker} / {cpu.get('redis', 0.0)} / {cpu.get('stand-ins', 0.0)} in {figures['wall_s']} s"


def _server(run: str) -> str:
    """The process a run loads."""
    return run if run.startswith("bare") else "web"


def _var_dir() -> Path:
    var = REPO_ROOT / "var"
    var.mkdir(exist_ok=True)
    return var


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of (a), (a'), (b) and (c)")
    parser.add_argument("--rate", type=int, default=500, help="(c)'s constant rate, webhooks/s")
    parser.add_argument("--steady-seconds", type=int, default=0, help="length of (c) when not --seconds")
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
            steady_seconds=args.steady_seconds,
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
