"""What one reconciliation pass does with each call Twenty2 lists (pure: no I/O, unit-tested alone).

For every listed call, one verdict:

- ``sync``: final (``CallInfo.is_final``: completed, failed and the other final statuses), inside the window,
  and the ledger has never heard of it: its webhook never came. It is queued as if it had (``source =
  reconcile``).
- ``in_progress``: not final yet; left for a later pass (the lookback window finds it again).
- ``known``: the ledger has it, in any state. A resolved call (synced, skipped) is never synced again;
  a queued or syncing one is on its way; a failed one waits for its retries, the automatic replay or ops.
- ``outside``: ended before the window's start (``crm-sync backfill --since`` is for those).

The watermark (``next_watermark``) is the newest end time among the final calls a pass handled; the next
pass looks back ``lookback`` past it, so a call that turned final late is still listed in the window.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from worker.ledger import State
from worker.twenty2.models import CallInfo


class Verdict(StrEnum):
    SYNC = "sync"
    IN_PROGRESS = "in_progress"
    KNOWN = "known"
    OUTSIDE = "outside"


@dataclass(frozen=True)
class Decision:
    call: CallInfo
    verdict: Verdict
    #: The ledger state of a known call ("" otherwise).
    state: str = ""


def call_time(call: CallInfo) -> datetime | None:
    """When the call ended (else started): what the window and the watermark compare."""
    return call.ended_at or call.started_at


def window_start(watermark: datetime | None, *, now: datetime, lookback: timedelta) -> datetime:
    """The oldest end time a pass considers: ``lookback`` before the watermark (before now on a first pass);
    a watermark in the future (a clock step) counts as now."""
    anchor = min(watermark, now) if watermark is not None else now
    return anchor - lookback


def decide(calls: Iterable[CallInfo], known: Mapping[str, State], *, since: datetime) -> list[Decision]:
    """One verdict per distinct call id (the first listing of a call wins), in listing order.
    ``known``: the ledger state of each listed call the ledger has."""
    decisions: list[Decision] = []
    seen: set[str] = set()
    for call in calls:
        if call.call_id in seen:
            continue
        seen.add(call.call_id)
        state = known.get(call.call_id)
        when = call_time(call)
        if state is not None:
            decisions.append(Decision(call, Verdict.KNOWN, state.value))
        elif not call.is_final:
            decisions.append(Decision(call, Verdict.IN_PROGRESS))
        elif when is not None and when < since:
            decisions.append(Decision(call, Verdict.OUTSIDE))
        else:
            decisions.append(Decision(call, Verdict.SYNC))
    return decisions


def next_watermark(
    decisions: Iterable[Decision], previous: datetime | None, *, now: datetime, queued: frozenset[str] = frozenset()
) -> datetime | None:
    """The newest end time among final calls the pass handled (already known, or ``queued`` by it), never
    moving back and never past ``now``. Calls left for later (in progress, or beyond this pass's batch) do not
    move it: they are inside the lookback window of the next pass anyway."""
    newest = previous
    for decision in decisions:
        handled = decision.verdict is Verdict.KNOWN or decision.call.call_id in queued
        if not handled or not decision.call.is_final:
            continue
        when = call_time(decision.call)
        if when is not None and (newest is None or when > newest):
            newest = when
    return min(newest, now) if newest is not None else None


def counts(decisions: Iterable[Decision]) -> dict[str, int]:
    """How many listed calls got each verdict (every verdict present, zeros included)."""
    found = dict.fromkeys((v.value for v in Verdict), 0)
    for decision in decisions:
        found[decision.verdict.value] += 1
    return found
