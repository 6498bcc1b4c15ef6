"""Calls whose webhook never came, and whether the three systems agree: ``reconcile``, ``audit``.

(``backfill --since`` lives with ``replay`` in ``worker.cli.failures``: both are bulk runs.)
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from worker.cli.app import main
from worker.cli.common import console, parse_since, runtime, warnings
from worker.phones import mask

if TYPE_CHECKING:
    from worker.reconcile.audit import AuditReport


def _progress(disable: bool = False) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=warnings,
        transient=True,
        disable=disable,
    )


def _since(value: str | None) -> datetime | None:
    start = parse_since(value)
    if value is not None and start is None:
        raise click.BadParameter(f"{value!r}: an ISO date/time or a duration back (6h, 7d)")
    return start


@main.command()
@click.option("--since", default=None, help="Window start: ISO time or a duration back (6h). Default: the lookback.")
@click.option("--dry-run", is_flag=True, help="List what would be synced (numbers masked); queue nothing.")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="Calls to queue at most (default the batch).")
@click.option("--json", "as_json", is_flag=True, help="Print the pass as JSON.")
def reconcile(since: str | None, dry_run: bool, limit: int | None, as_json: bool) -> None:
    """One reconciliation pass now: list Twenty2's calls (GET /call/logs) and queue every finished call the
    ledger never heard of, as if its webhook had come (source "reconcile"). Calls still in progress, and calls
    the ledger knows (whatever their state), are left alone."""
    from worker.reconcile.run import reconcile_pass

    rt = runtime()
    with _progress(disable=as_json) as progress:
        bar = progress.add_task("listing Twenty2 calls (pages)", total=None)
        report = reconcile_pass(
            rt,
            since=_since(since),
            dry_run=dry_run,
            batch=limit,
            on_page=lambda pages, calls: progress.update(
                bar, completed=pages, description=f"listing Twenty2 calls: {calls} in {pages} pages"
            ),
        )
    if as_json:
        data = report.summary()
        data["calls"] = [
            {"call_id": d.call.call_id, "status": d.call.status, "callee": mask(d.call.callee_phone)}
            for d in report.found
        ]
        data["queued_ids"] = report.queued
        click.echo(json.dumps(data, indent=2))
        return
    table = Table(
        "call id", "status", "number", "ended", title=f"{len(report.found)} finished calls unknown to the ledger"
    )
    queued = set(report.queued)
    for d in report.found:
        ended = d.call.ended_at or d.call.started_at
        mark = "" if dry_run else (" (queued)" if d.call.call_id in queued else "")
        table.add_row(
            d.call.call_id + mark, d.call.status, mask(d.call.callee_phone), ended.isoformat() if ended else ""
        )
    console.print(table)
    v = report.verdicts
    console.print(
        f"since {report.since.isoformat(timespec='seconds')}: {report.listed} calls listed in {report.pages} pages; "
        f"{v['sync']} to sync, {v['in_progress']} in progress, {v['known']} known to the ledger, "
        f"{v['outside']} before the window"
    )
    if dry_run:
        console.print("dry run: nothing queued")
    else:
        console.print(
            f"queued {len(report.queued)}; {len(report.raced)} taken by a webhook meanwhile; "
            f"{report.left} left for the next pass"
        )


@main.command()
@click.option("--since", default="7d", show_default=True, help="Window start: ISO time or a duration back.")
@click.option("--settle", default="0s", show_default=True, help="Do not judge calls that ended this recently (2m).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--fix", "apply_fix", is_flag=True, help="Apply each finding's fix (after listing them).")
@click.option("--dry-run", is_flag=True, help="With --fix: list the commands, run none.")
def audit(since: str, settle: str, as_json: bool, apply_fix: bool, dry_run: bool) -> None:
    """Compare Twenty2 (GET /call/logs), the ledger and Salesforce (the Tasks with each call's external id)
    for every call of the window. Lists calls the ledger does not know, synced calls whose Task is missing or
    doubled, missing follow-up Tasks, and ledger records Twenty2 does not list, each with the command that
    fixes it. Exit 1 while findings remain."""
    from worker.reconcile.audit_run import fix, publish, run_audit

    rt = runtime()
    start = _since(since)
    assert start is not None
    settle_for = _duration(settle)
    with _progress(disable=as_json) as progress:
        bar = progress.add_task("listing Twenty2 calls", total=None)
        report, cost = run_audit(
            rt,
            since=start,
            settle=settle_for,
            on_page=lambda pages, calls: progress.update(bar, completed=pages, description=f"listing: {calls} calls"),
        )
    summary = publish(rt, report, cost)
    if as_json and not apply_fix:
        click.echo(json.dumps({**report.as_dict(), **cost.as_dict()}, indent=2))
        sys.exit(1 if report.findings else 0)
    if not as_json:
        _print_findings(report, summary)
    if not apply_fix:
        sys.exit(1 if report.findings else 0)
    fixable = [f for f in report.findings if f.fix is not None]
    if dry_run or not fixable:
        if not as_json:
            console.print(f"dry run: {len(fixable)} fixes would run" if dry_run else "nothing to fix")
        sys.exit(1 if report.findings else 0)
    with _progress(disable=as_json) as progress:
        bar = progress.add_task("fixing", total=len({f.call_id for f in fixable}))
        done = fix(rt, report.findings, on_done=lambda: progress.advance(bar))
    after, after_cost = run_audit(rt, since=start, settle=settle_for)
    publish(rt, after, after_cost)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "before": report.as_dict(),
                    "fixed": {"replayed": done.replayed, "deduped": done.deduped, "replay": done.replay},
                    "after": after.as_dict(),
                },
                indent=2,
            )
        )
    else:
        deleted = sum(len(v) for v in done.deduped.values())
        console.print(f"fixed: replayed {len(done.replayed)} calls, deleted {deleted} duplicate Tasks")
        console.print(f"audit again: {len(after.findings)} findings")
        for finding in after.findings:
            console.print(f"  {finding.kind.value} {finding.call_id}: {finding.detail}")
    sys.exit(1 if after.findings else 0)


def _duration(value: str) -> timedelta:
    start = parse_since(value)
    if start is None:
        raise click.BadParameter(value)
    return max(datetime.now(UTC) - start, timedelta(0))


def _print_findings(report: AuditReport, summary: dict[str, Any]) -> None:
    table = Table("kind", "call id", "what", "fix", title=f"{len(report.findings)} findings")
    for f in report.findings:
        table.add_row(f.kind.value, f.call_id, f.detail, f.fix or "(none: inspect with crm-sync failures show)")
    if report.findings:
        console.print(table)
    console.print(
        f"since {summary['since']}: {report.listed} calls listed by Twenty2, {report.compared} compared, "
        f"{report.in_progress} in progress, {report.settling} settling; {len(report.findings)} findings "
        f"({report.missing_in_salesforce} missing in Salesforce). Cost: {summary['twenty2_requests']} Twenty2 "
        f"requests, {summary['salesforce_requests']} Salesforce queries"
    )
