"""Failover chaos run: the Redis primary is SIGKILLed in the middle of a webhook stream, Sentinel promotes
a replica, the old primary comes back later as a replica, and nothing answered is lost or written twice.

Usage: ``.venv/bin/python chaos/failover.py [--events 1000] [--workers 2] [--seed 3] [--json]``

It starts a Sentinel deployment (``standins.stack.sentinels``: a primary, two replicas, three Sentinels,
passwords, AOF on, all ``redis-server`` processes on free loopback ports), both sandboxes, and web + N
workers + beat from the Procfile, configured with ``REDIS_SENTINELS`` (no ``REDIS_URL`` in use). It posts
one webhook per call, spread over the posting window by a few concurrent senders; a sender that is not
answered 200 (503 while no primary is reachable or no replica confirmed, or no answer) sends the same
webhook again a second later, for up to ``--resend-for`` seconds, as a sender that retries would. At
``kill_at`` of the window the primary is SIGKILLed; ``--restart-after`` seconds after the promotion it is
started again (its port, directory and AOF) as a replica of the new primary.

Figures: answered webhooks, webhooks refused at least once, lost (answered 200, not synced or skipped
once every answered call had time to settle), duplicate Tasks (calls with more than one call or callback
Task by the external id), and the time to recover: from the kill to the promotion, to the first webhook
(sent after the kill) answered 200, and to the first sync recorded after the kill. Targets: 0 lost, 0
duplicate Tasks, every webhook answered in the end. The exit status is 1 when a target is missed.
``run_failover(FailoverOptions(...))`` returns the figures (for ``tests/tools/test_failover.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO_ROOT))

import requests  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from standins.stack.ports import free_port  # noqa: E402
from standins.stack.processes import Stack, service_env, wait_ready  # noqa: E402
from standins.stack.sandboxes import Sandboxes  # noqa: E402
from standins.stack.sentinels import SentinelTopology  # noqa: E402
from worker.ledger import Ledger, State  # noqa: E402
from worker.plan import CALLBACK_SUFFIX  # noqa: E402
from worker.redis_clients import redis_client  # noqa: E402
from worker.settings import Settings  # noqa: E402

WEBHOOK_SECRET = "failover-run-webhook-secret-2e71"  # the private intake of this run only
#: Settings the run changes (printed with the results); everything else, Redis retries included, is default.
RUN_SETTINGS: dict[str, tuple[str, str]] = {
    "TWENTY2_RATE_LIMIT_PER_MINUTE": ("0", "lifted (and the sandbox's 60/min too): the run is not bounded by it"),
    "CRM_SYNC_INTAKE_RATE_LIMIT_PER_MINUTE": ("0", "lifted: every webhook comes from 127.0.0.1"),
}
DONE = frozenset({State.SYNCED, State.SKIPPED})


@dataclass(frozen=True)
class FailoverOptions:
    events: int = 1000
    workers: int = 2
    seed: int = 3
    post_rate: float = 40.0  # webhooks per second
    min_window: float = 10.0
    kill_at: float = 0.4  # share of the posting window
    restart_after: float = 10.0  # seconds after the promotion
    senders: int = 8
    resend_for: float = 60.0
    timeout: float = 600.0
    settle: float = 3.0
    work_dir: Path | None = None


@dataclass
class Delivery:
    """One webhook's delivery: every answer (status code or error name) and when the 200 came."""

    answers: list[int | str] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)
    answered_at: float | None = None


