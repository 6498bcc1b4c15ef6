"""Chaos scenario "missed webhooks": calls whose webhook never reaches the intake must still reach Salesforce.

Usage: ``.venv/bin/python chaos/missed.py [--events 1000] [--intake-down 60] [--seed 1] [--json]``

Starts a private Redis, both sandboxes (in this process) and web + N workers + beat from the Procfile, with
reconciliation on (beat lists ``GET /call/logs`` every few seconds). Every call starts *in progress* in the
Twenty2 stand-in; the run finishes them one after another over the posting window, as Twenty2 does, and
posts each call's webhook right after, except that:

- a share of the webhooks (5 %) is never sent (Twenty2 does not retry: the call is missed);
- the intake is stopped (SIGKILL) for ``intake_down`` seconds (60) in the middle of the run while Twenty2
  goes on finishing calls: their webhooks are refused (connection refused) and are missed too;
- once every call is terminal, some call Tasks are deleted in the Salesforce stand-in (a person did it).

Then ops run ``crm-sync audit --fix`` and ``crm-sync audit`` as documented. Targets: every finished call in
Salesforce exactly once (0 lost, 0 duplicate Tasks, follow-up Tasks as planned), every missed call found by
reconciliation (source ``reconcile``), the audit finds the deleted Tasks, and reports 0 findings after
``--fix``. The run prints how long the last missed call took to be found (from the moment Twenty2 finished
it to its ledger record). ``run_missed(MissedOptions(...))`` is the entry point for tests.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO_ROOT))

import redis  # noqa: E402
import requests  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from standins.stack.ports import free_port  # noqa: E402
from standins.stack.processes import Stack, child_env, service_env, wait_http, wait_ready  # noqa: E402
from standins.stack.redis_server import RedisServer  # noqa: E402
from standins.stack.sandboxes import Sandboxes  # noqa: E402
from worker.ledger import Ledger, Record, State  # noqa: E402
from worker.mapping import load_mapping, plan_lead_fields  # noqa: E402
from worker.plan import CALLBACK_SUFFIX  # noqa: E402
from worker.salesforce.client import SalesforceClient  # noqa: E402
from worker.settings import Settings  # noqa: E402
from worker.twenty2.models import CONNECTED_STATUSES  # noqa: E402

WEBHOOK_SECRET = "chaos-missed-webhook-secret-4b1e"  # the private intake of this run only
FIELD = "Twenty2_Call_Id__c"
TERMINAL = frozenset({State.SYNCED, State.SKIPPED, State.FAILED})

#: Settings the run changes, and why (printed with the results).
RUN_SETTINGS: dict[str, tuple[str, str]] = {
    "CRM_SYNC_RECONCILE_EVERY_SECONDS": ("3", "a pass every 3 s, so the run takes minutes (default 60 s)"),
    "CRM_SYNC_RECONCILE_BATCH": ("200", "a pass may queue every call the intake outage missed"),
    "CRM_SYNC_AUDIT_EVERY_SECONDS": ("0", "the audit is run by hand, as ops would"),
    "TWENTY2_RATE_LIMIT_PER_MINUTE": ("0", "lifted (and the sandbox's 60/min too): the run is not bounded by it"),
    "CRM_SYNC_INTAKE_RATE_LIMIT_PER_MINUTE": ("0", "lifted: every webhook comes from 127.0.0.1"),
    "CRM_SYNC_RETRY_BASE_SECONDS": ("0.5", "short retries, so the run takes minutes"),
    "CRM_SYNC_RETRY_MAX_SECONDS": ("4", "short retries, so the run takes minutes"),
}


@dataclass(frozen=True)
class MissedOptions:
    events: int = 1000
    workers: int = 2
    seed: int = 1
    window: float = 120.0  # seconds over which Twenty2 finishes the calls (and their webhooks are posted)
    drop_share: float = 0.05  # webhooks never sent
    intake_down: float = 60.0  # seconds the intake is stopped, starting at 40 % of the window
    delete_share: float = 0.03  # call Tasks deleted after the sync (at least 2)
    timeout: float = 600.0
    work_dir: Path | None = None


@dataclass
class Calls:
    order: list[str]
    dropped: set[str]
    callback: dict[str, bool]
    lead_of: dict[str, str]


def build_calls(boxes: Sandboxes, options: MissedOptions, rng: random.Random) -> Calls:
    """One Lead per call (found by its number), every call in progress in Twenty2 until the run finishes it."""
    sf, t2 = boxes.salesforce, boxes.twenty2
    phones: set[str] = set()
    while len(phones) < options.events:
        phones.add(rng.choice("78") + "".join(rng.choices("0123456789", k=9)))
    numbers = sorted(phones)
    lead_ids = [
        sf.insert_raw(
            "Lead",
            {"FirstName": "Missed", "LastName": f"Lead {i:05d}", "Company": "Chaos Run Ltd", "Phone": phone},
        )
        for i, phone in enumerate(numbers)
    ]
    order = t2.add_generated_calls(options.events, seed=options.seed * 1000 + 7, phones=numbers)
    mapping = load_mapping(Settings(_env_file=None).crm_sync_mapping_file)
    callback = {}
    for call_id, lead_id in zip(order, lead_ids, strict=True):
        call = t2.get_call(call_id)
        lead = sf.get(lead_id) or {}
        current = {f: lead.get(f) for f in mapping.lead_fields()}
        connected = call.status in CONNECTED_STATUSES
        plan = plan_lead_fields(
            mapping, agent_id=call.agent_id, output_parameters=call.output_parameters, current=current
        )
        callback[call_id] = connected and plan.callback_requested
        t2.set_pending(call_id)
    rng.shuffle(order)
    dropped = set(rng.sample(order, max(1, round(options.events * options.drop_share))))
    return Calls(order=order, dropped=dropped, callback=callback, lead_of=dict(zip(order, lead_ids, strict=False)))


class Outage:
    """Stops the intake (SIGKILL) for ``seconds`` and starts it again; logs when."""

    def __init__(self, stack: Stack, intake: str, seconds: float) -> None:
        self.stack, self.intake, self.seconds = stack, intake, seconds
        self.down_at: float | None = None
        self.up_at: float | None = None

    def run(self) -> None:
        self.stack.kill("web")
        self.down_at = time.time()
        time.sleep(self.seconds)
        self.stack.start("web.2", entry="web")
        wait_http(f"{self.intake}/readyz", timeout=60)
        self.up_at = time.time()


def finish_and_post(
    boxes: Sandboxes, intake: str, calls: Calls, options: MissedOptions, outage: Outage
) -> tuple[dict[str, int | str], dict[str, float]]:
    """Finish each call in Twenty2 evenly over the window and post its webhook (unless dropped); the intake
    outage starts at 40 % of the window. Returns the answers (posted calls) and each call's finish time."""
    answers: dict[str, int | str] = {}
    finished: dict[str, float] = {}
    url = f"{intake}/webhooks/twenty2/{WEBHOOK_SECRET}"
    interval = options.window / max(1, len(calls.order))
    start = time.monotonic()
    outage_thread = threading.Thread(target=outage.run, daemon=True)
    with requests.Session() as session:
        for i, call_id in enumerate(calls.order):
            time.sleep(max(0.0, start + i * interval - time.monotonic()))
            if not outage_thread.is_alive() and outage.down_at is None and i >= 0.4 * len(calls.order):
                outage_thread.start()
                while outage.down_at is None:
                    time.sleep(0.01)
            boxes.twenty2.finish(call_id)
            finished[call_id] = time.time()
            if call_id in calls.dropped:
                continue
            try:
                answers[call_id] = session.post(
                    url, json=boxes.twenty2.webhook_payload(call_id), timeout=10
                ).status_code
            except requests.RequestException as exc:
                answers[call_id] = type(exc).__name__
    outage_thread.join(timeout=options.intake_down + 90)
    return answers, finished


