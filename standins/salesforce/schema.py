"""The sandbox org's metadata: record ids, sObject and field definitions, describe output, value checks.

Field lists follow the Salesforce Object Reference (Lead, Contact, Account, Task, User), trimmed to what
a call-logging integration touches. Picklist values are one realistic org's set; real orgs differ, which
is why callers must read them from describe:

- Lead.Status (restricted): "Open - Not Contacted" (default), "Working - Contacted", "Closed - Converted",
  "Closed - Not Converted" (the values of a new Salesforce org).
- Lead.Rating (restricted): Hot, Warm, Cold.   Lead.LeadSource (not restricted): Web, Phone Inquiry, ...
- Task.Status (restricted): Not Started (default), In Progress, Completed, Waiting on someone else, Deferred.
- Task.Priority (restricted): High, Normal (default), Low.
- Task.CallType (restricted): Internal, Inbound, Outbound.
- Task.TaskSubtype (restricted, createable, NOT updateable): Task, Email, ListEmail, Cadence, Call, LinkedIn.
- Task.Twenty2_Call_Id__c: Text(255), External ID, not Unique (Activity custom fields: unique unconfirmed).

Value checks (``check_value``, ``FieldProblem``) and date-time formats: ``values``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, replace
from typing import Any

KEY_PREFIXES = {"Account": "001", "Contact": "003", "Lead": "00Q", "Task": "00T", "User": "005"}
PREFIX_TO_OBJECT = {prefix: name for name, prefix in KEY_PREFIXES.items()}

_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_RE = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")

# Field types whose values are text, and the SOSL field groups they belong to.
TEXT_TYPES = frozenset({"string", "textarea", "phone", "email", "picklist", "combobox", "url"})


# --- record ids --------------------------------------------------------------------------------------


def _checksum(id15: str) -> str:
    """The 3-character case-safe suffix Salesforce appends to a 15-character id."""
    suffix = ""
    for chunk in range(3):
        bits = 0
        for position, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << position
        suffix += _CHECKSUM_ALPHABET[bits]
    return suffix


def make_id(prefix: str, number: int, pod: str = "5g0000") -> str:
    """An 18-character id: key prefix, a pod/instance part, a base-62 counter, the case-safe suffix."""
    digits = ""
    while number or not digits:
        number, rest = divmod(number, 62)
        digits = _BASE62[rest] + digits
    body = (prefix + pod + digits.rjust(15 - len(prefix) - len(pod), "0"))[:15]
    return body + _checksum(body)


def normalize_id(value: Any) -> str | None:
    """The 18-character form of a 15- or 18-character id, or None when ``value`` is not a well-formed id."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        return None
    if len(value) == 15:
        return value + _checksum(value)
    if value[15:].upper() != _checksum(value[:15]):
        return None
    return value[:15] + _checksum(value[:15])


# --- field and object definitions ----------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """One field as describe shows it. ``required`` = not nillable and not defaulted on create."""

    name: str
    type: str
    length: int = 0
    label: str = ""
    createable: bool = True
    updateable: bool = True
    required: bool = False
    nillable: bool = True
    external_id: bool = False
    unique: bool = False
    picklist: tuple[str, ...] = ()
    default: Any = None
    restricted: bool = False
    reference_to: tuple[str, ...] = ()
    custom: bool = False
    name_field: bool = False
    defaulted: bool = False

    @property
    def shown_label(self) -> str:
        return self.label or self.name

    def describe(self) -> dict[str, Any]:
        values = [
            {
                "active": True,
                "defaultValue": value == self.default,
                "label": value,
                "validFor": None,
                "value": value,
            }
            for value in self.picklist
        ]
        return {
            "name": self.name,
            "label": self.shown_label,
            "type": self.type,
            "length": self.length,
            "nillable": self.nillable and not self.required,
            "createable": self.createable,
            "updateable": self.updateable,
            "defaultedOnCreate": self.defaulted or self.default is not None or self.type == "boolean",
            "externalId": self.external_id,
            "unique": self.unique,
            "idLookup": self.name == "Id" or self.external_id or self.unique,
            "custom": self.custom,
            "nameField": self.name_field,
            "picklistValues": values,
            "restrictedPicklist": self.restricted,
            "referenceTo": list(self.reference_to),
            "filterable": self.type != "textarea",
            "sortable": self.type != "textarea",
            "calculated": False,
        }


