"""Scheduling rules of schedule_followup: base instant per grain, calling window, never in the past,
next working day for vague phrases, UTC due vs local ActivityDate, DST zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.callbacks import FollowUp, parse_callback_time, schedule_followup
from worker.callbacks.lexicon import PHRASES

IST = ZoneInfo("Asia/Kolkata")
NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
WED = datetime(2024, 12, 25, 15, 31, 34, tzinfo=IST)  # a Wednesday


def follow_up(
    text: str,
    reference: datetime = WED,
    now: datetime | None = None,
    *,
    window: tuple[time, time] = (time(9), time(21)),
    working_days: frozenset[int] = frozenset(range(6)),
    default_time: time = time(10),
) -> FollowUp:
    """Read `text` at `reference` and schedule it, `now` defaulting to 30 s after the call ended."""
    reading = parse_callback_time(text, reference=reference)
    return schedule_followup(
        reading,
        reference=reference,
        now=now or reference + timedelta(seconds=30),
        window=window,
        working_days=working_days,
        default_time=default_time,
    )


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# ------------------------------------------------------------------------------------- base instant
def test_instant_is_due_as_said() -> None:
    f = follow_up("kal subah 10 baje")
    assert f.due == utc(2024, 12, 26, 4, 30) and f.due.tzinfo is UTC
    assert f.activity_date == date(2024, 12, 26)
    assert not f.confirm_time and not f.needs_human
    assert "kal subah 10 baje" in f.note and "moved" not in f.note


def test_morning_is_clamped_to_window_start() -> None:
    f = follow_up("tomorrow morning")
    assert f.due == utc(2024, 12, 26, 3, 30)  # 09:00 IST
    assert "moved into calling window 09:00-21:00" in f.note


def test_evening_starts_at_16() -> None:
    assert follow_up("tomorrow evening").due == utc(2024, 12, 26, 10, 30)  # 16:00 IST


def test_tonight_starts_at_18() -> None:
    assert follow_up("tonight").due == utc(2024, 12, 25, 12, 30)  # 18:00 IST


def test_day_gets_default_time() -> None:
    f = follow_up("tomorrow")
    assert f.due == utc(2024, 12, 26, 4, 30)  # 10:00 IST
    assert "no time of day said" in f.note


def test_range_gets_default_time_on_its_first_day() -> None:
    f = follow_up("next week")
    assert f.due == utc(2024, 12, 30, 4, 30) and f.activity_date == date(2024, 12, 30)


def test_custom_default_time_and_window() -> None:
    window = (time(10), time(18))
    assert follow_up("tomorrow", window=window, default_time=time(11)).due == utc(2024, 12, 26, 5, 30)
    assert follow_up("tomorrow 9am", window=window).due == utc(2024, 12, 26, 4, 30)  # moved to 10:00 IST


# ------------------------------------------------------------------------------------ needs a human
def test_vague_is_due_next_working_day_for_a_human() -> None:
    f = follow_up("baad mein")
    assert f.needs_human and not f.confirm_time
    assert f.due == utc(2024, 12, 26, 4, 30) and f.activity_date == date(2024, 12, 26)
    assert "baad mein" in f.note and "human" in f.note


def test_vague_on_saturday_skips_sunday() -> None:
    saturday = datetime(2024, 12, 28, 12, 0, tzinfo=IST)
    assert follow_up("later", saturday).activity_date == date(2024, 12, 30)


def test_vague_with_five_working_days_skips_the_weekend() -> None:
    friday = datetime(2024, 12, 27, 12, 0, tzinfo=IST)
    f = follow_up("anytime", friday, working_days=frozenset(range(5)))
    assert f.due == utc(2024, 12, 30, 4, 30)


def test_unparsed_needs_a_human() -> None:
    f = follow_up("xyzzy kal")
    assert f.needs_human and f.activity_date == date(2024, 12, 26)
    assert "unparsed" in f.note


def test_ambiguous_asks_to_confirm_the_time() -> None:
    f = follow_up("next Friday")
    assert f.confirm_time and not f.needs_human
    assert f.due == utc(2024, 12, 27, 4, 30)
    assert "confirm" in f.note and "Fri 03 Jan 2025" in f.note


# -------------------------------------------------------------------------------------- calling window
def test_after_window_moves_to_next_morning() -> None:
    f = follow_up("tonight at 10")
    assert f.due == utc(2024, 12, 26, 3, 30)  # 09:00 IST next day
    assert f.activity_date == date(2024, 12, 26)
    assert "moved into calling window 09:00-21:00" in f.note


def test_before_window_moves_to_window_start_same_day() -> None:
    f = follow_up("7am tomorrow")
    assert f.due == utc(2024, 12, 26, 3, 30)


def test_window_end_itself_is_outside() -> None:
    assert follow_up("aaj raat 9 baje").due == utc(2024, 12, 26, 3, 30)  # 21:00 -> next day 09:00


# ------------------------------------------------------------------------------------------ past times
def test_past_time_today_moves_to_now() -> None:
    now = datetime(2024, 12, 25, 15, 35, tzinfo=IST)
    f = follow_up("aaj 10 baje", now=now)
    assert f.due == now.astimezone(UTC)
    assert f.confirm_time  # 22:00 was a reading too
    assert "already past" in f.note


def test_processing_delay_inside_window_moves_to_now() -> None:
    now = datetime(2024, 12, 25, 16, 0, tzinfo=IST)
    assert follow_up("in 10 minutes", now=now).due == now.astimezone(UTC)


def test_processing_delay_past_window_moves_to_next_morning() -> None:
    reference = datetime(2024, 12, 25, 20, 40, tzinfo=IST)
    now = datetime(2024, 12, 25, 21, 30, tzinfo=IST)
    f = follow_up("in 10 minutes", reference, now)
    assert f.due == utc(2024, 12, 26, 3, 30)
    assert "already past" in f.note


def test_call_ending_2350_ist_due_0900_is_0330_utc_same_date() -> None:
    reference = datetime(2024, 12, 25, 23, 50, tzinfo=IST)
    f = follow_up("in 20 minutes", reference)  # 00:10 IST on the 26th
    assert f.due == utc(2024, 12, 26, 3, 30)
    assert f.activity_date == date(2024, 12, 26)


def test_vague_at_2350_is_next_day() -> None:
    reference = datetime(2024, 12, 25, 23, 50, tzinfo=IST)
    assert follow_up("not now", reference).activity_date == date(2024, 12, 26)


# ------------------------------------------------------------------------------------------------- DST
def test_new_york_spring_forward_morning() -> None:
    reference = datetime(2025, 3, 8, 20, 0, tzinfo=NEW_YORK)  # Saturday, EST
    f = follow_up("tomorrow morning", reference)
    assert f.due == utc(2025, 3, 9, 13, 0)  # 09:00 EDT
    assert f.activity_date == date(2025, 3, 9)


def test_new_york_vague_on_saturday_lands_monday_in_edt() -> None:
    reference = datetime(2025, 3, 8, 20, 0, tzinfo=NEW_YORK)
    assert follow_up("call me later", reference).due == utc(2025, 3, 10, 14, 0)  # 10:00 EDT


def test_activity_date_is_local_when_utc_date_differs() -> None:
    reference = datetime(2025, 3, 8, 12, 0, tzinfo=NEW_YORK)
    f = follow_up("tomorrow 8:30 pm", reference)
    assert f.due == utc(2025, 3, 10, 0, 30)  # 20:30 EDT on the 9th
    assert f.activity_date == date(2025, 3, 9)


def test_london_fall_back_same_time_tomorrow() -> None:
    reference = datetime(2025, 10, 25, 20, 0, tzinfo=LONDON)  # BST
    assert follow_up("same time tomorrow", reference).due == utc(2025, 10, 26, 20, 0)  # 20:00 GMT


def test_london_fall_back_early_hours_move_to_window() -> None:
    reference = datetime(2025, 10, 26, 0, 30, tzinfo=LONDON)  # BST, 23:30 UTC the day before
    f = follow_up("in 2 hours", reference)  # 01:30 UTC = 01:30 GMT
    assert f.due == utc(2025, 10, 26, 9, 0)
    assert f.activity_date == date(2025, 10, 26)


# -------------------------------------------------------------------------------------- bad arguments
def test_reference_needs_a_zoneinfo() -> None:
    fixed = datetime(2024, 12, 25, 15, 31, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    reading = parse_callback_time("kal", reference=fixed)
    with pytest.raises(ValueError, match="ZoneInfo"):
        schedule_followup(reading, reference=fixed, now=fixed)


def test_naive_now_is_rejected() -> None:
    reading = parse_callback_time("kal", reference=WED)
    with pytest.raises(ValueError, match="now"):
        schedule_followup(reading, reference=WED, now=datetime(2024, 12, 25, 15, 32))


def test_inverted_window_is_rejected() -> None:
    with pytest.raises(ValueError, match="window"):
        follow_up("kal", window=(time(21), time(9)))


def test_no_working_days_is_rejected() -> None:
    with pytest.raises(ValueError, match="working_days"):
        follow_up("later", working_days=frozenset())


# ------------------------------------------------------------------------------- properties (hypothesis)
_VOCAB = sorted({" ".join(key) for key in PHRASES} | {"5", "11", "10:30", "26/12", "30th", "xyz"})


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(st.sampled_from(_VOCAB), min_size=1, max_size=5),
    reference=st.datetimes(
        min_value=datetime(2024, 1, 1),
        max_value=datetime(2026, 12, 31),
        timezones=st.sampled_from([IST, NEW_YORK, LONDON]),
    ),
    delay=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)),
)
def test_due_is_never_past_and_always_inside_the_window(
    words: list[str], reference: datetime, delay: timedelta
) -> None:
    reading = parse_callback_time(" ".join(words), reference=reference)
    now = reference + delay
    f = schedule_followup(reading, reference=reference, now=now)
    zone = reference.tzinfo
    assert f.due.tzinfo is UTC
    assert f.due.timestamp() >= now.timestamp()
    local = f.due.astimezone(zone)
    assert time(9) <= local.time() < time(21)
    assert f.activity_date == local.date()
    assert f.needs_human == (reading.status in ("vague", "unparsed"))
    assert f.confirm_time == (reading.status == "ambiguous")
    assert "\n" not in f.note