@dataclass
class Failover:
    """The fault: kill the primary at ``at`` seconds, restart it as a replica after the promotion."""

    topology: SentinelTopology
    restart_after: float
    log: list[str] = field(default_factory=list)
    killed_at: float | None = None
    promoted_at: float | None = None
    rejoined_at: float | None = None
    error: str | None = None

    def run(self, at: float, t0: float) -> threading.Thread:
        def act() -> None:
            time.sleep(max(0.0, t0 + at - time.time()))
            try:
                old = self.topology.kill_primary()
                self.killed_at = time.time()
                self.log.append(f"t+{self.killed_at - t0:5.1f}s  SIGKILL primary redis on port {old.port}")
                new = self.topology.wait_new_primary(old)
                self.promoted_at = time.time()
                self.log.append(f"t+{self.promoted_at - t0:5.1f}s  Sentinel promoted the replica on port {new.port}")
                time.sleep(self.restart_after)
                self.topology.restart_as_replica(old)
                self.rejoined_at = time.time()
                self.log.append(f"t+{self.rejoined_at - t0:5.1f}s  old primary (port {old.port}) back as a replica")
            except Exception as exc:  # reported with the figures
                self.error = f"{type(exc).__name__}: {exc}"
                self.log.append(f"failover step failed: {self.error}")

        thread = threading.Thread(target=act, daemon=True)
        thread.start()
        return thread


def post_all(
    intake: str, payloads: dict[str, dict[str, Any]], window: float, options: FailoverOptions
) -> dict[str, Delivery]:
    """Post each webhook at its slot in ``window``; resend one not answered 200 every second, for up to
    ``resend_for`` seconds."""
    url = f"{intake}/webhooks/twenty2/{WEBHOOK_SECRET}"
    order = list(payloads)
    deliveries = {call_id: Delivery() for call_id in order}
    start = time.time()
    interval = window / max(1, len(order))
    local = threading.local()

    def send(index: int) -> None:
        call_id = order[index]
        delivery = deliveries[call_id]
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        time.sleep(max(0.0, start + index * interval - time.time()))
        first = time.time()
        while True:
            delivery.sent_at.append(time.time())
            try:
                status: int | str = session.post(url, json=payloads[call_id], timeout=10).status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            delivery.answers.append(status)
            if status == 200:
                delivery.answered_at = time.time()
                return
            if time.time() - first > options.resend_for:
                return
            time.sleep(1.0)

    with ThreadPoolExecutor(max_workers=options.senders) as pool:
        list(pool.map(send, range(len(order))))
    return deliveries


def wait_done(ledger: Ledger, calls: list[str], timeout: float, console: Console, every: float = 15.0) -> bool:
    started = time.monotonic()
    pending, next_report = list(calls), started + every
    while pending:
        records = ledger.get_many(pending)
        done = {r.call_id for r in records if r.state in DONE or r.state is State.FAILED}
        pending = [c for c in pending if c not in done]
        if not pending:
            break
        if time.monotonic() > started + timeout:
            return False
        if time.monotonic() > next_report:
            console.print(f"  waiting {time.monotonic() - started:4.0f}s: {len(pending)} open", highlight=False)
            next_report = time.monotonic() + every
        time.sleep(1.0)
    return True


