"""``/services/data/vXX.X/...``: versions, usage counting and ``Sforce-Limit-Info``, injected faults, routing
to sObjects, records, upsert, ``query``/``queryAll`` (paged) and ``search``."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

from standins.salesforce.api import (
    MIN_API_VERSION,
    VERSION_SEGMENT,
    ApiError,
    RestContext,
    RestReply,
    RestResult,
    allow,
    body_dict,
    concurrent_limit_error,
    conditional_headers,
    error_item,
    field_list,
    limit_error,
    not_found,
)
from standins.salesforce.composite import COLLECTION_MAX, CompositeApi
from standins.salesforce.oauth import OAuthServer
from standins.salesforce.schema import ObjectSpec, normalize_id
from standins.salesforce.soql import QueryError, parse_soql, select
from standins.salesforce.sosl import parse_sosl, search_matcher
from standins.salesforce.tooling import ToolingApi


def _version_label(version: float) -> str:
    index = int(version) - 42
    return f"{('Spring', 'Summer', 'Winter')[index % 3]} '{18 + (index + 1) // 3}"


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
    table = {
        "query": "query",
        "queryAll": "query",
        "search": "search",
        "limits": "limits",
        "tooling": "tooling",
        "": "resources",
    }
    return table.get(head, "other")


class RestApi(CompositeApi, ToolingApi, OAuthServer):
    """The REST API: one request in, one reply out (usage, faults, routing)."""

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
        match = VERSION_SEGMENT.match(version)
        if not match or not MIN_API_VERSION <= float(match.group(1)) <= self.max_api_version:
            return RestReply(404, not_found().body)
        with self.lock:
            user_id = self._session_user(authorization)
            if user_id is None:
                return RestReply(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
            kind = _request_kind(method, segments)
            if self.api_used >= self.api_max:
                self._stats["errors"]["REQUEST_LIMIT_EXCEEDED"] += 1
                return self._with_usage(RestReply(403, limit_error().body))
            self.api_used += 1
            self._stats["api_requests"][kind] += 1
            ctx = RestContext(user_id, match.group(1), headers=conditional_headers(headers or {}))
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

    def _fault_reply(self, fault: str | None, ctx: RestContext) -> RestReply | None:
        if fault == "server_unavailable":
            return RestReply(
                503, [error_item("SERVER_UNAVAILABLE", "Server temporarily unavailable, try again later.")]
            )
        if fault == "server_error":
            message = "An unexpected error occurred. Please include this ErrorId if you contact support: 1234-5678"
            return RestReply(500, [error_item("UNKNOWN_EXCEPTION", message)])
        if fault == "limit":
            return RestReply(403, limit_error().body)
        if fault == "concurrent":
            return RestReply(403, concurrent_limit_error().body)
        if fault == "expire_sessions":
            self._tokens.clear()
            return RestReply(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
        if fault == "lock":
            ctx.inject_lock = True
        return None

    def _dispatch(
        self, ctx: RestContext, method: str, segments: list[str], params: dict[str, str], body: Any
    ) -> RestResult:
        try:
            return self._route(ctx, method.upper(), [s for s in segments if s != ""], params, body)
        except ApiError as exc:
            return RestResult(exc.status, exc.body)

    def _route(self, ctx: RestContext, method: str, segs: list[str], params: dict[str, str], body: Any) -> RestResult:
        head = segs[0] if segs else ""
        if head == "":
            allow(method, "GET")
            names = ("sobjects", "query", "queryAll", "search", "composite", "limits")
            return RestResult(200, {name: f"/services/data/v{ctx.version}/{name}" for name in names})
        if head == "limits" and len(segs) == 1:
            allow(method, "GET")
            return RestResult(200, self._limits())
        if head == "sobjects":
            return self._route_sobjects(ctx, method, segs[1:], params, body)
        if head in ("query", "queryAll"):
            allow(method, "GET")
            if len(segs) == 2:
                return self._query_more(ctx, segs[1])
            if len(segs) == 1:
                return self._query(ctx, params.get("q"), include_deleted=head == "queryAll")
        if head == "search" and len(segs) == 1:
            allow(method, "GET")
            return self._search(ctx, params.get("q"))
        if head == "composite":
            if len(segs) == 1:
                allow(method, "POST")
                self._op("composite", "request")
                return self._composite(ctx, body)
            if segs[1] == "sobjects":
                return self._collections(ctx, method, segs[2:], params, body, outer_all_or_none=None)
        if head == "tooling":
            return self._tooling(ctx, method, segs[1:], body)
        raise not_found()

    def _route_sobjects(
        self, ctx: RestContext, method: str, segs: list[str], params: dict[str, str], body: Any
    ) -> RestResult:
        if not segs:
            allow(method, "GET")
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
            return RestResult(200, {"encoding": "UTF-8", "maxBatchSize": COLLECTION_MAX, "sobjects": listing})
        obj = self.schema.obj(segs[0])
        if obj is None:
            raise not_found()
        if len(segs) == 1:
            allow(method, "GET", "POST")
            if method == "GET":
                return RestResult(
                    200,
                    {"objectDescribe": {"name": obj.name, "keyPrefix": obj.key_prefix}, "recentItems": []},
                )
            self._op("sobject", "create")
            self._preconditions(ctx, method, None)  # nothing to compare a create with: the format only
            record_id = self._create(ctx, obj, body_dict(body))
            return RestResult(
                201,
                {"id": record_id, "success": True, "errors": []},
                {"Location": ctx.url(obj.name, record_id)},
            )
        if len(segs) == 2 and segs[1] == "describe":
            allow(method, "GET")
            return RestResult(200, obj.describe(ctx.version))
        if len(segs) == 2:
            return self._route_record(ctx, method, obj, segs[1], params, body)
        if len(segs) == 3:
            return self._route_external(ctx, method, obj, segs[1], segs[2], params, body)
        raise not_found()

    def _route_record(
        self, ctx: RestContext, method: str, obj: ObjectSpec, raw_id: str, params: dict[str, str], body: Any
    ) -> RestResult:
        allow(method, "GET", "PATCH", "DELETE")
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
            return RestResult(200, self._project(ctx, obj, record, field_list(obj, params.get("fields"))))
        if method == "PATCH":
            self._op("sobject", "update")
            self._preconditions(ctx, method, self._live(obj, record_id))
            self._update(ctx, obj, record_id, body_dict(body))
            return RestResult(204)
        # DELETE: conditional headers are documented as not supported there, so they are not looked at.
        self._op("sobject", "delete")
        self._guard_write(ctx, record_id)
        self._delete(obj, record_id)
        return RestResult(204)

    def _route_external(
        self,
        ctx: RestContext,
        method: str,
        obj: ObjectSpec,
        field_name: str,
        value: str,
        params: dict[str, str],
        body: Any,
    ) -> RestResult:
        allow(method, "GET", "PATCH")
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
                raise not_found()
            if len(found) > 1:
                raise ApiError(300, [ctx.url(obj.name, r["Id"]) for r in found])
            return RestResult(200, self._project(ctx, obj, found[0], field_list(obj, params.get("fields"))))
        self._op("sobject", "upsert")
        self._preconditions(ctx, method, None)  # sObject Rows by External ID: the format only (unconfirmed)
        record_id, created = self._upsert(
            ctx,
            obj,
            spec,
            value,
            body_dict(body),
            update_only=params.get("updateOnly", "").lower() == "true",
            allow_race=ctx.top_level,
        )
        if created:
            result = {"id": record_id, "success": True, "errors": []}
            if ctx.number >= 46:
                result["created"] = True
            return RestResult(201, result, {"Location": ctx.url(obj.name, record_id)})
        if ctx.number >= 46:
            return RestResult(200, {"id": record_id, "success": True, "errors": [], "created": False})
        return RestResult(204)

    def _query(self, ctx: RestContext, soql: str | None, *, include_deleted: bool) -> RestResult:
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
            return RestResult(200, {"totalSize": len(found), "done": True, "records": []})
        projected = [self._project(ctx, query.sobject, r, query.fields) for r in found]
        return RestResult(200, self._page(ctx, projected, len(projected)))

    def _page(self, ctx: RestContext, rows: list[dict[str, Any]], total: int) -> dict[str, Any]:
        size = self.query_batch_size
        page: dict[str, Any] = {"totalSize": total, "done": len(rows) <= size, "records": rows[:size]}
        if len(rows) > size:
            cursor = "01g5g0000" + secrets.token_hex(3).upper()
            self._cursors[cursor] = rows[size:]
            while len(self._cursors) > 200:
                self._cursors.popitem(last=False)
            page["nextRecordsUrl"] = f"/services/data/v{ctx.version}/query/{cursor}-{size}"
        return page

    def _query_more(self, ctx: RestContext, locator: str) -> RestResult:
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
        return RestResult(200, page)

    def _search(self, ctx: RestContext, sosl: str | None) -> RestResult:
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
        return RestResult(200, {"searchRecords": hits})
