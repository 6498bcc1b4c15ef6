"""``composite`` (up to 25 subrequests, references between them, all-or-none) and ``composite/sobjects``
(sObject Collections of up to 200 records)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from standins.salesforce.api import (
    ALL_OR_NONE_MESSAGE,
    MIN_API_VERSION,
    ROLLBACK_MESSAGE,
    VERSION_SEGMENT,
    ApiError,
    RestContext,
    RestResult,
    allow,
    conditional_headers,
    error_item,
    field_list,
    not_found,
    status_items,
    too_many_records,
)
from standins.salesforce.schema import FieldSpec, ObjectSpec, normalize_id
from standins.salesforce.writes import RecordWrites

COMPOSITE_MAX = 25


COMPOSITE_MAX_QUERIES = 5


COMPOSITE_TOO_MANY = "The request can’t contain more than 25 operations."


COMPOSITE_TOO_MANY_QUERIES = "The request can’t contain more than 5 sObject Collections or query operations."


# Subrequests inherit these from the composite request and may not set them (Composite Request Body).
COMPOSITE_INHERITED_HEADERS = ("accept", "authorization", "content-type")


COLLECTION_MAX = 200


class BadReference(Exception):
    def __init__(self, expression: str, ref: str) -> None:
        super().__init__(expression)
        self.expression = expression
        self.ref = ref


_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")


_REF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")


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


def _lookup(done: dict[str, RestResult], ref: str, path: str) -> Any:
    result = done.get(ref)
    expression = ref + path
    if result is None or result.is_failure:
        raise BadReference(expression, ref)
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
            raise BadReference(expression, ref)
    return value


def _resolve_text(text: str, done: dict[str, RestResult]) -> str:
    return _REFERENCE.sub(lambda m: str(_lookup(done, m.group(1), m.group(2))), text)


def _resolve(value: Any, done: dict[str, RestResult]) -> Any:
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


class CompositeApi(RecordWrites):
    """Composite requests and sObject Collections."""

    def _route(self, ctx: RestContext, method: str, segs: list[str], params: dict[str, str], body: Any) -> RestResult:
        """Route one subrequest as a top-level request would be (the REST API implements it)."""
        raise NotImplementedError

    def _composite(self, ctx: RestContext, body: Any) -> RestResult:
        if not isinstance(body, dict) or not isinstance(body.get("compositeRequest"), list):
            raise ApiError.of(400, "JSON_PARSER_ERROR", "The request body must contain a compositeRequest array")
        subrequests: list[dict[str, Any]] = body["compositeRequest"]
        all_or_none = bool(body.get("allOrNone", False))
        _validate_composite(subrequests)
        self._stats["composite"]["requests"] += 1
        self._stats["composite"]["subrequests"] += len(subrequests)
        start = self._savepoint()
        done: dict[str, RestResult] = {}
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
            return RestResult(200, {"compositeResponse": responses})
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
        return RestResult(200, {"compositeResponse": final})

    def _composite_one(
        self, ctx: RestContext, sub: dict[str, Any], done: dict[str, RestResult], all_or_none: bool
    ) -> RestResult:
        try:
            url = _resolve_text(str(sub["url"]), done)
            body = _resolve(sub.get("body"), done)
        except BadReference as bad:
            message = f"Invalid reference specified. No value for {bad.expression} found in {bad.ref}."
            return RestResult(400, [{"errorCode": "PROCESSING_HALTED", "message": message}])
        parts = urlsplit(url)
        match = re.match(r"^/services/data/(v[^/]+)/(.*)$", parts.path)
        version = VERSION_SEGMENT.match(match.group(1)) if match else None
        if match is None or version is None or not MIN_API_VERSION <= float(version.group(1)) <= self.max_api_version:
            return RestResult(404, not_found().body)
        segments = [unquote(s) for s in match.group(2).split("/")]
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        sub_ctx = RestContext(
            ctx.user_id,
            version.group(1),
            top_level=False,
            inject_lock=ctx.inject_lock,
            headers=conditional_headers(sub.get("httpHeaders") or {}),
        )
        method = str(sub["method"]).upper()
        savepoint = self._savepoint()
        try:
            clean = [s for s in segments if s != ""]
            if clean[:2] == ["composite", "sobjects"]:
                allow(method, "GET", "POST", "PATCH", "DELETE")
                result = self._collections(
                    sub_ctx, method, clean[2:], params, body, outer_all_or_none=True if all_or_none else None
                )
            elif clean and clean[0] == "composite":
                result = RestResult(400, [error_item("INVALID_API_INPUT", "Composite subrequests cannot be composite")])
            else:
                result = self._route(sub_ctx, method, clean, params, body)
        except ApiError as exc:
            self._rollback(savepoint)
            result = RestResult(exc.status, exc.body)
        ctx.inject_lock = sub_ctx.inject_lock
        return result

    def _collections(
        self,
        ctx: RestContext,
        method: str,
        segs: list[str],
        params: dict[str, str],
        body: Any,
        *,
        outer_all_or_none: bool | None,
    ) -> RestResult:
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
                raise not_found()
            return self._collection_write(ctx, "upsert", records, all_or_none, outer_all_or_none, (obj, spec))
        raise not_found()

    def _collection_get(self, ctx: RestContext, sobject: str, params: dict[str, str]) -> RestResult:
        obj = self.schema.obj(sobject)
        if obj is None:
            raise not_found()
        ids = [i for i in params.get("ids", "").split(",") if i]
        if len(ids) > COLLECTION_MAX:
            raise too_many_records()
        self._op("collections", "get")
        specs = field_list(obj, params.get("fields"))
        out: list[dict[str, Any] | None] = []
        for raw in ids:
            record_id = normalize_id(raw)
            record = self._records[obj.name].get(record_id or "")
            out.append(self._project(ctx, obj, record, specs) if record is not None else None)
        return RestResult(200, out)

    def _collection_write(
        self,
        ctx: RestContext,
        operation: str,
        records: list[Any],
        all_or_none: bool,
        outer_all_or_none: bool | None,
        upsert_on: tuple[ObjectSpec, FieldSpec] | None,
    ) -> RestResult:
        if len(records) > COLLECTION_MAX:
            raise too_many_records()
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
                results.append({"success": False, "errors": status_items(exc)})
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
        return RestResult(200, results, failed=failed and bool(outer_all_or_none))

    def _collection_one(
        self,
        ctx: RestContext,
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
