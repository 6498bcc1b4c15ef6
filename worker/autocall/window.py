"""The calling window of an automatic callback (pure): is a moment inside it, and when does it next open.

A callback may be placed only inside every window that applies: the lead's own hours in the lead's zone
(``CRM_SYNC_AUTO_CALLBACK_WINDOW``) and Twenty2's 09:00–21:00 IST (a trigger outside it is queued by
Twenty2 to 09:00 next day, so it is never sent then). Both ends: opening included, closing excluded (a call
placed at 21:00 would run past it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")
TWENTY2_HOURS = (time(9), time(21))


@dataclass(frozen=True)
class Window:
    """Daily hours ``opens``–``closes`` (local to ``zone``)."""

    zone: ZoneInfo
    opens: time
    closes: time

    def contains(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone).time()
        return self.opens <= local < self.closes

    def next_opening(self, moment: datetime) -> datetime:
        """``moment`` when inside, else the next time the window opens (UTC)."""
        if self.contains(moment):
            return moment.astimezone(UTC)
        local = moment.astimezone(self.zone)
        day = local.date() if local.time() < self.opens else local.date() + timedelta(days=1)
        return datetime.combine(day, self.opens, self.zone).astimezone(UTC)


def twenty2_window() -> Window:
    return Window(IST, *TWENTY2_HOURS)


def windows_for(lead_zone: ZoneInfo, hours: tuple[time, time]) -> tuple[Window, ...]:
    """The windows a callback to a lead in ``lead_zone`` must be inside: the lead's hours and Twenty2's."""
    return (Window(lead_zone, *hours), twenty2_window())


def inside(windows: tuple[Window, ...], moment: datetime) -> bool:
    return all(w.contains(moment) for w in windows)


def next_opening(windows: tuple[Window, ...], moment: datetime) -> datetime:
    """The first instant at or after ``moment`` inside every window. Raises ValueError when the windows
    never overlap (looked for over 8 days)."""
    candidate = moment.astimezone(UTC)
    limit = candidate + timedelta(days=8)
    while candidate < limit:
        moved = candidate
        for window in windows:
            moved = window.next_opening(moved)
        if moved == candidate:
            return candidate
        candidate = moved
    raise ValueError("the calling windows never overlap")
