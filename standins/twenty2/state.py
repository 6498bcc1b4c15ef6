"""``Twenty2State``: everything the Twenty2 stand-in knows (calls, pending calls, faults, rate limit, stats)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from standins.twenty2.data import (
    DEFAULT_AGENTS,
    PENDING_STATUS,
    RATE_PER_SECOND,
    SandboxCall,
    add_month,
    generate_calls,
    iso,
    number,
    seed_calls,
)
from standins.twenty2.dialer import Dialer
from standins.twenty2.faults import Fault, Garble, Scope, Shape
from standins.twenty2.logs import PaginationMode, render_logs_page

DEFAULT_API_KEY = "sandbox-api-key"


DEFAULT_API_SECRET = "sandbox-api-secret"  # noqa: S105 - a well-known test credential of the local stand-in


DEFAULT_WORKSPACE_ID = "69bcb7e7cf2a02ecc7a28e17"  # the webhook example's workspace


#: Numbers bought under "Manage Numbers" (caller_phone must be one of them).
DEFAULT_ACTIVE_NUMBERS = frozenset({"9999999999", "7971441943"})


#: Per-minute window of the documented rate limit.
RATE_LIMIT_WINDOW_S = 60.0


class Pending:
    def __init__(self, fetches: int | None, until: float | None) -> None:
        self.fetches = fetches
        self.until = until


def call_record(call: SandboxCall, *, pending: bool, billed: bool) -> dict[str, Any]:
    """A call as Twenty2 renders it: the detail's ``call`` object (``billed``) or a ``/call/logs`` element.
    A call still held pending shows the pending status and no outcome yet."""
    record: dict[str, Any] = {
        "call_id": call.call_id,
        "agent_id": call.agent_id,
        "status": PENDING_STATUS if pending else call.status,
        "direction": call.direction,
        "callee_phone": call.callee_phone,
        "caller_phone": call.caller_phone,
        "duration_seconds": None if pending else call.duration_seconds,
        "billed_duration_seconds": None if pending else call.billed_duration_seconds,
        "cost": None if pending else call.cost_text,
        "started_at": iso(call.started_at),
        "ended_at": None if pending else iso(call.ended_at),
    }
    if not billed:
        del record["billed_duration_seconds"]
    return record


class Twenty2State:
    """Everything the sandbox knows; every method is thread-safe.

    Public, assignable settings (restored by ``reset``): ``latency_ms``, ``rate_limit_per_minute`` (None
    lifts the limit), ``rate_limit_retry_after`` (send ``Retry-After`` on 429), ``hang_seconds``.
    ``base_url`` (``https://127.0.0.1:PORT/api``) is used for links in webhook payloads; the API itself
    builds links from the request. ``clock`` (monotonic seconds) drives the rate limit, ``now`` the link
    expiry and generated calls; tests may replace both.
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        workspace_id: str = DEFAULT_WORKSPACE_ID,
        rate_limit_per_minute: int | None = 60,
        rate_limit_retry_after: bool = False,
        hang_seconds: float = 30.0,
        seed: int = 0,
        base_url: str = "https://127.0.0.1/api",
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.workspace_id = workspace_id
        self.agents = dict(DEFAULT_AGENTS)
        self.active_numbers = set(DEFAULT_ACTIVE_NUMBERS)
        self.base_url = base_url
        # Twenty2 serves recordings and transcripts from another host (storage.twentytwo.in); set this to a
        # second origin of the sandbox so clients treat storage as the documented separate host.
        self.storage_base_url: str | None = None
        self.clock = clock
        self.now = now
        self._initial = {
            "rate_limit_per_minute": rate_limit_per_minute,
            "rate_limit_retry_after": rate_limit_retry_after,
            "hang_seconds": hang_seconds,
            "latency_ms": 0.0,
            "logs_pagination": "none",
            "logs_page_size": 50,
        }
        self._seed = seed
        self._lock = threading.RLock()
        self._epoch = 0
        self.dialer = Dialer(self)  # trigger-outbound-call: calling hours, 3 at once, end + webhook
        self.reset()

    # settings ---------------------------------------------------------------------------------------------

    rate_limit_per_minute: int | None
    rate_limit_retry_after: bool
    hang_seconds: float
    latency_ms: float
    logs_pagination: PaginationMode
    logs_page_size: int

    def configure(self, **changes: Any) -> None:
        """Change settings by name (the admin ``/_sandbox/config`` uses this); unknown names are refused."""
        with self._lock:
            for name, value in changes.items():
                if name not in self._initial:
                    raise KeyError(name)
                setattr(self, name, value)

    def reset(self, *, keep_calls: bool = False) -> None:
        """Back to the start: settings, faults, stats, rate-limit windows; calls too unless ``keep_calls``.
        Requests hanging in a fault are released."""
        with self._lock:
            for name, value in self._initial.items():
                setattr(self, name, value)
            if not keep_calls:
                self._calls: dict[str, SandboxCall] = {c.call_id: c for c in seed_calls()}
                self._pending: dict[str, Pending] = {}
                self._raw: dict[str, tuple[int, Any]] = {}
            self._faults: list[Fault] = []
            self._rng = random.Random(self._seed)
            self._windows: dict[str, deque[float]] = {}
            self._arrivals: Counter[str] = Counter()
            self._by_status: Counter[int] = Counter()
            self._faults_injected = 0
            self._storage_with_auth = 0
            self._epoch += 1
        if not keep_calls:
            self.dialer.reset()  # outside our lock: the dialer takes its own, then ours

    @property
    def epoch(self) -> int:
        return self._epoch

    # calls ------------------------------------------------------------------------------------------------

    def add_call(self, call: SandboxCall | None = None, **fields: Any) -> str:
        """Add (or replace) a call; ``fields`` build a ``SandboxCall`` if no call is given; returns the id."""
        call = call.model_copy(deep=True) if call is not None else SandboxCall(**fields)
        with self._lock:
            self._calls[call.call_id] = call
            self._raw.pop(call.call_id, None)
        return call.call_id

    def add_generated_calls(
        self,
        n: int,
        *,
        seed: int | None = None,
        lead_ids: Sequence[str] | None = None,
        phones: Sequence[str] | None = None,
        lead_id_param: str = "salesforce_id",
    ) -> list[str]:
        """Add ``n`` calls from ``generate_calls`` (seeded by ``seed``, else by the state's RNG)."""
        with self._lock:
            seed = self._rng.randrange(2**31) if seed is None else seed
        calls = generate_calls(
            n, seed=seed, now=self.now(), lead_ids=lead_ids, phones=phones, lead_id_param=lead_id_param
        )
        for call in calls:
            self.add_call(call)
        return [c.call_id for c in calls]

    def get_call(self, call_id: str) -> SandboxCall:
        with self._lock:
            return self._calls[call_id].model_copy(deep=True)

    def call_ids(self) -> list[str]:
        with self._lock:
            return list(self._calls)

    def set_pending(self, call_id: str, *, fetches: int | None = None, seconds: float | None = None) -> None:
        """Serve the call as ``in-progress`` with ``ended_at`` null and no outputs: for the next ``fetches``
        detail requests, or for ``seconds``, or (neither) until ``finish``. Webhook payloads stay final."""
        with self._lock:
            if call_id not in self._calls:
                raise KeyError(call_id)
            until = None if seconds is None else self.clock() + seconds
            self._pending[call_id] = Pending(fetches, until)

    def finish(self, call_id: str, **updates: Any) -> None:
        """End a pending or queued call. A queued call (from the trigger endpoint) gets a plausible
        completed outcome unless ``updates`` say otherwise."""
        with self._lock:
            call = self._calls[call_id]
            self._pending.pop(call_id, None)
            if call.ended_at is None:
                ended = self.now().replace(microsecond=0)
                duration = int(updates.get("duration_seconds") or 60)
                defaults: dict[str, Any] = {
                    "status": "completed",
                    "started_at": ended - timedelta(seconds=duration + 5),
                    "answered_at": ended - timedelta(seconds=duration),
                    "ended_at": ended,
                    "duration_seconds": duration,
                    "billed_duration_seconds": duration,
                    "cost": (Decimal(duration) * RATE_PER_SECOND).quantize(Decimal("0.01")),
                    "disconnection_reason": "user_hangup",
                    "recording_available": True,
                    "transcript": "Agent: Namaste, main aapki assistant bol rahi hoon.\nUser: Haan ji.\n",
                    "links_expire_at": add_month(ended),
                }
                updates = {**defaults, **updates}
            if updates:
                self._calls[call_id] = SandboxCall.model_validate({**call.model_dump(), **updates})

    def update_call(self, call_id: str, **updates: Any) -> None:
        """Change fields of a call as they are (the dialer moves triggered calls along with this)."""
        with self._lock:
            call = self._calls[call_id]
            self._calls[call_id] = SandboxCall.model_validate({**call.model_dump(), **updates})

    def set_raw_detail(self, call_id: str, body: Any, status_code: int = 200) -> None:
        """Answer ``GET /call/detail?call_id=<call_id>`` with exactly ``body`` (any JSON value, or a str sent
        as text): for malformed or undocumented responses."""
        with self._lock:
            self._raw[call_id] = (status_code, body)

    # faults -----------------------------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault.model_copy())

    def fail_next(
        self,
        n: int,
        status: int,
        *,
        shape: Shape | None = None,
        code: str | None = None,
        retry_after: str | None = None,
        scope: Scope = "api",
    ) -> None:
        self.add_fault(Fault(status=status, count=n, shape=shape, code=code, retry_after=retry_after, scope=scope))

    def fail_randomly(self, p: float, status: int, *, shape: Shape | None = None, scope: Scope = "api") -> None:
        self.add_fault(Fault(status=status, probability=p, shape=shape, scope=scope))

    def garble_next(self, n: int, how: Garble, *, scope: Scope = "api") -> None:
        """The next ``n`` matching answers are spoilt on the way out (see ``Fault``)."""
        self.add_fault(Fault(garble=how, count=n, scope=scope))

    def hang_next(self, n: int, *, seconds: float | None = None, scope: Scope = "api") -> None:
        self.add_fault(Fault(hang=True, count=n, hang_seconds=seconds, scope=scope))

    def hang_randomly(self, p: float, *, seconds: float | None = None, scope: Scope = "api") -> None:
        self.add_fault(Fault(hang=True, probability=p, hang_seconds=seconds, scope=scope))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, scope: Literal["api", "storage"]) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.scope not in (scope, "all"):
                    continue
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    self._faults_injected += 1
                    return fault
                if fault.probability is not None and self._rng.random() < fault.probability:
                    self._faults_injected += 1
                    return fault
            return None

    # rate limit -------------------------------------------------------------------------------------------

    def _admit(self, workspace_id: str) -> float | None:
        """None when the request is within the limit (and counts it); else seconds until a slot frees."""
        with self._lock:
            limit = self.rate_limit_per_minute
            if limit is None:
                return None
            now = self.clock()
            window = self._windows.setdefault(workspace_id, deque())
            while window and window[0] <= now - RATE_LIMIT_WINDOW_S:
                window.popleft()
            if len(window) >= limit:
                return window[0] + RATE_LIMIT_WINDOW_S - now
            window.append(now)
            return None

    # stats ------------------------------------------------------------------------------------------------

    def _record_arrival(self, path: str, storage_with_auth: bool) -> None:
        with self._lock:
            self._arrivals[path] += 1
            self._storage_with_auth += storage_with_auth

    def _record_status(self, status: int) -> None:
        with self._lock:
            self._by_status[status] += 1

    def stats(self) -> dict[str, Any]:
        """Requests seen (admin endpoints excluded): total, by path, by answered status."""
        with self._lock:
            return {
                "requests": sum(self._arrivals.values()),
                "by_path": dict(self._arrivals),
                "by_status": {str(k): v for k, v in sorted(self._by_status.items())},
                "faults_injected": self._faults_injected,
                "storage_requests_with_authorization": self._storage_with_auth,
            }

    def request_count(self, path: str | None = None) -> int:
        """Requests that arrived (at ``path``, e.g. ``/api/call/detail``, when given)."""
        with self._lock:
            return self._arrivals[path] if path is not None else sum(self._arrivals.values())

    # rendering --------------------------------------------------------------------------------------------

    def _detail_call(self, call_id: str) -> tuple[SandboxCall, bool] | tuple[int, Any] | None:
        """(call, pending) for a known call, (status, body) for a raw override, None when unknown."""
        with self._lock:
            if call_id in self._raw:
                return self._raw[call_id]
            call = self._calls.get(call_id)
            if call is None:
                return None
            pending = self._pending.get(call_id)
            if pending is not None:
                done = (pending.until is not None and self.clock() >= pending.until) or (
                    pending.fetches is not None and pending.fetches <= 0
                )
                if done:
                    del self._pending[call_id]
                    pending = None
                elif pending.fetches is not None:
                    pending.fetches -= 1
            return call.model_copy(deep=True), pending is not None

    def render_detail(self, call: SandboxCall, base_url: str, *, pending: bool = False) -> dict[str, Any]:
        """The documented ``GET /call/detail`` body (field order as in the docs)."""
        links = call.ended_at is not None and not pending

        def link(kind: str, ext: str, available: bool) -> dict[str, Any] | None:
            if not (links and available):
                return None
            return {
                "url": f"{self.storage_base_url or base_url}/storage/{kind}/{call.call_id}.{ext}",
                "expires_at": iso(call.links_expire_at),
            }

        return {
            "success": True,
            "call": call_record(call, pending=pending, billed=True),
            "input_parameters": call.input_parameters,
            "output_parameters": {} if pending else call.output_parameters,
            "recording": link("recordings", "mp3", call.recording_available),
            "transcript": link("transcripts", "txt", call.transcript is not None),
        }

    def render_logs(self, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The ``GET /call/logs`` body: every call, newest first; the documented plain body unless
        ``logs_pagination`` asks for pages (``standins.twenty2.logs``). Raises ``BadLogsQuery``."""
        with self._lock:
            calls = [(c.model_copy(deep=True), c.call_id in self._pending) for c in self._calls.values()]
            mode, page_size = self.logs_pagination, self.logs_page_size
        calls.sort(key=lambda item: item[0].started_at or datetime.max.replace(tzinfo=UTC), reverse=True)
        # The list element is the detail's `call` object without `billed_duration_seconds` (the docs' example).
        entries = [call_record(c, pending=pending, billed=False) for c, pending in calls]
        return render_logs_page(entries, mode=mode, page_size=page_size, params=params or {})

    def webhook_payload(self, call_id: str, event: str | None = None) -> dict[str, Any]:
        """The documented post-call webhook for ``call_id`` (its final data, even while the detail is held
        pending), with a fresh ``event_id`` per call of this method (= per delivery)."""
        with self._lock:
            call = self._calls[call_id].model_copy(deep=True)
            assistant_name = self.agents.get(call.agent_id, "Assistant")
            workspace_id = self.workspace_id
        recording_url = (
            f"{self.storage_base_url or self.base_url}/storage/recordings/{call.call_id}.mp3"
            if call.recording_available
            else None
        )
        return {
            "event": event or ("call.completed" if call.status == "completed" else "call.failed"),
            "event_id": f"evt_{uuid.uuid4()}",
            "timestamp": iso(call.ended_at or self.now(), ms=True),
            "workspace_id": workspace_id,
            "assistant_id": call.agent_id,
            "assistant_name": assistant_name,
            "call": {
                "call_id": call.call_id,
                "direction": call.direction,
                "status": call.status,
                "from_number": call.caller_phone,
                "to_number": call.callee_phone,
                "started_at": iso(call.started_at, ms=True),
                "answered_at": iso(call.answered_at, ms=True),
                "ended_at": iso(call.ended_at, ms=True),
                "duration_seconds": call.duration_seconds,
                "billed_duration_seconds": call.billed_duration_seconds,
                "call_cost_inr": number(call.cost),
                "disconnection_reason": call.disconnection_reason,
            },
            "campaign": call.campaign,
            "contact": {"phone_number": call.callee_phone, "input_variables": call.input_parameters},
            "output_variables": call.output_parameters,
            "recording": {"available": call.recording_available, "url": recording_url},
            "transcript": {"available": call.transcript is not None},
        }

    def storage_object(self, kind: str, call_id: str) -> tuple[int, str | bytes]:
        """(status, content) of a storage link: 404 unknown, 403 past expiry (signed-URL style)."""
        with self._lock:
            call = self._calls.get(call_id)
            now = self.now()
        content: str | bytes | None = None
        if call is not None:
            content = (
                call.transcript if kind == "transcripts" else (b"ID3\x03\x00" if call.recording_available else None)
            )
        if call is None or content is None:
            return (
                404,
                "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>",
            )
        if call.links_expire_at is not None and now >= call.links_expire_at:
            return 403, "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
        return 200, content

    # trigger ------------------------------------------------------------------------------------------------

    def queue_call(self, agent_id: str, callee_phone: str, caller_phone: str, input_parameters: dict[str, Any]) -> str:
        call_id = f"call_{uuid.uuid4().hex[:10]}"
        self.add_call(
            SandboxCall(
                call_id=call_id,
                agent_id=agent_id,
                status="queued",
                callee_phone=callee_phone,
                caller_phone=caller_phone,
                duration_seconds=None,
                cost=None,
                input_parameters=input_parameters,
                recording_available=False,
            )
        )
        return call_id