def measure(
    boxes: Sandboxes, ledger: Ledger, deliveries: dict[str, Delivery], failover: Failover, seconds: float
) -> dict[str, Any]:
    answered = [c for c, d in deliveries.items() if d.answered_at is not None]
    records = {r.call_id: r for r in ledger.get_many(list(deliveries))}
    states = Counter(r.state.value for r in records.values())
    lost = [c for c in answered if (r := records.get(c)) is None or r.state not in DONE]
    tasks = Counter(str(t.get("Twenty2_Call_Id__c")) for t in boxes.salesforce.records("Task"))
    duplicates = [c for c in deliveries if tasks[c] > 1 or tasks[c + CALLBACK_SUFFIX] > 1]
    refused = Counter(str(a) for d in deliveries.values() for a in d.answers if a != 200)
    killed = failover.killed_at
    first_200 = first_sync = None
    if killed is not None:
        after = [d.answered_at - killed for d in deliveries.values() if d.answered_at and d.sent_at[-1] >= killed]
        first_200 = round(min(after), 2) if after else None
        synced_after = [
            e["at"] - killed
            for c in answered
            for e in ledger.history(c)
            if e.get("state") == State.SYNCED.value and e.get("at", 0) >= killed
        ]
        first_sync = round(min(synced_after), 2) if synced_after else None
    return {
        "events": len(deliveries),
        "answered": len(answered),
        "never_answered": [c for c, d in deliveries.items() if d.answered_at is None],
        "refused_at_least_once": sum(1 for d in deliveries.values() if any(a != 200 for a in d.answers)),
        "refusals": dict(refused),
        "sends": sum(len(d.answers) for d in deliveries.values()),
        "states": dict(states),
        "lost": lost,
        "duplicate_task_calls": duplicates,
        "failed": [c for c, r in records.items() if r.state is State.FAILED],
        "seconds_kill_to_promotion": round(failover.promoted_at - killed, 2)
        if killed and failover.promoted_at
        else None,
        "seconds_kill_to_first_200": first_200,
        "seconds_kill_to_first_sync": first_sync,
        "old_primary_rejoined_as_replica": failover.rejoined_at is not None,
        "failover_error": failover.error,
        "run_seconds": round(seconds, 1),
    }


def targets(f: dict[str, Any]) -> list[dict[str, Any]]:
    checks = [
        ("0 answered webhooks lost", len(f["lost"])),
        ("0 duplicate Tasks", len(f["duplicate_task_calls"])),
        ("every webhook answered 200 in the end", len(f["never_answered"])),
        ("the primary was killed, a replica promoted, the old primary rejoined", 0 if f["failover_ok"] else 1),
    ]
    return [{"target": what, "misses": bad, "ok": bad == 0} for what, bad in checks]


