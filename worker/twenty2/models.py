"""Typed models of what Twenty2 sends: the call detail (``GET /call/detail``) and the post-call webhook.

Twenty2's docs disagree with themselves (see ``shared/reference/twenty2-api.md``); these models accept
every documented variant: cost as ``"15.67 INR"`` or a number (``call_cost_inr``), phones as
``callee_phone``/``caller_phone`` or ``to_number``/``from_number``, timestamps with or without
milliseconds, call ids as 24-hex or ``call_…``. Timestamps become aware UTC datetimes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

#: A Twenty2 call id, in both documented shapes. Nothing else may travel into a URL or a query.
CALL_ID_PATTERN = r"^(?:[0-9a-fA-F]{24}|call_[A-Za-z0-9_-]{1,64})$"  # for pydantic (Rust regex: $ is the end)
_CALL_ID_RE = re.compile(CALL_ID_PATTERN)
_LEAD_ID_RE = re.compile(r"00Q[a-zA-Z0-9]{12}(?:[a-zA-Z0-9]{3})?")

#: Statuses after which a call's detail is final. Anything else (queued, ringing, in-progress, ...) is not.
CONNECTED_STATUSES = frozenset({"completed"})
NOT_CONNECTED_STATUSES = frozenset(
    {
        "failed",
        "busy",
        "no-answer",
        "no_answer",
        "unanswered",
        "not-answered",
        "cancelled",
        "canceled",
        "rejected",
        "voicemail",
        "error",
    }
)
PENDING_STATUSES = frozenset(
    {
        "queued",
        "initiated",
        "scheduled",
        "ringing",
        "in-progress",
        "in_progress",
        "ongoing",
        "active",
        "connecting",
        "processing",
        "analyzing",
    }
)


_ID_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def is_lead_id(value: str) -> bool:
    """A 15-character Salesforce id with the Lead key prefix (00Q), or an 18-character one whose last three
    characters are the case checksum Salesforce derives from the first fifteen."""
    if not _LEAD_ID_RE.fullmatch(value):
        return False
    if len(value) == 15:
        return True
    checksum = ""
    for chunk in (value[0:5], value[5:10], value[10:15]):
        bits = sum(1 << i for i, char in enumerate(chunk) if char.isupper())
        checksum += _ID_SUFFIX_ALPHABET[bits]
    return value[15:] == checksum


def is_call_id(value: str) -> bool:
    # fullmatch, not match: Python's "$" also matches before a trailing newline.
    return bool(_CALL_ID_RE.fullmatch(value))


def _utc(value: Any) -> Any:
    if isinstance(value, str) and value.strip() == "":
        return None
    return value


class Money(BaseModel):
    model_config = ConfigDict(frozen=True)

    amount: Decimal
    currency: str = "INR"

    @classmethod
    def parse(cls, value: Any, default_currency: str = "INR") -> Money | None:
        """``"15.67 INR"`` / ``"INR 15.67"`` / ``15.67`` → Money; None when absent; ValueError when garbled."""
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            raise ValueError("cost is not a number")
        if isinstance(value, int | float | Decimal):
            return cls(amount=Decimal(str(value)), currency=default_currency)
        text = str(value).strip()
        match = re.fullmatch(r"(?:([A-Za-z]{3})\s*)?(-?\d+(?:\.\d+)?)(?:\s*([A-Za-z]{3}))?", text)
        if not match or (match.group(1) and match.group(3)):
            raise ValueError(f"unreadable cost {text[:40]!r}")
        try:
            amount = Decimal(match.group(2))
        except InvalidOperation as exc:  # pragma: no cover - regex admits only decimals
            raise ValueError(f"unreadable cost {text[:40]!r}") from exc
        return cls(amount=amount, currency=(match.group(1) or match.group(3) or default_currency).upper())

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


class Link(BaseModel):
    """A recording or transcript link. Links expire (about a month after the call)."""

    model_config = ConfigDict(extra="ignore")

    url: str | None = None
    expires_at: datetime | None = None
    available: bool | None = None

    _utc_expiry = field_validator("expires_at", mode="before")(_utc)

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return _as_utc(value)


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if not 1 < value.year < 9999:  # near datetime.min/max, zone shifts and "tomorrow" overflow (a crash)
        raise ValueError("timestamp out of range")
    if value.tzinfo is None:
        # Twenty2 documents UTC ("Z"); a naive stamp is read as UTC, never as local time.
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class CallInfo(BaseModel):
    """The ``call`` object of the detail response (and of the webhook)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    call_id: str
    agent_id: str | None = Field(None, validation_alias=AliasChoices("agent_id", "assistant_id"))
    status: str = ""
    direction: str | None = None
    callee_phone: str | None = Field(None, validation_alias=AliasChoices("callee_phone", "to_number"))
    caller_phone: str | None = Field(None, validation_alias=AliasChoices("caller_phone", "from_number"))
    duration_seconds: int | None = None
    billed_duration_seconds: int | None = None
    cost: Money | None = Field(None, validation_alias=AliasChoices("cost", "call_cost_inr"))
    started_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    disconnection_reason: str | None = None

    @field_validator("call_id")
    @classmethod
    def _call_id_shape(cls, value: str) -> str:
        if not is_call_id(value):
            raise ValueError("call_id is not a Twenty2 call id")
        return value

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> str:
        return "" if value is None else str(value).strip().lower()

    @field_validator("cost", mode="before")
    @classmethod
    def _cost(cls, value: Any) -> Money | None:
        return value if isinstance(value, Money) else Money.parse(value)

    @field_validator("callee_phone", "caller_phone", "disconnection_reason", "direction", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    _blank_times = field_validator("started_at", "answered_at", "ended_at", mode="before")(_utc)

    @field_validator("started_at", "answered_at", "ended_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return _as_utc(value)

    @field_validator("duration_seconds", "billed_duration_seconds")
    @classmethod
    def _non_negative(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ValueError("duration cannot be negative")
        return value

    @property
    def is_final(self) -> bool:
        """True once the call has ended: a known final status, or an end time with no pending status."""
        if self.status in CONNECTED_STATUSES or self.status in NOT_CONNECTED_STATUSES:
            return True
        if self.status in PENDING_STATUSES:
            return False
        return self.ended_at is not None

    @property
    def connected(self) -> bool:
        return self.status in CONNECTED_STATUSES


class CallDetail(BaseModel):
    """``GET /call/detail`` response, validated. Output values are kept as sent (strings, numbers, ...)."""

    model_config = ConfigDict(extra="ignore")

    call: CallInfo
    input_parameters: dict[str, Any] = Field(default_factory=dict)
    output_parameters: dict[str, Any] = Field(default_factory=dict)
    recording: Link | None = None
    transcript: Link | None = None

    @field_validator("input_parameters", "output_parameters", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class WebhookCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    call_id: str = Field(pattern=CALL_ID_PATTERN, max_length=69)
    status: str | None = Field(None, max_length=64)
    # Hints only (read ahead of the sync, never written): any type is tolerated, nothing is rejected for them.
    direction: Any = None
    from_number: Any = None
    to_number: Any = None


class WebhookEvent(BaseModel):
    """Twenty2's post-call webhook, or a bare ``{"call_id": ...}``. Only a trigger: data is re-fetched."""

    model_config = ConfigDict(extra="ignore")

    event: str | None = Field(None, max_length=64, description="call.completed or call.failed")
    event_id: str | None = Field(None, max_length=128, description="Unique per delivery, not per call.")
    workspace_id: str | None = Field(None, max_length=64)
    call: WebhookCall | None = None
    call_id: str | None = Field(None, pattern=CALL_ID_PATTERN, max_length=69)
    contact: Any = None

    @model_validator(mode="after")
    def _has_call_id(self) -> WebhookEvent:
        if self.call is None and self.call_id is None:
            raise ValueError("call.call_id (or call_id) is required")
        if self.call is not None and self.call_id is not None and self.call.call_id != self.call_id:
            raise ValueError("call_id and call.call_id differ")
        return self

    def lead_hint(self, id_param: str) -> tuple[str | None, str | None]:
        """(phone, Salesforce Lead id) the payload names, when well-formed: hints to read the Lead ahead."""
        call = self.call
        phone: Any = None
        if call is not None:
            phone = call.from_number if str(call.direction or "").lower() == "inbound" else call.to_number
        contact = self.contact if isinstance(self.contact, dict) else {}
        variables = contact.get("input_variables")
        lead_id = variables.get(id_param) if isinstance(variables, dict) else None
        phone = phone if isinstance(phone, str) and 6 <= len(phone) <= 32 else None
        lead_id = lead_id if isinstance(lead_id, str) and is_lead_id(lead_id) else None
        return phone, lead_id

    @property
    def the_call_id(self) -> str:
        if self.call is not None:
            return self.call.call_id
        assert self.call_id is not None
        return self.call_id


class TriggerAnswer(BaseModel):
    """``POST /agent/trigger-outbound-call``'s success body (``status`` is ``"initiated"`` in the docs)."""

    model_config = ConfigDict(extra="ignore")

    success: bool | None = None
    call_id: str = Field(pattern=CALL_ID_PATTERN, max_length=69)
    status: str | None = None
    message: str | None = None
