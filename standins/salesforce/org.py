"""A local stand-in for a Salesforce org: OAuth token endpoint + REST API subset + fault switches.

Behaviour follows the real API as described in ``/work/shared/reference/salesforce-facts.md`` (upsert
201/200/204/300/404, JSON error lists, ``Sforce-Limit-Info``, composite and collections all-or-none,
converted leads, TaskSubtype create-only) — not what this project's code expects. Metadata, value checks
and the query languages live in ``salesforce_schema`` and ``salesforce_soql``.

``SalesforceState`` is the org (records, users, tokens, API usage, faults, stats; one re-entrant lock makes
it thread-safe). ``create_app(state)`` serves it:

- ``POST /services/oauth2/token`` (form): grant types ``password`` (password + security token),
  ``client_credentials``, ``urn:ietf:params:oauth:grant-type:jwt-bearer`` (RS256, iss = client id,
  sub = username, aud = ``OAuthConfig.jwt_audiences`` or, when empty, the sandbox's own base URL; exp in the
  future)
  and ``refresh_token``. Errors: 400 ``{"error", "error_description"}``.
- ``GET /services/data/`` (versions, no auth) and ``/services/data/vXX.X/...`` for 42.0 <= XX.X <= 66.0:
  ``limits``, ``sobjects[/Obj[/describe]]``, record CRUD, upsert by external id, ``query`` / ``queryAll``
  (with ``nextRecordsUrl`` paging), ``search``, ``composite``, ``composite/sobjects[...]``.
  Every REST response carries ``Sforce-Limit-Info: api-usage=USED/MAX``; a composite or collections
  request counts once.
- ``/_sandbox/...`` (no auth; for tests, the benchmark and the chaos run): ``POST reset``,
  ``GET|POST records/{Obj}``, ``GET|PUT faults``, ``GET|PUT usage``, ``GET stats``, ``POST convert/{leadId}``,
  ``POST fields/{Obj}``, ``GET health``.

Faults (``state.faults`` or ``PUT /_sandbox/faults``): ``latency_ms`` per REST request; ``fail_next`` N
requests or a ``fail_rate`` fraction (seeded RNG: ``seed``), restricted by ``fail_scope`` (request kinds
such as ``query``/``composite``/``collections``/``sobject``, or ``read``/``write``; empty = all) with
``fail_kind``:

- ``server_unavailable``: 503 SERVER_UNAVAILABLE;  ``server_error``: 500 UNKNOWN_EXCEPTION;
- ``lock``: UNABLE_TO_LOCK_ROW on the request's first record write (inside a composite or collection it is
  that subrequest / record that fails, the HTTP status stays 200). Status ``lock_status``, default 500: a
  production client (bebraven/platform, ``lib/salesforce_api.rb``) rescues it as HTTP 500 on PATCH; others
  report 400. Classify by errorCode, never by status.
- ``limit``: 403 REQUEST_LIMIT_EXCEEDED (or ``PUT /_sandbox/usage {"used": max}`` for the real thing);
- ``expire_sessions``: every issued token becomes invalid, the request gets 401 INVALID_SESSION_ID;
- ``drop_after_commit``: the request is applied, then the connection is aborted with no response.

Also ``validation_rules`` (``{"sobject", "field", "equals", "message"}``: writes whose resulting record has
that value fail with FIELD_CUSTOM_VALIDATION_EXCEPTION), ``search_index_lag_ms`` (new records reach SOSL
late, as in the real search index) and ``upsert_race_ms`` (a single upsert that finds no match waits that
long before inserting, without the lock: two concurrent upserts of a new non-unique external id both
insert, as the facts file warns).

Conditional requests (REST API Developer Guide, "Conditional Request Headers"; HTTP 1.1 rules otherwise):
on sObject Rows (``GET`` / ``PATCH sobjects/{Obj}/{id}``, also as composite subrequests through their
``httpHeaders``) ``If-Unmodified-Since`` answers **412** and writes nothing when the record's
``LastModifiedDate`` is LATER than the given HTTP-date (equal: the request proceeds);
``If-Modified-Since`` on ``GET`` answers **304** (no body) when it is not later. ``LastModifiedDate``,
``CreatedDate`` and ``SystemModstamp`` have whole seconds (``2024-12-25T10:01:34.000+0000``), so a value read
back and sent as an HTTP-date round-trips exactly, and two writes in the same second are not told apart
(weak validation, as documented). An invalid HTTP-date in ``If-Unmodified-Since`` on ``PATCH`` / ``POST`` is
**400** (documented); on ``GET`` it is ignored (HTTP 1.1). ``DELETE`` ignores the headers (documented as not
supported); upsert by external id and ``POST sobjects/{Obj}`` only check the header's format (unconfirmed
whether the real API compares dates there). ETag / If-Match / If-None-Match (Account only) are not served.
The 412 body is an error list (unconfirmed: the docs give only the status): ``ENTITY_FAILED_IFLASTMODIFIED_
ON_UPDATE`` (a documented API StatusCode for exactly this check) on writes, ``PRECONDITION_FAILED`` on reads;
the 400 code ``INVALID_HEADER`` is the sandbox's own. Classify by HTTP status 412, not by code.

Composite (REST API Developer Guide, "Composite", "Composite Request Body", "allOrNone Parameters in
Composite and Collections Requests"): at most 25 subrequests, of which "up to 5 ... can be sObject
Collections or query operations, including Query and QueryAll requests" (QueryMore counts too). More is
refused whole: HTTP 400 (unconfirmed; the body was seen in production logs):
``{"compositeResponse": [{"body": [{"errorCode": "LIMIT_EXCEEDED", "message": "The request can’t contain
more than 25 operations."}], "httpHeaders": {}, "httpStatusCode": 400, "referenceId": null}]}``; the
5-operation limit answers the same shape with the sandbox's own message. A subrequest's ``httpHeaders``
may not set Accept, Authorization or Content-Type: the whole request is 400 (documented; body unconfirmed).
An sObject Collections subrequest reports per record following its OWN ``allOrNone`` (documented example:
outer true, inner false shows ``"success": true`` for a record that was then rolled back); when the outer
``allOrNone`` is true, any failed record fails the composite and everything is rolled back. With the outer
flag false a collection subresponse (HTTP 200) is not a failure: later subrequests may reference it
(unconfirmed). A 304 subresponse is not a failure either (unconfirmed).

Wording of a few messages is the sandbox's own where no primary source shows the real one: the upsert
"Id / external id in body" error, the composite 5-operation and httpHeaders errors, precondition errors
and OAuth JWT failure descriptions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import re
import secrets
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
from cryptography import x509
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from standins.salesforce.schema import (
    KEY_PREFIXES,
    FieldProblem,
    FieldSpec,
    ObjectSpec,
    Schema,
    check_value,
    format_datetime,
    make_id,
    normalize_id,
    parse_datetime,
)
from standins.salesforce.soql import QueryError, parse_soql, parse_sosl, search_matcher, select

MIN_API_VERSION = 42.0
MAX_API_VERSION = 66.0
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ORG_ID = "00D5g000004SANDBX"
ROLLBACK_MESSAGE = "The transaction was rolled back since another operation in the same transaction failed."
ALL_OR_NONE_MESSAGE = "Record rolled back because not all records were valid and the request was using AllOrNone header"
NOT_FOUND_MESSAGE = "The requested resource does not exist"
COMPOSITE_MAX = 25
COMPOSITE_MAX_QUERIES = 5
COMPOSITE_TOO_MANY = "The request can’t contain more than 25 operations."
COMPOSITE_TOO_MANY_QUERIES = "The request can’t contain more than 5 sObject Collections or query operations."
# Subrequests inherit these from the composite request and may not set them (Composite Request Body).
COMPOSITE_INHERITED_HEADERS = ("accept", "authorization", "content-type")
COLLECTION_MAX = 200
# Request headers the REST API evaluates (lower-cased, as kept in ``_Ctx.headers``).
CONDITIONAL_HEADERS = ("if-unmodified-since", "if-modified-since", "if-match", "if-none-match")
# The 412 errorCode by request kind (unconfirmed, see the module docstring).
PRECONDITION_CODES = {"write": "ENTITY_FAILED_IFLASTMODIFIED_ON_UPDATE", "read": "PRECONDITION_FAILED"}
# HTTP-date forms a recipient must accept (RFC 7231 7.1.1.1): IMF-fixdate, obsolete RFC 850, asctime.
HTTP_DATE_FORMATS = ("%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %d %H:%M:%S %Y")
FAULT_KINDS = ("server_unavailable", "server_error", "lock", "limit", "expire_sessions", "drop_after_commit")

# Demo org phone spellings (see ``SalesforceState.seed_demo``).
DEMO_PHONES = {
    "plain": "9999999999",
    "spaced": "+91 99999 99999",
    "trunk": "099999-99999",
    "e164": "+919876543210",
    "converted": "+91 91234 56789",
    "landline": "(080) 4123 4567",
}


# --- errors and replies --------------------------------------------------------------------------------


def error_item(code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    """One entry of the REST API's error list."""
    return {"message": message, "errorCode": code, "fields": list(fields or [])}