def figures_table(f: dict[str, Any]) -> Table:
    table = Table("figure", "value", title="Redis failover (Sentinel)", title_justify="left")
    refusals = ", ".join(f"{k}: {n}" for k, n in sorted(f["refusals"].items())) or "-"
    rows = [
        ("webhooks (one per call)", f["events"]),
        ("answered 200", f"{f['answered']} (never answered: {len(f['never_answered'])})"),
        ("refused at least once, then resent", f"{f['refused_at_least_once']} ({refusals}; {f['sends']} sends)"),
        ("ledger states", json.dumps(f["states"])),
        ("lost (answered, not synced)", len(f["lost"])),
        ("duplicate Tasks (calls)", len(f["duplicate_task_calls"])),
        ("failed", len(f["failed"])),
        ("kill → replica promoted", f"{f['seconds_kill_to_promotion']} s"),
        ("kill → intake answers 200 again", f"{f['seconds_kill_to_first_200']} s"),
        ("kill → first sync after the kill", f"{f['seconds_kill_to_first_sync']} s"),
        ("old primary rejoined as a replica", f["old_primary_rejoined_as_replica"]),
        ("run time", f"{f['run_seconds']} s"),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def run_failover(options: FailoverOptions, console: Console | None = None) -> dict[str, Any]:
    """The whole run; returns the figures (``passed``: every target met)."""
    console = console or Console(width=132)
    work = options.work_dir or Path(tempfile.mkdtemp(prefix="failover-", dir=_var_dir()))
    work.mkdir(parents=True, exist_ok=True)
    topology = SentinelTopology(work / "sentinel").start()
    stack: Stack | None = None
    try:
        with Sandboxes(work / "tls") as boxes:
            boxes.twenty2.configure(rate_limit_per_minute=None)
            calls = boxes.twenty2.add_generated_calls(options.events, seed=options.seed)
            payloads = {call_id: boxes.twenty2.webhook_payload(call_id) for call_id in calls}
            port = free_port()
            redis_env = topology.env()
            env = service_env(
                boxes.env,
                redis_url=redis_env["REDIS_URL"],
                secret=WEBHOOK_SECRET,
                work=work,
                port=port,
                extra={**redis_env, **{name: value for name, (value, _why) in RUN_SETTINGS.items()}},
            )
            stack = Stack(env=env, log_dir=work / "log")
            workers = [f"worker-{i + 1}" for i in range(options.workers)]
            for name in ("web", *workers, "beat"):
                stack.start(name, entry="worker" if name.startswith("worker") else name)
            intake = f"http://127.0.0.1:{port}"
            wait_ready(intake, stack, workers)
            settings = Settings(_env_file=None, **{k.lower(): v for k, v in redis_env.items()})  # type: ignore[arg-type]
            ledger = Ledger(redis_client(settings, purpose="failover-run"))
            console.print(
                f"[bold]failover run[/bold]: {options.events} events, {options.workers} workers; Sentinels on "
                f"{redis_env['REDIS_SENTINELS']}; logs in {work / 'log'}",
                highlight=False,
            )
            for name, (value, why) in RUN_SETTINGS.items():
                console.print(f"  {name}={value}: {why}", highlight=False)

            window = max(options.min_window, options.events / options.post_rate)
            failover = Failover(topology, options.restart_after)
            started = time.time()
            fault = failover.run(window * options.kill_at, started)
            deliveries = post_all(intake, payloads, window, options)
            answered = [c for c, d in deliveries.items() if d.answered_at is not None]
            done = wait_done(ledger, answered, options.timeout, console)
            fault.join(timeout=120)
            if not done:
                console.print(f"[red]timed out after {options.timeout:.0f}s waiting for the answered calls[/red]")
                _diagnose(console, ledger, answered)
            time.sleep(options.settle)  # late redeliveries get their chance to do harm
            figures = measure(boxes, ledger, deliveries, failover, time.time() - started)
            figures["failover_ok"] = (
                failover.killed_at is not None and failover.promoted_at is not None and failover.rejoined_at is not None
            )
            for line in failover.log:
                console.print(f"  {line}", highlight=False)
            console.print(figures_table(figures))
            verdicts = targets(figures)
            for v in verdicts:
                mark = "[green]met[/green]" if v["ok"] else f"[red]MISSED ({v['misses']})[/red]"
                console.print(f"  {v['target']}: {mark}")
            figures |= {
                "options": {"events": options.events, "workers": options.workers, "seed": options.seed},
                "settings": {name: value for name, (value, _why) in RUN_SETTINGS.items()},
                "log": failover.log,
                "targets": verdicts,
                "passed": all(v["ok"] for v in verdicts),
                "work_dir": str(work),
            }
            return figures
    finally:
        if stack is not None:
            stack.stop()
        topology.stop()


def _diagnose(console: Console, ledger: Ledger, calls: list[str]) -> None:
    """The ledger history of a few calls still open."""
    open_calls = [r.call_id for r in ledger.get_many(calls) if r.state not in DONE and r.state is not State.FAILED]
    for call_id in open_calls[:5]:
        console.print(f"[bold]history of {call_id}[/bold]")
        for event in ledger.history(call_id):
            console.print(f"  {json.dumps(event)[:220]}", highlight=False)


def _var_dir() -> Path:
    var = REPO_ROOT / "var"
    var.mkdir(exist_ok=True)
    return var


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Redis failover run of crm-sync: nothing answered is lost.")
    parser.add_argument("--events", type=int, default=1000, help="call webhooks to post (default 1000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--seed", type=int, default=3, help="seed of the generated calls (default 3)")
    parser.add_argument("--restart-after", type=float, default=10.0, help="seconds from promotion to rejoin")
    parser.add_argument("--resend-for", type=float, default=60.0, help="seconds a sender keeps resending")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)
    options = FailoverOptions(
        events=args.events,
        workers=args.workers,
        seed=args.seed,
        restart_after=args.restart_after,
        resend_for=args.resend_for,
    )
    figures = run_failover(options)
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
    return 0 if figures["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
