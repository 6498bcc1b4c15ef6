"""The chaos run's measure of worker loss: which calls a worker held when it was SIGKILLed, and how long
until each of them was resolved by the others (the run keeps the default visibility timeout, 15 min, so
only the dead-worker sweep of ``worker.sync.holders`` can bring them back in time).

``held_by(client, pid)`` reads, just before the kill, the holds of the worker process ``pid`` (the owner id
is ``{host}:{pid}:{random}``); ``kill_delays(ledger, kills)`` finds in each call's ledger history the first
terminal event after the kill. Target: the worst delay under ``TARGET_SECONDS``.
"""

from __future__ import annotations

from typing import Any, cast

import redis
from rich.console import Console

from worker.ledger import Ledger, State
from worker.sync import holders

TARGET_SECONDS = 60.0
TERMINAL_STATES = frozenset({State.SYNCED.value, State.SKIPPED.value, State.FAILED.value})


def held_by(client: redis.Redis, pid: int) -> tuple[str | None, list[str]]:
    """(owner id, calls held) of the worker process ``pid``; (None, []) when it holds nothing."""
    for raw in cast(list[Any], client.zrange(holders.HOLDERS, 0, -1)):
        owner = raw.decode() if isinstance(raw, bytes) else str(raw)
        if owner.split(":")[-2:-1] == [str(pid)]:
            return owner, holders.held(client, owner)
    return None, []


def kill_delays(ledger: Ledger, kills: list[dict[str, Any]]) -> dict[str, Any]:
    """Per kill (``{"killed_at", "held"}``) and overall: seconds from the kill to each held call's first
    terminal state after it; calls never resolved are listed in ``unresolved``."""
    per_kill, unresolved, worst = [], [], 0.0
    for kill in kills:
        delays = {}
        for call_id in kill.get("held", []):
            after = [
                e["at"]
                for e in ledger.history(call_id)
                if e.get("state") in TERMINAL_STATES and e.get("at", 0) >= kill["killed_at"]
            ]
            if after:
                delays[call_id] = round(min(after) - kill["killed_at"], 1)
            elif (record := ledger.get(call_id)) is None or record.state.value not in TERMINAL_STATES:
                unresolved.append(call_id)
            # else: resolved before the kill (the hold was about to be dropped)
        kill_worst = max(delays.values(), default=0.0)
        worst = max(worst, kill_worst)
        per_kill.append({"worker": kill.get("killed"), "held": len(kill.get("held", [])), "worst_seconds": kill_worst})
    held = sum(len(k.get("held", [])) for k in kills)
    return {
        "held_calls": held,
        "worst_kill_to_sync_seconds": round(worst, 1),
        "per_kill": per_kill,
        "unresolved": unresolved,
        "target_seconds": TARGET_SECONDS,
        "ok": not unresolved and worst < TARGET_SECONDS,
    }


def held_before_kill(redis_url: str, pid: int) -> list[str]:
    """The calls worker process ``pid`` holds, read just before it is killed ([] if Redis does not answer)."""
    try:
        return held_by(redis.Redis.from_url(redis_url, socket_timeout=3), pid)[1]
    except redis.RedisError:
        return []


def check(loss: dict[str, Any]) -> tuple[str, int]:
    """The run's target: every call a killed worker held resolved within ``TARGET_SECONDS`` of the kill."""
    return (
        f"killed workers' calls resolved within {TARGET_SECONDS:.0f} s (worst {loss['worst_kill_to_sync_seconds']} s)",
        0 if loss["ok"] else max(1, len(loss["unresolved"])),
    )


def print_delays(console: Console, loss: dict[str, Any]) -> None:
    per_kill = ", ".join(f"{k['worker']}: {k['held']} held, {k['worst_seconds']} s" for k in loss["per_kill"])
    console.print(
        f"  worst kill → sync of the killed workers' calls: {loss['worst_kill_to_sync_seconds']} s "
        f"({loss['held_calls']} calls held by killed workers, {len(loss['unresolved'])} unresolved; "
        f"CELERY_VISIBILITY_TIMEOUT at its default) — {per_kill}",
        highlight=False,
    )
