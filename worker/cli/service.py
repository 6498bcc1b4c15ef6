"""The service itself: ``run``, ``demo``, ``sandbox`` (the stand-ins, imported lazily) and ``settings``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from worker.cli.app import main
from worker.cli.common import console
from worker.settings import Settings, settings_help


@main.command()
@click.option("--port", default=None, type=int, help="Intake port (default CRM_SYNC_HTTP_PORT).")
@click.option("--no-sample", is_flag=True, help="In sandbox mode, do not send the sample calls.")
def run(port: int | None, no_sample: bool) -> None:
    """Run intake + worker + beat (with the local sandboxes when no credentials are set) until Ctrl-C."""
    from standins.stack.run import run_service

    sys.exit(run_service(port=port, send_samples=not no_sample, stay=True))


@main.command()
def demo() -> None:
    """Start the sandboxes, send sample calls through intake → Redis → worker, show what Salesforce got."""
    from standins.stack.run import run_service

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
    default=None,
    metavar="SERVICE",
    help="Serve only this sandbox: twenty2 or salesforce (run one process per service, as the real ones are "
    "separate hosts).",
)
def sandbox(directory: Path, only: str | None) -> None:
    """Serve the Twenty2 and Salesforce sandboxes in the foreground; writes DIR/sandbox.env to source."""
    # Imported here: the product imports the stand-ins only when a command that serves them runs.
    from standins import SERVICES
    from standins.stack.sandboxes import serve_sandboxes_forever

    if only is not None and only not in SERVICES:
        raise click.BadParameter(f"{only!r} is not one of {', '.join(SERVICES)}", param_hint="--only")

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
