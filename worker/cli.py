"""``crm-sync``: run the service, sync or enqueue calls, read the ledger, replay failures.

Output is for people (rich tables) unless ``--json`` is given. Nothing printed here carries a secret or
a full phone number.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from worker.errors import MappingError, SyncError
from worker.ledger import Record, State
from worker.logs import configure_logging
from worker.phones import mask_numbers
from worker.plan import Ref, SyncPlan
from worker.runtime import Runtime
from worker.sandbox import SERVICES
from worker.settings import Settings, settings_help

console = Console()
#: Warnings go to stderr, unwrapped, so that ``--json`` output on stdout stays parseable.
warnings = Console(stderr=True, soft_wrap=True)


def _runtime() -> Runtime:
    settings = Settings()
    configure_logging(settings.crm_sync_log_format)
    return Runtime(settings)


def _when(value: str | float | None) -> datetime | None:
    """``--since``: an ISO date/time, or a duration back from now like ``2h``, ``30m``, ``7d``."""
    if value is None:
        return None
    if isinstance(value, float):
        return datetime.fromtimestamp(value, UTC)
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[:-1].isdigit() and value[-1] in units:
        return datetime.fromtimestamp(time.time() - int(value[:-1]) * units[value[-1]], UTC)
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@click.group()
def main() -> None:
    """Twenty2 call outcomes into Salesforce."""


# --- the service ----------------------------------------------------------------------------------------


@main.command()
@click.option("--port", default=None, type=int, help="Intake port (default CRM_SYNC_HTTP_PORT).")
@click.option("--no-sample", is_flag=True, help="In sandbox mode, do not send the sample calls.")
def run(port: int | None, no_sample: bool) -> None:
    """Run intake + worker + beat (with the local sandboxes when no credentials are set) until Ctrl-C."""
    from worker.localrun import run_service

    sys.exit(run_service(port=port, send_samples=not no_sample, stay=True))


@main.command()
def demo() -> None:
    """Start the sandboxes, send sample calls through intake → Redis → worker, show what Salesforce got."""
    from worker.localrun import run_service

    sys.exit(run_service(port=None, send_samples=True, stay=False, force_sandbox=True))


@main.command()
@click.option(
    "--dir",
    "directory",
    default="var/sandbox",
    type=click.Path(path_type=Path),
    help="Where the CA and env file go.",
)
@click.option(
    "--only",
    type=click.Choice(SERVICES),
    default=None,
    help="Serve only this sandbox (run one process per service, as the real ones are separate hosts).",
)
def sandbox(directory: Path, only: str | None) -> None:
    """Serve the Twenty2 and Salesforce sandboxes in the foreground; writes DIR/sandbox.env to source."""
    from worker.sandbox.local import serve_sandboxes_forever

    serve_sandboxes_forever(directory, only=only)


@main.command("settings")
def show_settings() -> None:
    """Every setting with its current value (secrets shown as set/unset) and help."""
    settings = Settings()
    table = Table("setting", "value", "help")
    for name, _default, help_text in settings_help():
        value = getattr(settings, name.lower())
        shown = (
            ("(set)" if value.get_secret_value() else "(unset)") if hasattr(value, "get_secret_value") else str(value)
        )
        table.add_row(name, shown, help_text)
    console.print(table)


# --- one call ---------------------------------------------------------------------------------------------


@main.command()
@click.argument("call_id")
@click.option("--dry-run", is_flag=True, help="Fetch and plan, print the exact changes, write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def sync(call_id: str, dry_run: bool, as_json: bool) -> None:
    """Sync CALL_ID now, in this process (no queue); records the outcome in the ledger unless --dry-run."""
    from worker.pipeline import plan_call
    from worker.tasks import sync_and_record

    rt = _runtime()
    if dry_run:
        try:
            _detail, plan = plan_call(rt.services, call_id, fresh=True)
        except SyncError as exc:
            _fail(exc, as_json)
        _print_plan(plan, as_json)
        return
    state = sync_and_record(rt, call_id)
    record = rt.ledger.get(call_id)
    if as_json:
        click.echo(json.dumps({"state": state, "record": record.as_dict() if record else None}, indent=2))
    else:
        _print_record(record) if record else console.print(f"{call_id}: {state}")
    sys.exit(0 if state in {"synced", "skipped", "resolved"} else 1)


@main.command()
@click.argument("call_ids", nargs=-1, required=True)
def enqueue(call_ids: tuple[str, ...]) -> None:
    """Queue CALL_IDS for the workers (as a webhook would)."""
    from worker.twenty2.models import is_call_id

    rt = _runtime()
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
    rt = _runtime()
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
        _print_record(record)


def _print_limits(rt: Runtime, *, live: bool, as_json: bool) -> None:
    if live:
        daily = rt.services.salesforce.limits().get("DailyApiRequests", {})
        used, maximum = int(daily.get("Max", 0)) - int(daily.get("Remaining", 0)), int(daily.get("Max", 0))
        rt.budget.observe((used, maximum), time.time())
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


# --- failures and replay ---------------------------------------------------------------------------------


@main.group()
def failures() -> None:
    """Failed (and other) syncs in the ledger."""


@failures.command("list")
@click.option("--since", default=None, help="ISO time or a duration back (2h, 7d).")
@click.option("--state", "states", multiple=True, type=click.Choice([s.value for s in State]), help="Default: failed.")
@click.option("--reason", default=None, help="Substring of the error code, class or message.")
@click.option("--limit", default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def failures_list(since: str | None, states: tuple[str, ...], reason: str | None, limit: int, as_json: bool) -> None:
    """List failed syncs (or other states), newest first."""
    rt = _runtime()
    start = _when(since)
    records = rt.ledger.find(
        states=[State(s) for s in states] or [State.FAILED],
        since=start.timestamp() if start else None,
        reason=reason,
        limit=limit,
    )
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in records], indent=2))
        return
    table = Table(
        "call id",
        "state",
        "updated",
        "attempts",
        "stage",
        "code",
        "retryable",
        "reason",
        title=f"{len(records)} calls",
    )
    for r in records:
        error = r.last_error or {}
        table.add_row(
            r.call_id,
            r.state.value,
            r.as_dict()["updated_at"],
            str(r.attempts),
            str(error.get("stage") or ""),
            str(error.get("code") or ""),
            "" if r.retryable is None else ("yes" if r.retryable else "no"),
            str(error.get("message") or r.summary)[:80],
        )
    console.print(table)


@failures.command("show")
@click.argument("call_id")
@click.option("--json", "as_json", is_flag=True)
def failures_show(call_id: str, as_json: bool) -> None:
    """A call's record and full history."""
    rt = _runtime()
    record = rt.ledger.get(call_id)
    history = rt.ledger.history(call_id)
    if as_json:
        click.echo(json.dumps({"record": record.as_dict() if record else None, "history": history}, indent=2))
        return
    if record is None:
        console.print(f"{call_id}: not in the ledger")
        sys.exit(1)
    _print_record(record)
    table = Table("at", "event", "detail", title="history")
    for item in history:
        at = datetime.fromtimestamp(item.pop("at", 0), UTC).isoformat(timespec="seconds")
        event = item.pop("event", "")
        table.add_row(at, str(event), json.dumps(item, ensure_ascii=False)[:160])
    console.print(table)


