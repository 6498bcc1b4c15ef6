"""Record writes: create, update, upsert by external id, delete, with field checks, validation rules,
reference checks, injected row locks and conditional-request preconditions."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from standins.salesforce.api import (
    PRECONDITION_CODES,
    ApiError,
    RestContext,
    RestResult,
    http_date,
    last_modified,
    not_found,
)
from standins.salesforce.org import Org
from standins.salesforce.schema import FieldSpec, ObjectSpec, make_id, normalize_id
from standins.salesforce.values import FieldProblem, check_value, format_datetime


class RecordWrites(Org):
    """The org's record writes, as the REST resources, composite and collections perform them."""

    def _preconditions(self, ctx: RestContext, method: str, record: dict[str, Any] | None) -> RestResult | None:
        """Evaluate ``If-Unmodified-Since`` then (GET only) ``If-Modified-Since`` against ``record``'s
        LastModifiedDate, in RFC 7232 section 6 order. Raises 412 (or 400 for an invalid date on a
        write), returns a 304 result, or None to go on. ``record`` None: only the header's format is
        checked."""
        writing = method in ("PATCH", "POST")
        changed = last_modified(record) if record is not None else None
        raw = ctx.header("if-unmodified-since")
        if raw is not None:
            since = http_date(raw)
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
            since = http_date(raw)
            # HTTP 1.1: an invalid date, or one later than the server's clock, is ignored.
            if since is not None and since <= datetime.now(UTC) and changed <= since:
                return RestResult(304, failed=False)
        return None

    def _create(self, ctx: RestContext, obj: ObjectSpec, body: dict[str, Any]) -> str:
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

    def _update(self, ctx: RestContext, obj: ObjectSpec, record_id: str, body: dict[str, Any]) -> None:
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
        ctx: RestContext,
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
            raise not_found()
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

    def _guard_write(self, ctx: RestContext, record_id: str | None) -> None:
        if ctx.inject_lock:
            ctx.inject_lock = False
            shown = record_id or make_id("001", self._rng.randrange(10**6))
            raise ApiError.of(
                self.faults.lock_status,
                "UNABLE_TO_LOCK_ROW",
                f"unable to obtain exclusive access to this record or 1 records: {shown}",
            )
