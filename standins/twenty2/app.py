"""A local stand-in for the Twenty2 API, faithful to its documentation (``shared/reference/twenty2-api.md``).

Serves, under ``/api`` (so ``TWENTY2_BASE_URL`` = ``https://127.0.0.1:PORT/api``):

- ``GET /call/detail?call_id=``, ``GET /call/logs``, ``POST /agent/trigger-outbound-call``, each needing
  ``Authorization: Basic base64(key:secret)`` and ``x-workspace-id`` (401 ``UNAUTHORIZED`` / 403
  ``FORBIDDEN``, error format A); missing parameters answer 422 in format B (``validationErrors``).
- 60 requests/minute per workspace (sliding window, configurable, liftable) → 429 ``RATE_LIMIT_EXCEEDED``
  (format A); no ``Retry-After`` unless switched on, as the docs document none.
- ``GET /storage/transcripts/{id}.txt`` and ``/storage/recordings/{id}.mp3``: the links the detail hands
  out, unauthenticated like signed URLs, 403 once past their ``expires_at``. Not rate limited (in reality
  they live on another host).

Seeded with the docs' example call ``call_9c4d7e12ab`` (exactly the documented detail, links rewritten to
this server) and the webhook example's failed call ``6a100328ba090039ac8610a2``.

Control from Python (``Twenty2State`` methods) or, for other processes, over the unauthenticated admin
endpoints under ``/_sandbox/``: faults (latency, the next N or a fraction p of requests answered with any
status or a hang), stats, reset, adding calls, pending calls, webhook payloads. All state is guarded by
one lock: handlers run in the server thread, tests and scripts drive it from others.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import calendar
import math
import random
import re
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

DEFAULT_API_KEY = "sandbox-api-key"
DEFAULT_API_SECRET = "sandbox-api-secret"  # noqa: S105 - a well-known test credential of the local stand-in
DEFAULT_WORKSPACE_ID = "69bcb7e7cf2a02ecc7a28e17"  # the webhook example's workspace

#: Published assistants (id → name): the API reference's example agent and the webhook example's.
DEFAULT_AGENTS = {"69de483c68b23495c853b43a": "Rohit", "6a02dc5d92b9cbce7962a2b5": "Varsha"}
#: Numbers bought under "Manage Numbers" (caller_phone must be one of them).
DEFAULT_ACTIVE_NUMBERS = frozenset({"9999999999", "7971441943"})

SEED_CALL_ID = "call_9c4d7e12ab"
SEED_FAILED_CALL_ID = "6a100328ba090039ac8610a2"

#: Per-minute window of the documented rate limit.
RATE_LIMIT_WINDOW_S = 60.0
#: Statuses shown by the detail while a call is not final (``set_pending``).
PENDING_STATUS = "in-progress"
#: Statuses of a call that has not ended (no ``ended_at``).
NOT_ENDED_STATUSES = frozenset({"queued", "initiated", "scheduled", "ringing", "in-progress"})

# Format A codes by status (documented ones; others get a generic code).
_CODES_A = {
    400: "INVALID_NUMBER",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "CALL_NOT_FOUND",
    429: "RATE_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
}
_MESSAGES = {
    400: "Bad Request",
    401: "Invalid or missing API key",
    403: "API key does not have access to this resource",
    404: "Not Found",
    405: "Method Not Allowed",
    422: "Validation errors",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Time-out",
}
#: Which body an injected fault answers with, by status, unless the fault names a shape: validation-ish
#: errors come from the API layer (format B), gateway errors from a proxy (HTML, not JSON).
_FAULT_SHAPES: dict[int, Literal["A", "B", "text"]] = {
    400: "B",
    422: "B",
    502: "text",
    503: "text",
    504: "text",
}

Shape = Literal["A", "B", "text"]
Scope = Literal["api", "storage", "all"]


# --- response bodies ---------------------------------------------------------------------------------------


def error_a(status: int, code: str | None = None, message: str | None = None) -> dict[str, Any]:
    """Format A (``/errors-rate-limits``)."""
    return {
        "success": False,
        "error": {
            "code": code or _CODES_A.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST"),
            "message": message or _MESSAGES.get(status, "Error"),
            "status": status,
        },
    }


def error_b(
    status: int, message: str | None = None, validation_errors: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """Format B (``/api-reference/error-rate-limits``); ``validationErrors`` only when given (422)."""
    body: dict[str, Any] = {
        "success": False,
        "statusCode": status,
        "message": message or _MESSAGES.get(status, "Error"),
    }
    if validation_errors is not None:
        body["validationErrors"] = validation_errors
    return body


def _error_response(
    status: int,
    shape: Shape,
    *,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    validation_errors: dict[str, list[str]] | None = None,
    message: str | None = None,
) -> Response:
    if shape == "text":
        title = f"{status} {_MESSAGES.get(status, 'Error')}"
        html = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>\n"
        return Response(html, status_code=status, media_type="text/html", headers=headers)
    if shape == "B":
        if status == 422 and validation_errors is None:
            validation_errors = {"call_id": ["Invalid"]}
        return JSONResponse(error_b(status, message, validation_errors), status_code=status, headers=headers)
    return JSONResponse(error_a(status, code, message), status_code=status, headers=headers)


def iso(value: datetime | None, *, ms: bool | None = None) -> str | None:
    """UTC ``...Z``; milliseconds always (``ms=True``, webhook style) or only when non-zero (API style)."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if ms or (ms is None and value.microsecond):
        text += f".{value.microsecond // 1000:03d}"
    return text + "Z"


