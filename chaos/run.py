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
returns the figures (also printed as JSON by ``--json``). See ``chaos/README.md`` for each figure.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO_ROOT))

import redis  # noqa: E402
import requests  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from chaos import worker_loss  # noqa: E402
from standins.salesforce import ValidationRule  # noqa: E402
from standins.stack.ports import free_port  # noqa: E402
from standins.stack.processes import Stack, child_env, service_env, wait_ready  # noqa: E402
from standins.stack.redis_server import RedisServer  # noqa: E402
from standins.stack.sandboxes import Sandboxes  # noqa: E402
from standins.twenty2 import SandboxCall, Twenty2State  # noqa: E402
from worker.ledger import Ledger, Record, State  # noqa: E402
from worker.mapping import load_mapping, plan_lead_fields  # noqa: E402
from worker.plan import CALLBACK_SUFFIX  # noqa: E402
from worker.settings import Settings  # noqa: E402
from worker.twenty2.models import CONNECTED_STATUSES  # noqa: E402

WEBHOOK_SECRET = "chaos-run-webhook-secret-7f3a9c"  # the private intake of this run only

#: Settings the run changes, and why (printed with the results).
RUN_SETTINGS: dict[str, tuple[str, str]] = {
    "CRM_SYNC_RETRY_BASE_SECONDS": ("0.5", "short retries, so the run takes minutes"),
    "CRM_SYNC_RETRY_MAX_SECONDS": ("4", "short retries, so the run takes minutes"),
    "CRM_SYNC_MAX_ATTEMPTS": ("10", "retryable faults must not exhaust the attempts"),
    "CRM_SYNC_LIMIT_HOLD_SECONDS": ("3", "the daily-limit hold ends within the run"),
    "TWENTY2_READ_TIMEOUT": ("2", "hung Twenty2 requests (3 s) time out"),
    "TWENTY2_RATE_LIMIT_PER_MINUTE": ("0", "lifted (and the sandbox's 60/min too): the run is not bounded by it"),
    "CRM_SYNC_INTAKE_RATE_LIMIT_PER_MINUTE": ("0", "lifted: every webhook comes from 127.0.0.1"),
}
#: Not changed: CELERY_VISIBILITY_TIMEOUT stays at its default (15 min); a killed worker's calls must come
#: back through the dead-worker sweep (chaos/worker_loss.py measures how fast).

TERMINAL = frozenset({State.SYNCED, State.SKIPPED, State.FAILED})
#: Lead Status / Rating the generated Leads start at (cycled), so both rank rules and both yes/no get hit.
START_VALUES: tuple[tuple[str, str | None], ...] = (
    ("Open - Not Contacted", None),
    ("Open - Not Contacted", "Warm"),
    ("Working - Contacted", "Cold"),
    ("Working - Contacted", "Hot"),
    ("Closed - Not Converted", "Cold"),
)
#: Planted permanent failures: kind → the failure code the ledger must show for them.
PLANTED_CODES = {"unknown call": "CALL_NOT_FOUND", "validation rule": "FIELD_CUSTOM_VALIDATION_EXCEPTION"}
#: Twenty2 faults: (share of the API requests, answer); a hang lasts past TWENTY2_READ_TIMEOUT.
TWENTY2_FAULTS: tuple[tuple[float, int | None], ...] = ((0.4, 429), (0.3, 500), (0.3, None))
TWENTY2_HANG_SECONDS = 3.0
#: Salesforce fault kinds alternated every second (a lock only ever hits a write).
SALESFORCE_FAULT_KINDS = ("server_unavailable", "lock")
LIMIT_BURST_SECONDS = 4.0
RESTART_DELAY_SECONDS = 1.0


@dataclass(frozen=True)
class ChaosOptions:
    """What to run. ``timeout`` bounds each wait for the calls to become terminal (run, then replay)."""

    events: int = 1000
    workers: int = 2
    seed: int = 1
    post_rate: float = 40.0  # webhooks per second
    min_window: float = 12.0  # the posting (and the chaos schedule over it) lasts at least this long
    worker_kills: int = 4
    fault_rate: float = 0.10
    timeout: float = 900.0
    settle: float = 5.0
    work_dir: Path | None = None


