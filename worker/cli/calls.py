"""One call at a time: ``sync`` (with ``--dry-run``), ``enqueue``, ``status`` (and ``--limits``), ``mapping check``."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.table import Table

from worker.cli.app import main
from worker.cli.common import console, fail, print_record, runtime
from worker.errors import MappingError, SyncError
from worker.plan import SyncPlan
from worker.plan_report import plan_as_dict
from worker.runtime import Runtime
from worker.settings import Settings


@main.command()
@click.argument("call_id")
@click.option("--dry-run", is_flag=True, help="Fetch and plan, print the exact changes, write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def sync(call_id: str, dry_run: bool, as_json: bool) -> None:
    """Sync CALL_ID now, in this process (no queue); records the outcome in the ledger unless --dry-run."""
    from worker.sync.stream import plan_call, sync_and_record

    rt = runtime()
    if dry_run:
        try:
            _detail, plan = plan_call(rt.services, call_id, fresh=True)
        except SyncError as exc:
            fail(exc, as_json)
        _print_plan(plan, as_json)
        return
    state = sync_and_record(rt, call_id)
    record = rt.ledger.get(call_id)
    if as_json:
        click.echo(json.dumps({"state": state, "record": record.as_dict() if record else None}, indent=2))
    else:
        print_record(record) if record else console.print(f"{call_id}: {state}")
    sys.exit(0 if state in {"synced", "skipped", "resolved"} else 1)


@main.command()
@click.argument("call_ids", nargs=-1, required=True)
def enqueue(call_ids: tuple[str, ...]) -> None:
    """Queue CALL_IDS for the workers (as a webhook would)."""
    from worker.twenty2.models import is_call_id

    rt = runtime()
    for call_id in call_ids:
        if not is_call_id(call_id):
            console.print(f"[red]{call_id!r} is not a Twenty2 call id[/red]")
            continue
        rt.ledger.accept(call_id, source="cli", force=True)
        rt.enqueue(call_id)
        console.print(f"queued {call_id}")


@main.command()
@click.argument("call_id", required=False)
@click.option("--limits", is_flag=True, help="Salesforce's daily API usage as the workers last saw it.")
@click.option("--live", is_flag=True, help="With --limits: ask Salesforce now (GET /limits, one API request).")
@click.option("--json", "as_json", is_flag=True)
def status(call_id: str | None, limits: bool, live: bool, as_json: bool) -> None:
    """A call's ledger record, or (no CALL_ID) the counts per state; --limits: the API allowance."""
    rt = runtime()
    if limits:
        _print_limits(rt, live=live, as_json=as_json)
        return
    if call_id is None:
        counts = rt.ledger.counts()
        if as_json:
            click.echo(json.dumps(counts))
            return
        table = Table("state", "calls")
        for state, count in counts.items():
            table.add_row(state, str(count))
        console.print(table)
        return
    record = rt.ledger.get(call_id)
    if record is None:
        console.print(f"{call_id}: not in the ledger")
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(record.as_dict(), indent=2))
    else:
        print_record(record)


def _print_limits(rt: Runtime, *, live: bool, as_json: bool) -> None:
    if live:
        from worker.sync.core import probe_allowance

        if rt.budget.probe_now(lambda: probe_allowance(rt)) is None:
            console.print("[yellow]could not read the daily API allowance from Salesforce (GET /limits)[/yellow]")
    usage = rt.budget.last()
    if usage is None:
        console.print("no Salesforce usage seen yet (run with --live to ask Salesforce)")
        sys.exit(1)
    data = {
        "used": usage.used,
        "max": usage.maximum,
        "remaining": usage.remaining,
        "remaining_share": round(usage.remaining_share, 4),
        "reserve": rt.settings.crm_sync_api_reserve,
        "holding": usage.remaining_share <= rt.settings.crm_sync_api_reserve,
        "seen_at": datetime.fromtimestamp(usage.seen_at, UTC).isoformat(timespec="seconds"),
        "source": {"header": "a response's Sforce-Limit-Info", "limits": "GET /limits"}.get(usage.source, usage.source),
    }
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    table = Table(show_header=False, title="Salesforce daily API allowance")
    for key, value in data.items():
        table.add_row(key, str(value))
    console.print(table)


# --- mapping ----------------------------------------------------------------------------------------------


@main.group()
def mapping() -> None:
    """The output-parameter → Salesforce mapping file."""


@mapping.command("check")
@click.option("--file", "path", type=click.Path(path_type=Path), default=None, help="Default: CRM_SYNC_MAPPING_FILE.")
def mapping_check(path: Path | None) -> None:
    """Validate the mapping file (syntax, keys, write modes, value maps, forbidden fields)."""
    from worker.mapping import load_mapping

    target = path or Settings().crm_sync_mapping_file
    try:
        loaded = load_mapping(target)
    except MappingError as exc:
        console.print(f"[red]{exc.message}[/red]")
        sys.exit(1)
    console.print(f"{target}: OK ({len(loaded.lead_fields())} Lead fields: {', '.join(sorted(loaded.lead_fields()))})")


def _print_plan(plan: SyncPlan, as_json: bool) -> None:
    data = plan_as_dict(plan)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
        return
    target = data["target"]
    where = (
        "a new Lead" if target is None else f"{target['sobject']} {target['id']} (matched by {target['matched_by']})"
    )
    console.print(f"[bold]{plan.call_id}[/bold] → {where}; dry run, nothing written")
    for note in data["notes"]:
        console.print(f"  note: {note}")
    changes = Table("field", "param", "value said", "now", "would be", "mode", "result", title="Lead field changes")
    for c in data["field_changes"]:
        changes.add_row(
            c["field"],
            c["param"],
            str(c["raw"]),
            str(c["old"]),
            str(c["new"]),
            c["mode"],
            "change" if c["applied"] and c["old"] != c["new"] else c["reason"],
        )
    console.print(changes)
    if data["callback"]:
        cb = data["callback"]
        console.print(f'callback "{cb["phrase"]}" → {cb["status"]}, due {cb["due_utc"]} ({cb["note"]})')
    for write in data["writes"]:
        fields = dict(write["fields"])
        if "Description" in fields:
            fields["Description"] = fields["Description"][:200] + ("…" if len(fields["Description"]) > 200 else "")
        key = write["record_id"] or (" = ".join(write["external_id"]) if write["external_id"] else "new")
        console.print(f"[bold]{write['method']} {write['sobject']}[/bold] {key}")
        for name, val in fields.items():
            console.print(f"    {name}: {val}")
