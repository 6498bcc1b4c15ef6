"""What the grammar understood from a phrase, before it is placed on the calendar.

`parse.read_spec` fills a `Spec`; `resolve.resolve` turns it into a `CallbackReading` against the reference.
Keeping the two apart lets the grammar stay free of date arithmetic and the arithmetic free of words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

Which = Literal["this", "next"]
TimeMode = Literal["h24", "am", "pm", "bare"]


class NotUnderstood(Exception):
    """The phrase cannot be read without guessing; the message says why (goes to `reason`)."""


@dataclass(frozen=True)
class RelDay:
    """today (0), tomorrow/kal (1), day after tomorrow/parso (2) ..."""

    days: int


@dataclass(frozen=True)
class WeekdaySpec:
    """A weekday (0 = Monday), with "next"/"this"/"coming" or no modifier."""

    weekday: int
    mod: str | None


@dataclass(frozen=True)
class DateSpec:
    """A calendar date; `year` None when not said."""

    day: int
    month: int
    year: int | None


@dataclass(frozen=True)
class MonthDaySpec:
    """A day of the month without a month ("on the 30th", "30 tarikh")."""

    day: int


@dataclass(frozen=True)
class LaterDays:
    """A whole-day offset: "in 2 days", "ek hafte baad", "in a month"."""

    count: int
    unit: Literal["day", "week", "month"]


DaySpec = RelDay | WeekdaySpec | DateSpec | MonthDaySpec | LaterDays


@dataclass(frozen=True)
class RangeSpec:
    """Several days: this/next week, this/next month, end of (this/next) week, (this/next) weekend."""

    kind: Literal["week", "month", "end_of_week", "weekend"]
    which: Which


@dataclass(frozen=True)
class TimeSpec:
    """A clock time. `mode`: h24 (hour already 0-23), am/pm (said), bare (1-12, am/pm still open)."""

    hour: int
    minute: int
    mode: TimeMode
    second: int = 0


@dataclass
class Spec:
    """Everything the grammar found, in the order said (duplicates possible; `resolve` checks them)."""

    days: list[DaySpec] = field(default_factory=list)
    ranges: list[RangeSpec] = field(default_factory=list)
    times: list[TimeSpec] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    offsets: list[timedelta] = field(default_factory=list)
    same_time: bool = False
    dismissals: list[str] = field(default_factory=list)  # "not now", "later": dropped if a time is given
    events: list[str] = field(default_factory=list)  # "after lunch": a time that cannot be placed
    words: int = 0  # how many tokens the phrase had (0: empty phrase)
