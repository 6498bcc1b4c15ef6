"""What the grammar understood from a phrase, before it is placed on the calendar.

`parse.read_spec` fills a `Spec`; `resolve.resolve` turns it into a `CallbackReading` against the reference.
Keeping the two apart lets the grammar stay free of date arithmetic and the arithmetic free of words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

Which = Literal["this", "next", "after_next"]
AHEAD: dict[str, int] = {"this": 0, "next": 1, "after_next": 2}  # weeks or months ahead
TimeMode = Literal["h24", "am", "pm", "bare"]


class NotUnderstood(Exception):
    """The phrase cannot be read without guessing; the message says why (goes to `reason`)."""


@dataclass(frozen=True)
class RelDay:
    """today (0), tomorrow/kal (1), day after tomorrow/parso (2) ..."""

    days: int


@dataclass(frozen=True)
class WeekdaySpec:
    """A weekday (0 = Monday), with "next"/"this"/"coming"/"after_next" or no modifier; `count` > 1 for
    "3 fridays from now" (the third occurrence after today)."""

    weekday: int
    mod: str | None
    count: int = 1


@dataclass(frozen=True)
class NthWeekdaySpec:
    """ "first/second/last <weekday> of <month>": `nth` 1..5 or -1 (last); `month` 1..12, or None with
    `which` naming this/next month ("the first Monday of next month")."""

    nth: int
    weekday: int
    month: int | None
    which: Which = "this"


@dataclass(frozen=True)
class MonthDayInSpec:
    """ "the 20th of next month", "agle mahine 5 tarikh", "last day of February": a day of a given month.
    `day` -1 is the month's last day; `month` None means this/next month by `which`."""

    day: int
    month: int | None
    which: Which = "this"


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


@dataclass(frozen=True)
class FromDay:
    """ "a week from tomorrow": `later` counted from a relative day instead of today."""

    base: RelDay
    later: LaterDays


DaySpec = RelDay | WeekdaySpec | DateSpec | MonthDaySpec | LaterDays | NthWeekdaySpec | MonthDayInSpec | FromDay


RangeKind = Literal["week", "month", "end_of_week", "part_of_week", "part_of_month", "weekend", "week_of_month"]
Phase = Literal["start", "mid", "end"]


@dataclass(frozen=True)
class RangeSpec:
    """Several days: this/next week, this/next month, end of (this/next) week, (this/next) weekend."""

    kind: RangeKind
    which: Which
    nth: int = 0  # week_of_month: 1..5 or -1 (last)
    month: int | None = None  # week_of_month/part_of_month: the month said (None: this/next by `which`)
    phase: Phase = "end"  # part_of_week/part_of_month: its start, middle or end


@dataclass(frozen=True)
class TimeSpec:
    """A clock time. `mode`: h24 (hour already 0-23), am/pm (said), bare (1-12, am/pm still open)."""

    hour: int
    minute: int
    mode: TimeMode
    second: int = 0
    approx: bool = False  # "around 5", "4ish": the Task notes a tolerance


@dataclass(frozen=True)
class WindowSpec:
    """A window of the day: "between 2 and 3" (both ends), "after 2" / "11 ke baad" (start only), "before 1"
    (end only). The Task falls due at its start."""

    start: TimeSpec | None
    end: TimeSpec | None


@dataclass(frozen=True)
class WithinSpec:
    """ "within 2 hours/days": any time from now up to then (a window, or a range of days)."""

    minutes: int = 0
    days: int = 0


@dataclass
class Spec:
    """Everything the grammar found, in the order said (duplicates possible; `resolve` checks them)."""

    days: list[DaySpec] = field(default_factory=list)
    ranges: list[RangeSpec] = field(default_factory=list)
    times: list[TimeSpec] = field(default_factory=list)
    windows: list[WindowSpec] = field(default_factory=list)
    moments: list[datetime] = field(default_factory=list)  # machine times with an offset ("...+05:30", "Z")
    said_offset: int | None = None  # "10 am IST": the UTC offset (minutes) the caller's clock time is in
    negated: list[str] = field(default_factory=list)  # what a "not"/"nahi" took back ("not Monday, Tuesday")
    parts: list[str] = field(default_factory=list)
    offsets: list[timedelta] = field(default_factory=list)
    within: list[WithinSpec] = field(default_factory=list)
    same_time: bool = False
    dismissals: list[str] = field(default_factory=list)  # "not now", "later": dropped if a time is given
    events: list[str] = field(default_factory=list)  # "after lunch", "in a few hours": cannot be placed
    words: int = 0  # how many tokens the phrase had (0: empty phrase)
