"""``crm-sync callbacks``: the automatic callbacks (``worker.autocall``): list, show, cancel, dry-run."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import click
from rich.table import Table

from worker.autocall.store import Callback, CbState
from worker.cli.app import main
from worker.cli.common import console, fail, runtime
from worker.errors import SyncError

_UNITS = {"m": 60, "h": 3600, "d": 86400}


def _horizon(value: str) -> float:
    if value[:-1].isdigit() and value[-1] in _UNITS:
        return int(value[:-1]) * _UNITS[value[-1]]
    raise click.BadParameter("a duration like 30m, 24h or 7d")


@main.group()
def callbacks() -> None:
    """Automatic callbacks: the AI agent calling leads back at the time they asked for."""


@callbacks.command("list")
@click.option("--due", "due", default=None, help="Only scheduled callbacks due within this (30m, 24h, 7d).")
@click.option("--state", "states", multiple=True, type=click.Choice([s.value for s in CbState]))
@click.option("--limit", default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def list_callbacks(due: str | None, states: tuple[str, ...], limit: int, as_json: bool) -> None:
    """Callbacks by state (newest change first), or those due soon (earliest first). Numbers are masked."""
    store = runtime().callbacks
    if due is not None:
        until = time.time() + _horizon(due)
        ids = [i for i in store.due(datetime.fromtimestamp(until, UTC), limit=limit)]
    else:
        chosen = [CbState(s) for s in states] or list(CbState)
        ids = [i for state in chosen for i in store.ids_in(state, limit)]
    found = [cb for cb in (store.get(i) for i in ids[:limit]) if cb is not None]
    if due is not None and states:
        found = [cb for cb in found if cb.state.value in states]
    if as_json:
        click.echo(json.dumps([cb.as_dict() for cb in found], indent=2))
        return
    table = Table("id", "state", "due (UTC)", "lead", "phone", "attempt", "reason", title=f"{len(found)} callbacks")
    for cb in found:
        due_text = f"{cb.due_at:%Y-%m-%d %H:%M}" if cb.due_at else ""
        table.add_row(cb.id, cb.state.value, due_text, cb.lead_id, cb.phone_masked, f"{cb.attempt}/{cb.attempts}",
                      cb.reason_text or cb.reason)  # fmt: skip
    console.print(table)


@callbacks.command("show")
@click.argument("callback_id")
@click.option("--json", "as_json", is_flag=True)
def show(callback_id: str, as_json: bool) -> None:
    """One callback (CALLBACK_ID, or the source call's id) and its history."""
    store = runtime().callbacks
    cb = _find(store, callback_id)
    history = store.history(cb.id)
    if as_json:
        click.echo(json.dumps({"callback": cb.as_dict(), "history": history}, indent=2, default=str))
        return
    table = Table(show_header=False, title=cb.id)
    for key, value in cb.as_dict().items():
        table.add_row(key, json.dumps(value) if isinstance(value, list) else str(value))
    console.print(table)
    events = Table("at (UTC)", "event", "detail", title="history")
    for event in history:
        at = datetime.fromtimestamp(float(event.pop("at", 0)), UTC)
        events.add_row(f"{at:%Y-%m-%d %H:%M:%S}", str(event.pop("event", "")), json.dumps(event, default=str))
    console.print(events)


@callbacks.command("cancel")
@click.argument("callback_ids", nargs=-1, required=True)
def cancel(callback_ids: tuple[str, ...]) -> None:
    """Cancel scheduled callbacks (a triggered one is already placed and cannot be)."""
    store = runtime().callbacks
    failed = False
    for callback_id in callback_ids:
        cb = store.get(callback_id) or store.get(f"cb_{callback_id}")
        if cb is None:
            console.print(f"[red]{callback_id}: no such callback[/red]")
            failed = True
        elif store.cancel(cb.id, now=datetime.now(UTC), by="cli"):
            console.print(f"cancelled {cb.id}")
        else:
            console.print(f"[yellow]{cb.id} is {cb.state.value}: not cancelled[/yellow]")
            failed = True
    raise SystemExit(1 if failed else 0)


@callbacks.command("dry-run")
@click.argument("call_id")
@click.option("--json", "as_json", is_flag=True)
def dry_run(call_id: str, as_json: bool) -> None:
    """What CALL_ID's sync would schedule as an automatic callback, and why (writes nothing, places nothing)."""
    from worker.autocall.dry_run import explain

    rt = runtime()
    try:
        report = explain(rt, call_id)
    except SyncError as exc:
        fail(exc, as_json)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    for key, value in report.items():
        console.print(f"[bold]{key}[/bold]: {value}")


def _find(store: object, callback_id: str) -> Callback:
    from worker.autocall.store import CallbackStore

    assert isinstance(store, CallbackStore)
    cb = store.get(callback_id) or store.get(f"cb_{callback_id}")
    if cb is None:
        console.print(f"[red]{callback_id}: no such callback[/red]")
        raise SystemExit(1)
    return cb
