"""Chaos scenario "missed webhooks": the chaos run, plus calls whose webhook never reaches the intake.

Usage: ``.venv/bin/python chaos/missed.py [--events 1000] [--window 120] [--intake-down 60] [--seed 1] [--json]``

The phases (``missed_phases``), on the chaos run's stack, scenario and faults (``chaos.run.run_chaos``):

1. ``MissedRunPhase`` (``run``): every call starts *in progress* in the Twenty2 stand-in; the phase finishes
   them one after another over the window, as Twenty2 does, and posts each call's webhook right after — except
   that 5 % of the webhooks are never sent, and the intake is stopped (SIGKILL) for ``intake_down`` seconds
   (60) from 40 % of the window while Twenty2 goes on finishing calls (their webhooks are refused:
   connection refused). Twenty2 retries neither. The run's faults happen meanwhile (worker SIGKILLs, a Redis
   restart, 10 % API faults, the daily-limit burst, the planted failures; the planted calls are posted
   before the outage, so they reach the intake as in the plain run). Reconciliation (beat, every 3 s here)
   must find every missed call; figures once every call Twenty2 finished is terminal;
2. ``ReplayPhase``: as in the plain run (``crm-sync replay --all-failed``);
3. ``AuditPhase`` (``audit``): the APIs are healthy again; a person deletes some call Tasks in the
   Salesforce stand-in; ops run ``crm-sync audit --json``, ``crm-sync audit --fix --json`` and
   ``crm-sync audit --json`` again.

Targets (besides every phase's common ones: 0 lost, 0 duplicate Tasks, Tasks and Leads as planned): every
missed call found by reconciliation and synced; the audit finds exactly the deleted Tasks, and 0 findings
after ``--fix``. The run prints how long the last missed call took to be found (from the moment Twenty2
finished it to its ledger record). ``tests/tools/test_chaos_missed.py`` runs a small version in CI.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO_ROOT))

import requests  # noqa: E402
from rich.table import Table  # noqa: E402

from chaos import verify, worker_loss  # noqa: E402
from chaos.options import WEBHOOK_SECRET, ChaosOptions  # noqa: E402
from chaos.phases import ChaosContext, Phase, ReplayPhase, RunPhase  # noqa: E402
from chaos.run import run_chaos  # noqa: E402
from chaos.traffic import TERMINAL  # noqa: E402
from standins.stack.processes import child_env, wait_http  # noqa: E402
from worker.ledger import Ledger, Record, State  # noqa: E402
from worker.salesforce.client import SalesforceClient  # noqa: E402

FIELD = "Twenty2_Call_Id__c"

#: Settings this scenario changes on top of the chaos run's, and why.
OVERRIDES: dict[str, tuple[str, str]] = {
    "CRM_SYNC_RECONCILE_EVERY_SECONDS": (
        "3",
        "a reconciliation pass every 3 s, so the run takes minutes (default 20 s)",
    ),
    "CRM_SYNC_RECONCILE_BATCH": ("200", "a pass may queue every call the intake outage missed (default 8)"),
    "CRM_SYNC_AUDIT_EVERY_SECONDS": ("0", "the audit is run by hand, as ops would"),
}


def records_of(ledger: Ledger, ids: list[str]) -> dict[str, Record | None]:
    """Each call's ledger record (None: unknown to the ledger), read in one pipelined round trip."""
    found = {r.call_id: r for r in ledger.get_many(ids)}
    return {call_id: found.get(call_id) for call_id in ids}


def _first_source(ctx: ChaosContext, call_id: str) -> str | None:
    """Who first brought the call to the ledger (``webhook``, ``reconcile``, …), None when nobody has yet."""
    accepted = [e for e in ctx.services.ledger.history(call_id) if e.get("event") == "accepted"]
    return str(accepted[0].get("source")) if accepted else None