@failures.command("purge")
@click.option("--before", required=True, help="ISO time or duration back (e.g. 30d): records last updated before it.")
@click.option("--state", "states", multiple=True, type=click.Choice(["synced", "skipped", "failed"]))
def failures_purge(before: str, states: tuple[str, ...]) -> None:
    """Delete resolved/failed records last updated before --before (queued and syncing are never purged)."""
    rt = _runtime()
    cutoff = _when(before)
    assert cutoff is not None
    removed = rt.ledger.purge(before=cutoff.timestamp(), states=[State(s) for s in states] or None)
    console.print(f"purged {removed} records")


@main.command()
@click.argument("call_ids", nargs=-1)
@click.option("--all-failed", is_flag=True, help="Every failed call (filtered by --since/--reason).")
@click.option("--since", default=None)
@click.option("--reason", default=None)
@click.option("--dry-run", is_flag=True, help="List what would be replayed.")
@click.option("--queue", "to_queue", is_flag=True, help="Re-queue for the workers instead of syncing here in bulk.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None, help="Calls per bulk chunk (default 1000).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Parallel Twenty2 fetches (default 8).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def replay(
    call_ids: tuple[str, ...],
    all_failed: bool,
    since: str | None,
    reason: str | None,
    dry_run: bool,
    to_queue: bool,
    chunk_size: int | None,
    threads: int | None,
    as_json: bool,
) -> None:
    """Sync calls again, here and in bulk (a few Salesforce API calls per thousand calls); with --queue,
    re-queue them for the workers. Safe to run twice and while workers run (the ledger and a per-call lock
    decide; Salesforce writes are upserts)."""
    rt = _runtime()
    if all_failed:
        start = _when(since)
        ids = [
            r.call_id
            for r in rt.ledger.find(
                states=[State.FAILED],
                since=start.timestamp() if start else None,
                reason=reason,
                limit=1_000_000,
            )
        ]
    else:
        ids = _valid_ids(call_ids)
    if not ids:
        console.print("nothing to replay")
        return
    if dry_run:
        for call_id in ids:
            console.print(call_id)
        console.print(f"{len(ids)} calls would be replayed")
        return
    if to_queue:
        _requeue(rt, ids)
        return
    _run_bulk(rt, ids, source="replay", force=True, chunk_size=chunk_size, threads=threads, as_json=as_json)


@main.command()
@click.option(
    "--from-file",
    "path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="One call id per line, or a CSV with a call_id column.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be synced and what is left alone; write nothing.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None, help="Calls per bulk chunk (default 1000).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Parallel Twenty2 fetches (default 8).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def backfill(path: Path, dry_run: bool, chunk_size: int | None, threads: int | None, as_json: bool) -> None:
    """Sync past calls from a file, here and in bulk. Calls new to the ledger (source "backfill") or failed
    are synced; synced, skipped, queued and syncing ones are left alone, so running it twice, or while the
    workers run, writes nothing twice."""
    ids, invalid = read_call_ids(path)
    for line, value in invalid[:20]:
        warnings.print(f"[yellow]{path}:{line}: {value[:60]!r} is not a Twenty2 call id; skipped[/yellow]")
    if len(invalid) > 20:
        warnings.print(f"[yellow]… and {len(invalid) - 20} more lines that are not call ids[/yellow]")
    if not ids:
        console.print("no call ids to backfill")
        sys.exit(1 if invalid else 0)
    rt = _runtime()
    if dry_run:
        from worker.bulk import ledger_preview

        preview = ledger_preview(rt, ids, force=False)
        console.print(
            f"{len(ids)} call ids ({len(invalid)} lines skipped): {preview['sync']} would be synced, "
            f"{preview['resolved']} already synced or skipped, {preview['pending']} queued or syncing (left alone)"
        )
        return
    _run_bulk(rt, ids, source="backfill", force=False, chunk_size=chunk_size, threads=threads, as_json=as_json)


def read_call_ids(path: Path) -> tuple[list[str], list[tuple[int, str]]]:
    """Call ids from a file (one per line, or a CSV whose header has a ``call_id`` column), in order and
    without duplicates, and the (line number, value) of entries that are not call ids. Blank lines and
    lines starting with ``#`` are ignored."""
    from worker.twenty2.models import is_call_id

    lines = path.read_text(encoding="utf-8-sig").splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")), None)
    entries: list[tuple[int, str]] = []
    if first is not None:
        header = [cell.strip().casefold() for cell in next(csv.reader([lines[first]]))]
        if "call_id" in header:
            column = header.index("call_id")
            for number, row in enumerate(csv.reader(lines[first + 1 :]), start=first + 2):
                if row and any(cell.strip() for cell in row):
                    entries.append((number, row[column].strip() if column < len(row) else ""))
        else:
            entries = [
                (number, line.strip())
                for number, line in enumerate(lines, start=1)
                if line.strip() and not line.lstrip().startswith("#")
            ]
    valid = [value for _, value in entries if is_call_id(value)]
    invalid = [(number, value) for number, value in entries if not is_call_id(value)]
    return list(dict.fromkeys(valid)), invalid


def _valid_ids(call_ids: tuple[str, ...]) -> list[str]:
    from worker.twenty2.models import is_call_id

    for call_id in call_ids:
        if not is_call_id(call_id):
            warnings.print(f"[red]{call_id[:60]!r} is not a Twenty2 call id; skipped[/red]")
    return list(dict.fromkeys(c for c in call_ids if is_call_id(c)))


def _requeue(rt: Runtime, ids: list[str]) -> None:
    """The workers' way: accept again (forced) and queue each call that is not already on its way."""
    queued = skipped = 0
    with Progress(console=console, transient=False) as progress:
        bar = progress.add_task("re-queueing", total=len(ids))
        for call_id in ids:
            before = rt.ledger.accept(call_id, source="replay", force=True)
            if before in (State.SYNCING, State.QUEUED):
                skipped += 1  # already on its way
            else:
                rt.enqueue(call_id)
                queued += 1
            progress.advance(bar)
    console.print(f"replay: {queued} queued, {skipped} already queued or syncing")


def _run_bulk(
    rt: Runtime,
    ids: list[str],
    *,
    source: str,
    force: bool,
    chunk_size: int | None,
    threads: int | None,
    as_json: bool,
) -> None:
    """Bulk-sync ``ids`` in this process with a progress bar, then print the summary; exit 1 if any failed."""
    from worker.bulk import DEFAULT_CHUNK, DEFAULT_THREADS, BulkSync

    with Progress(console=console, transient=True, disable=as_json) as progress:
        bar = progress.add_task(source, total=len(ids))
        bulk = BulkSync(
            rt,
            chunk_size=chunk_size or DEFAULT_CHUNK,
            threads=threads or DEFAULT_THREADS,
            on_phase=lambda text: progress.update(bar, description=f"{source}: {text}"),
            on_done=lambda _call_id, _outcome: progress.advance(bar),
        )
        report = bulk.run(ids, source=source, force=force)
    data = report.as_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        _print_report(source, data)
    sys.exit(1 if data["outcomes"]["failed"] else 0)


_OUTCOME_HELP = {
    "synced": "written to Salesforce",
    "skipped": "nothing to write on purpose (e.g. unknown number, skip policy)",
    "queued": "retryable error or API reserve: due again later (the workers pick it up)",
    "failed": "recorded failed: crm-sync failures list",
    "busy": "another worker was syncing it: left to that worker",
    "resolved": "already synced or skipped: left alone",
    "pending": "already queued or syncing: left alone",
}


def _print_report(source: str, data: dict[str, Any]) -> None:
    table = Table("outcome", "calls", "meaning", title=f"{source}: {data['requested']} calls")
    for outcome, count in data["outcomes"].items():
        if count:
            table.add_row(outcome, str(count), _OUTCOME_HELP[outcome])
    console.print(table)
    worked = sum(data["outcomes"][o] for o in ("synced", "skipped", "queued", "failed")) or 1
    console.print(
        f"Salesforce: {data['salesforce_requests']} API requests ({data['salesforce_requests'] / worked:.3f} per call "
        f"worked on); Twenty2: {data['twenty2_fetches']} fetches; "
        f"Task resends without TaskSubtype: {data['task_subtype_resends']}; {data['elapsed_seconds']:.1f} s"
    )


# --- printing ---------------------------------------------------------------------------------------------


def _fail(exc: SyncError, as_json: bool) -> Any:
    if as_json:
        click.echo(json.dumps({"error": exc.as_record()}))
    else:
        console.print(f"[red]{exc}[/red]")
    sys.exit(1)


def _print_record(record: Record) -> None:
    table = Table(show_header=False, title=record.call_id)
    for key, value in record.as_dict().items():
        table.add_row(key, json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value))
    console.print(table)


def plan_as_dict(plan: SyncPlan) -> dict[str, Any]:
    """The plan for people and ``--json``; what callers said is shown with phone numbers masked."""

    def value(v: Any) -> Any:
        if isinstance(v, Ref):
            return f"@{{{v.name}.id}}"
        return mask_numbers(v) if isinstance(v, str) else v

    target = plan.target
    return {
        "call_id": plan.call_id,
        "connected": plan.connected,
        "target": None
        if target is None
        else {
            "sobject": target.sobject,
            "id": target.record_id,
            "matched_by": target.matched_by,
            "converted_from": target.converted_from,
        },
        "field_changes": [
            {
                "field": c.field,
                "param": c.param,
                "raw": value(c.raw),
                "old": value(c.old),
                "new": value(c.new),
                "mode": c.mode.value,
                "applied": c.applied,
                "reason": c.reason,
            }
            for c in (plan.lead_plan.changes if plan.lead_plan else ())
        ],
        "callback": None
        if plan.reading is None or plan.followup is None
        else {
            "phrase": value(plan.reading.text),
            "status": plan.reading.status.value,
            "due_utc": plan.followup.due.isoformat(),
            "activity_date": plan.followup.activity_date.isoformat(),
            "note": value(plan.followup.note),
        },
        "writes": [
            {
                "ref": w.ref,
                "sobject": w.sobject,
                "method": w.method,
                "record_id": w.record_id,
                "external_id": list(w.external_id) if w.external_id else None,
                "fields": {k: value(v) for k, v in w.fields.items()},
            }
            for w in plan.writes
        ],
        "notes": [value(n) for n in plan.notes],
    }


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


# --- the org doctor (its own module: this one is long enough) ---------------------------------------------

from worker.cli_ops import doctor, setup_org  # noqa: E402

main.add_command(doctor)
main.add_command(setup_org)
