"""``crm-sync setup-org``: create the Task external-id field through the Tooling API, or say what to click.

The request (Tooling API, ``CustomField``; Task custom fields are defined on ``Activity``)::

    POST /services/data/vXX.X/tooling/sobjects/CustomField
    {"FullName": "Activity.Twenty2_Call_Id__c",
     "Metadata": {"type": "Text", "length": 255, "label": "Twenty2 Call Id", "externalId": true,
                  "unique": false, "required": false, "description": "..."}}

answered ``201 {"id": "00N…", "success": true, "errors": [], "warnings": [], "infos": []}``. A user without
"Customize Application" gets ``INSUFFICIENT_ACCESS``; a field of that name already there gives
``DUPLICATE_DEVELOPER_NAME``. A field created this way is visible to no profile until field-level security
grants it, so the command ends by saying to grant it (and ``crm-sync doctor`` confirms).

``unique`` is false: the service never relies on it (a per-call Redis lock keeps two writers of one call
apart), and Activity custom fields are not documented to support it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worker.doctor import check_external_id, external_id_fix
from worker.errors import SyncError
from worker.salesforce.client import SalesforceClient
from worker.settings import Settings

FIELD_LENGTH = 255


def field_request(settings: Settings) -> dict[str, Any]:
    name = settings.salesforce_task_external_id_field
    return {
        "FullName": f"Activity.{name}",
        "Metadata": {
            "type": "Text",
            "length": FIELD_LENGTH,
            "label": name.removesuffix("__c").replace("_", " "),
            "externalId": True,
            "unique": False,
            "required": False,
            "description": "Twenty2 call id, written by crm-sync: makes Task writes idempotent (upsert key).",
        },
    }


@dataclass
class SetupResult:
    ok: bool
    lines: list[str] = field(default_factory=list)


def setup_org(settings: Settings, *, dry_run: bool, client: SalesforceClient | None = None) -> SetupResult:
    """Create the field when missing (unless ``dry_run``); every line says what happened or what to do."""
    client = client or SalesforceClient(settings, read_attempts=1)
    name = settings.salesforce_task_external_id_field
    version = settings.salesforce_api_version
    try:
        task = client.describe("Task")
    except SyncError as exc:
        return SetupResult(False, [f"could not read the Task describe: {exc}", "fix the login first: crm-sync doctor"])
    existing = check_external_id(settings, task)
    if existing.ok:
        return SetupResult(True, [f"nothing to do: {existing.detail}"])
    if any(f.get("name", "").casefold() == name.casefold() for f in task.get("fields") or []):
        return SetupResult(
            False,
            [
                f"Task.{name} exists but needs a change the Tooling API create cannot make:",
                existing.detail,
                f"fix: {existing.fix}",
            ],
        )
    body = field_request(settings)
    request_line = (
        f"POST /services/data/v{version}/tooling/sobjects/CustomField {body['FullName']} (Text 255, External ID)"
    )
    if dry_run:
        return SetupResult(True, [f"dry run: would send {request_line}", str(body)])
    try:
        reply = client.tooling_create("CustomField", body)
    except SyncError as exc:
        if exc.code in {"INSUFFICIENT_ACCESS", "INSUFFICIENT_ACCESS_OR_READONLY", "API_DISABLED_FOR_ORG"} or (
            exc.http_status in (401, 403)
        ):
            return SetupResult(
                False,
                [
                    f"Salesforce refused to create the field ({exc.code}): the integration user may not customize "
                    'the org (it needs the "Customize Application" permission). An admin can create it instead:',
                    external_id_fix(settings).removeprefix("run `crm-sync setup-org`, or in Salesforce: "),
                ],
            )
        if exc.code == "DUPLICATE_DEVELOPER_NAME":
            return SetupResult(
                False,
                [
                    f"Task.{name} already exists but the integration user cannot see it: grant it field-level security "
                    "(Setup → Object Manager → Activity → Fields & Relationships → the field → "
                    "Set Field-Level Security → Visible, not Read-Only, for the integration user's profile)",
                ],
            )
        return SetupResult(False, [f"Salesforce refused to create the field: {exc}"])
    return SetupResult(
        True,
        [
            f"created Activity.{name} (CustomField {reply.get('id')}): {request_line}",
            "next: Setup → Object Manager → Activity → Fields & Relationships → "
            f"{body['Metadata']['label']} → Set Field-Level Security → tick Visible (not Read-Only) for the "
            "integration user's profile → Save; then run `crm-sync doctor`",
        ],
    )
