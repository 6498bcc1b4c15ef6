"""The org's state: records (indexed by external-id and unique fields), users, issued tokens, API usage,
fault settings and stats, with the record primitives (ids, defaults, audit stamps, savepoints) the API uses."""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from standins.salesforce.api import MAX_API_VERSION, ApiError, RestContext, not_found
from standins.salesforce.faults import FAULT_KINDS, Faults, ValidationRule, coerce
from standins.salesforce.schema import KEY_PREFIXES, FieldSpec, ObjectSpec, Schema, make_id, normalize_id
from standins.salesforce.values import format_datetime

ORG_ID = "00D5g000004SANDBX"


# Demo org phone spellings (see ``SalesforceState.seed_demo``).
DEMO_PHONES = {
    "plain": "9999999999",
    "spaced": "+91 99999 99999",
    "trunk": "099999-99999",
    "e164": "+919876543210",
    "converted": "+91 91234 56789",
    "landline": "(080) 4123 4567",
}


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
class IssuedToken:
    user_id: str
    client_id: str
    expires_at: float | None


class RecordTable(dict[str, dict[str, Any]]):
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


class Org:
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
        self._tokens: dict[str, IssuedToken] = {}
        self._refresh_tokens: dict[str, str] = {}
        self._records: dict[str, RecordTable] = {}
        self._deleted: dict[str, dict[str, dict[str, Any]]] = {}
        self._indexed_at: dict[str, float] = {}
        self._cursors: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._journal: list[tuple[str, str, dict[str, Any] | None, dict[str, Any] | None]] | None = None
        self._counter = 0
        self._stats: dict[str, Counter[str]] = {}
        self.users: dict[str, str] = {}
        self.demo_ids: dict[str, str] = {}
        self.reset(demo=demo)

    def reset(self, *, demo: bool = False) -> None:
        """Back to the constructor's org: schema, users (+ demo data), no faults, usage 0, empty stats.
        Credentials and issued tokens are kept."""
        with self.lock:
            self.schema = self._schema_template.copy()
            self._records = {spec.name: RecordTable() for spec in self.schema.objects.values()}
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
                setattr(self.faults, name, coerce(getattr(self.faults, name), value))
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

    def _issue(self, user_id: str, client_id: str) -> str:
        token = f"{ORG_ID[:15]}!{secrets.token_urlsafe(48)}"
        ttl = self.oauth.token_ttl_seconds
        self._tokens[token] = IssuedToken(user_id, client_id, time.time() + ttl if ttl else None)
        return token

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

    def _project(
        self, ctx: RestContext, obj: ObjectSpec, record: dict[str, Any], specs: list[FieldSpec] | None
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
        raise not_found()

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