def crm_sync(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """A ``crm-sync`` command as ops would run it, with the service's environment."""
    command = [str(Path(sys.executable).parent / "crm-sync"), *args]
    return subprocess.run(
        command, env=child_env(env), cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False
    )


def _json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    try:
        data = json.loads(result.stdout)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class MissedRunPhase(RunPhase):
    """The run phase, with Twenty2 finishing the calls as it goes, some webhooks never sent, and the intake
    stopped for a while in the middle."""

    def __init__(self, *, drop_share: float = 0.05, intake_down: float = 60.0) -> None:
        self.drop_share = drop_share
        self.intake_down = intake_down
        self.finished: dict[str, float] = {}
        self.dropped: set[str] = set()
        self.down: tuple[float, float] | None = None
        self.answer_lost: list[str] = []

    def _outage(self, ctx: ChaosContext) -> None:
        stack, intake = ctx.services.processes, ctx.services.intake
        stack.kill("web")
        down_at = time.time()
        ctx.chaos.note(f"intake stopped (SIGKILL web) for {self.intake_down:.0f}s; Twenty2 goes on finishing calls")
        time.sleep(self.intake_down)
        stack.start("web.2", entry="web")
        wait_http(f"{intake}/readyz", timeout=60)
        self.down = (down_at, time.time())
        ctx.chaos.note(f"intake back after {self.down[1] - self.down[0]:.1f}s")

    def run(self, ctx: ChaosContext) -> dict[str, Any]:
        scenario, t2 = ctx.scenario, ctx.boxes.twenty2
        in_twenty2 = set(t2.call_ids())
        planted = [c for c in scenario.order if c in scenario.planted]
        # The planted calls go first (before the outage): an unknown call's webhook must reach the intake.
        order = planted + [c for c in scenario.order if c not in scenario.planted]
        for call_id in order:
            if call_id in in_twenty2:
                t2.set_pending(call_id)
        droppable = [c for c in order if c not in scenario.planted]
        self.dropped = set(ctx.rng.sample(droppable, max(1, round(len(order) * self.drop_share))))
        window = ctx.options.window
        outage = threading.Thread(target=self._outage, args=(ctx,), daemon=True)
        started = time.monotonic()
        ctx.chaos.start(window, extra=[(window * 0.4, outage.start)])
        answers: dict[str, int | str] = {}
        url = f"{ctx.services.intake}/webhooks/twenty2/{WEBHOOK_SECRET}"
        interval = window / max(1, len(order))
        with requests.Session() as session:
            for i, call_id in enumerate(order):
                time.sleep(max(0.0, started + i * interval - time.monotonic()))
                if call_id in in_twenty2:
                    t2.finish(call_id)
                self.finished[call_id] = time.time()
                if call_id in self.dropped:
                    answers[call_id] = "never sent"
                    continue
                try:
                    answers[call_id] = session.post(url, json=scenario.payloads[call_id], timeout=10).status_code
                except requests.RequestException as exc:
                    answers[call_id] = type(exc).__name__
        outage.join(timeout=self.intake_down + 90)
        ctx.answers = answers
        unanswered = [c for c, a in answers.items() if not (isinstance(a, int) and 200 <= a < 300) and c in in_twenty2]
        # A webhook the intake recorded before it was killed, whose answer was lost, reached the ledger: not missed.
        self.answer_lost = [c for c in unanswered if c not in self.dropped and _first_source(ctx, c) == "webhook"]
        missed = [c for c in unanswered if c not in self.answer_lost]
        self._wait_found(ctx, missed)
        figures = ctx.wait_and_measure(started, "waiting for terminal states")
        figures["worker_loss"] = worker_loss.kill_delays(ctx.services.ledger, ctx.chaos.kills)
        return {**figures, **self._missed_figures(ctx, missed)}

    def _wait_found(self, ctx: ChaosContext, missed: list[str]) -> None:
        """Until reconciliation has brought every missed call to a terminal state (or the timeout)."""
        deadline = time.monotonic() + ctx.options.timeout
        while time.monotonic() < deadline:
            records = records_of(ctx.services.ledger, missed)
            open_ = [c for c, r in records.items() if r is None or r.state not in TERMINAL]
            if not open_:
                return
            time.sleep(0.5)
        ctx.console.print("[red]timed out waiting for reconciliation to find the missed calls[/red]")

    def _missed_figures(self, ctx: ChaosContext, missed: list[str]) -> dict[str, Any]:
        records = records_of(ctx.services.ledger, missed)
        found = [c for c, r in records.items() if r is not None and r.source == "reconcile"]
        lags = {c: r.first_seen - self.finished[c] for c, r in records.items() if r is not None}
        last = max(missed, key=lambda c: self.finished[c]) if missed else None
        refused = [c for c in missed if c not in self.dropped]
        return {
            "webhooks_never_sent": len([c for c in missed if c in self.dropped]),
            "webhooks_refused_intake_down": len(refused),
            "webhooks_recorded_answer_lost": len(self.answer_lost),
            "intake_down_seconds": round(self.down[1] - self.down[0], 1) if self.down else None,
            "missed": len(missed),
            "missed_found_by_reconciliation": len(found),
            "missed_not_found": sorted(set(missed) - set(found)),
            "missed_not_synced": sorted(c for c, r in records.items() if r is None or r.state is not State.SYNCED),
            "last_missed_call": last,
            "last_missed_found_after_seconds": round(lags[last], 1) if last in lags else None,
            "longest_found_after_seconds": round(max(lags.values()), 1) if lags else None,
        }

    def report(self, ctx: ChaosContext, figures: dict[str, Any]) -> None:
        super().report(ctx, figures)
        table = Table("figure", "value", title="missed webhooks", title_justify="left")
        rows = [
            ("webhooks never sent", figures["webhooks_never_sent"]),
            (
                f"webhooks refused (intake down {figures['intake_down_seconds']} s)",
                figures["webhooks_refused_intake_down"],
            ),
            (
                "missed calls found by reconciliation",
                f"{figures['missed_found_by_reconciliation']} of {figures['missed']}",
            ),
            ("missed calls not synced (planted validation-rule calls fail here)", len(figures["missed_not_synced"])),
            (
                "last missed call found after",
                f"{figures['last_missed_found_after_seconds']} s ({figures['last_missed_call']})",
            ),
            ("longest a missed call took to be found", f"{figures['longest_found_after_seconds']} s"),
        ]
        for name, value in rows:
            table.add_row(name, str(value))
        ctx.console.print(table)

    def checks(self, figures: dict[str, Any]) -> list[verify.Check]:
        return [
            *super().checks(figures),
            ("every missed call found by reconciliation", len(figures["missed_not_found"])),
        ]


class AuditPhase(Phase):
    """A person deletes some call Tasks; ops run the audit, ``--fix`` and the audit again."""

    name = "audit"

    def __init__(self, *, delete_share: float = 0.03) -> None:
        self.delete_share = delete_share
        self.deleted: list[str] = []

    def run(self, ctx: ChaosContext) -> dict[str, Any]:
        ctx.chaos.stop()
        ctx.boxes.twenty2.clear_faults()
        ctx.boxes.salesforce.set_faults(fail_rate=0.0)
        started = time.monotonic()
        client = SalesforceClient(ctx.boxes.settings())
        by_call = {t.get(FIELD): t["Id"] for t in ctx.boxes.salesforce.records("Task") if t.get(FIELD)}
        synced = [c for c in ctx.scenario.order if c in by_call]
        self.deleted = ctx.rng.sample(synced, max(2, round(len(ctx.scenario.order) * self.delete_share)))
        for call_id in self.deleted:
            client.delete("Task", by_call[call_id])
        ctx.console.print(f"  a person deleted {len(self.deleted)} call Tasks in Salesforce")
        env = ctx.services.env
        before = crm_sync(env, "audit", "--since", "2d", "--json")
        fixed = crm_sync(env, "audit", "--since", "2d", "--fix", "--json")
        after = crm_sync(env, "audit", "--since", "2d", "--json")
        for args, result in (("audit", before), ("audit --fix", fixed), ("audit", after)):
            ctx.console.print(f"$ crm-sync {args} --since 2d --json → exit {result.returncode}")
        first, fix_data, last = _json(before), _json(fixed), _json(after)
        figures = ctx.wait_and_measure(started, "waiting after the audit's fixes")
        found_missing = sorted(i["call_id"] for i in first.get("items", []) if i.get("kind") == "task_missing")
        keys = ("findings", "missing_in_salesforce", "by_kind", "compared", "twenty2_requests", "salesforce_requests")
        return {
            **figures,
            "tasks_deleted": sorted(self.deleted),
            "audit_before_fix": {k: first.get(k) for k in keys},
            "audit_found_exactly_the_deleted": found_missing == sorted(self.deleted),
            "audit_other_findings_before_fix": [i for i in first.get("items", []) if i.get("kind") != "task_missing"],
            "fix_exit": fixed.returncode,
            "fix_replayed": len((fix_data.get("fixed") or {}).get("replayed") or []),
            "audit_after_fix": {k: last.get(k) for k in keys},
            "audit_after_exit": after.returncode,
            "audit_output_on_failure": "" if after.returncode == 0 else (fixed.stdout + fixed.stderr)[-1500:],
        }

    def report(self, ctx: ChaosContext, figures: dict[str, Any]) -> None:
        super().report(ctx, figures)
        table = Table("figure", "value", title="the audit", title_justify="left")
        rows = [
            ("call Tasks deleted by a person", len(figures["tasks_deleted"])),
            ("audit before --fix", json.dumps(figures["audit_before_fix"])),
            ("it found exactly the deleted Tasks", figures["audit_found_exactly_the_deleted"]),
            ("--fix: exit / calls replayed", f"{figures['fix_exit']} / {figures['fix_replayed']}"),
            ("audit after --fix", json.dumps(figures["audit_after_fix"])),
        ]
        for name, value in rows:
            table.add_row(name, str(value))
        ctx.console.print(table)
        if figures["audit_output_on_failure"]:
            ctx.console.print(figures["audit_output_on_failure"], markup=False, highlight=False)

    def checks(self, figures: dict[str, Any]) -> list[verify.Check]:
        after = figures["audit_after_fix"]
        return [
            *verify.common_checks(figures),
            ("0 failed", figures["failed"]),
            ("the audit finds exactly the deleted Tasks", 0 if figures["audit_found_exactly_the_deleted"] else 1),
            ("the audit reports 0 findings after --fix", int(after.get("findings") or 0) + figures["audit_after_exit"]),
        ]


def missed_phases(*, intake_down: float = 60.0, drop_share: float = 0.05) -> list[Phase]:
    return [MissedRunPhase(drop_share=drop_share, intake_down=intake_down), ReplayPhase(), AuditPhase()]


def missed_options(**kwargs: Any) -> ChaosOptions:
    """The chaos run's options with this scenario's settings on top (a window of at least 120 s by default)."""
    kwargs.setdefault("min_window", 120.0)
    return ChaosOptions(overrides=OVERRIDES, **kwargs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Chaos run with missed webhooks, an intake outage, deleted Tasks.")
    parser.add_argument("--events", type=int, default=1000, help="calls (default 1000)")
    parser.add_argument("--window", type=float, default=120.0, help="seconds Twenty2 finishes them over (default 120)")
    parser.add_argument("--intake-down", type=float, default=60.0, help="seconds the intake is stopped (default 60)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)
    options = missed_options(events=args.events, workers=args.workers, seed=args.seed, min_window=args.window)
    figures = run_chaos(options, phases=missed_phases(intake_down=args.intake_down))
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
    return 0 if figures["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
