"""The grammar of callback phrases, and `parse_callback_time`, the reader's entry point.

The grammar walks the tokens left to right. At each position it tries its rules in a fixed order
(durations, events, times, dates, weeks/ranges, days, parts of day, "same time", dismissals); a rule that
matches records what it read in a `Spec` and moves on. Known filler words are skipped. Anything else (an
unknown word, a "not", a stray "after" or month name) stops the walk: the phrase is `unparsed`, never
half-read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal

from worker.callbacks.lexicon import STATE_EVENTS, Tag, Tok
from worker.callbacks.reading import CallbackReading, CallbackStatus
from worker.callbacks.resolve import resolve
from worker.callbacks.spec import (
    DateSpec,
    LaterDays,
    MonthDaySpec,
    NotUnderstood,
    RangeSpec,
    RelDay,
    Spec,
    TimeMode,
    TimeSpec,
    WeekdaySpec,
    Which,
)
from worker.callbacks.tokens import tokenise

# Tokens the grammar may skip when no rule uses them.
_SKIPPABLE = frozenset({Tag.FILLER, Tag.HOURMARK, Tag.IN, Tag.POST_IN, Tag.OF, Tag.ARTICLE})
# What may follow a number that makes it not a day of the month ("Dec 5 pm" is not Dec 5).
_NOT_A_DAY_AFTER = frozenset({Tag.MERIDIEM, Tag.BAJE, Tag.BAJKE, Tag.UNIT, Tag.NOON, Tag.TARIKH})
# What may follow a number that makes it not an hour ("at 2 hours", "kal 5 din").
_NOT_AN_HOUR_AFTER = frozenset({Tag.UNIT, Tag.MONTH, Tag.TARIKH, Tag.OF, Tag.ANDHALF})
_MINUTE_WORDS = frozenset({15, 30, 45})
_AND = frozenset({"and", "aur"})
_VERB_LIKE_NUMBERS = frozenset({"do"})  # Hindi 2, English verb
_VERB_IS = frozenset({"is", "iss"})  # a dangling "is" is the English verb, not Hindi "this"
_WHICH: dict[str, Which] = {"next": "next", "coming": "next", "this": "this"}
_PLACE_UNITS: dict[str, Literal["day", "week", "month"]] = {"day": "day", "week": "week", "month": "month"}
_CLOCK_UNITS = {"minute": 1, "hour": 60}

LastKind = Literal["day", "part", "other"] | None


class _Walk:
    """One walk over a phrase's tokens. `last` remembers whether the previous reading was a day or a part
    of day, because only there may a plain number be an hour ("kal 11", "raat 8", "tonight 8")."""

    def __init__(self, toks: list[Tok]) -> None:
        self.toks = toks
        self.i = 0
        self.spec = Spec(words=len(toks))
        self.last: LastKind = None

    # ------------------------------------------------------------------------------------------ helpers
    def tag(self, k: int = 0) -> Tag | None:
        """The tag k tokens ahead, None past the end."""
        j = self.i + k
        return self.toks[j].tag if 0 <= j < len(self.toks) else None

    def text(self, k: int = 0) -> str:
        return self.toks[self.i + k].text

    def sval(self, k: int = 0) -> str:
        return str(self.toks[self.i + k].value)

    def num(self, k: int = 0) -> int:
        value = self.toks[self.i + k].value
        assert isinstance(value, int)
        return value

    def fval(self, k: int = 0) -> float:
        value = self.toks[self.i + k].value
        assert isinstance(value, int | float)
        return float(value)

    def is_word_number(self, k: int) -> bool:
        return self.tag(k) is Tag.NUM and not self.text(k).isdigit()

    def done(self, n: int, kind: LastKind) -> bool:
        self.i += n
        self.last = kind
        return True

    # --------------------------------------------------------------------------------------------- walk
    def run(self) -> Spec:
        rules: tuple[Callable[[], bool], ...] = (
            self.duration,
            self.event,
            self.time,
            self.date,
            self.ranges,
            self.day,
            self.part,
            self.same_time,
            self.dismissal,
            self.loose_hour,
        )
        while self.i < len(self.toks):
            if any(rule() for rule in rules):
                continue
            tok = self.toks[self.i]
            if tok.tag in _SKIPPABLE or (tok.tag is Tag.MOD and tok.text in _VERB_IS):
                self.i += 1
                continue
            if tok.tag is Tag.NEG:
                raise NotUnderstood(f"negation '{tok.text}' not understood")
            if tok.tag is Tag.UNKNOWN:
                raise NotUnderstood(f"unknown word '{tok.text}'")
            raise NotUnderstood(f"'{tok.text}' not understood here")
        return self.spec

    # ------------------------------------------------------------------------------------------- rules
    def quantity(self, k: int) -> tuple[float | None, int] | None:
        """A quantity k tokens ahead: (value, tokens used); value None for "a few"/"kuch"."""
        t0, t1 = self.tag(k), self.tag(k + 1)
        if t0 is Tag.FEW:
            return None, 1
        if t0 is Tag.ARTICLE and t1 is Tag.FEW:
            return None, 2
        if t0 is Tag.FRACNUM:
            return self.fval(k), 2 if t1 is Tag.ARTICLE else 1  # "half an hour"
        if t0 is Tag.DECIMAL:
            return self.fval(k), 1
        if t0 is Tag.FRAC and t1 is Tag.NUM:
            return self.num(k + 1) + self.fval(k), 2  # "sadhe teen ghante"
        if t0 is Tag.NUM:
            return (self.num(k) + 0.5, 2) if t1 is Tag.ANDHALF else (float(self.num(k)), 1)
        if t0 is Tag.ARTICLE:
            return 1.0, 1  # "in an hour"
        return None

    def duration(self) -> bool:
        """[in|after] quantity unit [and a half] [mein|baad|later]: "in 2 hours", "do din baad", "2 hours
        30 minutes". A duration alone ("10 minutes") is a callback that far ahead too."""
        k = 0
        if self.tag() in (Tag.IN, Tag.AFTER):
            k = 2 if self.tag(1) is Tag.HOURMARK else 1
        found = self.quantity(k)
        if found is None or self.tag(k + found[1]) is not Tag.UNIT:
            return False
        amount, used = found
        k += used
        unit = self.sval(k)
        k += 1
        if self.tag(k) is Tag.ANDHALF and amount is not None and amount.is_integer():
            amount += 0.5  # "an hour and a half"
            k += 1
        if unit == "hour" and amount is not None:
            amount, unit, k = self.minutes_after_hours(amount, k)
        if self.tag(k) in (Tag.POST_IN, Tag.POST_AFTER, Tag.LATER):
            k += 1
        if amount is None:
            self.spec.events.append(f"a few {unit}s")
            return self.done(k, "other")
        if unit in _CLOCK_UNITS:
            self.spec.offsets.append(timedelta(minutes=amount * _CLOCK_UNITS[unit]))
            return self.done(k, "other")
        if not (amount.is_integer() and amount > 0):
            raise NotUnderstood(f"'{amount:g} {unit}' cannot be placed on a day")
        self.spec.days.append(LaterDays(int(amount), _PLACE_UNITS[unit]))
        return self.done(k, "day")

    def minutes_after_hours(self, hours: float, k: int) -> tuple[float, str, int]:
        """ "2 hours (and) 30 minutes": the total in minutes and the offset after it; else unchanged."""
        j = k + 1 if self.tag(k) is Tag.FILLER and self.text(k) in _AND else k
        more = self.quantity(j)
        if more is None or more[0] is None or self.tag(j + more[1]) is not Tag.UNIT:
            return hours, "hour", k
        if self.sval(j + more[1]) != "minute":
            return hours, "hour", k
        return hours * 60 + more[0], "minute", j + more[1] + 1

    def event(self) -> bool:
        """ "after lunch", "Diwali ke baad", "before the meeting": times that cannot be put on a clock."""
        k = 1 if self.tag() in (Tag.AFTER, Tag.BEFORE) else 0
        if self.tag(k) is not Tag.EVENT:
            return False
        event, anchored = self.sval(k), k == 1
        k += 1
        if self.tag(k) in (Tag.POST_AFTER, Tag.BEFORE, Tag.LATER):
            k, anchored = k + 1, True
        if anchored or event not in STATE_EVENTS:
            self.spec.events.append(event)
        else:
            self.spec.dismissals.append(f"at {event}")  # "meeting mein hoon": where, not when
        return self.done(k, "other")

    def time(self) -> bool:
        """A clock time, optionally after at/around/after ("after 5" is read as 17:00, its start)."""
        k = 1 if self.tag() in (Tag.HOURMARK, Tag.AFTER) else 0
        found = self.clock_at(k, marked=k == 1)
        if found is None:
            return False
        spec, end = found
        if k == 0 and self.tag(end) is Tag.POST_AFTER:
            end += 1  # "5 baje ke baad" = from 17:00, like "after 5"
        self.spec.times.append(spec)
        return self.done(end, "other")

    def clock_at(self, k: int, *, marked: bool) -> tuple[TimeSpec, int] | None:
        """A time k tokens ahead: the TimeSpec and the offset just after it, or None."""
        t0, t1, t2 = self.tag(k), self.tag(k + 1), self.tag(k + 2)
        hours: float  # the hour, possibly with a fraction ("sadhe 4" = 4.5)
        minute = 0
        if t0 is Tag.CLOCK:
            clock = self.toks[self.i + k].value
            assert isinstance(clock, tuple)
            hours, minute, used = clock[0], clock[1], 1
            if not (0 <= hours <= 23 and 0 <= minute <= 59):
                raise NotUnderstood(f"no such time '{self.text(k)}'")
            if hours == 0:  # "00:30" is a 24-hour time; am/pm after it makes no sense
                end, mode = self.meridiem_after(k + 1)
                if mode != "bare":
                    raise NotUnderstood(f"no such time '{self.text(k)} {mode}'")
                return TimeSpec(0, minute, "h24"), end
        elif t0 is Tag.FRAC and t1 is Tag.NUM:
            hours, used = self.num(k + 1) + self.fval(k), 2
        elif t0 in (Tag.PAST_PART, Tag.TO_PART) and t1 is Tag.NUM:
            sign = 1 if t0 is Tag.PAST_PART else -1
            hours, used = self.num(k + 1) + sign * self.fval(k) / 60, 2
        elif t0 is Tag.NUM and t1 is Tag.BAJKE and t2 is Tag.NUM:
            hours, minute, used = self.num(k), self.num(k + 2), 3  # "4 baj ke 20 minute"
            if self.tag(k + 3) is Tag.UNIT and self.sval(k + 3) == "minute":
                used = 4
        elif t0 is Tag.NOON:
            return TimeSpec(12, 0, "h24"), k + 1
        elif t0 is Tag.NUM and t1 is Tag.NOON and self.num(k) == 12:
            return TimeSpec(12, 0, "h24"), k + 2
        elif t0 is Tag.NUM and t1 in (Tag.MERIDIEM, Tag.BAJE):
            hours, used = self.num(k), 1
        elif self.is_word_number(k) and self.is_word_number(k + 1) and self.num(k + 1) in _MINUTE_WORDS:
            if t2 is Tag.UNIT:
                return None
            hours, minute, used = self.num(k), self.num(k + 1), 2  # "ten thirty"
        elif (
            t0 is Tag.NUM
            and t1 is Tag.NUM
            and self.text(k).isdigit()
            and len(self.text(k + 1)) == 2
            and self.text(k + 1).isdigit()
            and self.num(k + 1) < 60
            and (marked or t2 in (Tag.MERIDIEM, Tag.BAJE))
        ):
            hours, minute, used = self.num(k), self.num(k + 1), 2  # "at 9 30", "9 30 pm" (speech-to-text)
        elif t0 in (Tag.FRACNUM, Tag.DECIMAL) and t1 is Tag.BAJE:
            hours, used = self.fval(k), 1  # "dedh baje" = 1:30
        elif marked and t0 is Tag.NUM and t1 not in _NOT_AN_HOUR_AFTER:
            hours, used = self.num(k), 1
        else:
            return None
        h, m = divmod(round(hours * 60) + minute, 60)
        end, mode = self.meridiem_after(k + used)
        return self.time_spec(h, m, mode, self.text(k)), end

    def meridiem_after(self, k: int) -> tuple[int, TimeMode]:
        """Consume baje/o'clock and am/pm after a time, in either order: the offset after, and the mode."""
        mode: TimeMode = "bare"
        while True:
            tag = self.tag(k)
            if tag is Tag.BAJE:
                k += 1
            elif tag is Tag.MERIDIEM and mode == "bare":
                mode = "am" if self.sval(k) == "am" else "pm"
                k += 1
            else:
                return k, mode

    @staticmethod
    def time_spec(h: int, m: int, mode: TimeMode, said: str) -> TimeSpec:
        """Check an hour against its am/pm: 13-23 and 0 are 24-hour times, 1-12 wait for am/pm."""
        if mode == "bare":
            if h == 0:
                h = 12  # "paune 1" = 12:45
            if 13 <= h <= 23:
                return TimeSpec(h, m, "h24")
            if 1 <= h <= 12:
                return TimeSpec(h, m, "bare")
        elif 1 <= h <= 12:
            return TimeSpec(h % 12 + (12 if mode == "pm" else 0), m, mode)
        raise NotUnderstood(f"no such time '{said}'")

    def date(self) -> bool:
        """26/12, 25th Dec, Dec 25, January 2nd 2025, on the 30th, 30 tarikh."""
        t0, t1, t2 = self.tag(), self.tag(1), self.tag(2)
        if t0 is Tag.DATE:
            value = self.toks[self.i].value
            assert isinstance(value, tuple)
            return self.take_date(value[0], value[1], value[2], 1)
        if t0 in (Tag.ORD, Tag.NUM) and t1 is Tag.MONTH:
            return self.take_date(self.num(), self.num(1), None, 2)
        if t0 in (Tag.ORD, Tag.NUM) and t1 is Tag.OF and t2 is Tag.MONTH:
            return self.take_date(self.num(), self.num(2), None, 3)
        if t0 is Tag.MONTH:
            k = 2 if t1 is Tag.FILLER else 1  # "December the 25th"
            day_follows = self.tag(k) is Tag.ORD or (
                self.tag(k) is Tag.NUM and self.tag(k + 1) not in _NOT_A_DAY_AFTER and self.num(k) <= 31
            )
            return day_follows and self.take_date(self.num(k), self.num(), None, k + 1)
        if t0 is Tag.ORD or (t0 is Tag.NUM and t1 is Tag.TARIKH):
            self.spec.days.append(MonthDaySpec(self.num()))
            return self.done(2 if t1 is Tag.TARIKH else 1, "day")
        return False

    def take_date(self, d: int, m: int, y: int | None, used: int) -> bool:
        if y is None and self.tag(used) is Tag.NUM and 1900 <= self.num(used) <= 2100:
            y, used = self.num(used), used + 1
        self.spec.days.append(DateSpec(d, m, None if y is None else (y + 2000 if y < 100 else y)))
        return self.done(used, "day")

    def ranges(self) -> bool:
        """next week, agle hafte, is mahine, end of the week, hafte ke end mein, weekend; next/this/coming
        with a weekday ("next Friday") or a part of day ("this evening")."""
        if self.tag() is Tag.END_OF:
            which: Which = "this"
            k = 1
            if self.tag(1) is Tag.MOD:
                which, k = _WHICH[self.sval(1)], 2
            if self.tag(k) is Tag.WEEKEND or (self.tag(k) is Tag.UNIT and self.sval(k) == "week"):
                self.spec.ranges.append(RangeSpec("end_of_week", which))
                return self.done(k + 1, "other")
            raise NotUnderstood("only 'end of the week' is understood")
        mod = self.sval() if self.tag() is Tag.MOD else None
        k = 0 if mod is None else 1
        tk = self.tag(k)
        if tk is Tag.UNIT and self.sval(k) in ("week", "month"):
            which = "this" if mod is None else _WHICH[mod]
            if self.tag(k + 1) is Tag.END_POST and self.sval(k) == "week":
                self.spec.ranges.append(RangeSpec("end_of_week", which))  # "agle hafte ke end mein"
                return self.done(k + 2, "other")
            if mod is None:
                return False
            self.spec.ranges.append(RangeSpec("week" if self.sval(k) == "week" else "month", which))
            return self.done(k + 1, "other")
        if tk is Tag.WEEKEND:
            # "coming weekend" is this weekend; "next weekend" is ambiguous (resolve decides)
            self.spec.ranges.append(RangeSpec("weekend", "next" if mod == "next" else "this"))
            return self.done(k + 1, "other")
        if mod is not None and tk is Tag.WEEKDAY:
            self.spec.days.append(WeekdaySpec(self.num(1), mod))
            return self.done(2, "day")
        if mod == "this" and tk is Tag.PART:
            self.spec.days.append(RelDay(0))  # "this evening" = today
            self.spec.parts.append(self.sval(1))
            return self.done(2, "part")
        return False

    def day(self) -> bool:
        if self.tag() is Tag.REL_DAY:
            self.spec.days.append(RelDay(self.num()))
            return self.done(1, "day")
        if self.tag() is Tag.WEEKDAY:
            self.spec.days.append(WeekdaySpec(self.num(), None))
            return self.done(1, "day")
        return False

    def part(self) -> bool:
        if self.tag() is Tag.PART:
            self.spec.parts.append(self.sval())
            return self.done(1, "part")
        if self.tag() is Tag.UNIT and self.sval() == "day" and self.tag(1) is Tag.POST_IN:
            self.spec.parts.append("daytime")  # "kal din mein"
            return self.done(2, "part")
        return False

    def same_time(self) -> bool:
        if self.tag() is Tag.SAME_TIME:
            self.spec.same_time = True
            return self.done(1, "other")
        return False

    def dismissal(self) -> bool:
        if self.tag() in (Tag.DISMISS, Tag.LATER):
            self.spec.dismissals.append("later" if self.tag() is Tag.LATER else self.sval())
            return self.done(1, self.last)  # "aaj baad mein": keeps the day context
        return False

    def loose_hour(self) -> bool:
        """A plain number right after a day or a part of day is an hour: "tomorrow 11", "raat 8"."""
        if self.tag() is not Tag.NUM or self.last not in ("day", "part") or self.tag(1) in _NOT_AN_HOUR_AFTER:
            return False
        if self.text() in _VERB_LIKE_NUMBERS:
            return False  # "tomorrow, do call": only "do baje" makes "do" an hour
        self.spec.times.append(self.time_spec(self.num(), 0, "bare", self.text()))
        return self.done(1, "other")


def read_spec(text: str) -> Spec:
    """What the grammar understands in `text`; raises NotUnderstood for anything it cannot read."""
    return _Walk(tokenise(text)).run()


def parse_callback_time(text: str, *, reference: datetime) -> CallbackReading:
    """Read a callback phrase relative to `reference`, the call's end as an aware datetime in the
    workspace zone. Never raises for odd text (returns an UNPARSED reading); raises ValueError for a
    naive reference."""
    if reference.tzinfo is None or reference.utcoffset() is None:
        raise ValueError("reference must be an aware datetime in the workspace time zone")
    try:
        spec = read_spec(text)
        return resolve(text, spec, reference)
    except NotUnderstood as exc:
        return CallbackReading(text, CallbackStatus.UNPARSED, None, None, None, reason=str(exc))
