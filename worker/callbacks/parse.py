"""The grammar of callback phrases, and `parse_callback_time`, the reader's entry point.

The grammar walks the tokens left to right. At each position it tries its rules in a fixed order
(machine date-times, zone words, minutes past/to, durations, events, windows, times, nth weekdays, dates,
weeks/ranges, days, parts of day, "same time", dismissals, a loose hour); a rule that matches records what it
read in a `Spec` and moves on, so the parts of a phrase may come in any order ("10 tomorrow", "kal 4
baje", "4 baje kal"). Known filler words are skipped.

Negations correct: an English "not" takes back the next thing read, a Hindi "nahi"/"mat" the thing
before it ("not Monday, Tuesday", "Monday nahi, Tuesday ko" -> Tuesday). When nothing is said after the
negation, the phrase is vague ("not today", "aaj mat karo", "kal 5 baje nahi").

Anything else (an unknown word, a stray "after" or month name) stops the walk: the phrase is
`unparsed`, never half-read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

from worker.callbacks.clock import ClockRules
from worker.callbacks.lexicon import STATE_EVENTS, Tag, Tok
from worker.callbacks.reading import CallbackReading, CallbackStatus
from worker.callbacks.resolve import resolve
from worker.callbacks.spec import (
    DateSpec,
    FromDay,
    LaterDays,
    MonthDayInSpec,
    MonthDaySpec,
    NotUnderstood,
    NthWeekdaySpec,
    Phase,
    RangeKind,
    RangeSpec,
    RelDay,
    Spec,
    TimeSpec,
    WeekdaySpec,
    Which,
    WithinSpec,
)
from worker.callbacks.tokens import IsoValue, tokenise

# Tokens the grammar may skip when no rule uses them.
_SKIPPABLE = frozenset(
    {Tag.FILLER, Tag.HOURMARK, Tag.APPROX, Tag.IN, Tag.POST_IN, Tag.OF, Tag.ARTICLE, Tag.AND, Tag.TO, Tag.SE, Tag.TAK}
)
# What may follow a number that makes it not a day of the month ("Dec 5 pm" is not Dec 5).
_NOT_A_DAY_AFTER = frozenset({Tag.MERIDIEM, Tag.BAJE, Tag.BAJKE, Tag.UNIT, Tag.NOON, Tag.TARIKH, Tag.APPROX})
_VERB_IS = frozenset({"is", "iss"})  # a dangling "is" is the English verb, not Hindi "this"
_WHICH: dict[str, Which] = {"next": "next", "coming": "next", "this": "this", "after_next": "after_next"}
_PLACE_UNITS: dict[str, Literal["day", "week", "month"]] = {"day": "day", "week": "week", "month": "month"}
_CLOCK_UNITS = {"minute": 1, "hour": 60}
_MAX_OFFSET = timedelta(days=3)  # "in 1400 hours" is no callback: a longer clock offset is unparsed
_DAY_OF = frozenset({Tag.OF, Tag.IN})
_PHASES: dict[str, Phase] = {"start": "start", "mid": "mid", "end": "end"}
_WITHIN_POST = frozenset({"andar", "ke andar", "के अंदर"})
_MORE = frozenset({"more", "another"})


class _Walk(ClockRules):
    """One walk over a phrase's tokens (see the module docstring)."""

    def __init__(self, toks: list[Tok]) -> None:
        super().__init__(toks)
        self.negate_next = False
        self.last_read: tuple[int, ...] | None = None  # spec sizes before the last thing read
        self.after_negation: tuple[int, ...] | None = None  # spec sizes right after the last negation

    # --------------------------------------------------------------------------------- bookkeeping
    def sizes(self) -> tuple[int, ...]:
        s = self.spec
        return (
            len(s.days), len(s.ranges), len(s.times), len(s.windows), len(s.parts), len(s.offsets),
            len(s.moments), int(s.same_time), len(s.within),
        )  # fmt: skip

    def take_back(self, sizes: tuple[int, ...], said: str) -> None:
        """Undo what was read since `sizes` (a negated part of the phrase)."""
        s = self.spec
        del s.days[sizes[0] :], s.ranges[sizes[1] :], s.times[sizes[2] :], s.windows[sizes[3] :]
        del s.parts[sizes[4] :], s.offsets[sizes[5] :], s.moments[sizes[6] :], s.within[sizes[8] :]
        s.same_time = bool(sizes[7]) and s.same_time
        if said:
            s.negated.append(said)

    def negation(self, tok: Tok) -> None:
        if tok.value == "post" and self.last_read is not None:
            self.take_back(self.last_read, tok.text)
            self.last_read = None
        elif tok.value == "post":
            self.spec.negated.append(tok.text)  # "abhi time nahi hai": nothing to take back
        else:
            self.negate_next = True
        self.after_negation = self.sizes()

    # --------------------------------------------------------------------------------------------- walk
    def run(self) -> Spec:
        rules: tuple[Callable[[], bool], ...] = (
            self.iso,
            self.zone,
            self.minutes_around,
            self.duration,
            self.event,
            self.window,
            self.time,
            self.nth,
            self.date,
            self.ranges,
            self.day,
            self.part,
            self.same_time,
            self.dismissal,
            self.loose_hour,
        )
        while self.i < len(self.toks):
            before = self.sizes()
            if any(rule() for rule in rules):
                if self.sizes() != before:
                    if self.negate_next:
                        self.take_back(before, "not")
                        self.negate_next = False
                        self.after_negation = self.sizes()
                    else:
                        self.last_read = before
                continue
            tok = self.toks[self.i]
            self.i += 1
            if tok.tag is Tag.NEG:
                self.negation(tok)
            elif tok.tag in _SKIPPABLE or (tok.tag is Tag.MOD and tok.text in _VERB_IS):
                continue
            elif tok.tag is Tag.UNKNOWN:
                raise NotUnderstood(f"unknown word '{tok.text}'")
            else:
                raise NotUnderstood(f"'{tok.text}' not understood here")
        if self.negate_next or (self.after_negation is not None and self.sizes() == self.after_negation):
            self.take_back((0,) * 9, "")
        elif self.after_negation is not None:
            self.correct(self.after_negation)
        return self.spec

    def correct(self, sizes: tuple[int, ...]) -> None:
        """What is said after a negation replaces what was said before it, kind by kind: "aaj shaam nahi,
        kal subah" -> kal subah (the day and the part are both said again)."""
        s = self.spec
        kinds: tuple[tuple[list[Any], ...], ...] = (
            (s.days, s.ranges), (s.times, s.windows), (s.parts,), (s.offsets,), (s.moments,), (s.within,),
        )  # fmt: skip
        positions = ((0, 1), (2, 3), (4,), (5,), (6,), (8,))
        for lists, where in zip(kinds, positions, strict=True):
            earlier = [sizes[w] for w in where]
            if any(n > 0 for n in earlier) and any(len(lst) > n for lst, n in zip(lists, earlier, strict=True)):
                for lst, n in zip(lists, earlier, strict=True):
                    del lst[:n]

    # ------------------------------------------------------------------------------------------- rules
    def iso(self) -> bool:
        """ "2024-12-26T11:00:00+05:30", "2024-12-26T05:30:00Z", "2024-12-26 11:00", "2024-12-26"."""
        if self.tag() is not Tag.ISO:
            return False
        value = self.value()
        assert isinstance(value, IsoValue)
        if value.clock is None:
            self.spec.days.append(DateSpec(value.day, value.month, value.year))
            return self.done(1, "day")
        hour, minute, second = value.clock
        used = 1
        if self.tag(1) is Tag.MERIDIEM and 1 <= hour <= 12:  # "2025-03-14 10:00 AM"
            hour, used = hour % 12 + (12 if self.sval(1) == "pm" else 0), 2
        if value.offset_minutes is None:  # naive: the workspace zone
            self.spec.days.append(DateSpec(value.day, value.month, value.year))
            self.spec.times.append(self.checked_h24(hour, minute, second))
            return self.done(used, "other")
        zone = timezone(timedelta(minutes=value.offset_minutes))
        try:
            moment = datetime(value.year, value.month, value.day, hour, minute, second, tzinfo=zone)
        except ValueError:
            raise NotUnderstood(f"no such date-time '{self.text()}'") from None
        self.spec.moments.append(moment.astimezone(UTC))
        return self.done(used, "other")

    def zone(self) -> bool:
        """ "10 am IST", "15:00 UTC": the clock time is in that zone (only zones with a fixed offset)."""
        if self.tag() is not Tag.ZONE:
            return False
        offset = self.num()
        if self.spec.said_offset not in (None, offset):
            raise NotUnderstood("two time zones in one phrase")
        self.spec.said_offset = offset
        return self.done(1, self.last)

    def checked_h24(self, hour: int, minute: int, second: int) -> TimeSpec:
        if not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 59):
            raise NotUnderstood(f"no such time '{self.text()}'")
        return TimeSpec(hour, minute, "h24", second)

    def duration(self) -> bool:
        """[in|after] quantity unit [and a half] [mein|baad|later|from now|from tomorrow]: "in 2 hours",
        "do din baad", "2 hours 30 minutes", "a week from tomorrow". A duration alone ("10 minutes") is a
        callback that far ahead too."""
        k = 0
        within = self.tag() is Tag.WITHIN
        base: RelDay | None = None
        if self.tag() is Tag.REL_DAY and self.tag(1) in (Tag.SE, Tag.FROM):
            base, k = RelDay(self.num()), 2  # "aaj se 2 din baad", "kal se ek hafte baad"
        elif self.tag() in (Tag.IN, Tag.AFTER, Tag.WITHIN):
            k = 2 if self.tag(1) in (Tag.HOURMARK, Tag.APPROX) else 1
        found = self.quantity(k)
        if found is not None and self.tag(k + found[1]) is Tag.FILLER and self.text(k + found[1]) in _MORE:
            found = (found[0], found[1] + 1)  # "in 2 more minutes"
        if found is None or self.tag(k + found[1]) is not Tag.UNIT:
            return False
        if k == 0 and self.text().isdigit() and len(self.text()) in (3, 4) and self.unit_is(1, "hour"):
            return False  # "1745 hrs" is a clock time
        amount, used = found
        k += used
        unit = self.sval(k)
        k += 1
        if self.tag(k) is Tag.ANDHALF and amount is not None and amount.is_integer():
            amount += 0.5  # "an hour and a half"
            k += 1
        if unit == "hour" and amount is not None:
            amount, unit, k = self.minutes_after_hours(amount, k)
        if base is None and self.tag(k) is Tag.FROM and self.tag(k + 1) is Tag.REL_DAY:
            base, k = RelDay(self.num(k + 1)), k + 2  # "a week from tomorrow"
        elif self.tag(k) in (Tag.POST_IN, Tag.POST_AFTER, Tag.LATER):
            within = within or self.text(k) in _WITHIN_POST  # "do ghante ke andar"
            k += 1
        if amount is None:
            self.spec.events.append(f"in a few {unit}s")
            return self.done(k, "other")
        if within:  # "within 2 hours": any time from now up to then
            if unit in _CLOCK_UNITS:
                self.spec.within.append(WithinSpec(minutes=round(amount * _CLOCK_UNITS[unit])))
            elif amount.is_integer() and unit in ("day", "week"):
                self.spec.within.append(WithinSpec(days=int(amount) * (7 if unit == "week" else 1)))
            else:
                raise NotUnderstood(f"'within {amount:g} {unit}s' is too long a window")
            return self.done(k, "other")
        if unit in _CLOCK_UNITS and base in (None, RelDay(0)):  # "aaj se 2 ghante baad" = in 2 hours
            offset = timedelta(minutes=amount * _CLOCK_UNITS[unit])
            if offset > _MAX_OFFSET:
                raise NotUnderstood(f"'{amount:g} {unit}s' is no callback time")
            self.spec.offsets.append(offset)
            return self.done(k, "other")
        if unit in _CLOCK_UNITS or not (amount.is_integer() and amount > 0):
            raise NotUnderstood(f"'{amount:g} {unit}' cannot be placed on a day")
        later = LaterDays(int(amount), _PLACE_UNITS[unit])
        self.spec.days.append(later if base is None else FromDay(base, later))
        return self.done(k, "day")

    def minutes_after_hours(self, hours: float, k: int) -> tuple[float, str, int]:
        """ "2 hours (and) 30 minutes": the total in minutes and the offset after it; else unchanged."""
        j = k + 1 if self.tag(k) is Tag.AND else k
        more = self.quantity(j)
        if more is None or more[0] is None or not self.unit_is(j + more[1], "minute"):
            return hours, "hour", k
        return hours * 60 + more[0], "minute", j + more[1] + 1

    def event(self) -> bool:
        """ "after lunch", "Diwali ke baad", "before the meeting": times that cannot be put on a clock."""
        k = 1 if self.tag() in (Tag.AFTER, Tag.BEFORE) else 0
        if self.tag(k) is not Tag.EVENT:
            return False
        event, anchored = self.sval(k), k == 1
        relation = "before" if self.tag() is Tag.BEFORE else "after"
        k += 1
        if self.tag(k) in (Tag.POST_AFTER, Tag.BEFORE, Tag.LATER):
            relation = "before" if self.tag(k) is Tag.BEFORE else "after"
            k, anchored = k + 1, True
        if anchored or event not in STATE_EVENTS:
            self.spec.events.append(f"{relation} {event}" if anchored else event)
        else:
            self.spec.dismissals.append(f"at {event}")  # "meeting mein hoon": where, not when
        return self.done(k, "other")

    def nth(self) -> bool:
        """first/second/last <weekday> of <month>|this/next month; second week of March; third day of
        October; last day of February."""
        if self.tag() not in (Tag.NTH, Tag.ORD):
            return False
        n = self.num()
        if self.tag(1) is Tag.WEEKDAY and self.tag(2) in _DAY_OF:
            found = self.month_after(3)
            if found is None or not (1 <= n <= 5 or n == -1):
                return False
            month, which, end = found
            self.spec.days.append(NthWeekdaySpec(n, self.num(1), month, which))
            return self.done(end, "day")
        if self.unit_is(1, "week") and self.tag(2) in _DAY_OF:
            found = self.month_after(3)
            if found is None or not (1 <= n <= 5 or n == -1):
                return False
            month, which, end = found
            self.spec.ranges.append(RangeSpec("week_of_month", which, nth=n, month=month))
            return self.done(end, "other")
        if self.unit_is(1, "day") and self.tag(2) in _DAY_OF:
            found = self.month_after(3)
            if found is None or not (1 <= n <= 31 or n == -1):
                return False
            month, which, end = found
            self.spec.days.append(MonthDayInSpec(n, month, which))
            return self.done(end, "day")
        return False

    def month_after(self, k: int) -> tuple[int | None, Which, int] | None:
        """A month k tokens ahead: "March", "this month", "next month", "the month": (month or None,
        which, offset after)."""
        if self.tag(k) is Tag.FILLER and self.text(k) == "the":
            k += 1
        if self.tag(k) is Tag.MONTH:
            return self.num(k), "this", k + 1
        if self.tag(k) is Tag.MOD and self.unit_is(k + 1, "month"):
            return None, _WHICH[self.sval(k)], k + 2
        if self.unit_is(k, "month"):
            return None, "this", k + 1
        return None

    def date(self) -> bool:
        """26/12, 25th Dec, Dec 25, January 2nd 2025, the first of March, on the 30th, 30 tarikh."""
        t0, t1, t2 = self.tag(), self.tag(1), self.tag(2)
        day_word = t0 in (Tag.ORD, Tag.NUM) or (t0 is Tag.NTH and self.num() > 0)
        if t0 is Tag.DATE:
            value = self.value()
            assert isinstance(value, tuple)
            return self.take_date(value[0], value[1], value[2], 1)
        if day_word and t1 is Tag.MONTH:
            return self.take_date(self.num(), self.num(1), None, 2)
        if day_word and t1 is Tag.OF and t2 is Tag.MONTH:
            return self.take_date(self.num(), self.num(2), None, 3)
        if t0 is Tag.MONTH:
            k = 2 if t1 is Tag.FILLER else 1  # "December the 25th"
            day_follows = self.tag(k) in (Tag.ORD, Tag.NTH) and self.num(k) > 0
            day_follows = day_follows or (
                self.tag(k) is Tag.NUM and self.tag(k + 1) not in _NOT_A_DAY_AFTER and self.num(k) <= 31
            )
            return day_follows and self.take_date(self.num(k), self.num(), None, k + 1)
        if t0 in (Tag.ORD, Tag.NTH) and self.num() > 0 and not (t1 is Tag.WEEKDAY or self.unit_is(1, "week")):
            used = 3 if self.unit_is(1, "day") and t2 is Tag.OF else 1  # "20th day of next month"
            self.spec.days.append(MonthDaySpec(self.num()))
            return self.done(used, "day")
        if t0 is Tag.NUM and t1 is Tag.TARIKH:
            self.spec.days.append(MonthDaySpec(self.num()))
            return self.done(2, "day")
        if t0 is Tag.NUM and t1 is Tag.OF and self.month_after(2) is not None and 1 <= self.num() <= 31:
            self.spec.days.append(MonthDaySpec(self.num()))  # "20 of next month"
            return self.done(2, "day")
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
            phase = _PHASES[self.sval()]
            which: Which = "this"
            k = 1
            if self.tag(1) is Tag.MOD:
                which, k = _WHICH[self.sval(1)], 2
            if self.tag(k) is Tag.MONTH and k == 1:  # "end of April", "mid March"
                self.spec.ranges.append(RangeSpec("part_of_month", "this", month=self.num(k), phase=phase))
                return self.done(k + 1, "other")
            if self.tag(k) is Tag.WEEKEND or self.unit_is(k, "week", "month"):
                kind: RangeKind = "part_of_month" if self.unit_is(k, "month") else "part_of_week"
                if kind == "part_of_week" and phase == "end":
                    kind = "end_of_week"
                self.spec.ranges.append(RangeSpec(kind, which, phase=phase))
                return self.done(k + 1, "other")
            raise NotUnderstood("only the start, middle or end of a week or month is understood")
        mod = self.sval() if self.tag() is Tag.MOD else None
        k = 0 if mod is None else 1
        tk = self.tag(k)
        if self.unit_is(k, "week", "month"):
            which = "this" if mod is None else _WHICH[mod]
            if self.tag(k + 1) is Tag.END_POST:  # "agle hafte ke end mein", "mahine ke end mein"
                is_week = self.sval(k) == "week"
                self.spec.ranges.append(RangeSpec("end_of_week" if is_week else "part_of_month", which, phase="end"))
                return self.done(k + 2, "other")
            unit: RangeKind = "week" if self.sval(k) == "week" else "month"
            if (
                mod is None
                and self.tag(k + 1) is Tag.AFTER
                and self.tag(k + 2) is Tag.MOD
                and self.sval(k + 2) == "next"
            ):
                self.spec.ranges.append(RangeSpec(unit, "after_next"))  # "the week after next"
                return self.done(k + 3, "other")
            if mod is None:
                return False
            self.spec.ranges.append(RangeSpec(unit, which))
            return self.done(k + 1, "other")
        if tk is Tag.WEEKEND:
            # "coming weekend" is this weekend; "next weekend" is ambiguous (resolve decides)
            if mod == "after_next":
                raise NotUnderstood("'the weekend after next' is not understood")
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
        """today/kal/parso; a weekday; "friday after next"; "3 fridays from now"."""
        if self.tag() is Tag.REL_DAY:
            self.spec.days.append(RelDay(self.num()))
            return self.done(1, "day")
        if self.tag() is Tag.WEEKDAY:
            if self.tag(1) is Tag.AFTER and self.tag(2) is Tag.MOD and self.sval(2) == "next":
                self.spec.days.append(WeekdaySpec(self.num(), "after_next"))
                return self.done(3, "day")
            self.spec.days.append(WeekdaySpec(self.num(), None))
            return self.done(1, "day")
        if self.tag() is Tag.NUM and self.tag(1) is Tag.WEEKDAYS_PL and self.tag(2) is Tag.POST_AFTER:
            if not 1 <= self.num() <= 8:
                raise NotUnderstood("too many weeks ahead")
            self.spec.days.append(WeekdaySpec(self.num(1), None, count=self.num()))
            return self.done(3, "day")
        return False

    def part(self) -> bool:
        if self.tag() is Tag.PART:
            self.spec.parts.append(self.sval())
            return self.done(1, "part")
        if self.unit_is(0, "day") and self.tag(1) is Tag.POST_IN:
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
