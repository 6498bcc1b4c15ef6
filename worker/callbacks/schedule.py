"""Turn a callback reading into the due time of a Salesforce follow-up Task.

Rules:
1. Base instant: INSTANT -> the instant; PART_OF_DAY -> the part's start (step 2 clamps it into calling
   hours: morning 06:00 -> 09:00, tonight 18:00 stays); DAY and RANGE -> `default_time` on the (first)
   day; VAGUE and UNPARSED -> `default_time` on the next working day after `now`, for a human.
2. Calling window (local to the workspace zone, the zone of `reference`), inclusive at both ends (9 pm
   with 09:00-21:00 stays 21:00): before its start -> its start the same day; after its end -> its start
   the next day. A WINDOW reading ("between 2 and 3", "after 11") falls due at its start.
   Explicit days stay explicit: working days decide only where vague and unparsed readings fall (a caller
   who asks for Sunday gets Sunday).
3. Never in the past: before `now` -> the next calling-window slot at or after `now` (now itself when
   inside the window, else the window's next start).
Every move is written into `note`. `due` is returned in UTC, `activity_date` is its date in the zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from worker.callbacks.reading import CallbackReading, CallbackStatus, FollowUp, Grain

_NEEDS_HUMAN = frozenset({CallbackStatus.VAGUE, CallbackStatus.UNPARSED})
_MAX_NOTE_PHRASE = 120


def schedule_followup(
    reading: CallbackReading,
    *,
    reference: datetime,
    now: datetime,
    window: tuple[time, time] = (time(9), time(21)),
    working_days: frozenset[int] = frozenset(range(6)),
    default_time: time = time(10),
) -> FollowUp:
    """The follow-up for `reading`. `reference` (the call's end) must carry a ZoneInfo: its zone is the
    workspace zone. `now` must be aware. `working_days` are weekday numbers (0 = Monday). Raises
    ValueError for a naive or non-ZoneInfo reference, a naive `now`, an empty window or no working days."""
    zone = reference.tzinfo
    if not isinstance(zone, ZoneInfo):
        raise ValueError("reference must be an aware datetime with a ZoneInfo time zone")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    opens, closes = window
    if not opens < closes:
        raise ValueError("calling window must open before it closes")
    if not working_days or not working_days <= frozenset(range(7)):
        raise ValueError("working_days must be a non-empty set of weekday numbers 0..6")
    local_now = now.astimezone(zone)
    notes = [_describe(reading)]

    if reading.status in _NEEDS_HUMAN or reading.earliest is None:
        day = local_now.date() + timedelta(days=1)
        while day.weekday() not in working_days:
            day += timedelta(days=1)
        due = _at(day, default_time, zone)
        notes.append(f"due next working day {due:%a %d %b %H:%M} for a human to read the phrase")
    elif reading.grain in (Grain.DAY, Grain.RANGE):
        due = _at(reading.earliest.astimezone(zone).date(), default_time, zone)
        notes.append(f"no time of day said: default {default_time:%H:%M}")
    else:
        due = reading.earliest.astimezone(zone)

    inside = _into_window(due, opens, closes, zone)
    if inside != due:
        notes.append(
            f"outside calling window {opens:%H:%M}-{closes:%H:%M}: moved to its next opening {inside:%a %d %b %H:%M}"
        )
        due = inside
    if due.timestamp() < now.timestamp():
        slot = _into_window(local_now, opens, closes, zone)
        notes.append(f"{due:%a %d %b %H:%M} already past at {local_now:%H:%M}: moved to {slot:%a %d %b %H:%M}")
        due = slot

    return FollowUp(
        due=due.astimezone(UTC),
        activity_date=due.astimezone(zone).date(),
        confirm_time=reading.status is CallbackStatus.AMBIGUOUS,
        needs_human=reading.status in _NEEDS_HUMAN,
        note="; ".join(notes),
    )


def _at(day: date, clock: time, zone: tzinfo) -> datetime:
    """Local `clock` on `day`; a time inside a DST gap is moved forward like a wall clock."""
    return datetime.combine(day, clock).replace(tzinfo=zone).astimezone(UTC).astimezone(zone)


def _into_window(moment: datetime, opens: time, closes: time, zone: tzinfo) -> datetime:
    """`moment` if inside [opens, closes] local time (both ends included), else the window's next opening."""
    local = moment.astimezone(zone)
    if local.time() < opens:
        return _at(local.date(), opens, zone)
    if local.time() > closes:
        return _at(local.date() + timedelta(days=1), opens, zone)
    return local


def _describe(reading: CallbackReading) -> str:
    """The reading in one line, the caller's phrase quoted and shortened."""
    phrase = " ".join(reading.text.split())
    if len(phrase) > _MAX_NOTE_PHRASE:
        phrase = phrase[: _MAX_NOTE_PHRASE - 1] + "…"
    if reading.status in _NEEDS_HUMAN:
        return f"callback '{phrase}': {reading.status}" + (f" ({reading.reason})" if reading.reason else "")
    line = f"callback '{phrase}' read as {reading.describe()}"
    if reading.status is CallbackStatus.AMBIGUOUS:
        others = ", ".join(alt.describe() for alt in reading.alternatives)
        line += f" (ambiguous, confirm time; also possible: {others})"
    return line