# --- the calls ---------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    """The calls to post and what Salesforce must look like afterwards."""

    order: list[str]  # call ids in posting order
    payloads: dict[str, dict[str, Any]]
    lead_of: dict[str, str]  # call id → its Lead
    initial: dict[str, dict[str, Any]]  # call id → the Lead's mapped fields before the run
    expected: dict[str, dict[str, Any]]  # call id → the Lead's mapped fields once the call is synced
    callback: dict[str, bool]  # call id → a callback Task is due once synced
    planted: dict[str, str]  # call id → planted kind (a key of PLANTED_CODES)
    missing_calls: list[SandboxCall]  # the unknown calls, added to Twenty2 before the replay
    rules: list[ValidationRule]
    leads_before: int = 0
    numbers: list[str] = field(default_factory=list)  # the Leads' (and so the calls') phone numbers


def _unique_phones(rng: random.Random, count: int) -> list[str]:
    phones: set[str] = set()
    while len(phones) < count:
        phones.add(rng.choice("78") + "".join(rng.choices("0123456789", k=9)))
    return sorted(phones, key=lambda _: rng.random())


def build_scenario(boxes: Sandboxes, options: ChaosOptions, rng: random.Random) -> Scenario:
    """Seed one Lead per call, add the calls to the Twenty2 sandbox (the unknown ones elsewhere), plant
    the validation rule, and compute each Lead's expected end state with the product's mapping rules."""
    sf, t2 = boxes.salesforce, boxes.twenty2
    mapping = load_mapping(Settings(_env_file=None).crm_sync_mapping_file)
    fields = sorted(mapping.lead_fields())
    n_bad = max(2, round(options.events * 0.005))  # per planted kind
    n_known = options.events - n_bad
    if n_known < n_bad + 2:
        raise ValueError(f"--events must be at least {3 * n_bad + 2}")
    leads_before = len(sf.records("Lead"))
    phones = _unique_phones(rng, options.events)
    owners = [sf.users["asha"], sf.users["vikram"]]
    lead_ids = []
    for i, phone in enumerate(phones):
        status, rating = START_VALUES[i % len(START_VALUES)]
        values = {
            "FirstName": "Chaos",
            "LastName": f"Lead {i:05d}",
            "Company": "Chaos Run Ltd",
            "Phone": phone,
            "Status": status,
            "OwnerId": rng.choice(owners),
        }
        if rating:
            values["Rating"] = rating
        lead_ids.append(sf.insert_raw("Lead", values))
    # Half the calls name their Lead (salesforce_id), half are found by phone number.
    half = n_known // 2
    known = t2.add_generated_calls(half, seed=options.seed * 1000 + 1, lead_ids=lead_ids[:half], phones=phones[:half])
    known += t2.add_generated_calls(n_known - half, seed=options.seed * 1000 + 2, phones=phones[half:n_known])
    # Calls the Twenty2 sandbox does not have (404 CALL_NOT_FOUND) until the replay: rendered elsewhere.
    elsewhere = Twenty2State(base_url=boxes.twenty2_url)
    unknown = elsewhere.add_generated_calls(
        n_bad, seed=options.seed * 1000 + 3, lead_ids=lead_ids[n_known:], phones=phones[n_known:]
    )
    blocked = rng.sample(known, n_bad)
    rules = [
        ValidationRule("Task", "CallObject", call_id, message="Chaos run: this call is blocked by a validation rule")
        for call_id in blocked
    ]
    sf.set_faults(validation_rules=rules)

    calls = {cid: t2.get_call(cid) for cid in known} | {cid: elsewhere.get_call(cid) for cid in unknown}
    payloads = {cid: t2.webhook_payload(cid) for cid in known}
    payloads |= {cid: elsewhere.webhook_payload(cid) for cid in unknown}
    lead_of = dict(zip([*known, *unknown], lead_ids, strict=True))
    initial, expected, callback = {}, {}, {}
    for call_id, call in calls.items():
        lead = sf.get(lead_of[call_id]) or {}
        current = {f: lead.get(f) for f in fields}
        initial[call_id] = current
        if call.status in CONNECTED_STATUSES:
            plan = plan_lead_fields(
                mapping, agent_id=call.agent_id, output_parameters=call.output_parameters, current=current
            )
            expected[call_id] = {**current, **plan.updates}
            callback[call_id] = plan.callback_requested
        else:
            expected[call_id], callback[call_id] = dict(current), False
    order = [*known, *unknown]
    rng.shuffle(order)
    return Scenario(
        order=order,
        payloads=payloads,
        lead_of=lead_of,
        initial=initial,
        expected=expected,
        callback=callback,
        planted={**dict.fromkeys(unknown, "unknown call"), **dict.fromkeys(blocked, "validation rule")},
        numbers=phones,
        missing_calls=[elsewhere.get_call(cid) for cid in unknown],
        rules=rules,
        leads_before=leads_before,
    )


