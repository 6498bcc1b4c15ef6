"""Calls of the Twenty2 stand-in: the ``SandboxCall`` model, the docs' seed calls (``seed_calls``), and
generated calls with Hinglish transcripts (``generate_calls``)."""

from __future__ import annotations

import calendar
import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Published assistants (id → name): the API reference's example agent and the webhook example's.
DEFAULT_AGENTS = {"69de483c68b23495c853b43a": "Rohit", "6a02dc5d92b9cbce7962a2b5": "Varsha"}


SEED_CALL_ID = "call_9c4d7e12ab"


SEED_FAILED_CALL_ID = "6a100328ba090039ac8610a2"


#: Statuses shown by the detail while a call is not final (``set_pending``).
PENDING_STATUS = "in-progress"


#: Statuses of a call that has not ended (no ``ended_at``).
NOT_ENDED_STATUSES = frozenset({"queued", "initiated", "scheduled", "ringing", "in-progress"})


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


def number(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def new_call_id() -> str:
    return uuid.uuid4().hex[:24]


class SandboxCall(BaseModel):
    """One call as the sandbox keeps it; rendered into the detail, the logs and webhook payloads."""

    model_config = ConfigDict(extra="forbid")

    call_id: str = Field(default_factory=new_call_id)
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


RATE_PER_SECOND = Decimal("0.1667")  # the docs' example: 94 s → 15.67 INR


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
                cost=(Decimal(duration) * RATE_PER_SECOND).quantize(Decimal("0.01")),
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
