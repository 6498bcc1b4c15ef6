"""Both sandboxes on loopback HTTPS (one trustme CA), plus the settings that point the service at them.

Used by ``crm-sync run``/``demo``/``sandbox``, the end-to-end tests, the benchmark and the chaos run.
"""

from __future__ import annotations

import contextlib
import shlex
import threading
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from standins import SERVICES
from standins.salesforce import SalesforceState
from standins.salesforce import create_app as salesforce_app
from standins.stack.https import TLSFiles, make_tls_files, serve_in_thread
from standins.twenty2 import SEED_CALL_ID, SEED_FAILED_CALL_ID, Twenty2State
from standins.twenty2 import create_app as twenty2_app
from worker.plan import CALLBACK_SUFFIX
from worker.settings import Settings

#: The REST API version the service is pointed at (the Salesforce client fixtures of the tests use it too).
API_VERSION = "62.0"
#: The docs' completed example call and the webhook example's failed call, as the Twenty2 stand-in seeds them.
SEED_CALL = SEED_CALL_ID
FAILED_CALL = SEED_FAILED_CALL_ID


class Sandboxes:
    """Start with ``with Sandboxes(dir) as boxes:``; ``boxes.env`` / ``boxes.settings()`` point at them.

    ``only`` serves one of ``SERVICES`` (its settings alone in ``env``): a process per service, as the real
    ones are separate hosts, so one sandbox's load does not slow the other's answers (the benchmark)."""

    def __init__(
        self,
        tls_dir: Path,
        *,
        twenty2_port: int | None = None,
        salesforce_port: int | None = None,
        only: str | None = None,
    ) -> None:
        if only is not None and only not in SERVICES:
            raise ValueError(f"only: one of {', '.join(SERVICES)}, not {only!r}")
        self.tls: TLSFiles = make_tls_files(tls_dir)
        self.twenty2 = Twenty2State()
        self.salesforce = SalesforceState(demo=True)
        self.serves = SERVICES if only is None else (only,)
        self._ports = (twenty2_port, salesforce_port)
        self._stack = contextlib.ExitStack()
        self.twenty2_url = ""
        self.salesforce_url = ""

    def __enter__(self) -> Sandboxes:
        if "twenty2" in self.serves:
            t2_root = self._stack.enter_context(serve_in_thread(twenty2_app(self.twenty2), self.tls, self._ports[0]))
            self.twenty2_url = f"{t2_root}/api"
            self.twenty2.base_url = self.twenty2_url
            # A second origin for recordings and transcripts, as Twenty2's own storage host is separate.
            storage_root = self._stack.enter_context(serve_in_thread(twenty2_app(self.twenty2), self.tls))
            self.twenty2.storage_base_url = f"{storage_root}/api"
        if "salesforce" in self.serves:
            self.salesforce_url = self._stack.enter_context(
                serve_in_thread(salesforce_app(self.salesforce), self.tls, self._ports[1])
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def env(self) -> dict[str, str]:
        """Environment variables for child processes (web, worker, beat)."""
        oauth = self.salesforce.oauth
        env: dict[str, str] = {}
        if "twenty2" in self.serves:
            env |= {
                "TWENTY2_BASE_URL": self.twenty2_url,
                "TWENTY2_WORKSPACE_ID": self.twenty2.workspace_id,
                "TWENTY2_API_KEY": self.twenty2.api_key,
                "TWENTY2_API_SECRET": self.twenty2.api_secret,
            }
        if "salesforce" in self.serves:
            env |= {
                "SALESFORCE_LOGIN_URL": self.salesforce_url,
                "SALESFORCE_CLIENT_ID": oauth.client_id,
                "SALESFORCE_CLIENT_SECRET": oauth.client_secret,
                "SALESFORCE_API_VERSION": API_VERSION,
            }
        return env | {"CRM_SYNC_CA_BUNDLE": str(self.tls.ca_pem)}

    def settings(self, **overrides: Any) -> Settings:
        """Settings pointing at the sandboxes (client-credentials login), ignoring any ``.env`` file."""
        values: dict[str, Any] = {k.lower(): v for k, v in self.env.items()}
        values.update(overrides)
        return Settings(_env_file=None, **values)

    def sample_call_ids(self, count: int) -> list[str]:
        """The docs' completed example, the docs' failed call, and calls to demo Leads (one converted)."""
        demo = self.salesforce.demo_ids
        records = [self.salesforce.get(demo[name]) or {} for name in ("arjun", "meera")]
        phones = [r.get("Phone") or r.get("MobilePhone") or "" for r in records]
        extra = self.twenty2.add_generated_calls(max(0, count - 2), seed=11, phones=phones)
        return [SEED_CALL, FAILED_CALL, *extra][:count]

    def tasks_for(self, call_id: str) -> list[dict[str, Any]]:
        keys = {call_id, call_id + CALLBACK_SUFFIX}
        return [t for t in self.salesforce.records("Task") if t.get("Twenty2_Call_Id__c") in keys]

    def print_salesforce(self, console: Console, call_ids: list[str]) -> None:
        """What the Salesforce sandbox now holds for ``call_ids``: the Tasks and the Leads they hang on."""
        table = Table("call", "Task subject", "due / reminder (UTC)", "on", "Lead now", title="Salesforce sandbox")
        for call_id in call_ids:
            for task in self.tasks_for(call_id):
                who = self.salesforce.get(task.get("WhoId") or "") or {}
                lead = (
                    f"{who.get('Status', '')} / {who.get('Rating', '')}" if who.get("Id", "").startswith("00Q") else ""
                )
                due = f"{task.get('ActivityDate') or ''} {task.get('ReminderDateTime') or ''}".strip()
                name = f"{who.get('Id', '')[:3]} {who.get('FirstName') or ''} {who.get('LastName') or ''}"
                table.add_row(call_id, str(task.get("Subject")), due, name.strip(), lead)
        console.print(table)


def serve_sandboxes_forever(directory: Path, *, only: str | None = None) -> None:
    """``crm-sync sandbox``: serve both sandboxes (or ``only`` one) until interrupted; write
    ``DIR/sandbox.env``."""
    with Sandboxes(directory, only=only) as boxes:
        env_file = directory / "sandbox.env"
        env_file.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in boxes.env.items()))
        env_file.chmod(0o600)
        if boxes.twenty2_url:
            print(f"Twenty2 sandbox:    {boxes.twenty2_url}")
        if boxes.salesforce_url:
            print(f"Salesforce sandbox: {boxes.salesforce_url}")
        print(f"settings to use them: source {env_file}")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