def records_of(ledger: Ledger, ids: list[str]) -> dict[str, Record | None]:
    """Each call's ledger record (None: unknown to the ledger), read in one pipelined round trip."""
    found = {r.call_id: r for r in ledger.get_many(ids)}
    return {call_id: found.get(call_id) for call_id in ids}


def wait_all_terminal(ledger: Ledger, ids: list[str], timeout: float, console: Console) -> bool:
    started = time.monotonic()
    next_report = started + 15
    pending = list(ids)
    while pending:
        records = records_of(ledger, pending)
        pending = [c for c in pending if (r := records[c]) is None or r.state not in TERMINAL]
        if not pending:
            return True
        now = time.monotonic()
        if now > started + timeout:
            return False
        if now > next_report:
            states = Counter(r.state.value if (r := records[c]) else "unknown to the ledger" for c in pending)
            console.print(f"  waiting {now - started:4.0f}s: {len(pending)} open ({dict(states)})", highlight=False)
            next_report = now + 15
        time.sleep(0.5)
    return True


def delete_some_tasks(boxes: Sandboxes, calls: Calls, options: MissedOptions, rng: random.Random) -> list[str]:
    """A person deletes some call Tasks in Salesforce (through the API, as the UI does)."""
    client = SalesforceClient(boxes.settings())
    by_call = {t.get(FIELD): t["Id"] for t in boxes.salesforce.records("Task") if t.get(FIELD)}
    victims = rng.sample([c for c in calls.order if c in by_call], max(2, round(options.events * options.delete_share)))
    for call_id in victims:
        client.delete("Task", by_call[call_id])
    return victims


