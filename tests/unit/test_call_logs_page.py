"""``worker.twenty2.logs.read_page``: one fixture per shape a ``/call/logs`` answer may take, one test each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from worker.errors import Twenty2BadResponse
from worker.twenty2.logs import NextPage, read_page

FIXTURES = Path(__file__).parents[1] / "fixtures" / "call_logs"


def _body(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def test_documented() -> None:
    page = read_page(_body("documented"), sent={})

    assert [c.call_id for c in page.calls] == ["call_9c4d7e12ab"]
    assert page.calls[0].is_final and page.calls[0].callee_phone == "9999999999"
    assert page.next is None and page.skipped == 0 and page.total is None


def test_plain_list() -> None:
    page = read_page(_body("plain_list"), sent={})

    assert [c.status for c in page.calls] == ["completed", "in-progress"]
    assert not page.calls[1].is_final
    assert page.next is None


def test_page_numbers() -> None:
    page = read_page(_body("page_numbers"), sent={})

    assert page.next == NextPage(params={"limit": "2", "page": "2"})
    assert page.total == 5


def test_page_numbers_last() -> None:
    assert read_page(_body("page_numbers_last"), sent={"page": "3", "limit": "2"}).next is None


def test_page_meta_last_page() -> None:
    page = read_page(_body("page_meta_last_page"), sent={})

    assert page.next == NextPage(params={"per_page": "2", "page": "2"})


def test_cursor() -> None:
    page = read_page(_body("cursor"), sent={"cursor": "older"})

    assert page.next == NextPage(params={"cursor": "Y2FsbF9iNzFlNWYwYTkz"})


def test_cursor_last() -> None:
    assert read_page(_body("cursor_last"), sent={"cursor": "x"}).next is None


def test_next_link() -> None:
    assert read_page(_body("next_link"), sent={}).next == NextPage(url="/api/call/logs?page=2")


def test_bad_entries() -> None:
    page = read_page(_body("bad_entries"), sent={})

    assert [c.call_id for c in page.calls] == ["call_9c4d7e12ab"]
    assert page.skipped == 2


def test_success_false() -> None:
    with pytest.raises(Twenty2BadResponse) as caught:
        read_page(_body("success_false"), sent={}, status=200)
    assert caught.value.code == "Workspace not found"


def test_no_calls_array() -> None:
    with pytest.raises(Twenty2BadResponse) as caught:
        read_page(_body("no_calls_array"), sent={})
    assert caught.value.code == "BAD_SHAPE"


def test_every_fixture_has_its_test() -> None:
    names = {p.stem for p in FIXTURES.glob("*.json")}
    tested = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    assert names <= tested, sorted(names - tested)
