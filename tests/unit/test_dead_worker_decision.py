"""The dead-worker decision of the sweep (``worker.sync.holders.decide``): pure, no Redis."""

from __future__ import annotations

import json
from pathlib import Path

from worker.sync.holders import GRACE, call_of, decide, lock_token, queued_call


def test_a_holder_with_a_liveness_key_is_alive_and_its_suspicion_cleared() -> None:
    verdict = decide(["a", "b"], alive={"a", "b"}, suspects={"a": 100.0}, now=200.0)
    assert verdict.dead == [] and verdict.suspected == [] and verdict.cleared == ["a"]


def test_a_holder_first_seen_without_a_key_is_only_suspected() -> None:
    verdict = decide(["a", "b"], alive={"a"}, suspects={}, now=100.0)
    assert verdict.dead == [] and verdict.suspected == ["b"] and verdict.cleared == []


def test_a_suspect_within_the_grace_is_not_dead_yet() -> None:
    verdict = decide(["b"], alive=set(), suspects={"b": 100.0}, now=100.0 + GRACE - 0.1)
    assert verdict.dead == [] and verdict.suspected == []


def test_a_suspect_missing_for_the_grace_is_dead() -> None:
    verdict = decide(["b", "c"], alive={"c"}, suspects={"b": 100.0}, now=100.0 + GRACE)
    assert verdict.dead == ["b"] and verdict.suspected == [] and verdict.cleared == []


def test_a_suspect_that_beats_again_is_alive_whatever_the_time() -> None:
    """A liveness key lost in a failover is rewritten by its live worker: the worker is not declared dead."""
    verdict = decide(["b"], alive={"b"}, suspects={"b": 0.0}, now=10_000.0)
    assert verdict.dead == [] and verdict.cleared == ["b"]


def test_a_suspect_that_holds_nothing_any_more_is_forgotten() -> None:
    verdict = decide([], alive=set(), suspects={"gone": 50.0}, now=100.0)
    assert verdict.dead == [] and verdict.cleared == ["gone"]


def test_the_grace_is_a_parameter() -> None:
    assert decide(["b"], alive=set(), suspects={"b": 100.0}, now=101.0, grace=1.0).dead == ["b"]
    assert decide(["b"], alive=set(), suspects={"b": 100.0}, now=101.0, grace=5.0).dead == []


def test_a_lock_token_names_its_owner_and_is_unique() -> None:
    first, second = lock_token("host:12:ab"), lock_token("host:12:ab")
    assert first.startswith("host:12:ab|") and second.startswith("host:12:ab|") and first != second
    assert lock_token(None).startswith("-|")


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kombu"


def test_an_unacked_sync_message_names_its_call() -> None:
    """A real kombu ``unacked`` entry (a chaos run's worker was killed right after taking it)."""
    raw = (FIXTURES / "unacked_sync_call.json").read_bytes().strip()
    assert call_of(raw) == "e03a6b0c0acc35a0f3af1bd5"


def test_other_unacked_entries_name_no_call() -> None:
    raw = json.loads((FIXTURES / "unacked_sync_call.json").read_text())
    raw[0]["headers"]["task"] = "crm_sync.sweep"
    assert call_of(json.dumps(raw)) is None
    assert call_of(b"not json") is None and call_of("[]") is None and call_of('[{"headers": {}}]') is None


def test_a_queued_message_names_its_call() -> None:
    """A message waiting in the queue list is the unacked entry's first element, unwrapped."""
    message = json.loads((FIXTURES / "unacked_sync_call.json").read_text())[0]
    assert queued_call(json.dumps(message).encode()) == "e03a6b0c0acc35a0f3af1bd5"
    assert queued_call(b"{") is None
