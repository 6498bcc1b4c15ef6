"""HTTP client of the Twenty2 API: fetch one call's detail and its transcript, sorted into typed errors.

Contract:

- ``get_call_detail(call_id)`` returns a validated, *final* ``CallDetail`` or raises a ``Twenty2Error``
  subclass from ``worker.errors`` (stage ``fetch``, ``code`` = Twenty2's code or ``HTTP_<status>``).
- ``fetch_transcript(link)`` returns the transcript text (at most ``TRANSCRIPT_MAX_BYTES``), or None when
  there is none to fetch (missing, not available, past ``expires_at``, or storage answers 403/404/410).
- Transient failures (connection errors, timeouts, 429, 5xx, and a 2xx whose body is garbled: a detail
  that is not JSON, a transcript that is a web page) are retried here, bounded, with the one
  backoff of ``worker.retry`` (jitter, ``Retry-After`` honoured; ``retry.TWENTY2``); when the attempts run
  out the last typed error is raised.
  Everything else is raised at once.
- Twenty2 documents two error bodies (``shared/reference/twenty2-api.md`` §4); both are read, and so are
  bodies that are not JSON at all (gateways answer HTML).
- Secrets (key, secret, Authorization header) and full phone numbers never reach logs or exceptions (the
  messages kept are masked by ``phones.mask_numbers``).
"""

from __future__ import annotations

import base64
import importlib.metadata
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
import structlog
from pydantic import ValidationError
from requests.adapters import HTTPAdapter

from worker import retry as retries
from worker.errors import (
    CallNotFinal,
    Stage,
    Twenty2BadRequest,
    Twenty2BadResponse,
    Twenty2Error,
    Twenty2RateLimited,
    Twenty2Unavailable,
)
from worker.http import new_session
from worker.settings import Settings
from worker.twenty2.answers import (
    error_from_json,
    error_from_response,
    garbled_body,
    is_html,
    transport_error,
    validation_summary,
)
from worker.twenty2.logs import CallLogPage, read_page
from worker.twenty2.models import CallDetail, Link, TriggerAnswer, is_call_id

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: Transcripts larger than this are cut (they are plain text; a real one is a few KB).
TRANSCRIPT_MAX_BYTES = 1024 * 1024

#: Storage answers that mean "this link is no longer valid" (a signed URL past its expiry, or deleted).
TRANSCRIPT_GONE_STATUSES = frozenset({403, 404, 410})

#: Error classes the client retries itself; anything else is raised on the first occurrence.
TRANSIENT_ERRORS: tuple[type[Twenty2Error], ...] = (Twenty2Unavailable, Twenty2RateLimited)


def _version() -> str:
    try:
        return importlib.metadata.version("crm-sync")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


USER_AGENT = f"crm-sync/{_version()}"


