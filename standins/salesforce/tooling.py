"""The stand-in's Tooling API subset: ``POST /services/data/vXX.X/tooling/sobjects/CustomField``, and the
org's field-level security for the integration user.

As Salesforce does it (Tooling API Reference, ``CustomField``: ``FullName`` ``Object.Name__c`` and a
``Metadata`` object with ``type``, ``label``, ``length``, ``externalId``, ``unique``, ``required``, ...):

- success: **201** ``{"id": "00N…", "success": true, "errors": [], "warnings": [], "infos": []}``;
- the user may not customize the org (no "Customize Application"): **400** ``INSUFFICIENT_ACCESS``
  (``OrgSecurity.can_customize`` false);
- a field of that name on the object already: **400** ``DUPLICATE_DEVELOPER_NAME``;
- a missing ``FullName`` / ``Metadata`` / ``label``: **400** ``REQUIRED_FIELD_MISSING``; a malformed name
  or unknown object: **400** ``FIELD_INTEGRITY_EXCEPTION`` / ``INVALID_TYPE``.

Custom fields of Task (and Event) are defined on ``Activity``; ``Task.X__c`` is taken too (whether the real
API accepts it is not documented). A field created through the API is visible to no profile until
field-level security grants it (simple-salesforce issue 621): it is kept apart, absent from describe, SOQL
and writes, until ``grant_field_access`` (the admin's "Set Field-Level Security" click).
``set_field_access(..., editable=False)`` makes a field read-only for the integration user (describe:
``createable`` / ``updateable`` false; writes refused as the real API refuses them).
Only ``Text`` fields are created by this stand-in (the only type this project creates); other types are
refused with a message saying so.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from standins.salesforce.api import ApiError, RestContext, RestResult, not_found
from standins.salesforce.org import Org
from standins.salesforce.schema import FieldSpec, make_id

#: Where a ``FullName``'s object part points: custom fields of Task are defined on Activity.
OBJECT_ALIASES = {"activity": "Task"}
#: The developer name rules of Setup's New Field page, enforced by the API as well.
_NAME = re.compile(r"^[A-Za-z](?:[A-Za-z0-9]|_(?!_))*(?<!_)__c$")
NAME_RULE = (
    "The Field Name field can only contain underscores and alphanumeric characters. It must be unique, begin "
    "with a letter, not include spaces, not end with an underscore, and not contain two consecutive underscores."
)
INSUFFICIENT_ACCESS_MESSAGE = (
    "You do not have the level of access necessary to perform the operation you requested. Please contact "
    "the owner of the record or your administrator if access is necessary."
)
CUSTOM_FIELD_PREFIX = "00N"


class ToolingApi(Org):
    """``tooling/sobjects/CustomField`` and field-level security (see the module docstring)."""

    def reset(self, *, demo: bool = False) -> None:
        with self.lock:
            #: The integration user's "Customize Application" permission (Tooling API metadata writes).
            self.can_customize = True
            #: Fields that exist but that no profile can see yet: (object, lower-cased name) → spec.
            self._hidden_fields: dict[tuple[str, str], FieldSpec] = {}
            self._custom_field_ids: dict[tuple[str, str], str] = {}
            super().reset(demo=demo)

    # --- public Python API ---------------------------------------------------------------------------

    def set_field_access(self, sobject: str, name: str, *, visible: bool = True, editable: bool = True) -> None:
        """The integration user's field-level security on ``sobject.name``: ``visible`` False hides the field
        (absent from describe, queries and writes), ``editable`` False makes it read-only (describe:
        ``createable`` / ``updateable`` false)."""
        with self.lock:
            obj = self.schema.obj(sobject)
            if obj is None:
                raise KeyError(f"no sObject {sobject}")
            key = (obj.name, name.lower())
            spec = obj.fields.pop(name.lower(), None) or self._hidden_fields.pop(key, None)
            if spec is None:
                raise KeyError(f"no field {sobject}.{name}")
            spec = replace(spec, createable=editable, updateable=editable)
            if visible:
                obj.add(spec)
            else:
                self._hidden_fields[key] = spec

    def custom_field_id(self, sobject: str, name: str) -> str | None:
        """The id a Tooling API create gave ``sobject.name`` (None when not created that way)."""
        obj = self.schema.obj(OBJECT_ALIASES.get(sobject.lower(), sobject))
        return self._custom_field_ids.get((obj.name, name.lower())) if obj else None

    # --- the API ---------------------------------------------------------------------------------------

    def _tooling(self, ctx: RestContext, method: str, segs: list[str], body: Any) -> RestResult:
        # Only the create is served (reads of Tooling objects are real but unused here: not found).
        if segs != ["sobjects", "CustomField"] or method != "POST":
            raise not_found()
        self._op("tooling", "CustomField:create")
        with self.lock:
            return self._create_custom_field(body)

    def _create_custom_field(self, body: Any) -> RestResult:
        if not self.can_customize:
            raise ApiError.of(400, "INSUFFICIENT_ACCESS", INSUFFICIENT_ACCESS_MESSAGE)
        data = body if isinstance(body, dict) else {}
        missing = [key for key in ("FullName", "Metadata") if not data.get(key)]
        raw_metadata = data.get("Metadata")
        metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
        if not missing and not metadata.get("label"):
            missing.append("label")
        if missing:
            raise ApiError.of(
                400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
            )
        object_name, _, field_name = str(data["FullName"]).partition(".")
        obj = self.schema.obj(OBJECT_ALIASES.get(object_name.lower(), object_name))
        if obj is None:
            raise ApiError.of(400, "INVALID_TYPE", f"sObject type '{object_name}' is not supported.")
        if not _NAME.match(field_name):
            raise ApiError.of(400, "FIELD_INTEGRITY_EXCEPTION", NAME_RULE, ["FullName"])
        key = (obj.name, field_name.lower())
        if obj.field(field_name) is not None or key in self._hidden_fields:
            developer = field_name.removesuffix("__c")
            raise ApiError.of(
                400, "DUPLICATE_DEVELOPER_NAME", f"There is already a field named {developer} on {object_name}."
            )
        spec = _text_field(field_name, metadata)
        record_id = make_id(CUSTOM_FIELD_PREFIX, len(self._custom_field_ids) + 1)
        # Visible to no profile until field-level security grants it (the admin's next click).
        self._hidden_fields[key] = spec
        self._custom_field_ids[key] = record_id
        return RestResult(201, {"id": record_id, "success": True, "errors": [], "warnings": [], "infos": []})


def _text_field(name: str, metadata: dict[str, Any]) -> FieldSpec:
    kind = metadata.get("type")
    if kind != "Text":
        raise ApiError.of(
            400, "FIELD_INTEGRITY_EXCEPTION", f"type {kind!r}: this stand-in creates Text fields only", ["type"]
        )
    length = metadata.get("length")
    if not isinstance(length, int) or not 1 <= length <= 255:
        raise ApiError.of(
            400,
            "FIELD_INTEGRITY_EXCEPTION",
            f"Length: value outside of valid range on numeric field: {length}",
            ["length"],
        )
    return FieldSpec(
        name,
        "string",
        length,
        str(metadata["label"]),
        custom=True,
        external_id=bool(metadata.get("externalId", False)),
        unique=bool(metadata.get("unique", False)),
        required=bool(metadata.get("required", False)),
    )
