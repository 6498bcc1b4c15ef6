"""Printing a chaos run: its header, the chaos log, each phase's figures, the verdicts, and on a missed
target the diagnosis (ledger history of a few offending calls, tails of the process logs)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import redis
from rich.console import Console
from rich.table import Table

from chaos.options import ChaosOptions
from chaos.scenario import Scenario
from standins.stack.processes import Stack
from worker.ledger import Ledger


def make_console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=132)  # logs and pipes: keep call ids whole


def print_header(console: Console, options: ChaosOptions, scenario: Scenario, work: Path) -> None:
    console.print(
        f"[bold]chaos run[/bold]: {options.events} events, {options.workers} workers, seed {options.seed}; "
        f"{len(scenario.planted)} planted permanent failures; logs in {work / 'log'}"
    )
    for name, (value, why) in options.settings.items():
        console.print(f"  {name}={value}: {why}")


def print_chaos(console: Console, log: list[str], faults: dict[str, Any]) -> None:
    """The chaos log so far and the fault counts (``Chaos.summary()``)."""
    for line in log:
        console.print(f"  {line}", highlight=False)
    console.print(
        f"  faults injected: Salesforce {faults['salesforce_faults']}, limit refusals "
        f"{faults['limit_burst_rejections']}; Twenty2 {faults['twenty2_faults']} "
        f"(answers by status {faults['twenty2_answers']})",
        highlight=False,
    )


def print_figures(console: Console, title: str, f: dict[str, Any]) -> None:
    """One phase's figures, then its failed calls."""
    console.print(figures_table(title, f))
    print_failed_calls(console, f)


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


def print_verdicts(console: Console, verdicts: list[dict[str, Any]]) -> None:
    for v in verdicts:
        mark = "[green]met[/green]" if v["ok"] else f"[red]MISSED ({v['misses']})[/red]"
        console.print(f"  {v['phase']:>6}: {v['target']}: {mark}")


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