class ApiError(Exception):
    """An API answer other than success: HTTP status and the JSON body (an error list, 300's URL list, or
    the composite limit refusal's ``compositeResponse`` object)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body

    @classmethod
    def of(cls, status: int, code: str, message: str, fields: list[str] | None = None) -> ApiError:
        return cls(status, [error_item(code, message, fields)])


def _not_found() -> ApiError:
    return ApiError.of(404, "NOT_FOUND", NOT_FOUND_MESSAGE)


@dataclass
class RestReply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


@dataclass
class _Result:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    failed: bool | None = None

    @property
    def is_failure(self) -> bool:
        return self.failed if self.failed is not None else self.status >= 300


# --- configuration ---------------------------------------------------------------------------------------


@dataclass
class ValidationRule:
    """A validation rule: a write whose resulting ``sobject`` record has ``field`` == ``equals`` fails."""

    sobject: str
    field: str
    equals: Any
    message: str = "This record is blocked by a validation rule."
    error_field: str | None = None

    def hits(self, sobject: str, record: dict[str, Any]) -> bool:
        if sobject.lower() != self.sobject.lower():
            return False
        value = next((v for k, v in record.items() if k.lower() == self.field.lower()), None)
        if isinstance(value, str) and isinstance(self.equals, str):
            if self.field.lower().endswith("id"):
                return (normalize_id(value) or value) == (normalize_id(self.equals) or self.equals)
            return value.casefold() == self.equals.casefold()
        return bool(value == self.equals)


@dataclass
class Faults:
    """Fault switches; change them with ``state.set_faults(...)`` or ``PUT /_sandbox/faults``."""

    latency_ms: float = 0.0
    fail_next: int = 0
    fail_rate: float = 0.0
    fail_kind: str = "server_unavailable"
    fail_scope: list[str] = field(default_factory=list)
    lock_status: int = 500
    search_index_lag_ms: float = 0.0
    upsert_race_ms: float = 0.0
    validation_rules: list[ValidationRule] = field(default_factory=list)
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OAuthConfig:
    """The connected app and integration user the token endpoint accepts."""

    client_id: str = "sandbox-consumer-key"
    client_secret: str = "sandbox-consumer-secret"  # noqa: S105 - sandbox credential, not a secret
    username: str = "integration@sandbox.example"
    password: str = "sandbox-password"  # noqa: S105
    security_token: str = "SANDBOXTOKEN"  # noqa: S105
    client_credentials_enabled: bool = True
    jwt_public_key_pem: str | None = None  # PEM public key or certificate of the connected app
    jwt_audiences: tuple[str, ...] = ()  # accepted JWT ``aud`` values; empty = the sandbox's own base URL
    token_ttl_seconds: float | None = None


@dataclass
class _Token:
    user_id: str
    client_id: str
    expires_at: float | None


@dataclass
class _Ctx:
    """One REST request (or composite subrequest) being served."""

    user_id: str
    version: str
    top_level: bool = True
    inject_lock: bool = False
    headers: dict[str, str] = field(default_factory=dict)  # conditional request headers, names lower-cased

    @property
    def number(self) -> float:
        return float(self.version)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def url(self, sobject: str, record_id: str) -> str:
        return f"/services/data/v{self.version}/sobjects/{sobject}/{record_id}"


class _BadReference(Exception):
    def __init__(self, expression: str, ref: str) -> None:
        super().__init__(expression)
        self.expression = expression
        self.ref = ref


_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")
_VERSION = re.compile(r"^v(\d{2,3}\.\d)$")
_REF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")


def _version_label(version: float) -> str:
    index = int(version) - 42
    return f"{('Spring', 'Summer', 'Winter')[index % 3]} '{18 + (index + 1) // 3}"


# --- the org ---------------------------------------------------------------------------------------------


class SalesforceState:
    """An in-memory org. All public methods are thread-safe (one re-entrant lock, ``self.lock``)."""

    def __init__(
        self,
        *,
        oauth: OAuthConfig | None = None,
        api_max: int = 100_000,
        base_url: str | None = None,
        demo: bool = False,
        schema: Schema | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.oauth = oauth or OAuthConfig()
        self.base_url = base_url  # None: taken from each request (scheme://host:port)
        self.max_api_version = MAX_API_VERSION
        self.query_batch_size = 2000
        self._schema_template = schema or Schema.standard()
        self.schema = self._schema_template.copy()
        self.initial_api_max = api_max
        self.api_max = api_max
        self.api_used = 0
        self.faults = Faults()
        self._rng = random.Random(0)
        self._tokens: dict[str, _Token] = {}
        self._refresh_tokens: dict[str, str] = {}
        self._records: dict[str, _Table] = {}
        self._deleted: dict[str, dict[str, dict[str, Any]]] = {}
        self._indexed_at: dict[str, float] = {}
        self._cursors: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._journal: list[tuple[str, str, dict[str, Any] | None, dict[str, Any] | None]] | None = None
        self._counter = 0
        self._stats: dict[str, Counter[str]] = {}
        self.users: dict[str, str] = {}
        self.demo_ids: dict[str, str] = {}
        self.reset(demo=demo)

    # --- public Python API ---------------------------------------------------------------------------

    def reset(self, *, demo: bool = False) -> None:
        """Back to the constructor's org: schema, users (+ demo data), no faults, usage 0, empty stats.
        Credentials and issued tokens are kept."""
        with self.lock:
            self.schema = self._schema_template.copy()
            self._records = {spec.name: _Table() for spec in self.schema.objects.values()}
            self._deleted = {spec.name: {} for spec in self.schema.objects.values()}
            self._indexed_at.clear()
            self._cursors.clear()
            self.faults = Faults()
            self._rng = random.Random(self.faults.seed)
            self.api_used = 0
            self.api_max = self.initial_api_max
            self._stats = {
                name: Counter() for name in ("api_requests", "operations", "faults", "oauth", "composite", "errors")
            }
            self.demo_ids = {}
            self._seed_users()
            if demo:
                self.seed_demo()

    @property
    def integration_user_id(self) -> str:
        return self.users["integration"]

    def seed_demo(self) -> dict[str, str]:
        """Add a realistic demo org; returns (and keeps in ``demo_ids``) the record ids by short name.

        Three Leads share one number spelled three ways (``9999999999``, ``+91 99999 99999`` on
        MobilePhone, ``099999-99999``) — duplicates as reps really enter them; one Lead in E.164
        (``+919876543210``); one converted Lead (with its Contact and Account); one Lead with a landline.
        """
        asha, vikram = self.users["asha"], self.users["vikram"]
        leads = {
            "priya": {
                "FirstName": "Priya",
                "LastName": "Sharma",
                "Company": "Sharma Textiles",
                "Phone": DEMO_PHONES["plain"],
                "LeadSource": "Web",
                "OwnerId": asha,
            },
            "priya_mobile": {
                "FirstName": "Priya",
                "LastName": "Sharma",
                "Company": "Sharma Textiles Pvt Ltd",
                "MobilePhone": DEMO_PHONES["spaced"],
                "LeadSource": "Phone Inquiry",
                "OwnerId": vikram,
            },
            "p_sharma": {
                "FirstName": "P.",
                "LastName": "Sharma",
                "Company": "Sharma Textiles",
                "Phone": DEMO_PHONES["trunk"],
                "OwnerId": asha,
            },
            "arjun": {
                "FirstName": "Arjun",
                "LastName": "Nair",
                "Company": "Nair Logistics",
                "Phone": DEMO_PHONES["e164"],
                "Status": "Working - Contacted",
                "Rating": "Warm",
                "Email": "arjun.nair@example.in",
                "OwnerId": vikram,
            },
            "meera": {
                "FirstName": "Meera",
                "LastName": "Iyer",
                "Company": "Iyer Foods",
                "MobilePhone": DEMO_PHONES["converted"],
                "Rating": "Hot",
                "OwnerId": asha,
            },
            "karan": {
                "FirstName": "Karan",
                "LastName": "Singh",
                "Company": "Singh Electricals",
                "Phone": DEMO_PHONES["landline"],
                "Email": "karan@singh-electricals.example",
                "OwnerId": asha,
            },
        }
        with self.lock:
            ids = {name: self.insert_raw("Lead", values) for name, values in leads.items()}
            converted = self.convert_lead(ids["meera"])
            ids["meera_contact"], ids["meera_account"] = converted["contactId"], converted["accountId"]
            self.demo_ids.update(ids)
            return dict(ids)

    def insert_raw(self, sobject: str, values: dict[str, Any]) -> str:
        """Insert a record as stored, bypassing API validation (seeding: converted leads, odd phones...)."""
        with self.lock:
            obj = self._obj_or_raise(sobject)
            record: dict[str, Any] = {}
            for key, value in values.items():
                spec = obj.field(key)
                record[spec.name if spec else key] = value
            record_id = normalize_id(record.get("Id")) or self._new_id(obj)
            record["Id"] = record_id
            self._apply_defaults(obj, record, self.integration_user_id)
            self._stamp(record, self.integration_user_id, created=True)
            self._computed(obj, record)
            self._records[obj.name][record_id] = record
            self._indexed_at[record_id] = time.monotonic()
            return record_id

    def records(self, sobject: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self._records[self._obj_or_raise(sobject).name].values()]

    def get(self, record_id: str) -> dict[str, Any] | None:
        with self.lock:
            found = self._find(normalize_id(record_id) or "")
            return dict(found[1]) if found else None

    def convert_lead(self, lead_id: str, *, converted_status: str = "Closed - Converted") -> dict[str, str]:
        """Convert a Lead as Lead Convert does: new Account and Contact, Lead flagged, its Tasks moved."""
        with self.lock:
            lead_id18 = normalize_id(lead_id) or ""
            lead = self._records["Lead"].get(lead_id18)
            if lead is None:
                raise KeyError(f"no Lead {lead_id}")
            if lead.get("IsConverted"):
                raise ValueError(f"Lead {lead_id} is already converted")
            owner = lead.get("OwnerId") or self.integration_user_id
            account = self.insert_raw(
                "Account",
                {
                    "Name": lead.get("Company") or lead["LastName"],
                    "OwnerId": owner,
                    "Phone": lead.get("Phone"),
                },
            )
            contact_values = {
                k: lead.get(k)
                for k in ("FirstName", "LastName", "Phone", "MobilePhone", "Email", "LeadSource", "Title")
            }
            contact = self.insert_raw("Contact", {**contact_values, "AccountId": account, "OwnerId": owner})
            updated = dict(
                lead,
                IsConverted=True,
                ConvertedContactId=contact,
                ConvertedAccountId=account,
                ConvertedDate=datetime.now(UTC).date().isoformat(),
                Status=converted_status,
            )
            self._stamp(updated, self.integration_user_id, created=False)
            self._records["Lead"][lead_id18] = updated
            for task_id, task in list(self._records["Task"].items()):
                if task.get("WhoId") == lead_id18:
                    moved = dict(task, WhoId=contact)
                    self._stamp(moved, self.integration_user_id, created=False)
                    self._records["Task"][task_id] = moved
            return {"leadId": lead_id18, "contactId": contact, "accountId": account}

    def add_field(self, sobject: str, spec: FieldSpec) -> None:
        """Add a (custom) field to the org's metadata until the next ``reset`` (for a permanent one, pass a
        ``Schema`` to the constructor)."""
        with self.lock:
            self.schema.add_field(sobject, spec)

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """Change fault switches (same keys as ``Faults``); ``expire_sessions=True`` expires tokens now."""
        with self.lock:
            if changes.pop("expire_sessions", False):
                self.expire_sessions()
            known = {f.name for f in fields(Faults)}
            unknown = set(changes) - known
            if unknown:
                raise ValueError(f"unknown fault settings: {sorted(unknown)}")
            if "fail_kind" in changes and changes["fail_kind"] not in FAULT_KINDS:
                raise ValueError(f"fail_kind must be one of {FAULT_KINDS}")
            if "validation_rules" in changes:
                changes["validation_rules"] = [
                    r if isinstance(r, ValidationRule) else ValidationRule(**r) for r in changes["validation_rules"]
                ]
            for name, value in changes.items():
                setattr(self.faults, name, _coerce(getattr(self.faults, name), value))
            if "seed" in changes:
                self._rng = random.Random(self.faults.seed)
            return self.faults.as_dict()

    def expire_sessions(self) -> None:
        """Invalidate every issued access token (as a password change or admin revocation does)."""
        with self.lock:
            self._tokens.clear()

    def issue_token(self, username: str | None = None) -> str:
        """An access token for ``username`` (default: the integration user), as if a login had happened."""
        with self.lock:
            user_id = self._user_by_name(username or self.oauth.username)
            if user_id is None:
                raise KeyError(f"no active user {username}")
            return self._issue(user_id, self.oauth.client_id)

    def issue_refresh_token(self, username: str | None = None) -> str:
        with self.lock:
            user_id = self._user_by_name(username or self.oauth.username)
            if user_id is None:
                raise KeyError(f"no active user {username}")
            token = f"5Aep{secrets.token_urlsafe(32)}"
            self._refresh_tokens[token] = user_id
            return token

    def set_usage(self, *, used: int | None = None, maximum: int | None = None) -> dict[str, int]:
        with self.lock:
            self.api_max = self.api_max if maximum is None else int(maximum)
            self.api_used = self.api_used if used is None else int(used)
            return {"used": self.api_used, "max": self.api_max}

    def stats(self) -> dict[str, Any]:
        """Counts: API requests by kind, operations, faults injected, OAuth grants, composite, error codes."""
        with self.lock:
            out: dict[str, Any] = {name: dict(counter) for name, counter in self._stats.items()}
            out["api_usage"] = {"used": self.api_used, "max": self.api_max}
            out["records"] = {name: len(rows) for name, rows in self._records.items()}
            return out

    # --- OAuth ---------------------------------------------------------------------------------------

    def oauth_token(self, form: dict[str, str], base_url: str) -> tuple[int, dict[str, Any]]:
        """Answer ``POST /services/oauth2/token``: (status, JSON body)."""
        grant = form.get("grant_type", "")
        handlers: dict[str, Callable[[dict[str, str], str], str]] = {
            "password": self._grant_password,
            "client_credentials": self._grant_client_credentials,
            JWT_GRANT: self._grant_jwt,
            "refresh_token": self._grant_refresh,
        }
        handler = handlers.get(grant)
        with self.lock:
            self._stats["oauth"][grant or "(none)"] += 1
            if handler is None:
                return 400, {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type not supported",
                }
            try:
                user_id = handler(form, self.base_url or base_url)
            except _OAuthError as exc:
                self._stats["oauth"][f"error:{exc.error}"] += 1
                return 400, {"error": exc.error, "error_description": exc.description}
            token = self._issue(user_id, self.oauth.client_id)
        issued_at = str(int(time.time() * 1000))
        login = self.base_url or base_url
        identity = f"{login}/id/{ORG_ID}/{user_id}"
        signature = base64.b64encode(
            hmac.new(self.oauth.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256).digest()
        ).decode()
        return 200, {
            "access_token": token,
            "instance_url": self.base_url or base_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": signature,
            "scope": "api",
        }

    def _check_client(self, form: dict[str, str], *, secret_required: bool) -> None:
        if not hmac.compare_digest(form.get("client_id", ""), self.oauth.client_id):
            raise _OAuthError("invalid_client_id", "client identifier invalid")
        secret = form.get("client_secret")
        if (secret_required or secret is not None) and not hmac.compare_digest(secret or "", self.oauth.client_secret):
            raise _OAuthError("invalid_client", "invalid client credentials")

    def _grant_password(self, form: dict[str, str], base_url: str) -> str:
        self._check_client(form, secret_required=True)
        user_id = self._user_by_name(form.get("username", ""))
        expected = self.oauth.password + self.oauth.security_token
        if (
            user_id is None
            or form.get("username") != self.oauth.username
            or not hmac.compare_digest(form.get("password", ""), expected)
        ):
            raise _OAuthError("invalid_grant", "authentication failure")
        return user_id

    def _grant_client_credentials(self, form: dict[str, str], base_url: str) -> str:
        self._check_client(form, secret_required=True)
        if not self.oauth.client_credentials_enabled:
            raise _OAuthError("invalid_grant", "no client credentials user enabled")
        return self.integration_user_id

    def _grant_refresh(self, form: dict[str, str], base_url: str) -> str:
        self._check_client(form, secret_required=False)
        user_id = self._refresh_tokens.get(form.get("refresh_token", ""))
        if user_id is None:
            raise _OAuthError("invalid_grant", "expired access/refresh token")
        return user_id

    def _grant_jwt(self, form: dict[str, str], base_url: str) -> str:
        assertion = form.get("assertion", "")
        try:
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _OAuthError("invalid_grant", "invalid assertion") from None
        if claims.get("iss") != self.oauth.client_id:
            raise _OAuthError("invalid_client_id", "client identifier invalid")
        if not self.oauth.jwt_public_key_pem:
            raise _OAuthError("invalid_grant", "invalid assertion")
        audiences = list(self.oauth.jwt_audiences) or [base_url.rstrip("/")]
        try:
            jwt.decode(
                assertion,
                _public_key(self.oauth.jwt_public_key_pem),
                algorithms=["RS256"],
                audience=audiences,
                options={"require": ["exp", "iss", "sub", "aud"]},
            )
        except jwt.InvalidAudienceError:
            raise _OAuthError("invalid_grant", "audience is invalid") from None
        except jwt.PyJWTError:
            raise _OAuthError("invalid_grant", "invalid assertion") from None
        user_id = self._user_by_name(str(claims.get("sub", "")))
        if user_id is None:
            raise _OAuthError("invalid_grant", "invalid assertion")
        return user_id

    def _issue(self, user_id: str, client_id: str) -> str:
        token = f"{ORG_ID[:15]}!{secrets.token_urlsafe(48)}"
        ttl = self.oauth.token_ttl_seconds
        self._tokens[token] = _Token(user_id, client_id, time.time() + ttl if ttl else None)
        return token

    def _session_user(self, authorization: str | None) -> str | None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or not token:
            return None
        entry = self._tokens.get(token.strip())
        if entry is None:
            return None
        if entry.expires_at is not None and time.time() > entry.expires_at:
            del self._tokens[token.strip()]
            return None
        return entry.user_id

    # --- REST entry point ----------------------------------------------------------------------------

    def versions(self) -> list[dict[str, str]]:
        count = int(self.max_api_version) - int(MIN_API_VERSION) + 1
        return [
            {"label": _version_label(v), "url": f"/services/data/v{v:.1f}", "version": f"{v:.1f}"}
            for v in (MIN_API_VERSION + i for i in range(count))
        ]

    def handle_rest(
        self,
        method: str,
        version: str,
        segments: list[str],
        params: dict[str, str],
        raw_body: bytes,
        authorization: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> RestReply:
        """Serve one ``/services/data/{version}/{segments...}`` request (runs in a worker thread);
        ``headers``: the request's headers (only ``CONDITIONAL_HEADERS`` are looked at)."""
        latency = self.faults.latency_ms
        if latency > 0:
            time.sleep(latency / 1000)
        match = _VERSION.match(version)
        if not match or not MIN_API_VERSION <= float(match.group(1)) <= self.max_api_version:
            return RestReply(404, _not_found().body)
        with self.lock:
            user_id = self._session_user(authorization)
            if user_id is None:
                return RestReply(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
            kind = _request_kind(method, segments)
            if self.api_used >= self.api_max:
                self._stats["errors"]["REQUEST_LIMIT_EXCEEDED"] += 1
                return self._with_usage(RestReply(403, _limit_error().body))
            self.api_used += 1
            self._stats["api_requests"][kind] += 1
            ctx = _Ctx(user_id, match.group(1), headers=_conditional_headers(headers or {}))
            try:
                body = json.loads(raw_body) if raw_body.strip() else None
            except ValueError as exc:
                reply = RestReply(400, [error_item("JSON_PARSER_ERROR", f"Unexpected character: {exc}")])
                return self._with_usage(reply)
            fault = self._draw_fault(kind, _writes(method, kind, body))
            early = self._fault_reply(fault, ctx)
            if early is not None:
                return self._with_usage(early)
            self._journal = []
            try:
                result = self._dispatch(ctx, method, segments, params, body)
            finally:
                self._journal = None
            if result.status >= 400 and isinstance(result.body, list) and result.body:
                first = result.body[0]
                if isinstance(first, dict):
                    self._stats["errors"][str(first.get("errorCode"))] += 1
            reply = RestReply(result.status, result.body, dict(result.headers), drop=fault == "drop_after_commit")
            return self._with_usage(reply)

    def _with_usage(self, reply: RestReply) -> RestReply:
        reply.headers["Sforce-Limit-Info"] = f"api-usage={min(self.api_used, self.api_max)}/{self.api_max}"
        return reply

    def _draw_fault(self, kind: str, is_write: bool) -> str | None:
        faults = self.faults
        if faults.fail_next <= 0 and faults.fail_rate <= 0:
            return None
        scope = set(faults.fail_scope)
        eligible = not scope or kind in scope or ("write" in scope and is_write) or ("read" in scope and not is_write)
        if faults.fail_kind == "lock" and not is_write:
            eligible = False  # a row lock only ever hits a write
        if not eligible:
            return None
        if faults.fail_next > 0:
            faults.fail_next -= 1
        elif self._rng.random() >= faults.fail_rate:
            return None
        self._stats["faults"][faults.fail_kind] += 1
        return faults.fail_kind

    def _fault_reply(self, fault: str | None, ctx: _Ctx) -> RestReply | None:
        if fault == "server_unavailable":
            return RestReply(
                503, [error_item("SERVER_UNAVAILABLE", "Server temporarily unavailable, try again later.")]
            )
        if fault == "server_error":
            message = "An unexpected error occurred. Please include this ErrorId if you contact support: 1234-5678"
            return RestReply(500, [error_item("UNKNOWN_EXCEPTION", message)])
        if fault == "limit":
            return RestReply(403, _limit_error().body)
        if fault == "expire_sessions":
            self._tokens.clear()
            return RestReply(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
        if fault == "lock":
            ctx.inject_lock = True
        return None

    # --- routing -------------------------------------------------------------------------------------

    def _dispatch(self, ctx: _Ctx, method: str, segments: list[str], params: dict[str, str], body: Any) -> _Result:
        try:
            return self._route(ctx, method.upper(), [s for s in segments if s != ""], params, body)
        except ApiError as exc:
            return _Result(exc.status, exc.body)

    def _route(self, ctx: _Ctx, method: str, segs: list[str], params: dict[str, str], body: Any) -> _Result:
        head = segs[0] if segs else ""
        if head == "":
            _allow(method, "GET")
            names = ("sobjects", "query", "queryAll", "search", "composite", "limits")
            return _Result(200, {name: f"/services/data/v{ctx.version}/{name}" for name in names})
        if head == "limits" and len(segs) == 1:
            _allow(method, "GET")
            return _Result(200, self._limits())
        if head == "sobjects":
            return self._route_sobjects(ctx, method, segs[1:], params, body)
        if head in ("query", "queryAll"):
            _allow(method, "GET")
            if len(segs) == 2:
                return self._query_more(ctx, segs[1])
            if len(segs) == 1:
                return self._query(ctx, params.get("q"), include_deleted=head == "queryAll")
        if head == "search" and len(segs) == 1:
            _allow(method, "GET")
            return self._search(ctx, params.get("q"))
        if head == "composite":
            if len(segs) == 1:
                _allow(method, "POST")
                self._op("composite", "request")
                return self._composite(ctx, body)
            if segs[1] == "sobjects":
                return self._collections(ctx, method, segs[2:], params, body, outer_all_or_none=None)
        raise _not_found()

    def _route_sobjects(self, ctx: _Ctx, method: str, segs: list[str], params: dict[str, str], body: Any) -> _Result:
        if not segs:
            _allow(method, "GET")
            listing = [
                {
                    "name": o.name,
                    "label": o.label,
                    "keyPrefix": o.key_prefix,
                    "queryable": True,
                    "createable": o.createable,
                }
                for o in self.schema.objects.values()
            ]
            return _Result(200, {"encoding": "UTF-8", "maxBatchSize": COLLECTION_MAX, "sobjects": listing})
        obj = self.schema.obj(segs[0])
        if obj is None:
            raise _not_found()
        if len(segs) == 1:
            _allow(method, "GET", "POST")
            if method == "GET":
                return _Result(
                    200,
                    {"objectDescribe": {"name": obj.name, "keyPrefix": obj.key_prefix}, "recentItems": []},
                )
            self._op("sobject", "create")
            self._preconditions(ctx, method, None)  # nothing to compare a create with: the format only
            record_id = self._create(ctx, obj, _body_dict(body))
            return _Result(
                201,
                {"id": record_id, "success": True, "errors": []},
                {"Location": ctx.url(obj.name, record_id)},
            )
        if len(segs) == 2 and segs[1] == "describe":
            _allow(method, "GET")
            return _Result(200, obj.describe(ctx.version))
        if len(segs) == 2:
            return self._route_record(ctx, method, obj, segs[1], params, body)
        if len(segs) == 3:
            return self._route_external(ctx, method, obj, segs[1], segs[2], params, body)
        raise _not_found()

    def _route_record(
        self, ctx: _Ctx, method: str, obj: ObjectSpec, raw_id: str, params: dict[str, str], body: Any
    ) -> _Result:
        _allow(method, "GET", "PATCH", "DELETE")
        record_id = normalize_id(raw_id)
        if record_id is None:
            raise ApiError.of(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {raw_id[:40]}",
            )
        if record_id[:3] != obj.key_prefix:
            raise ApiError.of(400, "MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: {record_id}", ["Id"])
        if method == "GET":
            self._op("sobject", "get")
            record = self._live(obj, record_id)
            not_modified = self._preconditions(ctx, method, record)
            if not_modified is not None:
                return not_modified
            return _Result(200, self._project(ctx, obj, record, _field_list(obj, params.get("fields"))))
        if method == "PATCH":
            self._op("sobject", "update")
            self._preconditions(ctx, method, self._live(obj, record_id))
            self._update(ctx, obj, record_id, _body_dict(body))
            return _Result(204)
        # DELETE: conditional headers are documented as not supported there, so they are not looked at.
        self._op("sobject", "delete")
        self._guard_write(ctx, record_id)
        self._delete(obj, record_id)
        return _Result(204)

    def _route_external(
        self,
        ctx: _Ctx,
        method: str,
        obj: ObjectSpec,
        field_name: str,
        value: str,
        params: dict[str, str],
        body: Any,
    ) -> _Result:
        _allow(method, "GET", "PATCH")
        spec = obj.field(field_name)
        if spec is None or not (spec.external_id or spec.unique) or spec.name == "Id":
            raise ApiError.of(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {field_name[:60]}",
            )
        if method == "GET":
            self._op("sobject", "get_by_external_id")
            found = self._by_external(obj, spec, value)
            if not found:
                raise _not_found()
            if len(found) > 1:
                raise ApiError(300, [ctx.url(obj.name, r["Id"]) for r in found])
            return _Result(200, self._project(ctx, obj, found[0], _field_list(obj, params.get("fields"))))
        self._op("sobject", "upsert")
        self._preconditions(ctx, method, None)  # sObject Rows by External ID: the format only (unconfirmed)
        record_id, created = self._upsert(
            ctx,
            obj,
            spec,
            value,
            _body_dict(body),
            update_only=params.get("updateOnly", "").lower() == "true",
            allow_race=ctx.top_level,
        )
        if created:
            result = {"id": record_id, "success": True, "errors": []}
            if ctx.number >= 46:
                result["created"] = True
            return _Result(201, result, {"Location": ctx.url(obj.name, record_id)})
        if ctx.number >= 46:
            return _Result(200, {"id": record_id, "success": True, "errors": [], "created": False})
        return _Result(204)

    def _preconditions(self, ctx: _Ctx, method: str, record: dict[str, Any] | None) -> _Result | None:
        """Evaluate ``If-Unmodified-Since`` then (GET only) ``If-Modified-Since`` against ``record``'s
        LastModifiedDate, in RFC 7232 section 6 order. Raises 412 (or 400 for an invalid date on a
        write), returns a 304 result, or None to go on. ``record`` None: only the header's format is
        checked."""
        writing = method in ("PATCH", "POST")
        changed = _last_modified(record) if record is not None else None
        raw = ctx.header("if-unmodified-since")
        if raw is not None:
            since = _http_date(raw)
            if since is None and writing:
                raise ApiError.of(400, "INVALID_HEADER", f"Invalid If-Unmodified-Since header value: {raw[:60]}")
            if since is not None and changed is not None and changed > since:
                kind = "write" if writing else "read"
                raise ApiError.of(
                    412,
                    PRECONDITION_CODES[kind],
                    f"The record was modified at {format_datetime(changed)}, after the If-Unmodified-Since "
                    f"date {format_datetime(since)}; the request was not processed.",
                )
        raw = ctx.header("if-modified-since")
        if method == "GET" and raw is not None and changed is not None:
            since = _http_date(raw)
            # HTTP 1.1: an invalid date, or one later than the server's clock, is ignored.
            if since is not None and since <= datetime.now(UTC) and changed <= since:
                return _Result(304, failed=False)
        return None

    # --- record writes -------------------------------------------------------------------------------

    def _create(self, ctx: _Ctx, obj: ObjectSpec, body: dict[str, Any]) -> str:
        if not obj.createable:
            raise ApiError.of(400, "INVALID_TYPE_FOR_OPERATION", f"entity type cannot be inserted: {obj.name}")
        self._guard_write(ctx, None)
        values = self._checked_fields(obj, body, creating=True)
        record = dict(values)
        self._apply_defaults(obj, record, ctx.user_id)
        missing = [s.name for s in obj.fields.values() if s.required and record.get(s.name) in (None, "")]
        if missing:
            raise ApiError.of(
                400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
            )
        record["Id"] = self._new_id(obj)
        self._validate_record(obj, record, values, existing=None)
        self._stamp(record, ctx.user_id, created=True)
        self._computed(obj, record)
        self._put(obj.name, record["Id"], record)
        lag = self.faults.search_index_lag_ms / 1000
        self._indexed_at[record["Id"]] = time.monotonic() + lag
        return str(record["Id"])

    def _update(self, ctx: _Ctx, obj: ObjectSpec, record_id: str, body: dict[str, Any]) -> None:
        existing = self._live(obj, record_id)
        self._guard_write(ctx, record_id)
        body_id = next((v for k, v in body.items() if k.lower() == "id"), None)
        if body_id is not None and normalize_id(body_id) == record_id:
            body = {k: v for k, v in body.items() if k.lower() != "id"}
        values = self._checked_fields(obj, body, creating=False)
        if obj.name == "Lead" and existing.get("IsConverted"):
            raise ApiError.of(400, "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
        nulled = [
            s.name for s in obj.fields.values() if s.required and s.name in values and values[s.name] in (None, "")
        ]
        if nulled:
            raise ApiError.of(
                400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(nulled)}]", nulled
            )
        record = {**existing, **values}
        self._validate_record(obj, record, values, existing=existing)
        self._stamp(record, ctx.user_id, created=False)
        self._computed(obj, record)
        self._put(obj.name, record_id, record)

    def _upsert(
        self,
        ctx: _Ctx,
        obj: ObjectSpec,
        spec: FieldSpec,
        raw_value: str,
        body: dict[str, Any],
        *,
        update_only: bool,
        allow_race: bool = False,
    ) -> tuple[str, bool]:
        in_body = [k for k in body if k.lower() in ("id", spec.name.lower())]
        if in_body:
            # Documented: "Do not specify Id or an external ID field in the request body or an error is
            # generated" (resources_sobject_upsert_patch); the wording below is the sandbox's.
            raise ApiError.of(
                400,
                "INVALID_FIELD",
                f"Unable to create/update fields: {', '.join(in_body)}. The Id "  # noqa: S608 - not SQL
                "and the external ID field cannot be set in the body of an upsert by external ID.",
                in_body,
            )
        try:
            value = check_value(spec, raw_value)
        except FieldProblem as problem:
            raise ApiError.of(400, problem.code, problem.message, problem.fields) from None
        found = self._by_external(obj, spec, value)
        if len(found) > 1:
            raise ApiError(300, [ctx.url(obj.name, r["Id"]) for r in found])
        if found:
            self._update(ctx, obj, found[0]["Id"], body)
            return str(found[0]["Id"]), False
        if update_only:
            raise _not_found()
        if self.faults.upsert_race_ms > 0 and allow_race and not spec.unique:
            # Let a concurrent upsert of the same new value look now: neither sees the other's insert.
            self.lock.release()
            try:
                time.sleep(self.faults.upsert_race_ms / 1000)
            finally:
                self.lock.acquire()
        return self._create(ctx, obj, {**body, spec.name: value}), True

    def _delete(self, obj: ObjectSpec, record_id: str) -> None:
        record = self._live(obj, record_id)
        self._put(obj.name, record_id, None, deleted=dict(record, IsDeleted=True))

    def _checked_fields(self, obj: ObjectSpec, body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        """Body keys resolved to canonical names and values checked, with the API's first error."""
        resolved: list[tuple[FieldSpec, Any]] = []
        for key, value in body.items():
            if key == "attributes":
                continue
            spec = obj.field(key)
            if spec is None:
                raise ApiError.of(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}")
            resolved.append((spec, value))
        forbidden = [s.name for s, _ in resolved if not (s.createable if creating else s.updateable)]
        if forbidden:
            raise ApiError.of(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(forbidden)}. Please check the security settings "
                "of this field and verify that it is read/write for your profile or permission set.",
                forbidden,
            )
        values: dict[str, Any] = {}
        for spec, value in resolved:
            try:
                values[spec.name] = check_value(spec, value)
            except FieldProblem as problem:
                raise ApiError.of(400, problem.code, problem.message, problem.fields) from None
        return values

    def _validate_record(
        self,
        obj: ObjectSpec,
        record: dict[str, Any],
        written: dict[str, Any],
        *,
        existing: dict[str, Any] | None,
    ) -> None:
        """Cross-record checks on the resulting record: references, converted leads, rules, uniqueness."""
        for name, value in written.items():
            spec = obj.field(name)
            if spec is not None and spec.type == "reference" and value is not None:
                self._check_reference(spec, value)
        if obj.name == "Task":
            who = record.get("WhoId")
            lead = self._records["Lead"].get(who) if isinstance(who, str) else None
            if lead is not None and lead.get("IsConverted"):
                raise ApiError.of(400, "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
        for rule in self.faults.validation_rules:
            if rule.hits(obj.name, record):
                fields_ = [rule.error_field] if rule.error_field else []
                raise ApiError.of(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", rule.message, fields_)
        for spec in obj.fields.values():
            value = record.get(spec.name)
            if not spec.unique or value is None or spec.name == "Id":
                continue
            for other in self._records[obj.name].with_value(spec.name, value):
                if other["Id"] != record.get("Id"):
                    raise ApiError.of(
                        400,
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {spec.name} duplicates value on record with id: {other['Id']}",
                    )

    def _check_reference(self, spec: FieldSpec, record_id: str) -> None:
        found = self._find(record_id)
        if found is None:
            raise ApiError.of(
                400,
                "INVALID_CROSS_REFERENCE_KEY",
                f"{spec.shown_label}: invalid cross reference id",
                [spec.name],
            )
        if found[0] == "User" and not found[1].get("IsActive"):
            raise ApiError.of(
                400,
                "INACTIVE_OWNER_OR_USER",
                f"operation performed with inactive user [{record_id}] as owner",
            )

    def _guard_write(self, ctx: _Ctx, record_id: str | None) -> None:
        if ctx.inject_lock:
            ctx.inject_lock = False
            shown = record_id or make_id("001", self._rng.randrange(10**6))
            raise ApiError.of(
                self.faults.lock_status,
                "UNABLE_TO_LOCK_ROW",
                f"unable to obtain exclusive access to this record or 1 records: {shown}",
            )

    # --- storage -------------------------------------------------------------------------------------

    def _obj_or_raise(self, sobject: str) -> ObjectSpec:
        obj = self.schema.obj(sobject)
        if obj is None:
            raise KeyError(f"no sObject {sobject}")
        return obj

    def _new_id(self, obj: ObjectSpec) -> str:
        self._counter += 1
        return make_id(obj.key_prefix, self._counter + 0x1000)

    def _find(self, record_id: str) -> tuple[str, dict[str, Any]] | None:
        obj = self.schema.object_of_id(record_id) if record_id else None
        if obj is None:
            return None
        record = self._records[obj.name].get(record_id)
        return (obj.name, record) if record is not None else None

    def _live(self, obj: ObjectSpec, record_id: str) -> dict[str, Any]:
        record = self._records[obj.name].get(record_id)
        if record is not None:
            return record
        if record_id in self._deleted[obj.name]:
            raise ApiError.of(404, "ENTITY_IS_DELETED", "entity is deleted")
        raise _not_found()

    def _by_external(self, obj: ObjectSpec, spec: FieldSpec, value: Any) -> list[dict[str, Any]]:
        return self._records[obj.name].with_value(spec.name, value)

    def _put(
        self,
        sobject: str,
        record_id: str,
        record: dict[str, Any] | None,
        deleted: dict[str, Any] | None = None,
    ) -> None:
        """Store (or, with ``record`` None, move to the recycle bin) one record, journaled for rollback."""
        if self._journal is not None:
            self._journal.append(
                (
                    sobject,
                    record_id,
                    self._records[sobject].get(record_id),
                    self._deleted[sobject].get(record_id),
                )
            )
        if record is None:
            self._records[sobject].pop(record_id, None)
        else:
            self._records[sobject][record_id] = record
        if deleted is not None:
            self._deleted[sobject][record_id] = deleted

    def _savepoint(self) -> int:
        return len(self._journal) if self._journal is not None else 0

    def _rollback(self, savepoint: int) -> None:
        journal = self._journal or []
        while len(journal) > savepoint:
            sobject, record_id, live, deleted = journal.pop()
            for store, old in ((self._records[sobject], live), (self._deleted[sobject], deleted)):
                if old is None:
                    store.pop(record_id, None)
                else:
                    store[record_id] = old

    def _apply_defaults(self, obj: ObjectSpec, record: dict[str, Any], user_id: str) -> None:
        for spec in obj.fields.values():
            if spec.name in record:
                continue
            if spec.name == "OwnerId":
                record["OwnerId"] = user_id
            elif spec.default is not None:
                record[spec.name] = spec.default
            elif spec.type == "boolean":
                record[spec.name] = False
            else:
                record[spec.name] = None

    @staticmethod
    def _stamp(record: dict[str, Any], user_id: str, *, created: bool) -> None:
        # System datetimes have whole seconds in Salesforce (".000"): If-Unmodified-Since round-trips them.
        now = format_datetime(datetime.now(UTC).replace(microsecond=0))
        if created:
            record.setdefault("CreatedDate", now)
            record.setdefault("CreatedById", user_id)
        record["LastModifiedDate"] = now
        record["LastModifiedById"] = user_id
        record["SystemModstamp"] = now

    @staticmethod
    def _computed(obj: ObjectSpec, record: dict[str, Any]) -> None:
        if obj.name in ("Lead", "Contact", "User"):
            record["Name"] = " ".join(str(record[k]) for k in ("FirstName", "LastName") if record.get(k))
        if obj.name == "Task":
            record["IsClosed"] = record.get("Status") == "Completed"
        record.setdefault("IsDeleted", False)

    def _seed_users(self) -> None:
        people = {
            "integration": ("Integration", "User", self.oauth.username, True),
            "asha": ("Asha", "Rao", "asha.rao@sandbox.example", True),
            "vikram": ("Vikram", "Mehta", "vikram.mehta@sandbox.example", True),
            "former": ("Former", "Rep", "former.rep@sandbox.example", False),
        }
        self.users = {}
        for key, (first, last, username, active) in people.items():
            record_id = make_id(KEY_PREFIXES["User"], 0x10 + len(self.users))
            record = {
                "Id": record_id,
                "FirstName": first,
                "LastName": last,
                "Username": username,
                "Alias": (first[:1] + last[:4]).lower(),
                "Email": username,
                "IsActive": active,
            }
            self._apply_defaults(self.schema.objects["user"], record, record_id)
            record["OwnerId"] = None
            self._stamp(record, record_id, created=True)
            self._computed(self.schema.objects["user"], record)
            self._records["User"][record_id] = record
            self.users[key] = record_id

    def _user_by_name(self, username: str) -> str | None:
        for record in self._records["User"].values():
            if record.get("Username") == username and record.get("IsActive"):
                return str(record["Id"])
        return None

    def _op(self, kind: str, name: str) -> None:
        self._stats["operations"][f"{kind}:{name}"] += 1

    # --- reads ---------------------------------------------------------------------------------------

    def _project(
        self, ctx: _Ctx, obj: ObjectSpec, record: dict[str, Any], specs: list[FieldSpec] | None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"attributes": {"type": obj.name, "url": ctx.url(obj.name, record["Id"])}}
        for spec in specs or list(obj.fields.values()):
            out[spec.name] = record.get(spec.name)
        return out

    def _limits(self) -> dict[str, Any]:
        return {
            "DailyApiRequests": {"Max": self.api_max, "Remaining": max(self.api_max - self.api_used, 0)},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
            "DataStorageMB": {"Max": 1024, "Remaining": 1000},
        }

    def _query(self, ctx: _Ctx, soql: str | None, *, include_deleted: bool) -> _Result:
        self._op("query", "queryAll" if include_deleted else "query")
        if not soql:
            raise ApiError.of(400, "MALFORMED_QUERY", "A query string has to be specified")
        try:
            query = parse_soql(soql, self.schema)
        except QueryError as exc:
            raise ApiError.of(400, exc.code, exc.message) from None
        rows = list(self._records[query.sobject.name].values())
        if include_deleted:
            rows += list(self._deleted[query.sobject.name].values())
        found = select(query, rows)
        if query.count_only:
            return _Result(200, {"totalSize": len(found), "done": True, "records": []})
        projected = [self._project(ctx, query.sobject, r, query.fields) for r in found]
        return _Result(200, self._page(ctx, projected, len(projected)))

    def _page(self, ctx: _Ctx, rows: list[dict[str, Any]], total: int) -> dict[str, Any]:
        size = self.query_batch_size
        page: dict[str, Any] = {"totalSize": total, "done": len(rows) <= size, "records": rows[:size]}
        if len(rows) > size:
            cursor = "01g5g0000" + secrets.token_hex(3).upper()
            self._cursors[cursor] = rows[size:]
            while len(self._cursors) > 200:
                self._cursors.popitem(last=False)
            page["nextRecordsUrl"] = f"/services/data/v{ctx.version}/query/{cursor}-{size}"
        return page

    def _query_more(self, ctx: _Ctx, locator: str) -> _Result:
        self._op("query", "more")
        cursor, _, offset = locator.partition("-")
        rows = self._cursors.pop(cursor, None)
        if rows is None:
            raise ApiError.of(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        page = self._page(ctx, rows, len(rows))
        if "nextRecordsUrl" in page:
            next_cursor = page["nextRecordsUrl"].rsplit("/", 1)[1].split("-")[0]
            done_so_far = int(offset or 0) + self.query_batch_size
            page["nextRecordsUrl"] = f"/services/data/v{ctx.version}/query/{next_cursor}-{done_so_far}"
        return _Result(200, page)

    def _search(self, ctx: _Ctx, sosl: str | None) -> _Result:
        self._op("search", "search")
        if not sosl:
            raise ApiError.of(
                400, "MALFORMED_SEARCH", "No search term found. The search term must be enclosed in braces."
            )
        try:
            search = parse_sosl(sosl, self.schema)
        except QueryError as exc:
            raise ApiError.of(400, exc.code, exc.message) from None
        now = time.monotonic()
        hits: list[dict[str, Any]] = []
        for query in search.returning:
            obj = query.sobject
            hit = search_matcher(search, obj)
            candidates = [
                r for r in self._records[obj.name].values() if self._indexed_at.get(r["Id"], 0) <= now and hit(r)
            ]
            hits += [self._project(ctx, obj, r, query.fields) for r in select(query, candidates)]
        if search.limit is not None:
            hits = hits[: search.limit]
        return _Result(200, {"searchRecords": hits})

    # --- composite -----------------------------------------------------------------------------------

    def _composite(self, ctx: _Ctx, body: Any) -> _Result:
        if not isinstance(body, dict) or not isinstance(body.get("compositeRequest"), list):
            raise ApiError.of(400, "JSON_PARSER_ERROR", "The request body must contain a compositeRequest array")
        subrequests: list[dict[str, Any]] = body["compositeRequest"]
        all_or_none = bool(body.get("allOrNone", False))
        _validate_composite(subrequests)
        self._stats["composite"]["requests"] += 1
        self._stats["composite"]["subrequests"] += len(subrequests)
        start = self._savepoint()
        done: dict[str, _Result] = {}
        responses: list[dict[str, Any]] = []
        failed_at: int | None = None
        for index, sub in enumerate(subrequests):
            ref = str(sub["referenceId"])
            result = self._composite_one(ctx, sub, done, all_or_none)
            done[ref] = result
            responses.append(
                {
                    "body": result.body,
                    "httpHeaders": result.headers,
                    "httpStatusCode": result.status,
                    "referenceId": ref,
                }
            )
            if all_or_none and result.is_failure:
                failed_at = index
                break
        if failed_at is None:
            return _Result(200, {"compositeResponse": responses})
        self._rollback(start)
        halted = [{"errorCode": "PROCESSING_HALTED", "message": ROLLBACK_MESSAGE}]
        final = []
        for index, sub in enumerate(subrequests):
            if index == failed_at:
                final.append(responses[index])
            else:
                final.append(
                    {
                        "body": halted,
                        "httpHeaders": {},
                        "httpStatusCode": 400,
                        "referenceId": str(sub["referenceId"]),
                    }
                )
        return _Result(200, {"compositeResponse": final})

    def _composite_one(self, ctx: _Ctx, sub: dict[str, Any], done: dict[str, _Result], all_or_none: bool) -> _Result:
        try:
            url = _resolve_text(str(sub["url"]), done)
            body = _resolve(sub.get("body"), done)
        except _BadReference as bad:
            message = f"Invalid reference specified. No value for {bad.expression} found in {bad.ref}."
            return _Result(400, [{"errorCode": "PROCESSING_HALTED", "message": message}])
        parts = urlsplit(url)
        match = re.match(r"^/services/data/(v[^/]+)/(.*)$", parts.path)
        version = _VERSION.match(match.group(1)) if match else None
        if match is None or version is None or not MIN_API_VERSION <= float(version.group(1)) <= self.max_api_version:
            return _Result(404, _not_found().body)
        segments = [unquote(s) for s in match.group(2).split("/")]
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        sub_ctx = _Ctx(
            ctx.user_id,
            version.group(1),
            top_level=False,
            inject_lock=ctx.inject_lock,
            headers=_conditional_headers(sub.get("httpHeaders") or {}),
        )
        method = str(sub["method"]).upper()
        savepoint = self._savepoint()
        try:
            clean = [s for s in segments if s != ""]
            if clean[:2] == ["composite", "sobjects"]:
                _allow(method, "GET", "POST", "PATCH", "DELETE")
                result = self._collections(
                    sub_ctx, method, clean[2:], params, body, outer_all_or_none=True if all_or_none else None
                )
            elif clean and clean[0] == "composite":
                result = _Result(400, [error_item("INVALID_API_INPUT", "Composite subrequests cannot be composite")])
            else:
                result = self._route(sub_ctx, method, clean, params, body)
        except ApiError as exc:
            self._rollback(savepoint)
            result = _Result(exc.status, exc.body)
        ctx.inject_lock = sub_ctx.inject_lock
        return result

    # --- sObject collections -------------------------------------------------------------------------

    def _collections(
        self,
        ctx: _Ctx,
        method: str,
        segs: list[str],
        params: dict[str, str],
        body: Any,
        *,
        outer_all_or_none: bool | None,
    ) -> _Result:
        if method == "GET" and len(segs) == 1:
            return self._collection_get(ctx, segs[0], params)
        if method == "DELETE" and not segs:
            ids = [i for i in params.get("ids", "").split(",") if i]
            all_or_none = params.get("allOrNone", "false").lower() == "true"
            return self._collection_write(ctx, "delete", [{"Id": i} for i in ids], all_or_none, outer_all_or_none, None)
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise ApiError.of(400, "JSON_PARSER_ERROR", "The request body must contain a records array")
        records: list[Any] = body["records"]
        all_or_none = bool(body.get("allOrNone", False))
        if method == "POST" and not segs:
            return self._collection_write(ctx, "create", records, all_or_none, outer_all_or_none, None)
        if method == "PATCH" and not segs:
            return self._collection_write(ctx, "update", records, all_or_none, outer_all_or_none, None)
        if method == "PATCH" and len(segs) == 2:
            obj = self.schema.obj(segs[0])
            spec = obj.field(segs[1]) if obj else None
            if obj is None or spec is None or not (spec.external_id or spec.unique):
                raise _not_found()
            return self._collection_write(ctx, "upsert", records, all_or_none, outer_all_or_none, (obj, spec))
        raise _not_found()

    def _collection_get(self, ctx: _Ctx, sobject: str, params: dict[str, str]) -> _Result:
        obj = self.schema.obj(sobject)
        if obj is None:
            raise _not_found()
        ids = [i for i in params.get("ids", "").split(",") if i]
        if len(ids) > COLLECTION_MAX:
            raise _too_many()
        self._op("collections", "get")
        specs = _field_list(obj, params.get("fields"))
        out: list[dict[str, Any] | None] = []
        for raw in ids:
            record_id = normalize_id(raw)
            record = self._records[obj.name].get(record_id or "")
            out.append(self._project(ctx, obj, record, specs) if record is not None else None)
        return _Result(200, out)

    def _collection_write(
        self,
        ctx: _Ctx,
        operation: str,
        records: list[Any],
        all_or_none: bool,
        outer_all_or_none: bool | None,
        upsert_on: tuple[ObjectSpec, FieldSpec] | None,
    ) -> _Result:
        if len(records) > COLLECTION_MAX:
            raise _too_many()
        self._op("collections", operation)
        self._stats["operations"]["collections:records"] += len(records)
        start = self._savepoint()
        results: list[dict[str, Any]] = []
        seen_external: Counter[str] = Counter()
        if upsert_on is not None:
            _, spec = upsert_on
            seen_external.update(str(r.get(spec.name, "")).casefold() for r in records if isinstance(r, dict))
        for record in records:
            savepoint = self._savepoint()
            try:
                if not isinstance(record, dict):
                    raise ApiError.of(400, "JSON_PARSER_ERROR", "each record must be a JSON object")
                results.append(self._collection_one(ctx, operation, record, upsert_on, seen_external))
            except ApiError as exc:
                self._rollback(savepoint)
                results.append({"success": False, "errors": _status_items(exc)})
        failed = any(not r["success"] for r in results)
        if all_or_none and failed:
            self._rollback(start)
            rolled = [
                {
                    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "message": ALL_OR_NONE_MESSAGE,
                    "fields": [],
                }
            ]
            results = [r if not r["success"] else {"success": False, "errors": rolled} for r in results]
        # Records report by the collection's own allOrNone (documented example); an outer allOrNone=true
        # makes any failed record fail the composite, which then rolls everything back.
        return _Result(200, results, failed=failed and bool(outer_all_or_none))

    def _collection_one(
        self,
        ctx: _Ctx,
        operation: str,
        record: dict[str, Any],
        upsert_on: tuple[ObjectSpec, FieldSpec] | None,
        seen_external: Counter[str],
    ) -> dict[str, Any]:
        values = {k: v for k, v in record.items() if k != "attributes"}
        type_name = (record.get("attributes") or {}).get("type") if isinstance(record.get("attributes"), dict) else None
        if operation == "upsert" and upsert_on is not None:
            obj, spec = upsert_on
            key = next((k for k in values if k.lower() == spec.name.lower()), None)
            if key is None or values[key] in (None, ""):
                raise ApiError.of(400, "MISSING_ARGUMENT", f"{spec.name} not specified", [spec.name])
            if seen_external[str(values[key]).casefold()] > 1:
                raise ApiError.of(
                    400,
                    "DUPLICATE_EXTERNAL_ID",
                    f"Duplicate external id specified: {values[key]}",
                    [spec.name],
                )
            value = values.pop(key)
            try:
                record_id, created = self._upsert(ctx, obj, spec, str(value), values, update_only=False)
            except ApiError as exc:
                if exc.status == 300:
                    raise ApiError.of(
                        400,
                        "DUPLICATE_EXTERNAL_ID",
                        f"{spec.name}: more than one record found for external id field: "
                        f"[{', '.join(u.rsplit('/', 1)[1] for u in exc.body)}]",
                        [spec.name],
                    ) from None
                raise
            return {"id": record_id, "success": True, "errors": [], "created": created}
        raw_id = next((v for k, v in values.items() if k.lower() == "id"), None)
        if operation == "create":
            new_type = self.schema.obj(str(type_name or ""))
            if new_type is None:
                raise ApiError.of(400, "INVALID_TYPE", "Type is required in attributes for each record")
            if raw_id is not None:
                raise ApiError.of(400, "INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
            return {"id": self._create(ctx, new_type, values), "success": True, "errors": []}
        if raw_id in (None, ""):
            raise ApiError.of(400, "MISSING_ARGUMENT", f"Id not specified in an {operation} call", ["Id"])
        target_id = normalize_id(raw_id)
        target = self.schema.object_of_id(target_id) if target_id else None
        if target_id is None or target is None:
            raise ApiError.of(400, "MALFORMED_ID", f"malformed id {str(raw_id)[:40]}", ["Id"])
        if operation == "delete":
            self._guard_write(ctx, target_id)
            self._delete(target, target_id)
        else:
            self._update(ctx, target, target_id, {k: v for k, v in values.items() if k.lower() != "id"})
        return {"id": target_id, "success": True, "errors": []}


class _OAuthError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(error)
        self.error = error
        self.description = description


# --- helpers ---------------------------------------------------------------------------------------------


def _coerce(current: Any, value: Any) -> Any:
    """A fault setting converted to the type of its current value (admin JSON may send "3" for 3)."""
    for kind in (bool, int, float):
        if isinstance(current, kind):
            return kind(value)
    if isinstance(current, list):
        return [value] if isinstance(value, str) else list(value)
    return value


def _public_key(pem: str) -> Any:
    if "BEGIN CERTIFICATE" in pem:
        return x509.load_pem_x509_certificate(pem.encode()).public_key()
    return pem


def _limit_error() -> ApiError:
    return ApiError.of(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")


def _too_many() -> ApiError:
    return ApiError.of(
        400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call"
    )


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise ApiError.of(
            405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {','.join(allowed)}"
        )


def _body_dict(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError.of(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from a non-object value")
    return body


def _field_list(obj: ObjectSpec, raw: str | None) -> list[FieldSpec] | None:
    if not raw:
        return None
    specs = [obj.fields["id"]]
    for name in (n.strip() for n in raw.split(",") if n.strip()):
        spec = obj.field(name)
        if spec is None:
            raise ApiError.of(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}")
        specs.append(spec)
    return list({s.name: s for s in specs}.values())


class _Table(dict[str, dict[str, Any]]):
    """One object's live records by id, with lookups by a field's value (text case-insensitively) kept up
    to date on every store, as an org's external-id and unique-field indexes are. Records are never
    changed in place (every write stores a new dict), so indexing on store is enough."""

    def __init__(self) -> None:
        super().__init__()
        self._indexes: dict[str, dict[Any, dict[str, None]]] = {}  # field -> value key -> ids (ordered)

    def __setitem__(self, record_id: str, record: dict[str, Any]) -> None:
        old = self.get(record_id)
        if old is not None:
            self._unindex(record_id, old)
        super().__setitem__(record_id, record)
        for name, index in self._indexes.items():
            key = _index_key(record.get(name))
            if key is not None:
                index.setdefault(key, {})[record_id] = None

    def __delitem__(self, record_id: str) -> None:
        self._unindex(record_id, self[record_id])
        super().__delitem__(record_id)

    def pop(self, record_id: str, default: Any = None) -> Any:
        if record_id not in self:
            return default
        record = self[record_id]
        del self[record_id]
        return record

    def with_value(self, name: str, value: Any) -> list[dict[str, Any]]:
        """The records whose field ``name`` holds ``value``."""
        index = self._indexes.get(name)
        if index is None:
            index = self._indexes[name] = {}
            for record_id, record in self.items():
                key = _index_key(record.get(name))
                if key is not None:
                    index.setdefault(key, {})[record_id] = None
        key = _index_key(value)
        return [self[record_id] for record_id in index.get(key, {})] if key is not None else []

    def _unindex(self, record_id: str, record: dict[str, Any]) -> None:
        for name, index in self._indexes.items():
            key = _index_key(record.get(name))
            if key is not None and key in index:
                index[key].pop(record_id, None)
                if not index[key]:
                    del index[key]


def _index_key(value: Any) -> Any:
    """The comparable, hashable form of a value (text case-insensitively); None for a value nothing matches."""
    if value is None:
        return None
    if isinstance(value, str):
        return ("text", value.casefold())
    try:
        hash(value)
    except TypeError:
        return None
    return ("value", value)


def _conditional_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The conditional request headers among ``headers``, names lower-cased."""
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    return {name: lowered[name] for name in CONDITIONAL_HEADERS if name in lowered}


def _http_date(raw: str) -> datetime | None:
    """An HTTP-date (any of the three forms RFC 7231 requires recipients to accept) in UTC, or None."""
    for form in HTTP_DATE_FORMATS:
        try:
            return datetime.strptime(raw.strip(), form).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _last_modified(record: dict[str, Any]) -> datetime | None:
    """The record's LastModifiedDate to whole seconds (HTTP-dates have no fractions)."""
    moment = parse_datetime(str(record.get("LastModifiedDate") or ""))
    return moment.astimezone(UTC).replace(microsecond=0) if moment is not None else None


def _status_items(exc: ApiError) -> list[dict[str, Any]]:
    items = []
    for entry in exc.body:
        if isinstance(entry, dict):
            items.append(
                {
                    "statusCode": entry.get("errorCode"),
                    "message": entry.get("message"),
                    "fields": entry.get("fields", []),
                }
            )
    return items


def _writes(method: str, kind: str, body: Any) -> bool:
    """Whether a request writes: any but GET, except a composite whose subrequests all read."""
    if kind == "composite" and isinstance(body, dict) and isinstance(body.get("compositeRequest"), list):
        return any(
            str(sub.get("method", "")).upper() != "GET" for sub in body["compositeRequest"] if isinstance(sub, dict)
        )
    return method.upper() != "GET"


def _request_kind(method: str, segments: list[str]) -> str:
    clean = [s for s in segments if s]
    head = clean[0] if clean else ""
    if head == "composite":
        return "collections" if clean[1:2] == ["sobjects"] else "composite"
    if head == "sobjects":
        if (len(clean) <= 1 and method == "GET") or clean[-1:] == ["describe"]:
            return "describe"
        return "sobject"
    table = {"query": "query", "queryAll": "query", "search": "search", "limits": "limits", "": "resources"}
    return table.get(head, "other")


def _composite_refusal(message: str) -> ApiError:
    """A composite request refused whole for its size: the body seen in production logs (status: 400,
    unconfirmed)."""
    entry = {"body": [{"errorCode": "LIMIT_EXCEEDED", "message": message}], "httpHeaders": {}}
    return ApiError(400, {"compositeResponse": [{**entry, "httpStatusCode": 400, "referenceId": None}]})


def _counts_as_query(url: str) -> bool:
    """Whether a subrequest URL is a query (Query, QueryAll, QueryMore) or sObject Collections operation."""
    match = re.match(r"^/services/data/v[^/]+/(.*)$", urlsplit(url).path)
    segments = [s for s in (match.group(1) if match else "").split("/") if s]
    return segments[:1] in (["query"], ["queryAll"]) or segments[:2] == ["composite", "sobjects"]


def _validate_composite(subrequests: list[dict[str, Any]]) -> None:
    if not subrequests:
        raise ApiError.of(400, "JSON_PARSER_ERROR", "compositeRequest must contain at least one subrequest")
    if len(subrequests) > COMPOSITE_MAX:
        raise _composite_refusal(COMPOSITE_TOO_MANY)
    refs: set[str] = set()
    for sub in subrequests:
        if not isinstance(sub, dict) or not all(k in sub for k in ("method", "url", "referenceId")):
            raise ApiError.of(400, "JSON_PARSER_ERROR", "each subrequest needs method, url and referenceId")
        ref = str(sub["referenceId"])
        if not _REF_ID.match(ref):
            raise ApiError.of(
                400,
                "INVALID_INPUT",
                f"Provided referenceId ('{ref[:40]}') must start with a letter "
                "or a number, and it can contain only letters, numbers and underscores ('_').",
            )
        if ref in refs:
            raise ApiError.of(400, "INVALID_INPUT", f"Duplicate reference id: {ref}")
        refs.add(ref)
        _validate_sub_headers(ref, sub.get("httpHeaders"))
    if sum(_counts_as_query(str(sub["url"])) for sub in subrequests) > COMPOSITE_MAX_QUERIES:
        raise _composite_refusal(COMPOSITE_TOO_MANY_QUERIES)


def _validate_sub_headers(ref: str, headers: Any) -> None:
    if headers is None:
        return
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise ApiError.of(400, "JSON_PARSER_ERROR", f"httpHeaders of subrequest {ref} must map names to strings")
    inherited = [str(name) for name in headers if str(name).lower() in COMPOSITE_INHERITED_HEADERS]
    if inherited:
        raise ApiError.of(
            400,
            "INVALID_INPUT",
            f"Subrequest {ref} sets {', '.join(inherited)} in httpHeaders; subrequests inherit "
            "Accept, Authorization and Content-Type from the composite request.",
        )


def _lookup(done: dict[str, _Result], ref: str, path: str) -> Any:
    result = done.get(ref)
    expression = ref + path
    if result is None or result.is_failure:
        raise _BadReference(expression, ref)
    value: Any = result.body
    for step in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path):
        name, index = step
        if name and isinstance(value, dict):
            key = name if name in value else next((k for k in value if k.lower() == name.lower()), None)
            value = value.get(key) if key is not None else None
        elif index and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            value = None
        if value is None:
            raise _BadReference(expression, ref)
    return value


def _resolve_text(text: str, done: dict[str, _Result]) -> str:
    return _REFERENCE.sub(lambda m: str(_lookup(done, m.group(1), m.group(2))), text)


def _resolve(value: Any, done: dict[str, _Result]) -> Any:
    """Substitute ``@{ref.path}`` references in a subrequest body; a whole-string reference keeps its type."""
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value)
        if whole:
            return _lookup(done, whole.group(1), whole.group(2))
        return _resolve_text(value, done)
    if isinstance(value, list):
        return [_resolve(v, done) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, done) for k, v in value.items()}
    return value


# --- HTTP ------------------------------------------------------------------------------------------------


class _SandboxApp(FastAPI):
    """FastAPI that keeps the server's own ``send`` in the scope, so a handler can abort the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["sandbox.raw_send"] = send
        await super().__call__(scope, receive, send)


def _abort_connection(scope: Scope) -> None:
    """Close the TCP connection with no response (uvicorn: the request cycle's transport)."""
    cycle = getattr(scope.get("sandbox.raw_send"), "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise ConnectionAbortedError("sandbox: drop_after_commit")
    if cycle is not None and hasattr(cycle, "disconnected"):
        cycle.disconnected = True  # uvicorn then ignores the response the app still sends
    transport.abort()


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _segments(request: Request, version: str) -> list[str]:
    raw = request.scope.get("raw_path") or request.url.path.encode()
    path = raw.decode("latin-1").split("?", 1)[0]
    prefix = f"/services/data/{version}"
    rest = path[len(prefix) :] if path.startswith(prefix) else ""
    return [unquote(s) for s in rest.split("/") if s != ""]


def _reply(reply: RestReply) -> Response:
    if reply.body is None and reply.status in (204, 304):
        return Response(status_code=reply.status, headers=reply.headers)
    return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)


def create_app(state: SalesforceState) -> FastAPI:
    """The sandbox as an ASGI app (serve with ``standins.stack.https``)."""
    app = _SandboxApp(title="Salesforce sandbox", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/services/oauth2/token")
    async def token(request: Request) -> Response:
        raw = (await request.body()).decode("utf-8", "replace")
        form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        status, body = await run_in_threadpool(state.oauth_token, form, _base_url(request))
        return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    @app.get("/services/data")
    @app.get("/services/data/")
    async def versions() -> Response:
        return JSONResponse(state.versions())

    async def rest(request: Request) -> Response:
        version = request.path_params["version"]
        raw = await request.body()
        params = {k: v for k, v in request.query_params.items()}
        reply = await run_in_threadpool(
            state.handle_rest,
            request.method,
            version,
            _segments(request, version),
            params,
            raw,
            request.headers.get("authorization"),
            request.headers,
        )
        if reply.drop:
            _abort_connection(request.scope)
        return _reply(reply)

    methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
    app.add_api_route("/services/data/{version}", rest, methods=methods)
    app.add_api_route("/services/data/{version}/{rest:path}", rest, methods=methods)
    _add_admin_routes(app, state)
    return app


def _admin_error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _add_admin_routes(app: FastAPI, state: SalesforceState) -> None:
    async def json_body(request: Request) -> Any:
        raw = await request.body()
        return json.loads(raw) if raw.strip() else None

    @app.get("/_sandbox/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/_sandbox/reset")
    async def reset(request: Request) -> dict[str, Any]:
        body = await json_body(request) or {}
        await run_in_threadpool(lambda: state.reset(demo=bool(body.get("demo", False))))
        return {"ok": True, "demo_ids": state.demo_ids}

    @app.get("/_sandbox/records/{sobject}")
    async def list_records(sobject: str) -> Response:
        try:
            return JSONResponse(await run_in_threadpool(state.records, sobject))
        except KeyError as exc:
            return _admin_error(str(exc), 404)

    @app.post("/_sandbox/records/{sobject}")
    async def insert_records(sobject: str, request: Request) -> Response:
        body = await json_body(request)
        rows = body if isinstance(body, list) else [body]
        if not all(isinstance(r, dict) for r in rows):
            return _admin_error("body must be a record object or a list of them")
        try:
            ids = await run_in_threadpool(lambda: [state.insert_raw(sobject, r) for r in rows])
        except KeyError as exc:
            return _admin_error(str(exc), 404)
        return JSONResponse({"ids": ids}, status_code=201)

    @app.get("/_sandbox/faults")
    async def get_faults() -> dict[str, Any]:
        return state.set_faults()

    @app.put("/_sandbox/faults")
    async def put_faults(request: Request) -> Response:
        body = await json_body(request) or {}
        try:
            return JSONResponse(await run_in_threadpool(lambda: state.set_faults(**body)))
        except (TypeError, ValueError) as exc:
            return _admin_error(str(exc))

    @app.get("/_sandbox/usage")
    async def get_usage() -> dict[str, int]:
        return state.set_usage()

    @app.put("/_sandbox/usage")
    async def put_usage(request: Request) -> Response:
        body = await json_body(request) or {}
        return JSONResponse(state.set_usage(used=body.get("used"), maximum=body.get("max")))

    @app.get("/_sandbox/stats")
    async def stats() -> dict[str, Any]:
        return state.stats()

    @app.post("/_sandbox/convert/{lead_id}")
    async def convert(lead_id: str, request: Request) -> Response:
        body = await json_body(request) or {}
        status = body.get("convertedStatus", "Closed - Converted")
        try:
            result = await run_in_threadpool(lambda: state.convert_lead(lead_id, converted_status=status))
        except KeyError as exc:
            return _admin_error(str(exc), 404)
        except ValueError as exc:
            return _admin_error(str(exc), 409)
        return JSONResponse(result)

    @app.post("/_sandbox/fields/{sobject}")
    async def add_field(sobject: str, request: Request) -> Response:
        body = await json_body(request) or {}
        try:
            spec = FieldSpec(
                name=body["name"],
                type=body.get("type", "string"),
                length=int(body.get("length", 255)),
                label=body.get("label", ""),
                external_id=bool(body.get("externalId", False)),
                unique=bool(body.get("unique", False)),
                custom=body["name"].endswith("__c"),
                picklist=tuple(body.get("picklistValues", ())),
                restricted=bool(body.get("restrictedPicklist", False)),
                updateable=bool(body.get("updateable", True)),
                createable=bool(body.get("createable", True)),
            )
            await run_in_threadpool(state.add_field, sobject, spec)
        except KeyError as exc:
            return _admin_error(f"missing or unknown: {exc}", 404)
        return JSONResponse({"ok": True, "field": spec.describe()}, status_code=201)
