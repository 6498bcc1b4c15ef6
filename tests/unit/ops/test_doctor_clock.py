"""The doctor's clock check from the ``Date`` header of answers (no servers: responses built here)."""

from __future__ import annotations

import time
from email.utils import formatdate

import requests

from worker.doctor import _Dates, check_clocks


def answer(offset: float) -> requests.Response:
    response = requests.Response()
    response.headers["Date"] = formatdate(time.time() + offset, usegmt=True)
    return response


def test_clocks_within_a_minute_pass_and_beyond_fail() -> None:
    dates = _Dates()
    dates.observe("Salesforce", answer(5))
    dates.observe("Twenty2", answer(-3))
    assert check_clocks(dates).status == "ok"
    skewed = _Dates()
    skewed.observe("Salesforce", answer(0))
    skewed.observe("Twenty2", answer(-150))
    check = check_clocks(skewed)
    assert check.status == "problem" and "Twenty2 -15" in check.detail and "NTP" in check.fix


def test_no_date_seen_is_unknown_not_a_problem() -> None:
    dates = _Dates()
    broken = requests.Response()
    broken.headers["Date"] = "not a date"
    dates.observe("Salesforce", broken)
    assert check_clocks(dates).status == "unknown"
