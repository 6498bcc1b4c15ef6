"""Every phrase of the development reference set must be read acceptably, with no wrong guesses.

Judging lives in worker.callbacks.evaluate (shared with bench/callback_accuracy.py)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from worker.callbacks import CallbackReading, parse_callback_time
from worker.callbacks.evaluate import judge, load_cases, run_case

DEV_SET = Path(__file__).resolve().parents[1] / "fixtures" / "reference" / "callback-phrases-dev.jsonl"
CASES = load_cases(DEV_SET)


def test_dev_set_is_present() -> None:
    assert len(CASES) >= 70


@pytest.mark.parametrize("case", CASES, ids=[c["text"] for c in CASES])
def test_dev_phrase(case: dict[str, Any]) -> None:
    result = run_case(case)
    reading = result.reading
    assert result.verdict == "accepted", (reading.status, reading.describe(), reading.reason, case["accept"])
    assert judge(reading, case["accept"]) == "accepted"
    # the primary reading should be the main expectation, not only one of the accepted alternatives
    assert result.exact, (reading.describe(), case["accept"])


# ------------------------------------------------------------------------ the judge itself (evaluate.py)
def _reading(text: str, ref: str = "2024-12-25T15:31:34+05:30") -> CallbackReading:
    reference = datetime.fromisoformat(ref).astimezone(ZoneInfo("Asia/Kolkata"))
    return parse_callback_time(text, reference=reference)


def test_judge_instant_outside_tolerance_is_wrong() -> None:
    assert judge(_reading("tomorrow 11am"), {"kind": "I", "value": "2024-12-26T11:02", "tol": 1}) == "wrong"


def test_judge_instant_inside_tolerance_is_accepted() -> None:
    assert judge(_reading("tomorrow 11am"), {"kind": "I", "value": "2024-12-26T11:01", "tol": 1}) == "accepted"


def test_judge_day_reading_for_an_instant_phrase_is_wrong() -> None:
    assert judge(_reading("tomorrow"), {"kind": "I", "value": "2024-12-26T11:00", "tol": 1}) == "wrong"


def test_judge_instant_counts_for_its_date() -> None:
    assert judge(_reading("tomorrow 11am"), {"kind": "D", "value": "2024-12-26"}) == "accepted"


def test_judge_part_of_day_must_lie_inside_the_hours() -> None:
    assert judge(_reading("tomorrow morning"), {"kind": "W", "date": "2024-12-26", "frm": 6, "to": 12}) == "accepted"
    assert judge(_reading("tomorrow morning"), {"kind": "W", "date": "2024-12-26", "frm": 8, "to": 12}) == "wrong"


def test_judge_day_is_too_coarse_for_a_window() -> None:
    assert judge(_reading("tomorrow"), {"kind": "W", "date": "2024-12-26", "frm": 6, "to": 12}) == "wrong"


def test_judge_range_must_lie_inside() -> None:
    assert judge(_reading("next week"), {"kind": "R", "frm": "2024-12-30", "to": "2025-01-05"}) == "accepted"
    assert judge(_reading("next week"), {"kind": "R", "frm": "2024-12-30", "to": "2025-01-03"}) == "wrong"


def test_judge_vague_phrase() -> None:
    assert judge(_reading("baad mein"), {"kind": "V"}) == "accepted"
    assert judge(_reading("xyzzy"), {"kind": "V"}) == "missed"
    assert judge(_reading("tomorrow"), {"kind": "V"}) == "wrong"


def test_judge_no_time_for_a_timed_phrase_is_missed() -> None:
    assert judge(_reading("kal xyzzy"), {"kind": "D", "value": "2024-12-26"}) == "missed"
    assert judge(_reading("later"), {"kind": "D", "value": "2024-12-26"}) == "missed"


def test_judge_primary_may_match_an_alt() -> None:
    accept = {"kind": "D", "value": "2025-01-03", "alts": [{"kind": "D", "value": "2024-12-27"}]}
    assert judge(_reading("next Friday"), accept) == "accepted"


def test_judge_only_an_alternative_matching_is_wrong() -> None:
    # the primary (27 Dec) is what gets scheduled; its alternative (3 Jan) matching is not enough
    assert judge(_reading("next Friday"), {"kind": "D", "value": "2025-01-03"}) == "wrong"
