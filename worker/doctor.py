"""``crm-sync doctor`` and the console's health panel: is this deployment able to sync?

Each check answers ok / problem / unknown with what it saw and, for a problem, the fix. ``unknown`` is for
what cannot be read here (a managed Redis that refuses ``CONFIG``): reported, not counted as a problem.

Checks: Twenty2 credentials (one cheap request); the Salesforce login with the configured flow; the Task
external-id field (exists, External ID, createable and updateable by the integration user: describe's
``externalId``, ``createable``, ``updateable``); every mapped Lead field and picklist value (the mapping's
own ``check_against_describe``) and the callback Task's Priority; Task ``TaskSubtype`` (create-only in
Salesforce) and ``CallType`` writable with the values the plan writes; Redis AOF on and ``noeviction``;
clocks within a minute of Salesforce's and Twenty2's (their responses' ``Date`` header).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import redis
import requests

from worker import retry
from worker.errors import SyncError
from worker.redis_clients import redis_client
from worker.settings import Settings

if TYPE_CHECKING:
    from worker.runtime import Runtime

CLOCK_TOLERANCE = 60.0
#: What the plan writes on the call Task (worker.plan): the doctor checks these values exist.
TASK_SUBTYPE = "Call"
CALL_TYPES = ("Outbound", "Inbound")


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | problem | unknown
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "problem"


def _ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def _problem(name: str, detail: str, fix: str) -> Check:
    return Check(name, "problem", detail, fix)


def external_id_fix(settings: Settings) -> str:
    """What to click to create the Task external-id field (when ``setup-org`` may not)."""
    field = settings.salesforce_task_external_id_field
    name = field.removesuffix("__c")
    return (
        "run `crm-sync setup-org`, or in Salesforce: Setup → Object Manager → Activity → Fields & Relationships → "
        f'New → Text → Field Label {name.replace("_", " ")}, Length 255, Field Name {name}, tick "External ID" → '
        "Next → Field-Level Security: tick Visible (leave Read-Only unticked) for the integration user's profile → "
        "Next → Save"
    )


class _Dates:
    """Collects the ``Date`` header of responses (a requests response hook)."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}

    def hook(self, label: str) -> Callable[..., None]:
        def remember(response: requests.Response, *args: Any, **kwargs: Any) -> None:
            self.observe(label, response)

        return remember

    def observe(self, label: str, response: requests.Response) -> None:
        header = response.headers.get("Date")
        if header and label not in self.seen:
            with contextlib.suppress(TypeError, ValueError):
                self.seen[label] = parsedate_to_datetime(header).timestamp() - time.time()


def check_twenty2(settings: Settings, dates: _Dates) -> Check:
    from worker.twenty2.client import Twenty2Client

    name = "Twenty2 credentials"
    if not settings.has_twenty2_credentials:
        return _problem(
            name,
            "TWENTY2_API_KEY / TWENTY2_WORKSPACE_ID are not set",
            "set TWENTY2_API_KEY, "
            "TWENTY2_API_SECRET and TWENTY2_WORKSPACE_ID from the Twenty2 dashboard's API settings",
        )
    try:
        with Twenty2Client(settings) as client:
            response = client.probe()
    except SyncError as exc:
        return _problem(
            name,
            f"could not reach {settings.twenty2_base_url}: {exc.code}",
            "check TWENTY2_BASE_URL and that this machine can reach it (proxy, firewall, CRM_SYNC_CA_BUNDLE)",
        )
    dates.observe("Twenty2", response)
    if response.status_code in (200, 404):
        return _ok(
            name,
            f"accepted by {settings.twenty2_base_url} (GET /call/detail of a probe id: HTTP {response.status_code})",
        )
    return _problem(
        name,
        f"GET /call/detail answered HTTP {response.status_code}",
        "the key, secret or workspace id is wrong or revoked: copy them again from the Twenty2 dashboard "
        "(TWENTY2_API_KEY, TWENTY2_API_SECRET, TWENTY2_WORKSPACE_ID)",
    )


def _field(describe: dict[str, Any], name: str) -> dict[str, Any] | None:
    for field in describe.get("fields") or []:
        if isinstance(field, dict) and str(field.get("name", "")).casefold() == name.casefold():
            return field
    return None


