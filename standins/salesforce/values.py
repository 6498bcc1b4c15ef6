"""Field value checks of the stand-in org, with the errorCode and message wording of the real API
(``check_value`` raises ``FieldProblem``), and its date-time format."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from standins.salesforce.schema import (
    KEY_PREFIXES,
    FieldSpec,
    normalize_id,
)

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DATETIME_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)(Z|[+-]\d{2}:?\d{2})?$", re.IGNORECASE
)


class FieldProblem(Exception):
    """A value the real API refuses: errorCode, message and the fields concerned."""

    def __init__(self, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields or []


def format_datetime(moment: datetime) -> str:
    """Salesforce's datetime wire format: UTC with milliseconds, ``2024-05-01T10:20:30.000+0000``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def parse_datetime(text: str) -> datetime | None:
    """A datetime from an ISO 8601 string as Salesforce accepts it (no offset = UTC); None if malformed."""
    match = DATETIME_RE.match(text.strip())
    if not match:
        return None
    day, clock, zone = match.groups()
    zone = (zone or "Z").upper()
    if zone != "Z" and ":" not in zone:
        zone = zone[:3] + ":" + zone[3:]
    try:
        return datetime.fromisoformat(f"{day}T{clock}{'+00:00' if zone == 'Z' else zone}")
    except ValueError:
        return None


def _parser_error(value: Any, type_name: str) -> FieldProblem:
    # Real wording (JSON deserialisation): "Cannot deserialize instance of <type> from VALUE_STRING value ..."
    return FieldProblem(
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {type_name} from VALUE_STRING value {value!s:.60} "
        "or request may be missing a required field",
    )


def _clip(value: str) -> str:
    return value if len(value) <= 80 else value[:77] + "..."


def check_value(spec: FieldSpec, value: Any) -> Any:
    """The value as stored, or ``FieldProblem`` with the API's errorCode. ``None`` (null) passes here."""
    if value is None:
        return None
    checker = _CHECKERS.get(spec.type, _check_text)
    return checker(spec, value)


def _check_text(spec: FieldSpec, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _parser_error(value, "string")
    text = value if isinstance(value, str) else str(value)
    if spec.length and len(text) > spec.length:
        raise FieldProblem(
            "STRING_TOO_LONG",
            f"{spec.shown_label}: data value too large: {_clip(text)} (max length={spec.length})",
            [spec.name],
        )
    if spec.type == "email" and text and not EMAIL_RE.match(text):
        raise FieldProblem(
            "INVALID_EMAIL_ADDRESS", f"{spec.shown_label}: invalid email address: {_clip(text)}", [spec.name]
        )
    if spec.type == "picklist" and spec.restricted and text not in spec.picklist:
        raise FieldProblem(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"{spec.shown_label}: bad value for restricted picklist field: {_clip(text)}",
            [spec.name],
        )
    return text


def _check_boolean(spec: FieldSpec, value: Any) -> Any:
    if not isinstance(value, bool):
        raise _parser_error(value, "boolean")
    return value


def _check_int(spec: FieldSpec, value: Any) -> Any:
    if isinstance(value, bool):
        raise _parser_error(value, "int")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value.strip())
    raise _parser_error(value, "int")


def _check_double(spec: FieldSpec, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _parser_error(value, "double")
    try:
        return float(value)
    except ValueError:
        raise _parser_error(value, "double") from None


def _check_date(spec: FieldSpec, value: Any) -> Any:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise _parser_error(value, "date")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise _parser_error(value, "date") from None
    return value


def _check_datetime(spec: FieldSpec, value: Any) -> Any:
    moment = parse_datetime(value) if isinstance(value, str) else None
    if moment is None:
        raise _parser_error(value, "datetime")
    return format_datetime(moment)


def _check_reference(spec: FieldSpec, value: Any) -> Any:
    if value == "":
        return None
    record_id = normalize_id(value)
    if record_id is None:
        raise FieldProblem(
            "MALFORMED_ID",
            f"{spec.shown_label}: id value of incorrect type: {_clip(str(value))}",
            [spec.name],
        )
    allowed = {KEY_PREFIXES[name] for name in spec.reference_to}
    if record_id[:3] not in allowed:
        raise FieldProblem(
            "FIELD_INTEGRITY_EXCEPTION",
            f"{spec.shown_label}: id value of incorrect type: {record_id}",
            [spec.name],
        )
    return record_id


_CHECKERS = {
    "boolean": _check_boolean,
    "int": _check_int,
    "double": _check_double,
    "date": _check_date,
    "datetime": _check_datetime,
    "reference": _check_reference,
    "id": _check_reference,
}