def add_month(value: datetime) -> datetime:
    """One calendar month later (the docs' links expire exactly a month after ``ended_at``)."""
    year, month = (value.year + 1, 1) if value.month == 12 else (value.year, value.month + 1)
    return value.replace(year=year, month=month, day=min(value.day, calendar.monthrange(year, month)[1]))


def _number(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


# --- calls ------------------------------------------------------------------------------------------------


def _new_call_id() -> str:
    return uuid.uuid4().hex[:24]


class SandboxCall(BaseModel):
    """One call as the sandbox keeps it; rendered into the detail, the logs and webhook payloads."""

    model_config = ConfigDict(extra="forbid")

    call_id: str = Field(default_factory=_new_call_id)
    agent_id: str = "69de483c68b23495c853b43a"
    status: str = "completed"
    direction: str = "outbound"
    callee_phone: str = "9999999999"
    caller_phone: str = "9999999999"
    duration_seconds: int | None = 94
    billed_duration_seconds: int | None = None  # None: same as duration_seconds
    cost: Decimal | None = Decimal("15.67")
    currency: str = "INR"
    started_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    disconnection_reason: str | None = None
    input_parameters: dict[str, Any] = Field(default_factory=dict)
    output_parameters: dict[str, Any] = Field(default_factory=dict)
    recording_available: bool = True
    transcript: str | None = None  # the text served at the storage route; None: no transcript
    links_expire_at: datetime | None = None  # None: one month after ended_at
    campaign: dict[str, str] | None = None

    @field_validator("started_at", "answered_at", "ended_at", "links_expire_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _defaults(self) -> SandboxCall:
        # A call added with just a status still looks real: a final one has ended (now, by default).
        if self.ended_at is None and self.status not in NOT_ENDED_STATUSES:
            self.ended_at = datetime.now(UTC).replace(microsecond=0)
        if self.started_at is None and self.ended_at is not None:
            self.started_at = self.ended_at - timedelta(seconds=(self.duration_seconds or 0) + 5)
        if self.answered_at is None and self.status == "completed" and self.ended_at is not None:
            self.answered_at = self.ended_at - timedelta(seconds=self.duration_seconds or 0)
        if self.billed_duration_seconds is None and self.duration_seconds is not None:
            self.billed_duration_seconds = self.duration_seconds
        if self.links_expire_at is None and self.ended_at is not None:
            self.links_expire_at = add_month(self.ended_at)
        return self

    @property
    def cost_text(self) -> str | None:
        return None if self.cost is None else f"{self.cost} {self.currency}"


SEED_TRANSCRIPT = """\
Agent: Hello, this is Rohit calling from Twenty2. Am I speaking with the account holder?
User: Haan ji, boliye.
Agent: You had enquired about our plan last week. Are you still interested?
User: Yes, interested hoon, but abhi thoda busy hoon.
Agent: No problem at all. When should I call you back?
User: Tomorrow 11am. Kal subah gyarah baje call kar lena.
Agent: Perfect, I will call you tomorrow at 11am. Dhanyavaad!
User: Thank you, bye.
"""


def seed_calls() -> list[SandboxCall]:
    """The two calls of the docs: the detail example (completed) and the webhook example (failed)."""
    ended = datetime(2024, 12, 25, 10, 1, 34, tzinfo=UTC)
    documented = SandboxCall(
        call_id=SEED_CALL_ID,
        agent_id="69de483c68b23495c853b43a",
        status="completed",
        callee_phone="9999999999",
        caller_phone="9999999999",
        duration_seconds=94,
        billed_duration_seconds=94,
        cost=Decimal("15.67"),
        started_at=datetime(2024, 12, 25, 10, 0, 0, tzinfo=UTC),
        answered_at=datetime(2024, 12, 25, 10, 0, 0, tzinfo=UTC),
        ended_at=ended,
        disconnection_reason="user_hangup",
        input_parameters={"agentName": "Rohit"},
        output_parameters={
            "interested": "yes",
            "callback_requested": "yes",
            "callback_time": "Tomorrow 11am",
        },
        transcript=SEED_TRANSCRIPT,
        links_expire_at=datetime(2025, 1, 25, 10, 1, 34, tzinfo=UTC),
    )
    failed = SandboxCall(
        call_id=SEED_FAILED_CALL_ID,
        agent_id="6a02dc5d92b9cbce7962a2b5",
        status="failed",
        caller_phone="7971441943",
        callee_phone="9871532305",
        duration_seconds=0,
        billed_duration_seconds=0,
        cost=Decimal("0"),
        started_at=datetime(2026, 5, 22, 7, 18, 30, 92000, tzinfo=UTC),
        answered_at=None,
        ended_at=datetime(2026, 5, 22, 7, 18, 39, 684000, tzinfo=UTC),
        disconnection_reason="unanswered",
        input_parameters={"customerName": "Lakshay", "productInCart": "Shoes"},
        output_parameters={},
        recording_available=False,
        transcript=None,
        campaign={"campaign_id": "6a100328ba090039ac8610a0", "campaign_name": "web test"},
    )
    return [documented, failed]


# Generated calls: a spread of what real campaigns produce (Indian names, Hinglish/Hindi callback phrases).
_NAMES = [
    "Rohit",
    "Priya",
    "Amit",
    "Sneha",
    "Lakshay",
    "Anjali",
    "Vikram",
    "Pooja",
    "Arjun",
    "Kavya",
    "Imran",
    "Meera",
]
_PRODUCTS = ["Shoes", "Home loan", "Health insurance", "Credit card", "SUV test drive", "Gold loan"]
_INTERESTED = ["yes", "yes", "no", "maybe", "Yes", "haan", "nahi"]
CALLBACK_PHRASES = [
    "Tomorrow 11am",
    "kal subah 11 baje",
    "parso shaam 5 baje",
    "कल सुबह 10 बजे",
    "Monday ko 3 baje",
    "aaj shaam 6 baje",
    "next week",
    "2 ghante baad",
    "Friday evening",
    "weekend pe call karna",
    "25th ko dopahar 2 baje",
    "परसों दोपहर 3 बजे",
    "tomorrow after lunch",
    "abhi busy hoon, baad mein",
]
#: (status, disconnection_reason, weight)
_OUTCOMES = [
    ("completed", "user_hangup", 50),
    ("completed", "agent_hangup", 20),
    ("failed", "unanswered", 12),
    ("failed", "busy", 5),
    ("no-answer", "unanswered", 4),
    ("busy", "busy", 3),
    ("failed", "invalid_number", 3),
    ("failed", "user_rejected", 3),
]
_HESITANT = ["Abhi soch raha hoon.", "Nahi, abhi zarurat nahi hai.", "Maybe, price kya hai?"]
_RATE_PER_SECOND = Decimal("0.1667")  # the docs' example: 94 s → 15.67 INR


def _transcript(rng: random.Random, name: str, agent: str, product: str, interested: str, callback: str) -> str:
    lines = [
        f"Agent: Namaste {name} ji, main {agent} bol rahi hoon. Kya abhi baat karne ka sahi samay hai?",
        "User: Haan, boliye.",
        f"Agent: Aapne {product} mein interest dikhaya tha. Kya aap aage badhna chahenge?",
        "User: Haan, interested hoon. Details bhej dijiye."
        if interested.lower() in {"yes", "haan"}
        else f"User: {rng.choice(_HESITANT)}",
    ]
    if callback:
        lines += [
            "Agent: Aapko kab call karun?",
            f"User: {callback}",
            "Agent: Theek hai, tab call karti hoon.",
        ]
    lines.append("Agent: Dhanyavaad, aapka din shubh ho!")
    return "\n".join(lines) + "\n"


def generate_calls(
    n: int,
    *,
    seed: int = 0,
    now: datetime | None = None,
    lead_ids: Sequence[str] | None = None,
    phones: Sequence[str] | None = None,
    lead_id_param: str = "salesforce_id",
) -> list[SandboxCall]:
    """``n`` varied, final calls (deterministic for a seed): mostly completed with outputs and a transcript,
    some failed/busy/no-answer with none. ``lead_ids``/``phones`` are used round-robin when given (to match
    records of a Salesforce stand-in); otherwise random 10-digit mobiles, a few in +91 form."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    agents = list(DEFAULT_AGENTS.items())
    campaign = {"campaign_id": f"{rng.getrandbits(96):024x}", "campaign_name": f"generated campaign {seed}"}
    outcomes, weights = [o[:2] for o in _OUTCOMES], [o[2] for o in _OUTCOMES]
    calls = []
    for i in range(n):
        status, reason = rng.choices(outcomes, weights)[0]
        agent_id, agent_name = rng.choice(agents)
        name, product = rng.choice(_NAMES), rng.choice(_PRODUCTS)
        if phones:
            phone = phones[i % len(phones)]
        else:
            phone = rng.choice("6789") + "".join(rng.choices("0123456789", k=9))
            phone = "+91" + phone if rng.random() < 0.1 else phone
        started = (now - timedelta(minutes=rng.randint(5, 600))).replace(microsecond=rng.randrange(1000) * 1000)
        inputs: dict[str, Any] = {"customerName": name, "productInCart": product, "agentName": agent_name}
        if lead_ids:
            inputs[lead_id_param] = lead_ids[i % len(lead_ids)]
        connected = status == "completed"
        duration = rng.randint(20, 300) if connected else 0
        answered = started + timedelta(seconds=rng.randint(3, 12)) if connected else None
        ended = (
            (answered + timedelta(seconds=duration)) if answered else started + timedelta(seconds=rng.randint(20, 45))
        )
        outputs: dict[str, Any] = {}
        transcript = None
        if connected:
            interested = rng.choice(_INTERESTED)
            wants_callback = rng.random() < 0.6
            callback = rng.choice(CALLBACK_PHRASES) if wants_callback else ""
            outputs = {
                "interested": interested,
                "callback_requested": "yes" if wants_callback else "no",
                "callback_time": callback,
            }
            if rng.random() < 0.3:
                outputs["notes"] = rng.choice(["Customer ne brochure maanga", "Price sunke hesitant tha", "Wants EMI"])
            if rng.random() < 0.2:
                outputs["lead_score"] = rng.randint(1, 10)
            transcript = _transcript(rng, name, agent_name, product, interested, callback)
        calls.append(
            SandboxCall(
                call_id=f"{rng.getrandbits(96):024x}",
                agent_id=agent_id,
                status=status,
                callee_phone=phone,
                caller_phone="7971441943",
                duration_seconds=duration,
                cost=(Decimal(duration) * _RATE_PER_SECOND).quantize(Decimal("0.01")),
                started_at=started,
                answered_at=answered,
                ended_at=ended,
                disconnection_reason=reason,
                input_parameters=inputs,
                output_parameters=outputs,
                recording_available=connected,
                transcript=transcript,
                campaign=campaign,
            )
        )
    return calls


# --- faults ---------------------------------------------------------------------------------------------


class Fault(BaseModel):
    """Answer matching requests with ``status`` (or hang): the next ``count`` ones, or each with probability
    ``probability`` (the state's seeded RNG). A hang sleeps ``hang_seconds`` (default: the state's),
    then answers 504."""

    model_config = ConfigDict(extra="forbid")

    status: int | None = Field(None, ge=400, le=599)
    hang: bool = False
    hang_seconds: float | None = Field(None, ge=0)
    count: int | None = Field(None, ge=1)
    probability: float | None = Field(None, ge=0, le=1)
    shape: Shape | None = None
    code: str | None = None
    retry_after: str | None = None
    scope: Scope = "api"

    @model_validator(mode="after")
    def _one_of_each(self) -> Fault:
        if (self.status is None) == (not self.hang):
            raise ValueError("give either status or hang=true")
        if (self.count is None) == (self.probability is None):
            raise ValueError("give either count or probability")
        return self


class _Pending:
    def __init__(self, fetches: int | None, until: float | None) -> None:
        self.fetches = fetches
        self.until = until


# --- state ----------------------------------------------------------------------------------------------


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
        }
        self._seed = seed
        self._lock = threading.RLock()
        self._epoch = 0
        self.reset()

    # settings ---------------------------------------------------------------------------------------------

    rate_limit_per_minute: int | None
    rate_limit_retry_after: bool
    hang_seconds: float
    latency_ms: float

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
                self._pending: dict[str, _Pending] = {}
                self._raw: dict[str, tuple[int, Any]] = {}
            self._faults: list[Fault] = []
            self._rng = random.Random(self._seed)
            self._windows: dict[str, deque[float]] = {}
            self._arrivals: Counter[str] = Counter()
            self._by_status: Counter[int] = Counter()
            self._faults_injected = 0
            self._storage_with_auth = 0
            self._epoch += 1

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
            self._pending[call_id] = _Pending(fetches, until)

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
                    "cost": (Decimal(duration) * _RATE_PER_SECOND).quantize(Decimal("0.01")),
                    "disconnection_reason": "user_hangup",
                    "recording_available": True,
                    "transcript": "Agent: Namaste, main aapki assistant bol rahi hoon.\nUser: Haan ji.\n",
                    "links_expire_at": add_month(ended),
                }
                updates = {**defaults, **updates}
            if updates:
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
            "call": {
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
            },
            "input_parameters": call.input_parameters,
            "output_parameters": {} if pending else call.output_parameters,
            "recording": link("recordings", "mp3", call.recording_available),
            "transcript": link("transcripts", "txt", call.transcript is not None),
        }

    def render_logs(self) -> dict[str, Any]:
        """The documented ``GET /call/logs`` body: every call, newest first, no pagination."""
        with self._lock:
            calls = [(c.model_copy(deep=True), c.call_id in self._pending) for c in self._calls.values()]
        calls.sort(key=lambda item: item[0].started_at or datetime.max.replace(tzinfo=UTC), reverse=True)
        return {
            "success": True,
            "calls": [
                {
                    "call_id": c.call_id,
                    "agent_id": c.agent_id,
                    "status": PENDING_STATUS if pending else c.status,
                    "direction": c.direction,
                    "callee_phone": c.callee_phone,
                    "caller_phone": c.caller_phone,
                    "duration_seconds": None if pending else c.duration_seconds,
                    "cost": None if pending else c.cost_text,
                    "started_at": iso(c.started_at),
                    "ended_at": None if pending else iso(c.ended_at),
                }
                for c, pending in calls
            ],
        }

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
                "call_cost_inr": _number(call.cost),
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


# --- app ---------------------------------------------------------------------------------------------------


class _TriggerBody(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    agent_id: str
    callee_phone: str
    caller_phone: str
    input_parameters: dict[str, Any] | None = None


_ZOD_STYLE = {
    "missing": "Required",
    "string_type": "Expected string",
    "dict_type": "Expected object",
    "model_type": "Expected object",
}


def _validation_errors(exc: ValidationError) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"]) or "body"
        errors.setdefault(field, []).append(_ZOD_STYLE.get(err["type"], err["msg"]))
    return errors


class _AddCalls(BaseModel):
    model_config = ConfigDict(extra="forbid")

    generate: int | None = Field(None, ge=1, le=100_000)
    seed: int | None = None
    lead_ids: list[str] | None = None
    phones: list[str] | None = None
    lead_id_param: str = "salesforce_id"
    calls: list[SandboxCall] = Field(default_factory=list)


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latency_ms: float | None = Field(None, ge=0)
    rate_limit_per_minute: int | None = Field(None, ge=1)
    lift_rate_limit: bool = False
    rate_limit_retry_after: bool | None = None
    hang_seconds: float | None = Field(None, ge=0)


class _Finish(BaseModel):
    model_config = ConfigDict(extra="allow")


_BASIC_RE = re.compile(r"^Basic\s+([A-Za-z0-9+/=]+)\s*$", re.IGNORECASE)
_PHONE_RE = re.compile(r"^\d{10}$")


def _scope_of(path: str) -> Literal["api", "storage", "admin", "other"]:
    if path.startswith("/_sandbox"):
        return "admin"
    if path.startswith("/api/storage/"):
        return "storage"
    if path.startswith("/api/") or path == "/api":
        return "api"
    return "other"


def create_app(state: Twenty2State) -> FastAPI:
    """The sandbox as an ASGI app (serve with ``standins.stack.https``)."""
    app = FastAPI(title="Twenty2 sandbox", docs_url=None, redoc_url=None, openapi_url=None)

    def authenticate(request: Request) -> Response | str:
        """The workspace id when the credentials are right, else the documented error response."""
        match = _BASIC_RE.match(request.headers.get("authorization", ""))
        try:
            decoded = base64.b64decode(match.group(1), validate=True).decode() if match else ""
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        key, sep, secret = decoded.partition(":")
        if not (sep and key == state.api_key and secret == state.api_secret):
            return _error_response(401, "A")
        workspace = request.headers.get("x-workspace-id", "").strip()
        if not workspace:
            return _error_response(422, "B", validation_errors={"x-workspace-id": ["Required"]})
        if workspace != state.workspace_id:
            return _error_response(403, "A")
        return workspace

    async def hang(seconds: float) -> None:
        epoch, deadline = state.epoch, time.monotonic() + seconds
        while time.monotonic() < deadline and state.epoch == epoch:  # reset releases hung requests
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def fault_response(fault: Fault) -> Response:
        assert fault.status is not None  # Fault's validator: status unless hang
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
        shape = fault.shape or _FAULT_SHAPES.get(fault.status, "A")
        return _error_response(fault.status, shape, code=fault.code, headers=headers)

    @app.middleware("http")
    async def gate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        scope = _scope_of(path)
        if scope == "admin":
            return await call_next(request)
        state._record_arrival(path, scope == "storage" and "authorization" in request.headers)
        response = await _gate(request, call_next, scope)
        state._record_status(response.status_code)
        return response

    async def _gate(request: Request, call_next: Callable[[Request], Awaitable[Response]], scope: str) -> Response:
        if state.latency_ms:
            await asyncio.sleep(state.latency_ms / 1000)
        fault = state._take_fault("storage" if scope == "storage" else "api")
        if fault is not None:
            if fault.hang:
                await hang(state.hang_seconds if fault.hang_seconds is None else fault.hang_seconds)
                return _error_response(504, "text")
            return fault_response(fault)
        if scope == "api":
            outcome = authenticate(request)
            if isinstance(outcome, Response):
                return outcome
            wait = state._admit(outcome)
            if wait is not None:
                headers = {"Retry-After": str(max(1, math.ceil(wait)))} if state.rate_limit_retry_after else None
                return _error_response(429, "A", headers=headers)
        return await call_next(request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _scope_of(request.url.path) == "api":
            return _error_response(exc.status_code, "A", code="NOT_FOUND" if exc.status_code == 404 else None)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    # --- documented API ---------------------------------------------------------------------------------

    def api_base(request: Request) -> str:
        return str(request.base_url).rstrip("/") + "/api"

    @app.get("/api/call/detail")
    async def call_detail(request: Request) -> Response:
        call_id = request.query_params.get("call_id", "").strip()
        if not call_id:
            return _error_response(422, "B", validation_errors={"call_id": ["Required"]})
        found = state._detail_call(call_id)
        if found is None:
            return _error_response(404, "A", message="No call found for this call_id")
        first, second = found
        if isinstance(first, SandboxCall):
            return JSONResponse(state.render_detail(first, api_base(request), pending=bool(second)))
        if isinstance(second, str):
            return PlainTextResponse(second, status_code=int(first))
        return JSONResponse(second, status_code=int(first))

    @app.get("/api/call/logs")
    async def call_logs() -> Response:
        return JSONResponse(state.render_logs())

    @app.post("/api/agent/trigger-outbound-call")
    async def trigger_outbound_call(request: Request) -> Response:
        raw = await request.body()
        try:
            body = _TriggerBody.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            return _error_response(422, "B", validation_errors=_validation_errors(exc))
        if body.agent_id not in state.agents:
            return _error_response(
                400, "A", code="INVALID_ASSISTANT", message="Agent does not exist or is not published"
            )
        if not _PHONE_RE.match(body.callee_phone):
            return _error_response(
                400, "A", code="INVALID_NUMBER", message="callee_phone must be 10 digits, no country code"
            )
        if body.caller_phone not in state.active_numbers:
            return _error_response(
                400, "A", code="INVALID_NUMBER", message="caller_phone is not active in this workspace"
            )
        call_id = state.queue_call(body.agent_id, body.callee_phone, body.caller_phone, body.input_parameters or {})
        return JSONResponse(
            {
                "success": True,
                "call_id": call_id,
                "status": "initiated",
                "message": "Call queued successfully.",
            }
        )

    @app.get("/api/storage/{kind}/{name}")
    async def storage(kind: str, name: str) -> Response:
        call_id, _, ext = name.rpartition(".")
        if (kind, ext) not in {("transcripts", "txt"), ("recordings", "mp3")}:
            return PlainTextResponse("Not Found", status_code=404)
        status, content = state.storage_object(kind, call_id)
        if status != 200:
            return Response(content, status_code=status, media_type="application/xml")
        media = "text/plain; charset=utf-8" if kind == "transcripts" else "audio/mpeg"
        return Response(content, media_type=media)

    # --- admin (unauthenticated; loopback only) ---------------------------------------------------------

    @app.get("/_sandbox/stats")
    async def admin_stats() -> dict[str, Any]:
        return state.stats()

    @app.post("/_sandbox/reset")
    async def admin_reset(keep_calls: bool = False) -> dict[str, Any]:
        state.reset(keep_calls=keep_calls)
        return {"ok": True}

    @app.post("/_sandbox/faults")
    async def admin_add_fault(fault: Fault) -> dict[str, Any]:
        state.add_fault(fault)
        return {"ok": True}

    @app.delete("/_sandbox/faults")
    async def admin_clear_faults() -> dict[str, Any]:
        state.clear_faults()
        return {"ok": True}

    @app.post("/_sandbox/config")
    async def admin_config(config: _Config) -> dict[str, Any]:
        changes = config.model_dump(exclude_none=True, exclude={"lift_rate_limit"})
        if config.lift_rate_limit:
            changes["rate_limit_per_minute"] = None
        state.configure(**changes)
        return {"ok": True}

    @app.get("/_sandbox/calls")
    async def admin_calls() -> dict[str, Any]:
        return {"call_ids": state.call_ids()}

    @app.post("/_sandbox/calls")
    async def admin_add_calls(body: _AddCalls) -> dict[str, Any]:
        ids = [state.add_call(c) for c in body.calls]
        if body.generate:
            ids += state.add_generated_calls(
                body.generate,
                seed=body.seed,
                lead_ids=body.lead_ids,
                phones=body.phones,
                lead_id_param=body.lead_id_param,
            )
        return {"call_ids": ids}

    @app.get("/_sandbox/calls/{call_id}/webhook")
    async def admin_webhook(call_id: str, event: str | None = None) -> Response:
        try:
            return JSONResponse(state.webhook_payload(call_id, event))
        except KeyError:
            return JSONResponse({"detail": "unknown call"}, status_code=404)

    @app.post("/_sandbox/calls/{call_id}/pending")
    async def admin_pending(call_id: str, fetches: int | None = None, seconds: float | None = None) -> Response:
        try:
            state.set_pending(call_id, fetches=fetches, seconds=seconds)
        except KeyError:
            return JSONResponse({"detail": "unknown call"}, status_code=404)
        return JSONResponse({"ok": True})

    @app.post("/_sandbox/calls/{call_id}/finish")
    async def admin_finish(call_id: str, updates: _Finish | None = None) -> Response:
        try:
            state.finish(call_id, **((updates.model_extra or {}) if updates else {}))
        except KeyError:
            return JSONResponse({"detail": "unknown call"}, status_code=404)
        return JSONResponse({"ok": True})

    return app