def _decode(data: bytes, content_type: str | None) -> str:
    """Text in the declared charset; UTF-8 when none is declared (not requests' Latin-1 guess for text/*:
    transcripts hold Hindi) or when the declared one is unknown."""
    match = re.search(r"charset=\"?([\w.:-]+)", content_type or "", re.IGNORECASE)
    try:
        return data.decode(match.group(1) if match else "utf-8", errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with default ports filled in; an unreadable port gives port None, an unreadable
    URL ("https://[::1") ("", "", None)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "", "", None
    try:
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        port = None
    return parts.scheme, (parts.hostname or "").lower(), port


#: A well-formed call id no call has (the doctor's probe).
PROBE_CALL_ID = "call_crmsyncdoctor0"


class Twenty2Client:
    """Client of one Twenty2 workspace. Thread-safe as far as ``requests.Session`` is (the worker shares one).

    ``before_request`` runs before every request to the API host, retries included (the hook for a shared
    rate limiter); transcript downloads from another host do not count against the API's limit.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        http: requests.Session | None = None,
        retry: retries.Backoff = retries.TWENTY2,
        before_request: Callable[[], None] | None = None,
    ) -> None:
        self._base = settings.twenty2_base_url.rstrip("/")
        self._origin = _origin(self._base)
        self._host = self._origin[1]
        self._verify = settings.requests_verify
        self._timeout = (settings.twenty2_connect_timeout, settings.twenty2_read_timeout)
        self._retry = retry
        self._before_request = before_request
        self._rate_limit_hint = 60.0 / max(1, settings.twenty2_rate_limit_per_minute)
        self._owns_http = http is None
        self._http = http or new_session(pool_size=settings.worker_concurrency)
        token = base64.b64encode(
            f"{settings.twenty2_api_key.get_secret_value()}:{settings.twenty2_api_secret.get_secret_value()}".encode()
        ).decode("ascii")
        # Per-request headers, never session headers: they must not follow a download to the storage host.
        self._api_headers = {
            "Authorization": f"Basic {token}",
            "x-workspace-id": settings.twenty2_workspace_id,
            "Accept": "application/json",
            "Content-Type": "application/json",  # the docs show it on GETs too
            "User-Agent": USER_AGENT,
        }

    def close(self) -> None:
        """Close the session when this client made it, and its pooled sockets now: urllib3 2 leaves them
        to the garbage collector, and an exception traceback can keep them open for a long time."""
        if not self._owns_http:
            return
        for adapter in self._http.adapters.values():
            if isinstance(adapter, HTTPAdapter):
                for key in adapter.poolmanager.pools.keys():  # noqa: SIM118 - the container refuses iteration
                    pool = adapter.poolmanager.pools.get(key)
                    if pool is not None:
                        pool.close()
        self._http.close()

    def __enter__(self) -> Twenty2Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Twenty2Client(base={self._base!r})"

    # --- public API -------------------------------------------------------------------------------------

    def get_call_detail(self, call_id: str) -> CallDetail:
        """``GET /call/detail``: the validated detail of a final call.

        Raises ``Twenty2BadRequest`` (no request made) for an id that is not Twenty2-shaped,
        ``CallNotFinal`` when the call has not ended, ``Twenty2BadResponse`` for a 2xx whose JSON is not the
        documented shape, ``Twenty2Unavailable`` ``NOT_JSON`` for a 2xx that stayed not JSON through the
        retries, and the status-mapped ``Twenty2Error`` classes otherwise.
        """
        if not isinstance(call_id, str) or not is_call_id(call_id):
            raise Twenty2BadRequest(
                "refused: not a Twenty2 call id (24 hex digits or call_…)",
                stage=Stage.FETCH,
                code="INVALID_CALL_ID",
            )
        response, body = self._retrying(lambda: self._json(self._api_get("/call/detail", {"call_id": call_id})))
        detail = self._parse_detail(body, response.status_code)
        if detail.call.call_id.lower() != call_id.lower():
            # The wrong call's outcome must never be written under this id.
            raise Twenty2BadResponse(
                "detail is for a different call id",
                stage=Stage.FETCH,
                code="CALL_ID_MISMATCH",
                http_status=response.status_code,
            )
        if not detail.call.is_final:
            raise CallNotFinal(
                f"call {call_id} is {detail.call.status or 'without status'}, not ended yet",
                stage=Stage.FETCH,
                code="CALL_NOT_FINAL",
                http_status=response.status_code,
                details={"status": detail.call.status},
            )
        return detail

    def iter_call_logs(self, *, max_pages: int = 1000) -> Iterator[CallLogPage]:
        """``GET /call/logs``, page by page: the first request with no parameter (the docs name none), the
        next ones only as the response says (``worker.twenty2.logs``). Every request passes ``before_request``
        (the rate limiter) and is retried like the detail. Stops after ``max_pages``, on an empty page, when
        a page points back to a request already made, or at a next link to another origin (the credentials
        never leave the API host). Raises ``Twenty2Error`` as ``get_call_detail`` does."""
        params: dict[str, str] = {}
        url = f"{self._base}/call/logs"
        asked: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        for _ in range(max_pages):
            asked.add((url, tuple(sorted(params.items()))))
            response, body = self._retrying(partial(self._get_json, url, params))
            page = read_page(body, sent=params, status=response.status_code)
            yield page
            if page.next is None or not page.calls:
                return
            if page.next.url is not None:
                url, params = urljoin(f"{self._base}/", page.next.url), {}
                if _origin(url) != self._origin:
                    log.warning("twenty2.logs.next_refused", reason="another origin", host=_origin(url)[1])
                    return
            else:
                url, params = f"{self._base}/call/logs", page.next.params
            if (url, tuple(sorted(params.items()))) in asked:
                log.warning("twenty2.logs.loop", pages=len(asked))
                return
        log.warning("twenty2.logs.max_pages", max_pages=max_pages)

    def probe(self) -> requests.Response:
        """One cheap authenticated request, for ``crm-sync doctor``: ``GET /call/detail`` of an id no call has.
        404 (CALL_NOT_FOUND) means the key, secret and workspace were accepted; 401/403 that they were not.
        Returns the response whatever its status (its ``Date`` header tells Twenty2's clock); transport
        failures raise the sorted ``Twenty2Error``."""
        return self._send("GET", f"{self._base}/call/detail", params={"call_id": PROBE_CALL_ID})

    def fetch_transcript(self, link: Link | None) -> str | None:
        """The transcript text behind ``link`` (UTF-8 unless the server says otherwise, cut at 1 MB).

        None, without a request, for a missing/unavailable link or one past ``expires_at``; None when
        storage answers 403/404/410 (expired or removed). 5xx/429/timeouts and a web page in place of the
        text (``NOT_TEXT``) are retried, then raised as ``Twenty2Unavailable``/``Twenty2RateLimited``; other
        4xx raise their mapped class.
        """
        if link is None or not link.url or link.available is False:
            return None
        if link.expires_at is not None and link.expires_at <= datetime.now(UTC):
            log.info("twenty2.transcript.expired", expires_at=link.expires_at.isoformat())
            return None
        origin = _origin(link.url)
        if origin[0] != "https":
            log.warning("twenty2.transcript.refused", reason="not https", host=origin[1])
            return None
        same_host = origin == self._origin
        try:
            data, content_type = self._retrying(lambda: self._download(link.url or "", same_host, origin[1]))
        except Twenty2Error as exc:
            if exc.http_status in TRANSCRIPT_GONE_STATUSES:
                log.info("twenty2.transcript.gone", http_status=exc.http_status, host=origin[1])
                return None
            raise
        return _decode(data, content_type)

    def trigger_outbound_call(
        self, *, agent_id: str, callee_phone: str, caller_phone: str, input_parameters: dict[str, Any]
    ) -> TriggerAnswer:
        """``POST /agent/trigger-outbound-call``: place one call. Sent ONCE, never retried here: the endpoint
        has no idempotency key, so a retry after a lost answer could place a second call (the caller
        resolves a lost answer from ``GET /call/logs``). Raises the sorted ``Twenty2Error`` classes; a
        transport failure after sending (timeout, reset) is ``Twenty2Unavailable`` and means "unknown"."""
        body = {
            "agent_id": agent_id,
            "callee_phone": callee_phone,
            "caller_phone": caller_phone,
            "input_parameters": input_parameters,
        }
        response = self._send("POST", f"{self._base}/agent/trigger-outbound-call", json=body)
        if not 200 <= response.status_code < 300:
            raise error_from_response(response, rate_limit_hint=self._rate_limit_hint)
        _, data = self._json(response)
        if not isinstance(data, dict) or data.get("success") is False:
            raise Twenty2BadResponse(
                "trigger answered 2xx without a call id",
                stage=Stage.FETCH,
                code="BAD_SHAPE",
                http_status=response.status_code,
            )
        try:
            return TriggerAnswer.model_validate(data)
        except ValidationError as exc:
            raise Twenty2BadResponse(
                f"trigger answer does not match the documented shape: {validation_summary(exc)}",
                stage=Stage.FETCH,
                code="BAD_SHAPE",
                http_status=response.status_code,
            ) from None

    # --- internals --------------------------------------------------------------------------------------

    def _retrying(self, attempt: Callable[[], T]) -> T:
        return self._retry.retrying(TRANSIENT_ERRORS, event="twenty2.retry")(attempt)

    def _get_json(self, url: str, params: dict[str, str]) -> tuple[requests.Response, Any]:
        return self._json(self._api_get_url(url, params))

    def _api_get(self, path: str, params: dict[str, str]) -> requests.Response:
        return self._api_get_url(f"{self._base}{path}", params)

    def _api_get_url(self, url: str, params: dict[str, str]) -> requests.Response:
        response = self._send("GET", url, params=params)
        if not 200 <= response.status_code < 300:
            raise error_from_response(response, rate_limit_hint=self._rate_limit_hint)
        return response

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One request to the API host, whatever its status: through ``before_request`` (the rate limiter),
        with the credentials, never following a redirect (it would carry them elsewhere); transport
        failures raise the sorted ``Twenty2Error``."""
        if self._before_request is not None:
            self._before_request()
        try:
            return self._http.request(
                method,
                url,
                headers=self._api_headers,
                timeout=self._timeout,
                verify=self._verify,
                allow_redirects=False,
                **kwargs,
            )
        except requests.RequestException as exc:
            raise transport_error(exc, self._host) from None

    def _download(self, url: str, same_host: bool, host: str) -> tuple[bytes, str | None]:
        if same_host and self._before_request is not None:
            self._before_request()
        headers = dict(self._api_headers) if same_host else {"User-Agent": USER_AGENT}
        headers["Accept"] = "text/plain, */*;q=0.5"
        headers.pop("Content-Type", None)
        try:
            with self._http.get(
                url,
                headers=headers,
                timeout=self._timeout,
                verify=self._verify,
                stream=True,
                allow_redirects=not same_host,
            ) as response:
                if not 200 <= response.status_code < 300:
                    raise error_from_response(response, rate_limit_hint=self._rate_limit_hint)
                data = bytearray()
                for chunk in response.iter_content(64 * 1024):
                    data.extend(chunk)
                    if len(data) >= TRANSCRIPT_MAX_BYTES:
                        log.warning("twenty2.transcript.truncated", limit_bytes=TRANSCRIPT_MAX_BYTES)
                        break
                content_type = response.headers.get("Content-Type")
                if is_html(bytes(data[:512]), content_type):
                    # A proxy's or gateway's page where the text should be: as transient as its 5xx.
                    raise Twenty2Unavailable(
                        f"HTTP {response.status_code} with a web page instead of the transcript "
                        f"({garbled_body(bytes(data), response)})",
                        stage=Stage.FETCH,
                        code="NOT_TEXT",
                        http_status=response.status_code,
                    )
                return bytes(data[:TRANSCRIPT_MAX_BYTES]), content_type
        except requests.RequestException as exc:
            raise transport_error(exc, host) from None

    @staticmethod
    def _json(response: requests.Response) -> tuple[requests.Response, Any]:
        """The response and its JSON body. A 2xx whose body is not JSON (cut off in transit, a proxy's HTML
        page) is transient far more often than not: ``Twenty2Unavailable`` ``NOT_JSON``, retried like a 5xx."""
        try:
            return response, response.json()
        except ValueError:
            raise Twenty2Unavailable(
                f"HTTP {response.status_code} whose body is not JSON ({garbled_body(response.content, response)})",
                stage=Stage.FETCH,
                code="NOT_JSON",
                http_status=response.status_code,
            ) from None

    @staticmethod
    def _parse_detail(body: Any, status: int) -> CallDetail:
        if not isinstance(body, dict):
            raise Twenty2BadResponse(
                f"detail body is a JSON {type(body).__name__}, not an object",
                stage=Stage.FETCH,
                code="BAD_SHAPE",
                http_status=status,
            )
        # An explicit `success: false` is an error in disguise; `success` missing is fine when `call` is there
        # (and without `call` the validation below fails anyway).
        if body.get("success") is False:
            error = error_from_json(body)
            raise Twenty2BadResponse(
                f"HTTP {status} with success=false" + (f": {error.message}" if error.message else ""),
                stage=Stage.FETCH,
                code=error.code or "SUCCESS_FALSE",
                http_status=status,
            )
        try:
            return CallDetail.model_validate(body)
        except ValidationError as exc:
            raise Twenty2BadResponse(
                f"detail does not match the documented shape: {validation_summary(exc)}",
                stage=Stage.FETCH,
                code="BAD_SHAPE",
                http_status=status,
            ) from None
