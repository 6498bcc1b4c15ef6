"""The types of the callback-time reader: what a phrase was read as, and the follow-up it schedules.

A `CallbackReading` states what the caller said, nothing more: it is never moved into calling hours or
out of the past (that is `schedule_followup`'s job, which returns a `FollowUp`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum


class CallbackStatus(StrEnum):
    """How sure the reading is."""

    OK = "ok"  # one defensible reading
    AMBIGUOUS = "ambiguous"  # the primary reading is defensible, so are `alternatives`
    VAGUE = "vague"  # the caller gave no time ("later", "baad mein"): no time may be guessed
    UNPARSED = "unparsed"  # the phrase holds words the grammar does not understand


class Grain(StrEnum):
    """How precise a reading is; fixes what `earliest`/`latest` mean."""

    INSTANT = "instant"  # earliest == latest == the instant
    PART_OF_DAY = "part_of_day"  # [earliest, latest) is the part of day ("tomorrow morning": 06:00-12:00)
    WINDOW = "window"  # [earliest, latest) is a window the caller named ("between 2 and 3", "after 11")
    DAY = "day"  # [earliest, latest) is one whole day, 00:00 to the next 00:00
    RANGE = "range"  # [earliest, latest) is several whole days ("next week": Monday 00:00 to next Monday)


@dataclass(frozen=True)
class CallbackReading:
    """One reading of a callback phrase.

    `earliest`/`latest` are aware datetimes in the workspace zone (the zone of the reference), or None
    when the status is VAGUE or UNPARSED (then `grain` is None too). `latest` is exclusive except for an
    INSTANT, where it equals `earliest`. `alternatives` is non-empty only when the status is AMBIGUOUS and
    holds the other defensible readings (each with status OK). `reason` explains an AMBIGUOUS, VAGUE or
    UNPARSED status, or notes something the scheduler should know (e.g. a time already past). `note` says
    what a human should see next to the time: the window said ("between 14:00 and 15:00", "after 11:00")
    or the approximation ("around 17:00, give or take 30 min"); `tolerance_minutes` is that give-or-take.
    """

    text: str
    status: CallbackStatus
    grain: Grain | None
    earliest: datetime | None
    latest: datetime | None
    alternatives: tuple[CallbackReading, ...] = ()
    reason: str = ""
    note: str = ""
    tolerance_minutes: int = 0

    def describe(self) -> str:
        """The reading in a few words, in its own zone: "Thu 26 Dec 2024 11:00", "Thu 26 Dec 2024
        06:00-12:00", "Thu 26 Dec 2024", "Mon 30 Dec 2024 to Sun 05 Jan 2025", or the status."""
        if self.grain is None or self.earliest is None or self.latest is None:
            return f"{self.status} ({self.reason})" if self.reason else str(self.status)
        day = self.earliest.strftime("%a %d %b %Y")
        extra = f" ({self.note})" if self.note else ""
        if self.grain is Grain.INSTANT:
            return f"{day} {self.earliest:%H:%M}{extra}"
        if self.grain is Grain.WINDOW:
            return f"{day} {self.earliest:%H:%M}-{self.latest:%H:%M}{extra}"
        if self.grain is Grain.PART_OF_DAY:
            return f"{day} {self.earliest:%H:%M}-{self.latest:%H:%M}"
        last = (self.latest - timedelta(hours=1)).strftime("%a %d %b %Y")  # latest is the next 00:00
        return day if last == day else f"{day} to {last}"


@dataclass(frozen=True)
class FollowUp:
    """The Salesforce follow-up Task timing derived from a reading.

    `due` is aware UTC (Task ReminderDateTime); `activity_date` is the due date in the workspace zone (Task
    ActivityDate); `confirm_time` asks the agent to confirm an ambiguous time; `needs_human` marks a vague
    or unparsed phrase (due the next working day); `note` is one line explaining the reading and any move.
    """

    due: datetime
    activity_date: date
    confirm_time: bool
    needs_human: bool
    note: str
