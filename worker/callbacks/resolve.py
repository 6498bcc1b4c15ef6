"""Place what the grammar read (`Spec`) on the calendar of the reference's zone.

Rules (the reading is what was said; `schedule_followup` moves it into calling hours or out of the past;
which day a day word names is `days.resolve_day`'s job):

- A time, window or part of day with no day is today if still ahead of the reference, else tomorrow.
- A bare hour (no am/pm, no part of day) takes the office-hours reading, status OK: 8-11 am, 12 noon,
  1-7 pm. A part of day fixes the half: "raat 8" = 20:00. Said with "today" for an hour already past
  ("aaj 10 baje" at 15:31) the other half of the day is offered: AMBIGUOUS.
- A window ("between 2 and 3", "3 se 4 ke beech", "after 2", "11 ke baad", "before 1") is a WINDOW
  reading from its start; an open end runs to midnight, an open start from 08:00 (or the reference, if
  later). The end of "2 to 3 pm" lends its am/pm to the start; a bare end is the first hour after the
  start. `note` names the window.
- "around 5", "4ish": the instant, with `tolerance_minutes` 30 and a note saying so.
- A machine time with an offset ("...Z", "+05:30") is that instant, shown in the workspace zone; a naive
  one is read in the workspace zone.
- A weekday named on that weekday: the primary reading is the first occurrence that has not started yet
  at the reference and the other is the alternative: AMBIGUOUS.
- "next week" is Monday..Sunday of next week; "this week" today..Sunday; "end of the week" Friday (or
  today if later)..Sunday; "weekend" the coming Saturday..Sunday ("next weekend" on a weekday is
  AMBIGUOUS); "next month" the whole next calendar month; "second week of March" days 8-14; "the 20th
  of next month" that day.
- "tomorrow"/"kal" said between 00:00 and 04:00 is AMBIGUOUS: the coming day (primary) or the one after.
- Durations in minutes/hours are elapsed time (correct across DST changes); days/weeks/months are
  calendar days ("in 2 days" is a DAY, "same time tomorrow" is tomorrow's same wall-clock time).
- "after lunch", "after Christmas", "in a few days": VAGUE, even with a day. "not now", "later",
  "anytime": VAGUE unless the phrase also gives a time. A negation with nothing said after it: VAGUE.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import TypeVar

from worker.callbacks.days import Day, add_months, part_of_month, resolve_day, week_of_month, weekday_month_day
from worker.callbacks.lexicon import PARTS, office_hour
from worker.callbacks.reading import CallbackReading, CallbackStatus, Grain
from worker.callbacks.spec import (
    AHEAD,
    DaySpec,
    LaterDays,
    MonthDaySpec,
    NotUnderstood,
    RangeSpec,
    RelDay,
    Spec,
    TimeSpec,
    WeekdaySpec,
    WindowSpec,
    WithinSpec,
)

_T = TypeVar("_T")
_APPROX_MINUTES = 30  # "around 5": the Task notes 17:00 give or take this much
_OPEN_START = time(8)  # "before 1" on a later day: the working morning starts here
_OPEN_SPAN = timedelta(hours=2)  # ... or this long before an early end ("before 8 am": 06:00-08:00)
_MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class _Span:
    """A reading's span; `why` says why it is possible when it is an alternative."""

    grain: Grain
    earliest: datetime
    latest: datetime
    why: str = field(default="", compare=False)
    note: str = field(default="", compare=False)
    tolerance: int = field(default=0, compare=False)


@dataclass(frozen=True)
class _When:
    """What the phrase says about the time of day (at most one of time/window, maybe a part of day)."""

    time: TimeSpec | None
    window: WindowSpec | None
    part: str | None


