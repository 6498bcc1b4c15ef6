"""The thin Salesforce REST client: one ``requests.Session``, lazy login, simple-salesforce underneath, and
every failure sorted ONCE into the families of ``worker.errors``.

Sorting (``classify_errors``; errorCode first, HTTP status second):

==============================================  ==========================================================
``UNABLE_TO_LOCK_ROW``, ``SERVER_UNAVAILABLE``,  ``SalesforceUnavailable`` (retryable)
``UNKNOWN_EXCEPTION``, any 5xx, timeouts,
connection errors (incl. a reply cut off)
``REQUEST_LIMIT_EXCEEDED``, sorted by the limit  ``TotalRequests`` (the daily allowance) and unknown
its message names (``REQUEST_LIMITS``)           limits: ``SalesforceLimitExceeded`` (hold and resume);
                                                 ``Concurrent…`` limits (``ConcurrentPerOrgLongTxn``,
                                                 ``ConcurrentRequests``): ``SalesforceUnavailable``
                                                 (retried in seconds, like a row lock; nothing held)
``INVALID_SESSION_ID`` / 401                     the session is refreshed ONCE and the request re-sent;
                                                 if it persists ``SalesforceSessionExpired`` (retryable)
everything else (validation, INVALID_FIELD,      ``SalesforceRejected`` (permanent), ``code`` = errorCode,
CANNOT_UPDATE_CONVERTED_LEAD, MALFORMED_ID,      ``details["fields"]`` = the fields named; a 300 (several
NOT_FOUND, 300 Multiple Choices, ...)            records match an external id) has code MULTIPLE_CHOICES
==============================================  ==========================================================

In a composite reply, ``PROCESSING_HALTED`` / ``ALL_OR_NONE_OPERATION_ROLLED_BACK`` entries are consequences
of another failure; ``classify_errors`` looks past them to the cause when the list has one, and
``composite_error`` does the same across the subrequest results.

Reads (query, search, describe, get, limits) are retried in-process a few times on
``SalesforceUnavailable``, waiting the one backoff of ``worker.retry`` (``retry.SALESFORCE_READS``). Writes
are never retried here: the task layer retries them, and the sandbox shows why (a write can commit and lose
its reply). Error messages never carry tokens, and digit runs that look like phone numbers are masked
(``phones.mask_numbers``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any, NamedTuple, TypeVar
from urllib.parse import quote

import requests
import structlog
from simple_salesforce import Salesforce
from simple_salesforce import format_external_id as format_external_id
from simple_salesforce import format_soql as format_soql
from simple_salesforce.exceptions import SalesforceError as LibraryError
from simple_salesforce.exceptions import SalesforceExpiredSession

from worker import retry as retries
from worker.errors import (
    SalesforceError,
    SalesforceLimitExceeded,
    SalesforceRejected,
    SalesforceSessionExpired,
    SalesforceUnavailable,
    Stage,
    SyncError,
)
from worker.http import new_session
from worker.phones import mask_numbers
from worker.salesforce.auth import obtain_session
from worker.settings import Settings

log = structlog.get_logger(__name__)

T = TypeVar("T")

COLLECTION_MAX = 200

# errorCode -> family, for the codes that are not "the request itself is wrong".
CODE_FAMILIES: dict[str, type[SalesforceError]] = {
    "UNABLE_TO_LOCK_ROW": SalesforceUnavailable,
    "SERVER_UNAVAILABLE": SalesforceUnavailable,
    "UNKNOWN_EXCEPTION": SalesforceUnavailable,
    "REQUEST_LIMIT_EXCEEDED": SalesforceLimitExceeded,
    "INVALID_SESSION_ID": SalesforceSessionExpired,
}
#: ``REQUEST_LIMIT_EXCEEDED`` names the limit first in its message ("TotalRequests Limit exceeded.",
#: "ConcurrentPerOrgLongTxn Limit exceeded."): limit → family. The daily allowance comes back over hours,
#: so work holds; the concurrent-request limits clear within seconds, so the request is retried soon.
REQUEST_LIMITS: dict[str, type[SalesforceError]] = {
    "TotalRequests": SalesforceLimitExceeded,
    "ConcurrentPerOrgLongTxn": SalesforceUnavailable,
    "ConcurrentRequests": SalesforceUnavailable,
}
# Entries that only report that another operation failed.
NOTICE_CODES = frozenset({"PROCESSING_HALTED", "ALL_OR_NONE_OPERATION_ROLLED_BACK"})
ROLLBACK_NOTICE = "The transaction was rolled back since another operation in the same transaction failed."

_DATA_PATH = re.compile(r"^/services/data/v[\d.]+/(.*)$")


class UpsertResult(NamedTuple):
    """Id of the record written (None when an API < 46.0 answers 204) and whether it was created."""

    id: str | None
    created: bool


# --- sorting ---------------------------------------------------------------------------------------------


def is_retryable_code(code: str | None) -> bool:
    """Whether an errorCode/statusCode means "the same request may succeed later"."""
    family = CODE_FAMILIES.get(code or "")
    return family is not None and family.disposition.value == "retryable"


def _entries(items: list[Any]) -> list[dict[str, Any]]:
    """Error entries normalised to ``{"code", "message", "fields"}`` (errorCode or statusCode)."""
    out = []
    for item in items:
        if isinstance(item, dict):
            code = str(item.get("errorCode") or item.get("statusCode") or "UNKNOWN")
            fields = item.get("fields") or []
            out.append(
                {
                    "code": code,
                    "message": mask_numbers(str(item.get("message") or ""))[:500],
                    "fields": [str(f) for f in fields] if isinstance(fields, list) else [],
                }
            )
    return out


def limit_family(message: str) -> tuple[str, type[SalesforceError]]:
    """(limit name, family) of a ``REQUEST_LIMIT_EXCEEDED`` message: ``REQUEST_LIMITS``, then any other
    ``Concurrent…`` limit as concurrent; a limit we do not know holds, as the daily allowance does (the
    hold's probe ends it as soon as Salesforce accepts requests again)."""
    name = message.strip().split(" ", 1)[0] if message.strip() else ""
    family = REQUEST_LIMITS.get(name)
    if family is None:
        family = SalesforceUnavailable if name.startswith("Concurrent") else SalesforceLimitExceeded
    return name, family


def _family_for_status(http_status: int | None) -> type[SalesforceError]:
    if http_status is None or http_status >= 500:
        return SalesforceUnavailable
    if http_status == 401:
        return SalesforceSessionExpired
    return SalesforceRejected


def classify_errors(items: list[Any], http_status: int | None, *, stage: Stage | str = Stage.WRITE) -> SyncError:
    """Sort a Salesforce error list (``[{"errorCode"|"statusCode", "message", "fields"}]``) into one error.

    ``http_status`` 300 (several records match an external id: ``items`` is then the list of record URLs)
    gives ``SalesforceRejected`` with code ``MULTIPLE_CHOICES`` and the URLs in ``details["records"]``.
    """
    if http_status == 300:
        records = [str(i) for i in items if isinstance(i, str)]
        return SalesforceRejected(
            f"Salesforce: {len(records)} records match the external id (HTTP 300); nothing was written",
            stage=stage,
            code="MULTIPLE_CHOICES",
            http_status=300,
            details={"records": records, "fields": []},
        )
    entries = _entries(items)
    causes = [e for e in entries if e["code"] not in NOTICE_CODES] or entries
    if not causes:
        family = _family_for_status(http_status)
        return family(
            f"Salesforce answered HTTP {http_status} without an error list",
            stage=stage,
            code=f"HTTP_{http_status}" if http_status else "NO_RESPONSE",
            http_status=http_status,
            details={"fields": []},
        )
    first = causes[0]
    family = CODE_FAMILIES.get(first["code"]) or _family_for_status(http_status)
    details: dict[str, Any] = {}
    if first["code"] == "REQUEST_LIMIT_EXCEEDED":
        details["limit"], family = limit_family(first["message"])
    more = f" (and {len(causes) - 1} more)" if len(causes) > 1 else ""
    fields = sorted({f for e in causes for f in e["fields"]})
    return family(
        f"Salesforce {first['code']}: {first['message']}{more}",
        stage=stage,
        code=first["code"],
        http_status=http_status,
        details={"fields": fields, "errors": causes[:5], **details},
    )


def composite_error(results: list[dict[str, Any]], *, stage: Stage | str = Stage.WRITE) -> SyncError | None:
    """The error a composite reply stands for (its root cause), or None when every subrequest succeeded."""
    failed = [r for r in results if int(r.get("httpStatusCode") or 500) >= 300]
    if not failed:
        return None

    def is_notice(result: dict[str, Any]) -> bool:
        body = result.get("body")
        return isinstance(body, list) and all(
            isinstance(e, dict) and e.get("errorCode") in NOTICE_CODES and e.get("message") == ROLLBACK_NOTICE
            for e in body
        )

    cause = next((r for r in failed if not is_notice(r)), failed[0])
    body = cause.get("body")
    items = body if isinstance(body, list) else [body]
    error = classify_errors(items, int(cause.get("httpStatusCode") or 500), stage=stage)
    error.details["referenceId"] = cause.get("referenceId")
    return error


def _library_error(exc: LibraryError, stage: Stage) -> SyncError:
    content = exc.content
    if isinstance(content, list):
        items: list[Any] = content
    elif isinstance(content, dict):
        items = [content]
    else:
        items = [{"errorCode": f"HTTP_{exc.status}", "message": str(content)[:300]}]
    return classify_errors(items, exc.status, stage=stage)


# Transport failures, most specific first: (exception type, code, family).
_TRANSPORT: list[tuple[type[Exception], str, type[SalesforceError]]] = [
    (requests.exceptions.SSLError, "TLS_ERROR", SalesforceUnavailable),
    (requests.exceptions.Timeout, "TIMEOUT", SalesforceUnavailable),
    (requests.exceptions.ConnectionError, "CONNECTION_ERROR", SalesforceUnavailable),
    (requests.exceptions.ChunkedEncodingError, "CONNECTION_ERROR", SalesforceUnavailable),
    (requests.exceptions.JSONDecodeError, "BAD_RESPONSE", SalesforceUnavailable),
    (requests.exceptions.RequestException, "REQUEST_ERROR", SalesforceRejected),
]


def _transport_error(exc: requests.RequestException, what: str, stage: Stage) -> SyncError:
    for kind, code, family in _TRANSPORT:
        if isinstance(exc, kind):
            # The exception text names the URL, whose query may hold a phone number: only the type is kept.
            return family(f"Salesforce {what} failed: {type(exc).__name__}", stage=stage, code=code)
    raise AssertionError("unreachable: RequestException is the last row")  # pragma: no cover


# --- client ----------------------------------------------------------------------------------------------


def _new_http(settings: Settings) -> requests.Session:
    http = new_session(pool_size=settings.worker_concurrency)
    http.verify = settings.requests_verify
    http.headers["User-Agent"] = "crm-sync (simple-salesforce)"
    return http


def external_id_path(sobject: str, field: str, value: str) -> str:
    """``sobjects/{Obj}/{Field}/{value}`` with the value percent-quoted (simple-salesforce's convention)."""
    return f"sobjects/{sobject}/{format_external_id(field, value)}"


class SalesforceClient:
    """Thread-safe: one session shared by a worker's threads; the login happens on first use."""

    def __init__(
        self,
        settings: Settings,
        *,
        http: requests.Session | None = None,
        read_attempts: int = retries.SALESFORCE_READS.attempts,
    ) -> None:
        self.settings = settings
        self.http = http or _new_http(settings)
        if self.http.verify is False:
            raise ValueError("TLS verification must stay on for Salesforce (verify=False refused)")
        self.http.hooks.setdefault("response", []).append(self._remember_usage)
        self.timeout = (min(10.0, settings.salesforce_timeout), settings.salesforce_timeout)
        self._reads = replace(retries.SALESFORCE_READS, attempts=max(1, read_attempts))
        self._lock = threading.Lock()
        self._sf: Salesforce | None = None
        self._generation = 0
        self._usage: tuple[int, int] | None = None
        self._usage_seen_at = 0.0
        self._describes: dict[str, dict[str, Any]] = {}

    # --- session -------------------------------------------------------------------------------------

    def _connection(self) -> tuple[Salesforce, int]:
        with self._lock:
            if self._sf is None:
                session = obtain_session(self.settings, self.http)
                self._sf = Salesforce(
                    instance_url=session.instance_url,
                    session_id=session.access_token,
                    session=self.http,
                    version=self.settings.salesforce_api_version,
                    object_pairs_hook=dict,
                )
                self._generation += 1
                log.info("salesforce.session_opened", generation=self._generation)
            return self._sf, self._generation

    def _drop_session(self, generation: int) -> None:
        with self._lock:
            if self._generation == generation:  # not already replaced by another thread
                self._sf = None

    def _remember_usage(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        header = response.headers.get("Sforce-Limit-Info")
        if header:
            usage = Salesforce.parse_api_usage(header).get("api-usage")
            if usage is not None:
                self._usage = (usage[0], usage[1])
                self._usage_seen_at = time.time()

    @property
    def instance_url(self) -> str:
        """The org's instance URL (logs in when not done yet): links into the org start with it."""
        sf, _ = self._connection()
        return f"https://{sf.sf_instance}"

    @property
    def api_usage_seen_at(self) -> float:
        """When (epoch seconds) ``api_usage`` was read off a response; 0 before any."""
        return self._usage_seen_at

    @property
    def api_usage(self) -> tuple[int, int] | None:
        """(used, max) from the last ``Sforce-Limit-Info`` header seen, or None before any call."""
        return self._usage

    # --- plumbing ------------------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, *, stage: Stage, params: dict[str, str] | None = None, json: Any = None
    ) -> Any:
        """One REST call (``path`` relative to ``/services/data/vXX.X/``); one session refresh on 401."""
        what = f"{method} {path.split('/')[0] or 'resources'}"
        for attempt in (1, 2):
            sf, generation = self._connection()
            try:
                # verify is passed per request: requests lets REQUESTS_CA_BUNDLE override a Session's verify.
                return sf.restful(
                    path,
                    params=params,
                    method=method,
                    json=json,
                    timeout=self.timeout,
                    verify=self.http.verify,
                )
            except SalesforceExpiredSession as exc:
                if attempt == 1:
                    log.info("salesforce.session_refresh", request=what)
                    self._drop_session(generation)
                    continue
                error = _library_error(exc, stage)
                raise SalesforceSessionExpired(
                    f"Salesforce session still invalid after a fresh login ({what})",
                    stage=stage,
                    code=error.code or "INVALID_SESSION_ID",
                    http_status=401,
                ) from None
            except LibraryError as exc:
                raise _library_error(exc, stage) from None
            except requests.RequestException as exc:
                raise _transport_error(exc, what, stage) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, fn: Callable[[], T]) -> T:
        """Run a read, retrying ``SalesforceUnavailable`` (never the limit or an expired session)."""
        retrying = self._reads.retrying(
            SalesforceUnavailable,
            event="salesforce.read_retry",
        )
        return retrying(fn)

    # --- reads ---------------------------------------------------------------------------------------

    def query(self, soql: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """All records of a SOQL query (every page), each with its ``attributes``."""
        endpoint = "queryAll/" if include_deleted else "query/"
        page = self._read(lambda: self._call("GET", endpoint, params={"q": soql}, stage=Stage.LOOKUP)) or {}
        records: list[dict[str, Any]] = list(page.get("records", []))
        while not page.get("done", True) and page.get("nextRecordsUrl"):
            match = _DATA_PATH.match(str(page["nextRecordsUrl"]))
            if match is None:
                raise SalesforceRejected(
                    "unexpected nextRecordsUrl in query reply", stage=Stage.LOOKUP, code="BAD_RESPONSE"
                )
            path = match.group(1)
            page = self._read(partial(self._call, "GET", path, stage=Stage.LOOKUP)) or {}
            records.extend(page.get("records", []))
        return records

    def search(self, sosl: str) -> list[dict[str, Any]]:
        """The ``searchRecords`` of a SOSL search."""
        reply = self._read(lambda: self._call("GET", "search/", params={"q": sosl}, stage=Stage.LOOKUP)) or {}
        return list(reply.get("searchRecords", []))

    def describe(self, sobject: str) -> dict[str, Any]:
        """``sobjects/{Obj}/describe``, cached for the life of this client."""
        cached = self._describes.get(sobject)
        if cached is not None:
            return cached
        path = f"sobjects/{quote(sobject, safe='')}/describe"
        result: dict[str, Any] = self._read(lambda: self._call("GET", path, stage=Stage.PLAN))
        self._describes[sobject] = result
        return result

    def get(self, sobject: str, record_id: str, fields: list[str] | None = None) -> dict[str, Any]:
        path = f"sobjects/{quote(sobject, safe='')}/{quote(record_id, safe='')}"
        params = {"fields": ",".join(fields)} if fields else None
        result: dict[str, Any] = self._read(lambda: self._call("GET", path, params=params, stage=Stage.LOOKUP))
        return result

    def limits(self) -> dict[str, Any]:
        result: dict[str, Any] = self._read(lambda: self._call("GET", "limits/", stage=Stage.LOOKUP)) or {}
        return result

    # --- writes (never retried here) -----------------------------------------------------------------

    def create(self, sobject: str, fields: dict[str, Any]) -> str:
        """Insert one record; returns its id."""
        reply = self._call("POST", f"sobjects/{quote(sobject, safe='')}/", json=fields, stage=Stage.WRITE)
        return str(reply["id"])

    def update(self, sobject: str, record_id: str, fields: dict[str, Any]) -> None:
        path = f"sobjects/{quote(sobject, safe='')}/{quote(record_id, safe='')}"
        self._call("PATCH", path, json=fields, stage=Stage.WRITE)

    def delete(self, sobject: str, record_id: str) -> None:
        path = f"sobjects/{quote(sobject, safe='')}/{quote(record_id, safe='')}"
        self._call("DELETE", path, stage=Stage.WRITE)

    def upsert(
        self, sobject: str, ext_field: str, value: str, fields: dict[str, Any], *, update_only: bool = False
    ) -> UpsertResult:
        """Upsert by external id; ``fields`` must not hold ``Id`` or ``ext_field`` (Salesforce refuses it)."""
        params = {"updateOnly": "true"} if update_only else None
        reply = self._call(
            "PATCH",
            external_id_path(sobject, ext_field, value),
            params=params,
            json=fields,
            stage=Stage.WRITE,
        )
        if not isinstance(reply, dict):
            return UpsertResult(None, False)  # API < 46.0: 204 = updated
        return UpsertResult(str(reply.get("id")) if reply.get("id") else None, bool(reply.get("created", True)))

    def tooling_create(self, sobject: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``tooling/sobjects/{Obj}`` (Tooling API, e.g. ``CustomField``); the reply (``id``, ``success``,
        ``errors``, ``warnings``, ``infos``). Refusals raise the sorted error (``INSUFFICIENT_ACCESS``, ...)."""
        reply = self._call("POST", f"tooling/sobjects/{quote(sobject, safe='')}", json=body, stage=Stage.WRITE)
        return dict(reply or {})

    def composite(self, subrequests: list[dict[str, Any]], *, all_or_none: bool) -> list[dict[str, Any]]:
        """POST ``composite``; returns the ``compositeResponse`` list (sub-failures are NOT raised: see
        ``composite_error``). One API call however many subrequests (at most 25)."""
        body = {"allOrNone": all_or_none, "compositeRequest": subrequests}
        reply = self._call("POST", "composite", json=body, stage=Stage.WRITE) or {}
        return list(reply.get("compositeResponse", []))

    def collection_create(
        self, sobject: str, records: list[dict[str, Any]], *, all_or_none: bool
    ) -> list[dict[str, Any]]:
        """POST ``composite/sobjects``: per-record results in input order (id, success, errors)."""
        return self._collection("POST", "composite/sobjects", sobject, records, all_or_none)

    def collection_update(
        self, sobject: str, records: list[dict[str, Any]], *, all_or_none: bool
    ) -> list[dict[str, Any]]:
        """PATCH ``composite/sobjects``: each record carries its ``Id``."""
        return self._collection("PATCH", "composite/sobjects", sobject, records, all_or_none)

    def collection_upsert(
        self, sobject: str, ext_field: str, records: list[dict[str, Any]], *, all_or_none: bool
    ) -> list[dict[str, Any]]:
        """PATCH ``composite/sobjects/{Obj}/{ExtField}``; each record carries ``ext_field``."""
        path = f"composite/sobjects/{quote(sobject, safe='')}/{quote(ext_field, safe='')}"
        return self._collection("PATCH", path, sobject, records, all_or_none)

    def _collection(
        self, method: str, path: str, sobject: str, records: list[dict[str, Any]], all_or_none: bool
    ) -> list[dict[str, Any]]:
        if len(records) > COLLECTION_MAX:
            raise ValueError(f"at most {COLLECTION_MAX} records per collection request (got {len(records)})")
        typed = [
            {"attributes": {"type": sobject}, **{k: v for k, v in r.items() if k != "attributes"}} for r in records
        ]
        reply = self._call(method, path, json={"allOrNone": all_or_none, "records": typed}, stage=Stage.WRITE)
        return list(reply or [])