def crm_sync(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """A ``crm-sync`` command as ops would run it, with the service's environment."""
    command = [str(Path(sys.executable).parent / "crm-sync"), *args]
    return subprocess.run(
        command, env=child_env(env), cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False
    )


def salesforce_figures(boxes: Sandboxes, calls: Calls, ledger: Ledger) -> dict[str, Any]:
    tasks = Counter(str(t.get(FIELD)) for t in boxes.salesforce.records("Task"))
    records = records_of(ledger, calls.order)
    return {
        "calls": len(calls.order),
        "synced": sum(1 for r in records.values() if r is not None and r.state is State.SYNCED),
        "lost": [c for c in calls.order if tasks[c] == 0],
        "duplicate_task_calls": [c for c in calls.order if tasks[c] > 1 or tasks[c + CALLBACK_SUFFIX] > 1],
        "wrong_followups": [c for c in calls.order if tasks[c + CALLBACK_SUFFIX] != int(calls.callback[c])],
        "not_synced": [c for c, r in records.items() if r is None or r.state is not State.SYNCED],
    }


def run_missed(options: MissedOptions, console: Console | None = None) -> dict[str, Any]:
    """The whole scenario; returns every figure (``passed`` says whether all targets were met)."""
    console = console or Console(width=132)
    rng = random.Random(options.seed)
    work = options.work_dir or Path(tempfile.mkdtemp(prefix="chaos-missed-"))
    work.mkdir(parents=True, exist_ok=True)
    redis_server = RedisServer(work / "redis").start()
    stack: Stack | None = None
    try:
        with Sandboxes(work / "tls") as boxes:
            boxes.twenty2.configure(rate_limit_per_minute=None)
            calls = build_calls(boxes, options, rng)
            port = free_port()
            env = service_env(
                boxes.env,
                redis_url=redis_server.url,
                secret=WEBHOOK_SECRET,
                work=work,
                port=port,
                extra={name: value for name, (value, _why) in RUN_SETTINGS.items()},
            )
            stack = Stack(env=env, log_dir=work / "log")
            workers = [f"worker-{i + 1}" for i in range(options.workers)]
            for name in ("web", *workers, "beat"):
                stack.start(name, entry="worker" if name.startswith("worker") else name)
            intake = f"http://127.0.0.1:{port}"
            wait_ready(intake, stack, workers)
            ledger = Ledger(redis.Redis.from_url(redis_server.url, socket_timeout=5))
            console.print(
                f"[bold]chaos: missed webhooks[/bold]: {options.events} calls finished over {options.window:.0f}s, "
                f"{len(calls.dropped)} webhooks never sent, intake down {options.intake_down:.0f}s; "
                f"logs in {work / 'log'}"
            )
            for name, (value, why) in RUN_SETTINGS.items():
                console.print(f"  {name}={value}: {why}")
            started = time.monotonic()
            outage = Outage(stack, intake, options.intake_down)
            answers, finished = finish_and_post(boxes, intake, calls, options, outage)
            refused = [c for c, a in answers.items() if not (isinstance(a, int) and 200 <= a < 300)]
            missed = sorted(calls.dropped | set(refused), key=lambda c: finished[c])
            console.print(
                f"  posted {len(answers)} webhooks: {len(answers) - len(refused)} accepted, {len(refused)} refused "
                f"while the intake was down ({(outage.up_at or 0) - (outage.down_at or 0):.1f}s); "
                f"{len(calls.dropped)} never sent: {len(missed)} calls missed"
            )
            done = wait_all_terminal(ledger, calls.order, options.timeout, console)
            run_seconds = time.monotonic() - started
            if not done:
                console.print(f"[red]timed out after {options.timeout:.0f}s waiting for every call[/red]")
            records = records_of(ledger, missed)
            found_by_reconcile = [c for c, r in records.items() if r is not None and r.source == "reconcile"]
            lags = {c: r.first_seen - finished[c] for c, r in records.items() if r is not None}
            last = missed[-1] if missed else None
            before_fix = salesforce_figures(boxes, calls, ledger)

            deleted = delete_some_tasks(boxes, calls, options, rng)
            console.print(f"  a person deleted {len(deleted)} call Tasks in Salesforce")
            audit_first = crm_sync(env, "audit", "--since", "2d", "--json")
            first = json.loads(audit_first.stdout) if audit_first.stdout.strip().startswith("{") else {}
            fixed = crm_sync(env, "audit", "--since", "2d", "--fix", "--json")
            console.print(f"$ crm-sync audit --since 2d --fix --json → exit {fixed.returncode}")
            fix_data = json.loads(fixed.stdout) if fixed.stdout.strip().startswith("{") else {}
            audit_after = crm_sync(env, "audit", "--since", "2d", "--json")
            after = json.loads(audit_after.stdout) if audit_after.stdout.strip().startswith("{") else {}
            console.print(f"$ crm-sync audit --since 2d --json → exit {audit_after.returncode}")
            final = salesforce_figures(boxes, calls, ledger)
            not_found = sorted(set(missed) - set(found_by_reconcile))
            figures: dict[str, Any] = {
                "calls": len(calls.order),
                "webhooks_never_sent": len(calls.dropped),
                "webhooks_refused_intake_down": len(refused),
                "intake_down_seconds": round((outage.up_at or 0) - (outage.down_at or 0), 1),
                "missed": len(missed),
                "missed_found_by_reconciliation": len(found_by_reconcile),
                "missed_not_found": not_found,
                "last_missed_call": last,
                "last_missed_found_after_seconds": round(lags[last], 1) if last in lags else None,
                "longest_found_after_seconds": round(max(lags.values()), 1) if lags else None,
                "run_seconds": round(run_seconds, 1),
                "before_deletions": before_fix,
                "tasks_deleted": deleted,
                "audit_before_fix": {k: first.get(k) for k in ("findings", "missing_in_salesforce", "by_kind")},
                "audit_found_deleted": sorted(
                    i["call_id"] for i in first.get("items", []) if i.get("kind") == "task_missing"
                )
                == sorted(deleted),
                "fix_exit": fixed.returncode,
                "fix_replayed": len((fix_data.get("fixed") or {}).get("replayed") or []),
                "audit_after_fix": {k: after.get(k) for k in ("findings", "missing_in_salesforce", "by_kind")},
                "audit_after_exit": audit_after.returncode,
                "final": final,
            }
            checks = [
                ("every missed call found by reconciliation", len(not_found)),
                ("0 lost before the deletions", len(before_fix["lost"])),
                ("0 duplicate Tasks before the deletions", len(before_fix["duplicate_task_calls"])),
                ("the audit finds exactly the deleted Tasks", 0 if figures["audit_found_deleted"] else 1),
                ("audit reports 0 findings after --fix", int(after.get("findings", 1) or 0) + audit_after.returncode),
                ("0 lost", len(final["lost"])),
                ("0 duplicate Tasks", len(final["duplicate_task_calls"])),
                ("follow-up Tasks as planned", len(final["wrong_followups"])),
                ("every call synced", len(final["not_synced"])),
            ]
            verdicts = [{"target": t, "misses": int(n), "ok": n == 0} for t, n in checks]
            print_figures(console, figures, verdicts)
            if not all(v["ok"] for v in verdicts):
                for result in (audit_first, fixed, audit_after):
                    console.print((result.stdout + result.stderr)[-1500:], markup=False, highlight=False)
            return {**figures, "targets": verdicts, "passed": all(v["ok"] for v in verdicts), "work_dir": str(work)}
    finally:
        if stack is not None:
            stack.stop()
        redis_server.stop()


def print_figures(console: Console, f: dict[str, Any], verdicts: list[dict[str, Any]]) -> None:
    table = Table("figure", "value", title="missed webhooks", title_justify="left")
    rows = [
        ("calls finished in Twenty2", f["calls"]),
        ("webhooks never sent", f["webhooks_never_sent"]),
        (f"webhooks refused (intake down {f['intake_down_seconds']} s)", f["webhooks_refused_intake_down"]),
        ("missed calls found by reconciliation", f"{f['missed_found_by_reconciliation']} of {f['missed']}"),
        ("last missed call found after", f"{f['last_missed_found_after_seconds']} s ({f['last_missed_call']})"),
        ("longest a missed call took to be found", f"{f['longest_found_after_seconds']} s"),
        (
            "lost / duplicates before the deletions",
            f"{len(f['before_deletions']['lost'])} / {len(f['before_deletions']['duplicate_task_calls'])}",
        ),
        ("call Tasks deleted by a person", len(f["tasks_deleted"])),
        ("audit before --fix", json.dumps(f["audit_before_fix"])),
        ("audit after --fix", json.dumps(f["audit_after_fix"])),
        ("lost / duplicates at the end", f"{len(f['final']['lost'])} / {len(f['final']['duplicate_task_calls'])}"),
        ("synced at the end", f"{f['final']['synced']} of {f['calls']}"),
        ("run time (until every call was terminal)", f"{f['run_seconds']} s"),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)
    for v in verdicts:
        mark = "[green]met[/green]" if v["ok"] else f"[red]MISSED ({v['misses']})[/red]"
        console.print(f"  {v['target']}: {mark}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Chaos scenario: missed webhooks, an intake outage, deleted Tasks.")
    parser.add_argument("--events", type=int, default=1000, help="calls Twenty2 finishes (default 1000)")
    parser.add_argument("--window", type=float, default=120.0, help="seconds over which they finish (default 120)")
    parser.add_argument("--intake-down", type=float, default=60.0, help="seconds the intake is stopped (default 60)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)
    figures = run_missed(
        MissedOptions(
            events=args.events, window=args.window, intake_down=args.intake_down, workers=args.workers, seed=args.seed
        )
    )
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
    return 0 if figures["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