@dataclass
class _Context:
    zone: tzinfo
    reference: datetime

    @property
    def today(self) -> date:
        return self.reference.date()

    def at(self, day: date, clock: time) -> datetime:
        """The local datetime of `clock` on `day`; a time in a DST gap is moved forward like a clock."""
        naive = datetime.combine(day, clock)
        return naive.replace(tzinfo=self.zone).astimezone(UTC).astimezone(self.zone)

    def at_minutes(self, day: date, minutes: int, second: int = 0) -> datetime:
        extra, minutes = divmod(minutes, _MINUTES_PER_DAY)
        return self.at(day + timedelta(days=extra), time(minutes // 60, minutes % 60, second))

    def ahead(self, moment: datetime) -> bool:
        return moment.timestamp() > self.reference.timestamp()


def resolve(text: str, spec: Spec, reference: datetime) -> CallbackReading:
    """The reading of `spec` against `reference`; raises NotUnderstood when the parts do not fit."""
    assert reference.tzinfo is not None
    ctx = _Context(reference.tzinfo, reference)
    clock_said = bool(spec.times or spec.windows or spec.offsets or spec.moments or spec.within)
    if not (clock_said or spec.parts or spec.same_time or spec.days or spec.ranges):
        if spec.words == 0:
            raise NotUnderstood("empty phrase")
        why = (
            (spec.negated and f"a negation ('{', '.join(spec.negated)}') and no other time")
            or (spec.events and spec.events[0])
            or ", ".join(spec.dismissals)
            or "no time given"
        )
        return _vague(text, why)
    if spec.events and not clock_said:
        return _vague(text, f"day given but the time is vague ({spec.events[0]})")
    spans = _spans(spec, ctx)
    if spec.said_offset is not None and not spec.moments:  # a machine time carries its own offset
        spans = [_in_offset(s, spec.said_offset, ctx) for s in spans]
    return _reading(text, spans, ctx)


def _in_offset(span: _Span, offset: int, ctx: _Context) -> _Span:
    """ "10 am IST" read in another workspace zone: the wall time is the caller's zone's."""
    if span.grain not in (Grain.INSTANT, Grain.WINDOW):
        raise NotUnderstood("a time zone without a clock time")
    said = timezone(timedelta(minutes=offset))

    def move(moment: datetime) -> datetime:
        return moment.replace(tzinfo=None).replace(tzinfo=said).astimezone(ctx.zone)

    return replace(span, earliest=move(span.earliest), latest=move(span.latest))


def _vague(text: str, why: str) -> CallbackReading:
    return CallbackReading(text, CallbackStatus.VAGUE, None, None, None, reason=why)


def _unique(items: list[_T]) -> list[_T]:
    return list(dict.fromkeys(items))


def _spans(spec: Spec, ctx: _Context) -> list[_Span]:
    """The primary span first, then the alternatives."""
    days, ranges, times, parts = (_unique(x) for x in (spec.days, spec.ranges, spec.times, spec.parts))
    windows = _unique(spec.windows)
    if len(times) > 1 and len(parts) <= 1:  # "kal 11 baje (tomorrow 11 AM)": the same time said twice
        same = {(_hours(t, parts[0] if parts else None), t.minute, t.second) for t in times}
        if len(same) == 1:
            times = [next((t for t in times if t.mode != "bare"), times[0])]
    if len(times) + len(windows) > 1 or len(parts) > 1 or len(ranges) > 1:
        raise NotUnderstood("two different times in one phrase")
    if spec.moments:
        if len(_unique(spec.moments)) > 1 or days or ranges or times or parts or windows or spec.offsets:
            raise NotUnderstood("a machine time mixed with other times")
        moment = spec.moments[0].astimezone(ctx.zone)
        return [_Span(Grain.INSTANT, moment, moment)]
    if spec.within:
        if len(_unique(spec.within)) > 1 or days or ranges or times or parts or windows or spec.offsets:
            raise NotUnderstood("'within' mixed with other times")
        return [_within_span(spec.within[0], ctx)]
    if spec.offsets:
        others = [d for d in days if d != RelDay(0)]  # "today in one hour"
        if len(_unique(spec.offsets)) > 1 or others or ranges or times or parts or windows or spec.same_time:
            raise NotUnderstood("a duration mixed with other times")
        moment = (ctx.reference.astimezone(UTC) + spec.offsets[0]).astimezone(ctx.zone)
        if days and moment.date() != ctx.today:
            raise NotUnderstood("that duration does not end today")
        return [_Span(Grain.INSTANT, moment, moment)]
    if spec.same_time:
        if times or parts or windows:
            raise NotUnderstood("'same time' with another time")
        ref = ctx.reference
        times = [TimeSpec(ref.hour, ref.minute, "h24", ref.second)]
        if not days and ranges == [RangeSpec("week", "next")]:
            days, ranges = [LaterDays(1, "week")], []  # "same time next week"
        if not days:
            raise NotUnderstood("'same time' without a day")
    when = _When(times[0] if times else None, windows[0] if windows else None, parts[0] if parts else None)
    if ranges:
        return _range_spans(ranges[0], days, when, ctx)
    if not days:
        return _undated_spans(when, ctx)
    return _dated_spans(_combine_days(days, ctx), when, ctx)


def _within_span(within: WithinSpec, ctx: _Context) -> _Span:
    """ "within 2 hours": a window from now; "within 3 days": today up to the third day."""
    if within.minutes:
        end = (ctx.reference.astimezone(UTC) + timedelta(minutes=within.minutes)).astimezone(ctx.zone)
        hours, minutes = divmod(within.minutes, 60)
        said = f"{hours} h" if not minutes else f"{within.minutes} min"
        return _Span(Grain.WINDOW, ctx.reference, end, note=f"within {said}, by {end:%H:%M}")
    last = ctx.today + timedelta(days=within.days)
    return _range_span(ctx.today, last, ctx)


# ------------------------------------------------------------------------------------------------- days
def _combine_days(days: list[DaySpec], ctx: _Context) -> Day:
    """One day from one or more day specs; weekdays must agree with a date said alongside."""
    weekdays = [d for d in days if isinstance(d, WeekdaySpec) and d.mod is None and d.count == 1]
    others = [d for d in days if d not in weekdays]
    if not others:
        if len(weekdays) > 1:
            raise NotUnderstood("two different days in one phrase")
        return resolve_day(weekdays[0], ctx.today, ctx.reference.hour)
    resolved = {resolve_day(d, ctx.today, ctx.reference.hour) for d in others}
    if len(resolved) > 1:
        raise NotUnderstood("two different days in one phrase")
    chosen = resolved.pop()
    if not weekdays:
        return chosen
    wanted = {w.weekday for w in weekdays}
    if len(wanted) > 1:
        raise NotUnderstood("two different weekdays in one phrase")
    wd = wanted.pop()
    fits = [d for d in (chosen.day, chosen.alt) if d and d.weekday() == wd]
    if fits:  # "kal Friday": the weekday must agree, and settles an ambiguous day
        return Day(fits[0])
    if len(others) == 1 and isinstance(others[0], MonthDaySpec):
        # "Thu 15th" when the coming 15th is no Thursday: the next 15th that is one, or the caller misspoke
        found = weekday_month_day(wd, others[0].day, ctx.today)
        why = f"the coming {chosen.day:%d %b} is a {chosen.day:%A}, not a {calendar.day_name[wd]}"
        return Day(found, alt=chosen.day, why=why)
    raise NotUnderstood(f"{chosen.day:%d %b} is not a {calendar.day_name[wd]}")


# ------------------------------------------------------------------------------------------------ times
def _hours(spec: TimeSpec, part: str | None) -> int:
    """The 24-hour hour of a time: a part of day picks am/pm; without one the office-hours reading."""
    if part is not None:
        window = PARTS[part]
        if spec.mode == "bare":
            hours = [h for h in (spec.hour % 12, spec.hour % 12 + 12) if h in window.hours]
        else:
            hours = [spec.hour] if spec.hour in window.hours else []
        if not hours:
            raise NotUnderstood(f"{spec.hour}:{spec.minute:02d} does not fit the {part}")
        return hours[0]
    return office_hour(spec.hour) if spec.mode == "bare" else spec.hour


def _shift(hour: int, part: str | None) -> int:
    """ "raat 1 baje" is 01:00 after midnight: the next calendar day."""
    return 1 if part is not None and PARTS[part].night_next_day and hour < 12 else 0


def _window_minutes(w: WindowSpec, part: str | None) -> tuple[int | None, int | None]:
    """Start and end of a window in minutes after midnight of its day (None: open)."""
    start = end = None
    if w.start is not None and (w.start.mode != "bare" or w.end is None or w.end.mode == "bare" or part):
        start = _hours(w.start, part) * 60 + w.start.minute
    if w.end is not None and (w.end.mode != "bare" or part):
        end = _hours(w.end, part) * 60 + w.end.minute
    if w.start is not None and start is None:
        # "2 to 3 pm": the start is the latest reading of its hour before the end
        assert end is not None
        options = [h * 60 + w.start.minute for h in (w.start.hour % 12, w.start.hour % 12 + 12)]
        start = max([o for o in options if o < end], default=None)
    elif w.end is not None and end is None:
        if start is None:
            end = _hours(w.end, None) * 60 + w.end.minute
        else:  # "between 10 and 12", "3 se 4": the end is the first reading of its hour after the start
            options = [h * 60 + w.end.minute for h in (w.end.hour % 12, w.end.hour % 12 + 12)]
            end = min([o for o in options if o > start], default=None)
    if w.start is not None and w.end is not None and (start is None or end is None or not start < end):
        raise NotUnderstood("the window ends before it starts")
    return start, end


def _window_on(day: date, w: WindowSpec, part: str | None, ctx: _Context) -> _Span:
    start, end = _window_minutes(w, part)
    shift = _shift((start if start is not None else end or 0) // 60, part)
    day += timedelta(days=shift)
    latest = ctx.at_minutes(day, end) if end is not None else ctx.at(day + timedelta(days=1), time())
    if start is None:  # "before 1": from the working morning; "before 8 am": the two hours before
        earliest = min(ctx.at(day, _OPEN_START), latest - _OPEN_SPAN)
        if earliest < ctx.reference < latest:
            earliest = ctx.reference  # "before 1" said at 10:15: from now
        note = f"before {latest:%H:%M}"
    else:
        earliest = ctx.at_minutes(day, start)
        note = f"between {earliest:%H:%M} and {latest:%H:%M}" if end is not None else f"after {earliest:%H:%M}"
    return _Span(Grain.WINDOW, earliest, latest, note=note)


def _on_day(day: date, when: _When, ctx: _Context) -> list[_Span]:
    """The span a time/window/part of day (or none) gives on `day`."""
    spec, part = when.time, when.part
    if when.window is not None:
        return [_window_on(day, when.window, part, ctx)]
    if spec is not None:
        hour = _hours(spec, part)
        moment = ctx.at(day + timedelta(days=_shift(hour, part)), time(hour, spec.minute, spec.second))
        if spec.approx:
            note = f"around {moment:%H:%M}, give or take {_APPROX_MINUTES} min"
            return [_Span(Grain.INSTANT, moment, moment, note=note, tolerance=_APPROX_MINUTES)]
        return [_Span(Grain.INSTANT, moment, moment)]
    if part is not None:
        window = PARTS[part]
        start = ctx.at(day, time(window.start))
        end = ctx.at(day + timedelta(days=window.end // 24), time(window.end % 24))
        return [_Span(Grain.PART_OF_DAY, start, end)]
    return [_Span(Grain.DAY, ctx.at(day, time()), ctx.at(day + timedelta(days=1), time()))]


def _still_open(span: _Span, when: _When, ctx: _Context) -> bool:
    """Whether an undated reading can still be today: an instant ahead, a part of day not over, a window
    whose start is ahead (or, for "between"/"before", whose end is)."""
    if span.grain is Grain.INSTANT:
        return ctx.ahead(span.earliest)
    if span.grain is Grain.WINDOW and when.window is not None and when.window.end is None:
        return ctx.ahead(span.earliest)
    return ctx.ahead(span.latest)


def _undated_spans(when: _When, ctx: _Context) -> list[_Span]:
    """No day said: today if still ahead, else tomorrow."""
    today = _on_day(ctx.today, when, ctx)[0]
    if _still_open(today, when, ctx):
        if today.grain is Grain.WINDOW and not ctx.ahead(today.earliest):
            today = replace(today, earliest=ctx.reference)  # "between 2 and 4" said at 14:30: from now
        return [today]
    return _on_day(ctx.today + timedelta(days=1), when, ctx)


def _dated_spans(day: Day, when: _When, ctx: _Context) -> list[_Span]:
    if day.same_weekday:
        return _same_weekday_spans(when, ctx)
    spans = _on_day(day.day, when, ctx)
    if day.alt is not None:
        spans.append(replace(_on_day(day.alt, when, ctx)[0], why=day.why))
    first, spec = spans[0], when.time
    if (
        first.grain is Grain.INSTANT
        and not ctx.ahead(first.earliest)
        and spec
        and spec.mode == "bare"
        and not when.part
    ):
        # "aaj 10 baje" said at 15:31: 10:00 is past, so 22:00 is a reading too
        other = (first.earliest.hour + 12) % 24
        moment = ctx.at(first.earliest.date(), time(other, first.earliest.minute))
        if ctx.ahead(moment) and moment.date() == first.earliest.date():
            why = f"{first.earliest:%H:%M} had passed; {moment:%H:%M} is possible"
            spans.append(_Span(Grain.INSTANT, moment, moment, why))
    return spans


def _same_weekday_spans(when: _When, ctx: _Context) -> list[_Span]:
    """A bare weekday naming today: the primary is the first occurrence not yet begun."""
    today = _on_day(ctx.today, when, ctx)
    next_week = _on_day(ctx.today + timedelta(days=7), when, ctx)
    why = f"'{ctx.today:%A}' said on a {ctx.today:%A}: today or next week"
    if ctx.ahead(today[0].earliest):
        return [*today, replace(next_week[0], why=why)]
    if ctx.ahead(today[0].latest):
        return [*next_week, replace(today[0], why=why)]
    return next_week


# ----------------------------------------------------------------------------------------------- ranges
def _range_spans(spec: RangeSpec, days: list[DaySpec], when: _When, ctx: _Context) -> list[_Span]:
    first, last, alt = _range_dates(spec, ctx.today)
    if days:
        if len(days) != 1:
            raise NotUnderstood("a day together with a range of days")
        said = days[0]
        found = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        if isinstance(said, MonthDaySpec) and spec.kind == "month":  # "the 20th of next month"
            matching = [d for d in found if d.day == said.day]
            if not matching:
                raise NotUnderstood(f"the {said.day}th is not ahead in that month")
        elif isinstance(said, WeekdaySpec) and said.mod in (None, "this") and spec.kind != "month":
            matching = [d for d in found if d.weekday() == said.weekday]
        else:
            raise NotUnderstood("a day together with a range of days")
        if len(matching) != 1:
            raise NotUnderstood("no single day of that range")
        return _on_day(matching[0], when, ctx)
    if when.time is not None or when.part is not None or when.window is not None:
        raise NotUnderstood("a time of day without a day in a range of days")
    spans = [_range_span(first, last, ctx)]
    if alt is not None:
        why = f"'next weekend' may be {first:%d %b} or {alt[0]:%d %b}"
        spans.append(replace(_range_span(alt[0], alt[1], ctx), why=why))
    return spans


def _range_span(first: date, last: date, ctx: _Context) -> _Span:
    return _Span(Grain.RANGE, ctx.at(first, time()), ctx.at(last + timedelta(days=1), time()))


def _range_dates(spec: RangeSpec, today: date) -> tuple[date, date, tuple[date, date] | None]:
    """First and last day of a range, and an alternative range when "next weekend" is ambiguous."""
    monday = today - timedelta(days=today.weekday())
    next_monday = monday + timedelta(days=7)
    ahead = AHEAD[spec.which]
    if spec.which == "after_next" and spec.kind not in ("week", "month"):
        raise NotUnderstood("'after next' is understood for a week, a month or a weekday")
    if spec.kind == "week_of_month":
        first, last = week_of_month(spec.nth, spec.month, spec.which, today)
        if last < today:
            raise NotUnderstood("that week has already passed")
        return max(first, today), last, None
    if spec.kind == "week":
        if ahead:
            first = monday + timedelta(days=7 * ahead)
            return first, first + timedelta(days=6), None
        return today, monday + timedelta(days=6), None
    if spec.kind == "month":
        if ahead:
            start = add_months(today.replace(day=1), ahead)
            return start, start.replace(day=calendar.monthrange(start.year, start.month)[1]), None
        return today, today.replace(day=calendar.monthrange(today.year, today.month)[1]), None
    if spec.kind == "part_of_month":
        first, last = part_of_month(spec.phase, spec.month, spec.which, today)
        return max(first, today), last, None
    if spec.kind == "part_of_week":  # start: Monday-Tuesday, middle: Wednesday-Thursday
        base = next_monday if spec.which == "next" else monday
        first = base + timedelta(days=0 if spec.phase == "start" else 2)
        if first + timedelta(days=1) < today:
            raise NotUnderstood("that part of the week has passed")
        return max(first, today), first + timedelta(days=1), None
    if spec.kind == "end_of_week":
        base = next_monday if spec.which == "next" else monday
        return max(base + timedelta(days=4), today), base + timedelta(days=6), None
    # weekend
    saturday = monday + timedelta(days=5)
    if spec.which == "next" and today.weekday() < 5:
        later = saturday + timedelta(days=7)
        return saturday, saturday + timedelta(days=1), (later, later + timedelta(days=1))
    if spec.which == "next":
        saturday += timedelta(days=7)
    return max(saturday, today), saturday + timedelta(days=1), None


# ---------------------------------------------------------------------------------------------- reading
def _end(span: _Span) -> datetime:
    return span.earliest if span.grain is Grain.INSTANT else span.latest


def _reading(text: str, spans: list[_Span], ctx: _Context) -> CallbackReading:
    primary = spans[0]
    # an alternative already over when the call ended is no reading of a callback time
    rest = [s for s in _unique(spans[1:]) if s != primary and ctx.ahead(_end(s))]
    reasons = _unique([s.why for s in rest if s.why])
    if not ctx.ahead(_end(primary)):
        reasons.append("already past when the call ended")
    alternatives = tuple(
        CallbackReading(
            text, CallbackStatus.OK, s.grain, s.earliest, s.latest, note=s.note, tolerance_minutes=s.tolerance
        )
        for s in rest
    )
    status = CallbackStatus.AMBIGUOUS if alternatives else CallbackStatus.OK
    return CallbackReading(
        text,
        status,
        primary.grain,
        primary.earliest,
        primary.latest,
        alternatives,
        "; ".join(reasons),
        note=primary.note,
        tolerance_minutes=primary.tolerance,
    )
