"""Failures and their replay: ``failures list|show|purge``, ``replay`` (and ``--dedupe``), ``backfill`` (bulk
mode, from a file or ``--since``: Twenty2's call list)."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.progress import Progress
from rich.table import Table

from worker.cli.app import main
from worker.cli.common import console, parse_since, print_record, runtime, warnings
from worker.ledger import State
from worker.runtime import Runtime


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
    rt = runtime()
    start = parse_since(since)
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
    rt = runtime()
    record = rt.ledger.get(call_id)
    history = rt.ledger.history(call_id)
    if as_json:
        click.echo(json.dumps({"record": record.as_dict() if record else None, "history": history}, indent=2))
        return
    if record is None:
        console.print(f"{call_id}: not in the ledger")
        sys.exit(1)
    print_record(record)
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
    rt = runtime()
    cutoff = parse_since(before)
    assert cutoff is not None
    removed = rt.ledger.purge(before=cutoff.timestamp(), states=[State(s) for s in states] or None)
    console.print(f"purged {removed} records")


@main.command()
@click.argument("call_ids", nargs=-1)
@click.option("--all-failed", is_flag=True, help="Every failed call (filtered by --since/--reason).")
@click.option("--since", default=None)
@click.option("--reason", default=None)
@click.option("--dry-run", is_flag=True, help="List what would be replayed.")
@click.option(
    "--dedupe",
    is_flag=True,
    help="Instead of syncing: delete the extra copies of each call's Tasks (the audit's duplicates), keeping "
    "the ones the ledger recorded, else the oldest.",
)
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
    dedupe: bool,
    to_queue: bool,
    chunk_size: int | None,
    threads: int | None,
    as_json: bool,
) -> None:
    """Sync calls again, here and in bulk (a few Salesforce API calls per thousand calls); with --queue,
    re-queue them for the workers. Safe to run twice and while workers run (the ledger and a per-call lock
    decide; Salesforce writes are upserts). A replay is never held by the API reserve or an earlier limit
    reading: it tries, and says so when Salesforce still refuses (exit 1); with --queue, Salesforce is asked
    for the allowance first, and a reading above the reserve ends the workers' hold."""
    rt = runtime()
    if all_failed:
        start = parse_since(since)
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
    if dedupe:
        _dedupe(rt, ids, as_json=as_json)
        return
    if to_queue:
        _say_allowance(rt)
        _requeue(rt, ids)
        return
    _run_bulk(rt, ids, source="replay", force=True, hold=False, chunk_size=chunk_size, threads=threads, as_json=as_json)