# --- the faults ----------------------------------------------------------------------------------------------


class Chaos:
    """Transient faults for the whole run, and a schedule of kills, one Redis restart and one limit burst
    spread over the posting window. Every action is logged with its time."""

    def __init__(
        self,
        boxes: Sandboxes,
        stack: Stack,
        redis_server: RedisServer,
        options: ChaosOptions,
        rng: random.Random,
        workers: list[str],
    ) -> None:
        self.boxes, self.stack, self.redis_server = boxes, stack, redis_server
        self.options, self.rng = options, rng
        self.workers = workers
        self.log: list[str] = []
        self.kills: list[dict[str, Any]] = []
        self.redis_downtime = 0.0
        self.limit_rejections = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._t0 = time.monotonic()
        self._restarts = 0

    def note(self, text: str) -> None:
        self.log.append(f"t+{time.monotonic() - self._t0:6.1f}s  {text}")

    def start(self, window: float) -> None:
        self._t0 = time.monotonic()
        rate = self.options.fault_rate
        for share, status in TWENTY2_FAULTS:
            if status is None:
                self.boxes.twenty2.hang_randomly(rate * share, seconds=TWENTY2_HANG_SECONDS)
            else:
                self.boxes.twenty2.fail_randomly(rate * share, status)
        self.boxes.salesforce.set_faults(fail_rate=rate, fail_kind=SALESFORCE_FAULT_KINDS[0], seed=self.options.seed)
        self.note(
            f"faults on: Twenty2 {rate:.0%} (429/500/hang {TWENTY2_HANG_SECONDS:.0f}s), "
            f"Salesforce {rate:.0%} ({' / '.join(SALESFORCE_FAULT_KINDS)}, alternating each second)"
        )
        kills = self.options.worker_kills
        schedule: list[tuple[float, Callable[[], None]]] = [
            (window * (0.1 + 0.8 * (k + 0.5) / kills), self.kill_worker) for k in range(kills)
        ]
        schedule += [(window * 0.5, self.restart_redis), (window * 0.7, self.limit_burst)]
        for at, action in schedule:
            self._spawn(self._at(at, action))
        self._spawn(self._alternate_salesforce_faults)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _spawn(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _at(self, at: float, action: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            if not self._stop.wait(max(0.0, self._t0 + at - time.monotonic())):
                action()

        return run

    def _alternate_salesforce_faults(self) -> None:
        turn = 0
        while not self._stop.wait(1.0):
            turn += 1
            kind = SALESFORCE_FAULT_KINDS[turn % len(SALESFORCE_FAULT_KINDS)]
            self.boxes.salesforce.set_faults(fail_kind=kind)

    def kill_worker(self) -> None:
        name = self.rng.choice(self.workers)
        process = self.stack.processes[name]
        try:
            client = redis.Redis.from_url(self.redis_server.url, socket_timeout=3)
            _owner, held = worker_loss.held_by(client, process.pid)
        except redis.RedisError:
            held = []
        self.stack.kill(name)  # SIGKILL to the process group: no warm shutdown, no requeue by the worker
        killed_at = time.time()
        self._restarts += 1
        new_name = f"{name.split('.')[0]}.{self._restarts}"
        time.sleep(RESTART_DELAY_SECONDS)
        self.stack.start(new_name, entry="worker")
        self.workers[self.workers.index(name)] = new_name
        self.kills.append(
            {"killed": name, "pid": process.pid, "restarted_as": new_name, "killed_at": killed_at, "held": held}
        )
        self.note(f"SIGKILL {name} (pid {process.pid}, process group, held {len(held)} calls); restarted as {new_name}")

    def restart_redis(self) -> None:
        started = time.monotonic()
        self.redis_server.restart()  # SIGTERM (AOF flushed), then the same port and directory
        self.redis_downtime = time.monotonic() - started
        self.note(f"Redis restarted (graceful, AOF, same port): down {self.redis_downtime:.2f}s")

    def limit_burst(self) -> None:
        sf = self.boxes.salesforce
        before = sf.stats()["errors"].get("REQUEST_LIMIT_EXCEEDED", 0)
        usage = sf.set_usage()
        sf.set_usage(used=usage["max"])
        self.note(f"Salesforce at its daily API limit (REQUEST_LIMIT_EXCEEDED) for {LIMIT_BURST_SECONDS:.0f}s")
        time.sleep(LIMIT_BURST_SECONDS)
        sf.set_usage(used=usage["used"])
        self.limit_rejections = sf.stats()["errors"].get("REQUEST_LIMIT_EXCEEDED", 0) - before
        self.note(f"Salesforce limit lifted ({self.limit_rejections} requests refused meanwhile)")

    def summary(self) -> dict[str, Any]:
        sf, t2 = self.boxes.salesforce.stats(), self.boxes.twenty2.stats()
        return {
            "worker_kills": self.kills,
            "redis_restarts": 1 if self.redis_downtime else 0,
            "redis_downtime_seconds": round(self.redis_downtime, 2),
            "limit_burst_rejections": self.limit_rejections,
            "salesforce_faults": sf["faults"],
            "twenty2_faults": t2["faults_injected"],
            "twenty2_answers": t2["by_status"],
            "log": list(self.log),
        }


# --- posting and waiting ---------------------------------------------------------------------------------


def post_all(intake: str, scenario: Scenario, window: float) -> dict[str, int | str]:
    """Post every webhook once, evenly over ``window`` seconds. Answer per call: status code or error name.
    A rejected webhook is not sent again: the figures show what the intake refused."""
    answers: dict[str, int | str] = {}
    url = f"{intake}/webhooks/twenty2/{WEBHOOK_SECRET}"
    interval = window / max(1, len(scenario.order))
    start = time.monotonic()
    with requests.Session() as session:
        for i, call_id in enumerate(scenario.order):
            time.sleep(max(0.0, start + i * interval - time.monotonic()))
            try:
                answers[call_id] = session.post(url, json=scenario.payloads[call_id], timeout=10).status_code
            except requests.RequestException as exc:
                answers[call_id] = type(exc).__name__
    return answers


def accepted(answer: int | str) -> bool:
    return isinstance(answer, int) and 200 <= answer < 300


def unresolved(answers: dict[str, int | str], records: dict[str, Record | None]) -> list[str]:
    """Calls that should be terminal and are not: accepted ones missing or open in the ledger, and rejected
    ones the ledger nevertheless holds open (recorded, then refused: they must still be synced)."""
    return [
        call_id
        for call_id, answer in answers.items()
        if ((record := records.get(call_id)) is None and accepted(answer))
        or (record is not None and record.state not in TERMINAL)
    ]


def wait_terminal(
    ledger: Ledger, answers: dict[str, int | str], timeout: float, console: Console, every: float = 15.0
) -> bool:
    """Until every call that should be terminal is (True) or ``timeout`` (False); says how many are left."""
    started = time.monotonic()
    next_report = started + every
    pending = list(answers)
    while True:
        records = {call_id: ledger.get(call_id) for call_id in pending}
        pending = unresolved({c: answers[c] for c in pending}, records)
        if not pending:
            return True
        now = time.monotonic()
        if now > started + timeout:
            return False
        if now > next_report:
            states = Counter(r.state.value if (r := records.get(c)) else "missing" for c in pending)
            console.print(f"  waiting {now - started:4.0f}s: {len(pending)} open ({dict(states)})", highlight=False)
            next_report = now + every
        time.sleep(1.0)


# --- the figures ------------------------------------------------------------------------------------------


def measure(
    boxes: Sandboxes, ledger: Ledger, scenario: Scenario, answers: dict[str, int | str], seconds: float
) -> dict[str, Any]:
    """The figures of one phase (see chaos/README.md), with the call ids behind every bad count."""
    sf = boxes.salesforce
    records = {call_id: ledger.get(call_id) for call_id in scenario.order}
    states = Counter(r.state.value for r in records.values() if r is not None)
    failures: Counter[str] = Counter()
    failed_calls = []
    for call_id, record in records.items():
        if record is not None and record.state is State.FAILED:
            error = record.last_error or {}
            failures[f"{error.get('stage')}/{error.get('code')}"] += 1
            failed_calls.append(
                {
                    "call_id": call_id,
                    "planted": scenario.planted.get(call_id),
                    "stage": error.get("stage"),
                    "code": error.get("code"),
                    "retryable": error.get("retryable"),
                    "message": str(error.get("message") or "")[:160],
                }
            )
    tasks = Counter(str(t.get("Twenty2_Call_Id__c")) for t in sf.records("Task"))
    duplicates = [c for c in scenario.order if tasks[c] > 1 or tasks[c + CALLBACK_SUFFIX] > 1]
    wrong_tasks, wrong_leads = [], []
    changed = 0
    for call_id in scenario.order:
        record = records[call_id]
        synced = record is not None and record.state is State.SYNCED
        want = (1, int(scenario.callback[call_id])) if synced else (0, 0)
        have = (tasks[call_id], tasks[call_id + CALLBACK_SUFFIX])
        if have != want and call_id not in duplicates:
            state = record.state.value if record is not None else None
            wrong_tasks.append(
                {
                    "call_id": call_id,
                    "tasks (call, callback)": have,
                    "expected": want,
                    "state": state,
                    "code": _code(record),
                }
            )
        expected = scenario.expected[call_id] if synced else scenario.initial[call_id]
        lead = sf.get(scenario.lead_of[call_id]) or {}
        got = {f: lead.get(f) for f in expected}
        changed += got != scenario.initial[call_id]
        if got != expected:
            lead_id = scenario.lead_of[call_id]
            wrong_leads.append({"call_id": call_id, "lead": lead_id, "expected": expected, "got": got})
    stats = sf.stats()
    requests_made = sum(stats["api_requests"].values()) + stats["errors"].get("REQUEST_LIMIT_EXCEEDED", 0)
    synced_count = states.get(State.SYNCED.value, 0)
    planted_wrong = [
        {"call_id": c, "planted": kind, "state": r.state.value if r else None, "code": _code(r)}
        for c, kind in scenario.planted.items()
        if (r := records[c]) is None or r.state is not State.FAILED or _code(r) != PLANTED_CODES[kind]
    ]
    return {
        "events_posted": len(answers),
        "accepted": sum(accepted(a) for a in answers.values()),
        "rejected": dict(Counter(str(a) for a in answers.values() if not accepted(a))),
        "synced": synced_count,
        "skipped": states.get(State.SKIPPED.value, 0),
        "failed": states.get(State.FAILED.value, 0),
        "failure_reasons": dict(failures),
        "failed_calls": failed_calls,
        "unexpected_failures": [f["call_id"] for f in failed_calls if not f["planted"]],
        "planted_not_failed_as_planted": planted_wrong,
        "planted_not_synced": [c for c in scenario.planted if (r := records[c]) is None or r.state is not State.SYNCED],
        "lost": unresolved(answers, records),
        "duplicate_task_calls": duplicates,
        "wrong_task_calls": wrong_tasks,
        "leads_wrongly_updated": wrong_leads,
        "leads_changed": changed,
        "leads_created": len(sf.records("Lead")) - scenario.leads_before - len(scenario.lead_of),
        "salesforce_requests": requests_made,
        "salesforce_requests_per_synced_call": round(requests_made / synced_count, 2) if synced_count else None,
        "run_seconds": round(seconds, 1),
    }


def _code(record: Record | None) -> str | None:
    return None if record is None or record.last_error is None else record.last_error.get("code")


def targets(run: dict[str, Any], replay: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Each target with its verdict: (phase, what, the offending count)."""
    checks = [
        ("run", "0 lost", len(run["lost"])),
        ("run", "0 duplicate Tasks", len(run["duplicate_task_calls"])),
        ("run", "0 wrong or missing Tasks", len(run["wrong_task_calls"])),
        ("run", "0 Leads wrongly updated", len(run["leads_wrongly_updated"])),
        ("run", "0 Leads created", run["leads_created"]),
        ("run", "every planted call failed with its reason", len(run["planted_not_failed_as_planted"])),
        ("run", "no other failure", len(run["unexpected_failures"])),
        (
            "run",
            f"killed workers' calls resolved within {worker_loss.TARGET_SECONDS:.0f} s",
            0 if run.get("worker_loss", {}).get("ok", True) else max(1, len(run["worker_loss"]["unresolved"])),
        ),
    ]
    if replay is None:
        checks.append(("replay", "replay ran", 1))
    else:
        checks += [
            ("replay", "0 lost", len(replay["lost"])),
            ("replay", "0 duplicate Tasks", len(replay["duplicate_task_calls"])),
            ("replay", "0 wrong or missing Tasks", len(replay["wrong_task_calls"])),
            ("replay", "0 Leads wrongly updated", len(replay["leads_wrongly_updated"])),
            ("replay", "0 Leads created", replay["leads_created"]),
            ("replay", "0 failed", replay["failed"]),
            ("replay", "every planted call synced", len(replay["planted_not_synced"])),
        ]
    return [{"phase": phase, "target": what, "misses": int(bad), "ok": bad == 0} for phase, what, bad in checks]


def figures_table(title: str, f: dict[str, Any]) -> Table:
    table = Table("figure", "value", title=title, title_justify="left")
    rejected = ", ".join(f"{code}: {n}" for code, n in sorted(f["rejected"].items())) or "-"
    reasons = ", ".join(f"{reason} × {n}" for reason, n in sorted(f["failure_reasons"].items()))
    rows = [
        ("events posted", f["events_posted"]),
        ("accepted (2xx)", f["accepted"]),
        ("rejected", f"{sum(f['rejected'].values())} ({rejected})"),
        ("synced", f["synced"]),
        ("skipped", f["skipped"]),
        ("failed", f"{f['failed']}" + (f" ({reasons})" if reasons else "")),
        ("lost", len(f["lost"])),
        ("duplicate Tasks (calls)", len(f["duplicate_task_calls"])),
        ("wrong or missing Tasks (calls)", len(f["wrong_task_calls"])),
        ("Leads wrongly updated", len(f["leads_wrongly_updated"])),
        ("Leads changed by their call", f["leads_changed"]),
        ("Leads created", f["leads_created"]),
        (
            "Salesforce requests per synced call",
            f"{f['salesforce_requests_per_synced_call']} ({f['salesforce_requests']} requests in all)",
        ),
        ("run time", f"{f['run_seconds']} s"),
    ]
    if "worker_loss" in f:
        loss = f["worker_loss"]
        rows.append(
            (
                "worst kill → sync of the killed worker's calls",
                f"{loss['worst_kill_to_sync_seconds']} s ({loss['held_calls']} calls held by killed workers, "
                f"{len(loss['unresolved'])} unresolved; visibility timeout at its default)",
            )
        )
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def print_failed_calls(console: Console, f: dict[str, Any]) -> None:
    if not f["failed_calls"]:
        return
    table = Table("call id", "planted", "stage", "code", "retryable", "message", title="failed calls")
    table.columns[0].no_wrap = table.columns[3].no_wrap = True
    for item in f["failed_calls"]:
        table.add_row(
            item["call_id"],
            item["planted"] or "NO",
            str(item["stage"]),
            str(item["code"]),
            str(item["retryable"]),
            item["message"][:70],
        )
    console.print(table)


# --- diagnosis ------------------------------------------------------------------------------------------


def diagnose(console: Console, ledger: Ledger, stack: Stack, phase: dict[str, Any], lines: int = 25) -> None:
    """On a missed target: the ledger history of a few offending calls and the tail of every process log."""
    offenders = [
        *phase["lost"],
        *phase["duplicate_task_calls"],
        *(w["call_id"] for w in phase["wrong_task_calls"]),
        *(w["call_id"] for w in phase["leads_wrongly_updated"]),
        *phase["unexpected_failures"],
        *(p["call_id"] for p in phase["planted_not_failed_as_planted"]),
    ]
    for call_id in list(dict.fromkeys(offenders))[:5]:
        console.print(f"[bold]history of {call_id}[/bold] (crm-sync failures show {call_id})")
        try:
            for event in ledger.history(call_id):
                at = event.pop("at", 0.0)
                console.print(f"  {time.strftime('%H:%M:%S', time.localtime(at))} {json.dumps(event)[:220]}")
        except redis.RedisError as exc:
            console.print(f"  (ledger unreadable: {exc})")
    for log in sorted(stack.log_dir.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        console.print(f"[bold]--- {log.name} (last {len(tail)} lines)[/bold]")
        console.print("\n".join(tail), markup=False, highlight=False)


# --- the run ------------------------------------------------------------------------------------------------


def replay_all_failed(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``crm-sync replay --all-failed``, as ops would run it, with the service's environment."""
    command = [str(Path(sys.executable).parent / "crm-sync"), "replay", "--all-failed"]
    return subprocess.run(
        command, env=child_env(env), cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def run_chaos(options: ChaosOptions, console: Console | None = None) -> dict[str, Any]:
    """Run the whole chaos run; returns every figure (``passed`` says whether all targets were met)."""
    console = console or _console()
    rng = random.Random(options.seed)
    work = options.work_dir or Path(tempfile.mkdtemp(prefix="chaos-", dir=_var_dir()))
    work.mkdir(parents=True, exist_ok=True)
    redis_server = RedisServer(work / "redis").start()
    stack: Stack | None = None
    chaos: Chaos | None = None
    try:
        with Sandboxes(work / "tls") as boxes:
            boxes.twenty2.configure(rate_limit_per_minute=None)  # the sandbox's own 60/min, lifted
            scenario = build_scenario(boxes, options, rng)
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
                f"[bold]chaos run[/bold]: {options.events} events, {options.workers} workers, seed {options.seed}; "
                f"{len(scenario.planted)} planted permanent failures; logs in {work / 'log'}"
            )
            for name, (value, why) in RUN_SETTINGS.items():
                console.print(f"  {name}={value}: {why}")

            window = max(options.min_window, options.events / options.post_rate)
            chaos = Chaos(boxes, stack, redis_server, options, rng, workers)
            started = time.monotonic()
            chaos.start(window)
            answers = post_all(intake, scenario, window)
            done = wait_terminal(ledger, answers, options.timeout, console)
            run_seconds = time.monotonic() - started
            if not done:
                console.print(f"[red]timed out after {options.timeout:.0f}s waiting for terminal states[/red]")
            time.sleep(options.settle)  # late redeliveries and sweeps get their chance to do harm
            run = measure(boxes, ledger, scenario, answers, run_seconds)
            run["worker_loss"] = worker_loss.kill_delays(ledger, chaos.kills)
            for line in chaos.log:
                console.print(f"  {line}", highlight=False)
            faults = chaos.summary()
            console.print(
                f"  faults injected: Salesforce {faults['salesforce_faults']}, limit refusals "
                f"{faults['limit_burst_rejections']}; Twenty2 {faults['twenty2_faults']} "
                f"(answers by status {faults['twenty2_answers']})",
                highlight=False,
            )
            console.print(figures_table("after the run", run))
            print_failed_calls(console, run)

            # Ops fix the causes (the calls now exist; the rule is gone) and replay, as documented.
            for call in scenario.missing_calls:
                boxes.twenty2.add_call(call)
            boxes.salesforce.set_faults(validation_rules=[])
            started = time.monotonic()
            replayed = replay_all_failed(env)
            console.print(f"$ crm-sync replay --all-failed → exit {replayed.returncode}")
            console.print((replayed.stdout + replayed.stderr).strip()[-2000:], markup=False, highlight=False)
            done = wait_terminal(ledger, answers, options.timeout, console)
            replay_seconds = time.monotonic() - started
            if not done:
                console.print(f"[red]timed out after {options.timeout:.0f}s waiting after the replay[/red]")
            time.sleep(options.settle)
            replay = measure(boxes, ledger, scenario, answers, replay_seconds)
            chaos.stop()
            console.print(figures_table("after crm-sync replay --all-failed", replay))
            print_failed_calls(console, replay)

            verdicts = targets(run, replay if replayed.returncode == 0 else None)
            passed = all(v["ok"] for v in verdicts)
            for v in verdicts:
                mark = "[green]met[/green]" if v["ok"] else f"[red]MISSED ({v['misses']})[/red]"
                console.print(f"  {v['phase']:>6}: {v['target']}: {mark}")
            if not passed:
                diagnose(
                    console, ledger, stack, replay if all(v["ok"] for v in verdicts if v["phase"] == "run") else run
                )
            return {
                "options": {"events": options.events, "workers": options.workers, "seed": options.seed},
                "settings": {name: value for name, (value, _why) in RUN_SETTINGS.items()},
                "chaos": chaos.summary(),
                "run": run,
                "replay": replay,
                "planted": {call_id: PLANTED_CODES[kind] for call_id, kind in scenario.planted.items()},
                "targets": verdicts,
                "passed": passed,
                "work_dir": str(work),
                "numbers": scenario.numbers,  # for a scan of what Redis left on disk (tests/tools)
            }
    finally:
        if chaos is not None:
            chaos.stop()
        if stack is not None:
            stack.stop()
        redis_server.stop()


def _console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=132)  # logs and pipes: keep call ids whole


def _var_dir() -> Path:
    var = REPO_ROOT / "var"
    var.mkdir(exist_ok=True)
    return var


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
