"""``Twenty2Client.iter_call_logs`` against the Twenty2 stand-in over real HTTPS, in each of its listing modes."""

from __future__ import annotations

import pytest
from support.twenty2_server import T2Sandbox

from standins.twenty2 import SEED_CALL_ID, SEED_FAILED_CALL_ID

LOGS = "/api/call/logs"


def _listed(t2: T2Sandbox, **kwargs: int) -> tuple[list[str], int]:
    counted = 0

    def before() -> None:
        nonlocal counted
        counted += 1

    ids = [c.call_id for page in t2.client(before_request=before).iter_call_logs(**kwargs) for c in page.calls]
    return ids, counted


def test_documented_plain_body_is_one_request(t2: T2Sandbox) -> None:
    t2.state.add_generated_calls(120, seed=1)

    ids, requests_made = _listed(t2)

    assert len(ids) == 122 and {SEED_CALL_ID, SEED_FAILED_CALL_ID} <= set(ids)
    assert requests_made == 1 and t2.state.request_count(LOGS) == 1


@pytest.mark.parametrize("mode", ["page", "cursor"])
def test_paginated_modes_are_followed_to_the_end(t2: T2Sandbox, mode: str) -> None:
    t2.state.add_generated_calls(120, seed=2)
    t2.state.configure(logs_pagination=mode, logs_page_size=50)

    ids, requests_made = _listed(t2)

    assert sorted(ids) == sorted(t2.state.call_ids())
    assert len(ids) == len(set(ids)) == 122
    assert requests_made == 3 == t2.state.request_count(LOGS)  # 50 + 50 + 22, each through the limiter hook


def test_max_pages_stops_early(t2: T2Sandbox) -> None:
    t2.state.add_generated_calls(120, seed=3)
    t2.state.configure(logs_pagination="page", logs_page_size=50)

    ids, requests_made = _listed(t2, max_pages=2)

    assert len(ids) == 100 and requests_made == 2


def test_transient_error_on_a_page_is_retried(t2: T2Sandbox) -> None:
    t2.state.add_generated_calls(60, seed=4)
    t2.state.configure(logs_pagination="cursor", logs_page_size=50)
    t2.state.fail_next(1, 503)

    ids, _ = _listed(t2)

    assert len(ids) == 62