def _values(field: dict[str, Any]) -> list[str]:
    return [str(v.get("value")) for v in field.get("picklistValues") or [] if v.get("active", True)]


def check_external_id(settings: Settings, task: dict[str, Any]) -> Check:
    field_name = settings.salesforce_task_external_id_field
    name = f"Task external-id field {field_name}"
    field = _field(task, field_name)
    if field is None:
        return _problem(
            name, f"Task.{field_name} does not exist (or the integration user cannot see it)", external_id_fix(settings)
        )
    if field.get("externalId") is not True:
        return _problem(
            name,
            f"Task.{field_name} exists but is not an External ID: upserts by call id are refused",
            "Setup → Object Manager → Activity → Fields & Relationships → "
            f'{field.get("label") or field_name} → Edit → tick "External ID" → Save',
        )
    missing = [p for p in ("createable", "updateable") if field.get(p) is not True]
    if missing:
        return _problem(
            name,
            f"Task.{field_name} is not {' / '.join(missing)} for the integration user",
            "Setup → Object Manager → Activity → Fields & Relationships → "
            f"{field.get('label') or field_name} → Set Field-Level Security → tick Visible and untick "
            "Read-Only for the integration user's profile (or grant Edit in its permission set) → Save",
        )
    return _ok(name, f"Task.{field_name}: {field.get('type')}({field.get('length')}), External ID, writable")


def check_task_fields(task: dict[str, Any]) -> Check:
    name = "Task TaskSubtype / CallType"
    problems = []
    subtype = _field(task, "TaskSubtype")
    if subtype is None or subtype.get("createable") is not True:
        problems.append(
            "Task.TaskSubtype is not createable (Salesforce never lets it be updated; it must be createable)"
        )
    elif TASK_SUBTYPE not in _values(subtype):
        problems.append(f"Task.TaskSubtype has no active value {TASK_SUBTYPE!r}")
    call_type = _field(task, "CallType")
    if call_type is None or call_type.get("createable") is not True or call_type.get("updateable") is not True:
        problems.append("Task.CallType is not createable and updateable")
    else:
        absent = [v for v in CALL_TYPES if v not in _values(call_type)]
        if absent:
            problems.append(f"Task.CallType lacks the values {', '.join(absent)}")
    if problems:
        return _problem(
            name,
            "; ".join(problems),
            "Setup → Object Manager → Activity → Fields & Relationships → "
            "Task Subtype / Call Type → Set Field-Level Security: Visible, not Read-Only, for the "
            "integration user's profile; restore the standard picklist values if they were removed",
        )
    return _ok(name, "TaskSubtype createable (Call), CallType writable (Outbound, Inbound)")


def check_mapping(settings: Settings, lead: dict[str, Any], task: dict[str, Any]) -> list[Check]:
    from worker.errors import MappingError
    from worker.mapping import load_mapping

    name = "mapped fields and picklist values"
    try:
        mapping = load_mapping(settings.crm_sync_mapping_file)
    except MappingError as exc:
        return [_problem(name, exc.message, f"fix {settings.crm_sync_mapping_file} (`crm-sync mapping check`)")]
    problems = mapping.check_against_describe(mapping.sobject, lead) + mapping.check_against_describe("Task", task)
    if problems:
        return [
            _problem(
                name,
                problem,
                "add the field or picklist value in Setup → Object Manager (and make it "
                "editable for the integration user), or change the mapping file to the org's names",
            )
            for problem in problems
        ]
    return [
        _ok(
            name,
            f"{len(mapping.lead_fields())} {mapping.sobject} fields exist, are updateable and accept "
            "every mapped value",
        )
    ]