@main.command()
@click.option(
    "--from-file",
    "path",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="One call id per line, or a CSV with a call_id column.",
)
@click.option(
    "--since",
    default=None,
    help="Instead of a file: every finished call Twenty2 lists (GET /call/logs) that ended since this ISO "
    "date/time or duration back (2024-12-01, 30d). For first installs.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be synced and what is left alone; write nothing.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None, help="Calls per bulk chunk (default 1000).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Parallel Twenty2 fetches (default 8).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def backfill(
    path: Path | None, since: str | None, dry_run: bool, chunk_size: int | None, threads: int | None, as_json: bool
) -> None:
    """Sync past calls, here and in bulk, from a file or from Twenty2's call list (--since). Calls new to the
    ledger (source "backfill") or failed are synced; synced, skipped, queued and syncing ones are left alone,
    so running it twice, or while the workers run, writes nothing twice."""
    if (path is None) == (since is None):
        raise click.UsageError("give exactly one of --from-file and --since")
    invalid: list[tuple[int, str]] = []
    if since is not None:
        ids = _listed_since(since, as_json=as_json)
    else:
        assert path is not None
        ids, invalid = read_call_ids(path)
    for line, value in invalid[:20]:
        warnings.print(f"[yellow]{path}:{line}: {value[:60]!r} is not a Twenty2 call id; skipped[/yellow]")
    if len(invalid) > 20:
        warnings.print(f"[yellow]… and {len(invalid) - 20} more lines that are not call ids[/yellow]")
    if not ids:
        console.print("no call ids to backfill")
        sys.exit(1 if invalid else 0)
    rt = runtime()
    if dry_run:
        from worker.sync.bulk import ledger_preview

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


def _listed_since(since: str, *, as_json: bool) -> list[str]:
    """The finished calls ``GET /call/logs`` lists that ended since ``since`` (in progress ones wait)."""
    from worker.reconcile.decide import Verdict, decide
    from worker.reconcile.listing import list_calls

    start = parse_since(since)
    assert start is not None
    rt = runtime()
    services = rt.services
    with Progress(console=warnings, transient=True, disable=as_json) as progress:
        bar = progress.add_task("listing Twenty2 calls", total=None)
        listing = list_calls(
            services.twenty2_spare or services.twenty2,
            since=start,
            max_pages=1_000_000,
            on_page=lambda pages, calls: progress.update(bar, completed=pages, description=f"listing: {calls} calls"),
        )
    # The ledger is left to the bulk run (it leaves synced, skipped, queued and syncing calls alone).
    decisions = decide(listing.calls, {}, since=start)
    ids = [d.call.call_id for d in decisions if d.verdict is Verdict.SYNC]
    in_progress = sum(1 for d in decisions if d.verdict is Verdict.IN_PROGRESS)
    if not as_json:
        warnings.print(
            f"Twenty2 lists {len(decisions)} calls ({listing.pages} pages): {len(ids)} finished since "
            f"{start.isoformat(timespec='seconds')}, {in_progress} still in progress (reconciliation takes them later)"
        )
    return ids


def _dedupe(rt: Runtime, ids: list[str], *, as_json: bool) -> None:
    """``replay --dedupe``: the extra Task copies of each call deleted (the audit's duplicate findings)."""
    from worker.reconcile.audit_run import dedupe_call

    deleted = {call_id: dedupe_call(rt, call_id) for call_id in ids}
    if as_json:
        click.echo(json.dumps({"deleted": deleted}, indent=2))
        return
    for call_id, task_ids in deleted.items():
        console.print(f"{call_id}: deleted {len(task_ids)} duplicate Tasks {', '.join(task_ids)}".rstrip())


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


def _say_allowance(rt: Runtime) -> None:
    """Ask Salesforce for the daily allowance now (published for the workers) and say what it answered."""
    from worker.sync.core import probe_allowance

    usage = rt.budget.probe_now(lambda: probe_allowance(rt))
    if usage is None:
        warnings.print("[yellow]could not read the daily API allowance from Salesforce (GET /limits)[/yellow]")
    elif usage.remaining == 0 or usage.remaining_share <= rt.settings.crm_sync_api_reserve:
        warnings.print(
            f"[red]Salesforce still refuses: {usage.remaining} of {usage.maximum} daily API requests left "
            f"(reserve {rt.settings.crm_sync_api_reserve:.0%}); the calls are queued and held until it is back[/red]"
        )
    else:
        console.print(f"Salesforce: {usage.remaining} of {usage.maximum} daily API requests left")


def _run_bulk(
    rt: Runtime,
    ids: list[str],
    *,
    source: str,
    force: bool,
    hold: bool = True,
    chunk_size: int | None,
    threads: int | None,
    as_json: bool,
) -> None:
    """Bulk-sync ``ids`` in this process with a progress bar, then print the summary; exit 1 if any failed."""
    from worker.sync.bulk import DEFAULT_CHUNK, DEFAULT_THREADS, BulkSync

    with Progress(console=console, transient=True, disable=as_json) as progress:
        bar = progress.add_task(source, total=len(ids))
        bulk = BulkSync(
            rt,
            chunk_size=chunk_size or DEFAULT_CHUNK,
            threads=threads or DEFAULT_THREADS,
            on_phase=lambda text: progress.update(bar, description=f"{source}: {text}"),
            on_done=lambda _call_id, _outcome: progress.advance(bar),
        )
        report = bulk.run(ids, source=source, force=force, hold=hold)
    data = report.as_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        _print_report(source, data)
    for message, count in report.refused.items():
        warnings.print(
            f"[red]Salesforce still refuses: {message} ({count} calls held; they sync when the daily "
            f"allowance is back: crm-sync status --limits --live)[/red]"
        )
    sys.exit(1 if data["outcomes"]["failed"] or report.refused else 0)


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
