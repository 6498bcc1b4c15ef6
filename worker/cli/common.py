"""What every ``crm-sync`` command shares: the consoles, the runtime, ``--since`` parsing, printing a ledger
record or an error."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from worker.errors import SyncError
from worker.ledger import Record
from worker.logs import configure_logging
from worker.runtime import Runtime
from worker.settings import Settings

console = Console()
#: Warnings go to stderr, unwrapped, so that ``--json`` output on stdout stays parseable.
warnings = Console(stderr=True, soft_wrap=True)


def runtime() -> Runtime:
    settings = Settings()
    configure_logging(settings.crm_sync_log_format)
    return Runtime(settings)


def parse_since(value: str | float | None) -> datetime | None:
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


def fail(exc: SyncError, as_json: bool) -> Any:
    if as_json:
        click.echo(json.dumps({"error": exc.as_record()}))
    else:
        console.print(f"[red]{exc}[/red]")
    sys.exit(1)


def print_record(record: Record) -> None:
    table = Table(show_header=False, title=record.call_id)
    for key, value in record.as_dict().items():
        table.add_row(key, json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value))
    console.print(table)