def check_salesforce(settings: Settings, dates: _Dates) -> list[Check]:
    from worker.salesforce.client import SalesforceClient

    name = "Salesforce login"
    try:
        flow = settings.salesforce_auth_flow.value
    except ValueError:
        return [
            _problem(
                name,
                "no Salesforce credentials set",
                "set the SALESFORCE_* settings of one login flow (README: Salesforce login)",
            )
        ]
    client = SalesforceClient(settings, read_attempts=1)
    client.http.hooks.setdefault("response", []).append(dates.hook("Salesforce"))
    try:
        instance = client.instance_url
    except SyncError as exc:
        return [
            _problem(
                f"{name} ({flow})",
                f"refused: {exc.code}: {exc.message}",
                "check the credentials of the "
                f"{flow} flow and SALESFORCE_LOGIN_URL; the connected app must allow this flow",
            )
        ]
    checks = [_ok(f"{name} ({flow})", f"logged in to {instance}")]
    try:
        task = client.describe("Task")
        lead = client.describe("Lead")
    except SyncError as exc:
        return [
            *checks,
            _problem(
                "describe Task / Lead",
                f"{exc.code}: {exc.message}",
                "the integration user needs API Enabled and read access to Lead and Task",
            ),
        ]
    checks.append(check_external_id(settings, task))
    checks.append(check_task_fields(task))
    checks += check_mapping(settings, lead, task)
    return checks


def check_redis(settings: Settings, client: redis.Redis | None = None) -> list[Check]:
    client = client or redis_client(settings, purpose="doctor", policy=retry.ONCE)
    try:
        client.ping()
    except redis.RedisError as exc:
        return [
            _problem(
                "Redis",
                f"{_redis_target(settings)} does not answer: {type(exc).__name__}",
                "start Redis or fix REDIS_SENTINELS / REDIS_SENTINEL_MASTER"
                if settings.sentinels
                else "start Redis or fix REDIS_URL",
            )
        ]
    try:
        aof = str(_config(client, "appendonly")).lower()
        policy = str(_config(client, "maxmemory-policy")).lower()
    except redis.ResponseError as exc:
        detail = f"CONFIG GET refused ({str(exc)[:80]}): a managed Redis?"
        return [
            Check(
                "Redis persistence",
                "unknown",
                detail,
                "in the provider's settings, turn on AOF persistence and set the eviction policy to noeviction",
            )
        ]
    checks = []
    if aof == "yes":
        checks.append(_ok("Redis AOF", "appendonly yes"))
    else:
        checks.append(
            _problem(
                "Redis AOF",
                f"appendonly {aof}: queued calls and the ledger are lost on a restart",
                "set `appendonly yes` in redis.conf (or CONFIG SET appendonly yes, then CONFIG REWRITE)",
            )
        )
    if policy == "noeviction":
        checks.append(_ok("Redis eviction", "maxmemory-policy noeviction"))
    else:
        checks.append(
            _problem(
                "Redis eviction",
                f"maxmemory-policy {policy}: Redis may drop queued tasks and ledger records under memory pressure",
                "set `maxmemory-policy noeviction` in redis.conf (or CONFIG SET, then CONFIG REWRITE)",
            )
        )
    return checks


def _redis_target(settings: Settings) -> str:
    """Where Redis is looked for, without credentials."""
    if settings.sentinels:
        addresses = ",".join(f"{host}:{port}" for host, port in settings.sentinels)
        return f"primary {settings.redis_sentinel_master!r} via Sentinels {addresses}"
    return settings.redis_url.split("@")[-1]


def _config(client: redis.Redis, name: str) -> Any:
    value = client.config_get(name)
    found = value.get(name, value.get(name.encode(), "")) if isinstance(value, dict) else ""
    return found.decode() if isinstance(found, bytes) else found


def check_clocks(dates: _Dates) -> Check:
    name = "clocks"
    if not dates.seen:
        return Check(name, "unknown", "no Date header seen (neither service answered)")
    off = {label: offset for label, offset in dates.seen.items() if abs(offset) > CLOCK_TOLERANCE}
    shown = ", ".join(f"{label} {offset:+.0f} s" for label, offset in sorted(dates.seen.items()))
    if off:
        return _problem(
            name,
            f"this machine's clock differs from {shown}",
            "run NTP (chrony / systemd-timesyncd): "
            "signed webhooks, JWT logins and callback times need a clock within a minute",
        )
    return _ok(name, f"within {CLOCK_TOLERANCE:.0f} s of {shown}")


def run_checks(settings: Settings, *, runtime: Runtime | None = None) -> list[Check]:
    """Every check, in order (each makes at most a few requests; describes are read fresh, never cached)."""
    dates = _Dates()
    checks = [check_twenty2(settings, dates)]
    checks += check_salesforce(settings, dates)
    checks += check_redis(settings, runtime.redis if runtime is not None else None)
    checks.append(check_clocks(dates))
    return checks
