"""Each kind of confident wrong time the reader has produced (or was one rule away from producing) while
it was built out, pinned: the phrase is read right, or the reader abstains. Never a confident wrong time.

Reference, unless a case says otherwise: Wednesday 12 March 2025 11:20 IST.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.callbacks import CallbackReading, CallbackStatus, Grain, parse_callback_time

IST = ZoneInfo("Asia/Kolkata")
REF = "2025-03-12T11:20:00"
OK, AMB, VAGUE, UNP = CallbackStatus.OK, CallbackStatus.AMBIGUOUS, CallbackStatus.VAGUE, CallbackStatus.UNPARSED


@dataclass(frozen=True)
class Guard:
    text: str
    status: CallbackStatus
    at: str = ""  # the primary's local start (ISO, minutes), when a time is given
    why: str = ""
    ref: str = REF


def read(text: str, ref: str = REF) -> CallbackReading:
    return parse_callback_time(text, reference=datetime.fromisoformat(ref).replace(tzinfo=IST))


GUARDS = (
    # 24-hour "h" notation was read as a duration ("15h" = in 15 hours)
    Guard("15h", OK, "2025-03-12T15:00", "European 24-hour clock"),
    Guard("at 9h", OK, "2025-03-13T09:00", "marked by 'at'"),
    Guard("1h later", OK, "2025-03-12T12:20", "a duration, not 01:00"),
    Guard("2h baad", OK, "2025-03-12T13:20", "a duration, not 02:00"),
    # military times were read as durations ("1745 hrs" = in 1745 hours)
    Guard("1745 hrs", OK, "2025-03-12T17:45", "hhmm + hrs"),
    Guard("1400 hours", OK, "2025-03-12T14:00", "hhmm + hours"),
    Guard("in 1400 hours", UNP, why="no callback is 58 days of clock time away"),
    Guard("in 100 hours", UNP, why="clock offsets are capped at 3 days"),
    Guard("at 2025", UNP, why="a year, not 20:25"),
    # a day-month pair with a dash was read as a date where it is a span of hours
    Guard("around 10-11", OK, "2025-03-13T10:00", "a window 10-11 am (tomorrow: 11:00 has passed)"),
    Guard("2-3 pm", OK, "2025-03-12T14:00", "a window, not 2 March"),
    Guard("10-11", UNP, why="10 November or 10-11 am: never guessed"),
    Guard("on 10-11", OK, "2025-11-10T00:00", "'on' makes it a date, day first"),
    Guard("12/26/2024", UNP, why="month-first dates are not read (India writes the day first)"),
    # the office-hours reading changed: 8 is 8 am (issue 14), 1-7 pm
    Guard("kal 8 baje", OK, "2025-03-13T08:00"),
    Guard("kal 7 baje", OK, "2025-03-13T19:00"),
    # windows must not run across midnight or backwards
    Guard("between 5 and 2", UNP, why="the window ends before it starts"),
    Guard("between 2 and 3 days", UNP, why="a window needs two times"),
    # negations: what was taken back is never scheduled
    Guard("kal 5 baje nahi", VAGUE, why="nothing said after the negation: not 'tomorrow 10:00'"),
    Guard("not before 5", VAGUE),
    Guard("no call tomorrow", VAGUE),
    Guard("Monday 3 baje nahi 4 baje", OK, "2025-03-17T16:00", "only the time is corrected"),
    Guard("aaj shaam nahi, kal subah", OK, "2025-03-13T06:00", "the day and the part are both corrected"),
    Guard("kal 5 baje nahi, parso", OK, "2025-03-14T00:00"),
    # calendar words that would half-read
    Guard("last friday", UNP, why="past, or last of which month?"),
    Guard("friday after next week", UNP),
    Guard("2 fridays", UNP, why="no 'from now'"),
    Guard("next year", UNP),
    Guard("kal ya parso", UNP, why="'or' is not understood"),
    Guard("5 ya 6 baje", UNP),
    Guard("2025-03-13T10:00:00+05:30 or later", UNP),
    # zones with a fixed offset are read, others are not guessed
    Guard("tomorrow 10 am UTC", OK, "2025-03-13T15:30"),
    Guard("tomorrow 10 am IST", OK, "2025-03-13T10:00"),
    Guard("tomorrow 10 am PST", UNP, why="zones with daylight saving are not guessed"),
    # spans and open windows written with dashes, from/since/until, within
    Guard("9:30 - 11:00", OK, "2025-03-13T09:30", "a window (tomorrow: 9:30 has passed)"),
    Guard("8am - 1pm tomorrow", OK, "2025-03-13T08:00"),
    Guard("3:30-6 p.m.", OK, "2025-03-12T15:30"),
    Guard("since 2pm", OK, "2025-03-12T14:00"),
    Guard("until 5", OK, "2025-03-12T11:20", "a window from now up to 17:00"),
    Guard("within 2 hours", OK, "2025-03-12T11:20", "a window from now, not an instant in 2 hours"),
    Guard("do ghante ke andar", OK, "2025-03-12T11:20"),
    Guard("do ghante mein", OK, "2025-03-12T13:20", "'mein' is 'in': an instant"),
    Guard("within 2 weeks", OK, "2025-03-12T00:00", "a range from today, not a day two weeks on"),
    Guard("end of April", OK, "2025-04-24T00:00"),
    Guard("beginning of next week", OK, "2025-03-17T00:00"),
    Guard("2 - 15", UNP, why="a US date or a span? never guessed"),
    # what an LLM writes
    Guard("Thu, 13 Mar 2025 11:00:00 +0530", OK, "2025-03-13T11:00", "RFC 2822 with its offset"),
    Guard("2025-03-13T11:00:00+05:30[Asia/Kolkata]", OK, "2025-03-13T11:00"),
    Guard("Not specified", VAGUE),
    Guard("N/A", VAGUE),
    Guard("The customer asked to be called back tomorrow at 11", OK, "2025-03-13T11:00"),
    Guard("kal 11 baje (tomorrow 11 AM)", OK, "2025-03-13T11:00", "the same time said twice"),
    Guard("kal 11 baje (tomorrow 5 PM)", UNP, why="two different times"),
    # "next to next" (Indian English for "after next")
    Guard("next to next friday", OK, "2025-03-21T00:00"),
    Guard("week after next", OK, "2025-03-24T00:00"),
    Guard("next to next weekend", UNP, why="was read as this weekend"),
    # a weekday and a day of the month that disagree
    Guard("Friday 14th", OK, "2025-03-14T00:00"),
    Guard("Thursday 14th", UNP, why="the 14th is a Friday; the next Thursday 14th is in August"),
    Guard("Monday 14th", AMB, "2025-04-14T00:00", "the next Monday 14th; the caller may mean Fri 14 Mar"),
    # counted from a day: "aaj se", "kal se"
    Guard("aaj se 2 din baad", OK, "2025-03-14T00:00"),
    Guard("kal se ek hafte baad", OK, "2025-03-20T00:00"),
    Guard("aaj se 2 ghante baad", OK, "2025-03-12T13:20"),
    Guard("kal se 2 ghante baad", UNP, why="hours counted from tomorrow: from when?"),
    # a lone number is never an hour
    Guard("call me in 5", UNP),
    Guard("3 15", UNP),
    Guard("two three", UNP),
)


@pytest.mark.parametrize("guard", GUARDS, ids=[g.text for g in GUARDS])
def test_guard(guard: Guard) -> None:
    reading = read(guard.text, guard.ref)
    assert reading.status is guard.status, (reading.status, reading.describe(), reading.reason, guard.why)
    if guard.at:
        assert reading.earliest is not None
        assert reading.earliest.replace(tzinfo=None).isoformat(timespec="minutes") == guard.at, reading.describe()


def test_a_window_names_itself_and_starts_at_its_start() -> None:
    reading = read("kal 3 se 4 ke beech")
    assert reading.grain is Grain.WINDOW and reading.status is OK
    assert reading.describe() == "Thu 13 Mar 2025 15:00-16:00 (between 15:00 and 16:00)"
    assert read("11 ke baad").note == "after 11:00"
    assert read("kal 12 baje se pehle").note == "before 12:00"


def test_an_approximation_notes_its_tolerance() -> None:
    reading = read("around 5")
    assert reading.grain is Grain.INSTANT and reading.tolerance_minutes == 30
    assert reading.note == "around 17:00, give or take 30 min"
    assert read("4ish").tolerance_minutes == 30
    assert read("at 4").tolerance_minutes == 0


def test_a_machine_time_with_an_offset_is_that_instant_in_the_workspace_zone() -> None:
    reading = read("2025-03-13T05:30:00Z")
    assert reading.earliest == datetime(2025, 3, 13, 11, 0, tzinfo=IST)
    naive_in_new_york = parse_callback_time(
        "2025-03-13T11:00:00", reference=datetime(2025, 3, 12, 9, 0, tzinfo=ZoneInfo("America/New_York"))
    )
    assert naive_in_new_york.earliest == datetime(2025, 3, 13, 11, 0, tzinfo=ZoneInfo("America/New_York"))


def test_a_machine_offset_wins_over_a_zone_word_in_another_workspace_zone() -> None:
    new_york = ZoneInfo("America/New_York")
    reading = parse_callback_time(
        "2025-03-13T11:00:00+05:30[Asia/Kolkata]", reference=datetime(2025, 3, 12, 9, 0, tzinfo=new_york)
    )
    assert reading.earliest == datetime(2025, 3, 13, 11, 0, tzinfo=IST).astimezone(new_york)


def test_a_bare_negation_is_vague_and_says_why() -> None:
    assert read("not today").status is VAGUE  # a known dismissal
    for text in ("not tomorrow", "aaj mat karo", "कल मत करना", "please don't call today", "kal nahi"):
        reading = read(text)
        assert reading.status is VAGUE, text
        assert "negation" in reading.reason


# ------------------------------------------------------------------------------ never half-read (property)
_ODD = ("xyzzy", "maybe", "or", "probably", "shayad", "wednesdayy", "hmm", "kabhi-kabhi", "यार")
_CORPUS = [
    json.loads(line)
    for line in (Path(__file__).resolve().parents[2] / "fixtures" / "callbacks" / "corpus.jsonl")
    .read_text(encoding="utf-8")
    .splitlines()
    if line.strip()
]


@settings(max_examples=300, deadline=None)
@given(case=st.sampled_from(_CORPUS), where=st.integers(min_value=0, max_value=12), word=st.sampled_from(_ODD))
def test_an_unknown_word_anywhere_makes_any_corpus_phrase_unparsed(case: dict[str, str], where: int, word: str) -> None:
    words = case["text"].split()
    words.insert(min(where, len(words)), word)
    reading = parse_callback_time(" ".join(words), reference=datetime.fromisoformat(case["ref"]).astimezone(IST))
    assert reading.status is UNP, (words, reading.describe())