@dataclass
class ObjectSpec:
    """One sObject: its fields keyed by lower-cased API name (field names are case-insensitive)."""

    name: str
    label: str
    fields: dict[str, FieldSpec] = field(default_factory=dict)
    createable: bool = True
    searchable: bool = True

    @property
    def key_prefix(self) -> str:
        return KEY_PREFIXES[self.name]

    def field(self, name: str) -> FieldSpec | None:
        return self.fields.get(name.lower())

    def add(self, spec: FieldSpec) -> None:
        self.fields[spec.name.lower()] = spec

    def describe(self, version: str) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {
            "name": self.name,
            "label": self.label,
            "labelPlural": self.label + "s",
            "keyPrefix": self.key_prefix,
            "custom": False,
            "createable": self.createable,
            "updateable": self.createable,
            "deletable": self.createable,
            "queryable": True,
            "searchable": self.searchable,
            "retrieveable": True,
            "fields": [spec.describe() for spec in self.fields.values()],
            "urls": {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"},
        }


def _system_fields() -> list[FieldSpec]:
    return [
        FieldSpec("Id", "id", 18, "Record ID", createable=False, updateable=False, nillable=False),
        FieldSpec("IsDeleted", "boolean", 0, "Deleted", createable=False, updateable=False, nillable=False),
        FieldSpec("CreatedDate", "datetime", 0, "Created Date", createable=False, updateable=False, nillable=False),
        FieldSpec(
            "CreatedById",
            "reference",
            18,
            "Created By ID",
            createable=False,
            updateable=False,
            reference_to=("User",),
        ),
        FieldSpec(
            "LastModifiedDate",
            "datetime",
            0,
            "Last Modified Date",
            createable=False,
            updateable=False,
            nillable=False,
        ),
        FieldSpec(
            "LastModifiedById",
            "reference",
            18,
            "Last Modified By ID",
            createable=False,
            updateable=False,
            reference_to=("User",),
        ),
        FieldSpec(
            "SystemModstamp",
            "datetime",
            0,
            "System Modstamp",
            createable=False,
            updateable=False,
            nillable=False,
        ),
    ]


def _owner() -> FieldSpec:
    return FieldSpec("OwnerId", "reference", 18, "Owner ID", reference_to=("User",), defaulted=True)


def _name() -> FieldSpec:
    return FieldSpec("Name", "string", 121, "Full Name", createable=False, updateable=False, name_field=True)


LEAD_STATUSES = (
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
)
TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")


def _lead() -> ObjectSpec:
    spec = ObjectSpec("Lead", "Lead")
    for item in [
        *_system_fields(),
        FieldSpec("FirstName", "string", 40, "First Name"),
        FieldSpec("LastName", "string", 80, "Last Name", required=True),
        _name(),
        FieldSpec("Title", "string", 128, "Title"),
        FieldSpec("Company", "string", 255, "Company", required=True),
        FieldSpec("Phone", "phone", 40, "Business Phone"),
        FieldSpec("MobilePhone", "phone", 40, "Mobile Phone"),
        FieldSpec("Email", "email", 80, "Email"),
        FieldSpec(
            "Status",
            "picklist",
            255,
            "Status",
            picklist=LEAD_STATUSES,
            default=LEAD_STATUSES[0],
            restricted=True,
            nillable=False,
        ),
        FieldSpec("Rating", "picklist", 255, "Rating", picklist=("Hot", "Warm", "Cold"), restricted=True),
        FieldSpec(
            "LeadSource",
            "picklist",
            255,
            "Lead Source",
            picklist=("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other"),
        ),
        FieldSpec("Description", "textarea", 32000, "Description"),
        FieldSpec("DoNotCall", "boolean", 0, "Do Not Call", nillable=False, default=False),
        FieldSpec("HasOptedOutOfEmail", "boolean", 0, "Email Opt Out", nillable=False, default=False),
        _owner(),
        FieldSpec("IsConverted", "boolean", 0, "Converted", createable=False, updateable=False, nillable=False),
        FieldSpec("ConvertedDate", "date", 0, "Converted Date", createable=False, updateable=False),
        FieldSpec(
            "ConvertedContactId",
            "reference",
            18,
            "Converted Contact ID",
            createable=False,
            updateable=False,
            reference_to=("Contact",),
        ),
        FieldSpec(
            "ConvertedAccountId",
            "reference",
            18,
            "Converted Account ID",
            createable=False,
            updateable=False,
            reference_to=("Account",),
        ),
    ]:
        spec.add(item)
    return spec


def _contact() -> ObjectSpec:
    spec = ObjectSpec("Contact", "Contact")
    for item in [
        *_system_fields(),
        FieldSpec("FirstName", "string", 40, "First Name"),
        FieldSpec("LastName", "string", 80, "Last Name", required=True),
        _name(),
        FieldSpec("Title", "string", 128, "Title"),
        FieldSpec("AccountId", "reference", 18, "Account ID", reference_to=("Account",)),
        FieldSpec("Phone", "phone", 40, "Business Phone"),
        FieldSpec("MobilePhone", "phone", 40, "Mobile Phone"),
        FieldSpec("Email", "email", 80, "Email"),
        FieldSpec(
            "LeadSource",
            "picklist",
            255,
            "Lead Source",
            picklist=("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other"),
        ),
        FieldSpec("Description", "textarea", 32000, "Contact Description"),
        _owner(),
    ]:
        spec.add(item)
    return spec


def _account() -> ObjectSpec:
    spec = ObjectSpec("Account", "Account")
    for item in [
        *_system_fields(),
        FieldSpec("Name", "string", 255, "Account Name", required=True, name_field=True),
        FieldSpec("Phone", "phone", 40, "Account Phone"),
        FieldSpec("Description", "textarea", 32000, "Account Description"),
        _owner(),
    ]:
        spec.add(item)
    return spec


def _user() -> ObjectSpec:
    spec = ObjectSpec("User", "User", createable=False, searchable=False)
    for item in [
        *_system_fields(),
        FieldSpec(
            "Username",
            "string",
            80,
            "Username",
            createable=False,
            updateable=False,
            required=True,
            unique=True,
        ),
        FieldSpec("FirstName", "string", 40, "First Name", createable=False, updateable=False),
        FieldSpec("LastName", "string", 80, "Last Name", createable=False, updateable=False, required=True),
        _name(),
        FieldSpec("Alias", "string", 8, "Alias", createable=False, updateable=False),
        FieldSpec("Email", "email", 128, "Email", createable=False, updateable=False),
        FieldSpec("Phone", "phone", 40, "Phone", createable=False, updateable=False),
        FieldSpec("MobilePhone", "phone", 40, "Mobile", createable=False, updateable=False),
        FieldSpec("IsActive", "boolean", 0, "Active", createable=False, updateable=False, nillable=False),
    ]:
        spec.add(item)
    return spec


def _task() -> ObjectSpec:
    spec = ObjectSpec("Task", "Task", searchable=False)
    for item in [
        *_system_fields(),
        FieldSpec("Subject", "combobox", 255, "Subject", picklist=("Call", "Send Letter", "Send Quote", "Other")),
        FieldSpec(
            "Status",
            "picklist",
            255,
            "Status",
            picklist=TASK_STATUSES,
            default=TASK_STATUSES[0],
            restricted=True,
            nillable=False,
        ),
        FieldSpec(
            "Priority",
            "picklist",
            255,
            "Priority",
            picklist=("High", "Normal", "Low"),
            default="Normal",
            restricted=True,
            nillable=False,
        ),
        FieldSpec("ActivityDate", "date", 0, "Due Date Only"),
        FieldSpec("ReminderDateTime", "datetime", 0, "Reminder Date/Time"),
        FieldSpec("IsReminderSet", "boolean", 0, "Reminder Set", nillable=False),
        FieldSpec("IsClosed", "boolean", 0, "Closed", createable=False, updateable=False, nillable=False),
        FieldSpec("WhoId", "reference", 18, "Name ID", reference_to=("Contact", "Lead")),
        FieldSpec("WhatId", "reference", 18, "Related To ID", reference_to=("Account",)),
        _owner(),
        FieldSpec("Description", "textarea", 32000, "Description"),
        FieldSpec(
            "TaskSubtype",
            "picklist",
            255,
            "Task Subtype",
            updateable=False,
            restricted=True,
            picklist=("Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn"),
        ),
        FieldSpec(
            "CallType",
            "picklist",
            255,
            "Call Type",
            picklist=("Internal", "Inbound", "Outbound"),
            restricted=True,
        ),
        FieldSpec("CallDurationInSeconds", "int", 0, "Call Duration"),
        FieldSpec("CallDisposition", "string", 255, "Call Result"),
        FieldSpec("CallObject", "string", 255, "Call Object Identifier"),
        FieldSpec("Twenty2_Call_Id__c", "string", 255, "Twenty2 Call Id", external_id=True, custom=True),
    ]:
        spec.add(item)
    return spec


@dataclass
class Schema:
    """All sObjects of the org, looked up case-insensitively. Mutable: tests add fields or picklist values."""

    objects: dict[str, ObjectSpec]

    @classmethod
    def standard(cls) -> Schema:
        specs = [_lead(), _contact(), _account(), _task(), _user()]
        return cls({spec.name.lower(): spec for spec in specs})

    def obj(self, name: str) -> ObjectSpec | None:
        return self.objects.get(name.lower())

    def object_of_id(self, record_id: str) -> ObjectSpec | None:
        name = PREFIX_TO_OBJECT.get(record_id[:3])
        return self.obj(name) if name else None

    def add_field(self, sobject: str, spec: FieldSpec) -> None:
        target = self.obj(sobject)
        if target is None:
            raise KeyError(f"no sObject {sobject}")
        target.add(spec)

    def set_picklist(self, sobject: str, field_name: str, values: list[str], *, default: str | None = None) -> None:
        target = self.obj(sobject)
        spec = target.field(field_name) if target else None
        if target is None or spec is None:
            raise KeyError(f"no field {sobject}.{field_name}")
        target.add(replace(spec, picklist=tuple(values), default=default if default is not None else spec.default))

    def copy(self) -> Schema:
        return copy.deepcopy(self)
