"""Chaos run: the Procfile's real processes under faults, proving "nothing lost, nothing duplicated".

Usage: ``.venv/bin/python chaos/run.py [--events 1000] [--workers 2] [--seed 1] [--json]``

Starts a private Redis (AOF), both sandboxes (in this process) and web + N workers + beat from the Procfile,
gives every generated call its own Lead, and posts the calls' real webhooks to the intake while it
SIGKILLs and restarts workers, restarts Redis once, makes ~10% of Salesforce and Twenty2 requests fail
(503 / UNABLE_TO_LOCK_ROW; 429 / 500 / hangs past the read timeout), holds Salesforce at its daily limit for
a few seconds, and plants calls that must fail for good (unknown call ids, a validation rule). When every
accepted call is terminal it prints the figures, lifts the permanent faults, runs
``crm-sync replay --all-failed`` exactly as ops would, and prints them again.

Targets: 0 lost, 0 duplicate Tasks, 0 Leads wrongly updated, 0 wrong or missing Tasks, 0 Leads created,
every planted call failed with its reason, no other failure, and after the replay 0 failed. The exit
status is 1 when a target is missed. ``run_chaos(ChaosOptions(...))`` is the entry point for tests: it
returns the figures (also printed as JSON by ``--json``). See ``chaos/README.md`` for each figure and for
the modules: this one is the CLI and the order of things; ``chaos.phases`` holds what each phase does.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO_ROOT))

from rich.console import Console  # noqa: E402

from chaos import report, verify  # noqa: E402
from chaos.faults import Chaos  # noqa: E402
from chaos.options import WEBHOOK_SECRET, ChaosOptions, as_env  # noqa: E402
from chaos.phases import ChaosContext, Phase, default_phases  # noqa: E402
from chaos.scenario import PLANTED_CODES, build_scenario  # noqa: E402
from chaos.stack import Services, sandboxes, start_services, work_dir  # noqa: E402
from standins.stack.redis_server import RedisServer  # noqa: E402

__all__ = ["WEBHOOK_SECRET", "ChaosOptions", "main", "run_chaos"]


def run_chaos(
    options: ChaosOptions, console: Console | None = None, phases: Sequence[Phase] | None = None
) -> dict[str, Any]:
    """Run the whole chaos run; returns every figure (``passed`` says whether all targets were met).

    ``phases`` (default ``default_phases()``) run in order; the transient faults stay on until the last
    one has measured."""
    console = console or report.make_console()
    phases = list(phases) if phases is not None else default_phases()
    rng = random.Random(options.seed)
    work = work_dir(options.work_dir)
    redis_server = RedisServer(work / "redis").start()
    services: Services | None = None
    chaos: Chaos | None = None
    try:
        with sandboxes(work) as boxes:
            scenario = build_scenario(boxes, options, rng)
            services = start_services(boxes, redis_server, work, options.workers, as_env(options.settings))
            report.print_header(console, options, scenario, work)
            chaos = Chaos(boxes, services.processes, redis_server, options, rng, services.workers)
            ctx = ChaosContext(options, console, rng, redis_server, boxes, services, scenario, chaos)
            figures: dict[str, dict[str, Any]] = {}
            for i, phase in enumerate(phases):
                figures[phase.name] = phase.run(ctx)
                if i == len(phases) - 1:
                    chaos.stop()
                phase.report(ctx, figures[phase.name])

            by_phase = [verify.verdicts(phase.name, phase.checks(figures[phase.name])) for phase in phases]
            verdicts = [v for phase_verdicts in by_phase for v in phase_verdicts]
            passed = all(v["ok"] for v in verdicts)
            report.print_verdicts(console, verdicts)
            if not passed:  # the first phase that missed a target
                missed = next(p for p, vs in zip(phases, by_phase, strict=True) if not all(v["ok"] for v in vs))
                report.diagnose(console, services.ledger, services.processes, figures[missed.name])
            return {
                "options": {"events": options.events, "workers": options.workers, "seed": options.seed},
                "settings": as_env(options.settings),
                "chaos": chaos.summary(),
                **figures,
                "planted": {call_id: PLANTED_CODES[kind] for call_id, kind in scenario.planted.items()},
                "targets": verdicts,
                "passed": passed,
                "work_dir": str(work),
                "numbers": scenario.numbers,  # for a scan of what Redis left on disk (tests/tools)
            }
    finally:
        if chaos is not None:
            chaos.stop()
        if services is not None:
            services.processes.stop()
        redis_server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Chaos run of crm-sync: nothing lost, nothing duplicated.")
    parser.add_argument("--events", type=int, default=1000, help="call webhooks to post (default 1000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--seed", type=int, default=1, help="seed of calls, Leads and chaos (default 1)")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)
    figures = run_chaos(ChaosOptions(events=args.events, workers=args.workers, seed=args.seed))
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
    return 0 if figures["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
