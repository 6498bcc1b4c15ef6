"""The REST API's shared vocabulary: version bounds, error lists (``ApiError``), replies and results, the
request context, and the argument checks every resource uses."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from standins.salesforce.schema import FieldSpec, ObjectSpec
from standins.salesforce.values import parse_datetime

VERSION_SEGMENT = re.compile(r"^v(\d{2,3}\.\d)$")


MIN_API_VERSION = 42.0


MAX_API_VERSION = 66.0


ROLLBACK_MESSAGE = "The transaction was rolled back since another operation in the same transaction failed."


ALL_OR_NONE_MESSAGE = "Record rolled back because not all records were valid and the request was using AllOrNone header"


NOT_FOUND_MESSAGE = "The requested resource does not exist"


# Request headers the REST API evaluates (lower-cased, as kept in ``RestContext.headers``).
CONDITIONAL_HEADERS = ("if-unmodified-since", "if-modified-since", "if-match", "if-none-match")


# The 412 errorCode by request kind (unconfirmed, see the module docstring).
PRECONDITION_CODES = {"write": "ENTITY_FAILED_IFLASTMODIFIED_ON_UPDATE", "read": "PRECONDITION_FAILED"}


# HTTP-date forms a recipient must accept (RFC 7231 7.1.1.1): IMF-fixdate, obsolete RFC 850, asctime.
HTTP_DATE_FORMATS = ("%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %d %H:%M:%S %Y")


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


def not_found() -> ApiError:
    return ApiError.of(404, "NOT_FOUND", NOT_FOUND_MESSAGE)


@dataclass
class RestReply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


@dataclass
class RestResult:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    failed: bool | None = None

    @property
    def is_failure(self) -> bool:
        return self.failed if self.failed is not None else self.status >= 300


@dataclass
class RestContext:
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


def limit_error() -> ApiError:
    # As Salesforce answers it (no "fields" in this one): [{"message": …, "errorCode": …}].
    return ApiError(403, [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])


def concurrent_limit_error() -> ApiError:
    message = "ConcurrentPerOrgLongTxn Limit exceeded."
    return ApiError(403, [{"message": message, "errorCode": "REQUEST_LIMIT_EXCEEDED"}])


def too_many_records() -> ApiError:
    return ApiError.of(
        400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call"
    )


def allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise ApiError.of(
            405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {','.join(allowed)}"
        )


def body_dict(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError.of(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from a non-object value")
    return body


def field_list(obj: ObjectSpec, raw: str | None) -> list[FieldSpec] | None:
    if not raw:
        return None
    specs = [obj.fields["id"]]
    for name in (n.strip() for n in raw.split(",") if n.strip()):
        spec = obj.field(name)
        if spec is None:
            raise ApiError.of(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}")
        specs.append(spec)
    return list({s.name: s for s in specs}.values())


def conditional_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The conditional request headers among ``headers``, names lower-cased."""
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    return {name: lowered[name] for name in CONDITIONAL_HEADERS if name in lowered}


def http_date(raw: str) -> datetime | None:
    """An HTTP-date (any of the three forms RFC 7231 requires recipients to accept) in UTC, or None."""
    for form in HTTP_DATE_FORMATS:
        try:
            return datetime.strptime(raw.strip(), form).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def last_modified(record: dict[str, Any]) -> datetime | None:
    """The record's LastModifiedDate to whole seconds (HTTP-dates have no fractions)."""
    moment = parse_datetime(str(record.get("LastModifiedDate") or ""))
    return moment.astimezone(UTC).replace(microsecond=0) if moment is not None else None


def status_items(exc: ApiError) -> list[dict[str, Any]]:
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
