"""The org doctor: ``crm-sync doctor`` and ``crm-sync setup-org``."""

from __future__ import annotations

import json
import sys

import click
from rich.table import Table

from worker.cli.app import main
from worker.cli.common import console
from worker.settings import Settings

STATUS_STYLE = {"ok": "[green]ok[/green]", "problem": "[red]problem[/red]", "unknown": "[yellow]unknown[/yellow]"}


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(as_json: bool) -> None:
    """Check that this deployment can sync: credentials, the org's fields and picklists, Redis, clocks.
    Exit status 1 when any check finds a problem."""
    from worker.doctor import run_checks

    checks = run_checks(Settings())
    if as_json:
        click.echo(json.dumps([c.__dict__ for c in checks], indent=2, ensure_ascii=False))
    else:
        table = Table("check", "result", "detail", "fix", show_lines=True)
        for c in checks:
            table.add_row(c.name, STATUS_STYLE[c.status], c.detail, c.fix if not c.ok else "")
        console.print(table)
        problems = sum(not c.ok for c in checks)
        console.print(f"{problems} problem{'' if problems == 1 else 's'}" if problems else "all checks passed")
    sys.exit(0 if all(c.ok for c in checks) else 1)


@main.command("setup-org")
@click.option("--dry-run", is_flag=True, help="Show the Tooling API request; create nothing.")
def setup_org(dry_run: bool) -> None:
    """Create the Task external-id field (Tooling API CustomField) when the user may; else say what to click."""
    from worker.setup_org import setup_org as run

    result = run(Settings(), dry_run=dry_run)
    for line in result.lines:
        console.print(line, soft_wrap=True, markup=False)
    sys.exit(0 if result.ok else 1)
