"""``crm-sync``: run the service, sync or enqueue calls, read the ledger, replay failures.

Output is for people (rich tables) unless ``--json`` is given. Nothing printed here carries a secret or
a full phone number. One module per group of commands; this one holds the group they register on.
"""

from __future__ import annotations

import click


@click.group()
def main() -> None:
    """Twenty2 call outcomes into Salesforce."""
