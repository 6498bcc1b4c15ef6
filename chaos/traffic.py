"""Posting the scenario's webhooks to the intake, and waiting until the ledger shows every call terminal."""

from __future__ import annotations

import time
from collections import Counter

import requests
from rich.console import Console

from chaos.options import WEBHOOK_SECRET
from chaos.scenario import Scenario
from worker.ledger import Ledger, Record, State

TERMINAL = frozenset({State.SYNCED, State.SKIPPED, State.FAILED})


def post_all(intake: str, scenario: Scenario, window: float) -> dict[str, int | str]:
    """Post every webhook once, evenly over ``window`` seconds. Answer per call: status code or error name.
    A rejected webhook is not sent again: the figures show what the intake refused."""
    answers: dict[str, int | str] = {}
    url = f"{intake}/webhooks/twenty2/{WEBHOOK_SECRET}"
    interval = window / max(1, len(scenario.order))
    start = time.monotonic()
    with requests.Session() as session:
        for i, call_id in enumerate(scenario.order):
            time.sleep(max(0.0, start + i * interval - time.monotonic()))
            try:
                answers[call_id] = session.post(url, json=scenario.payloads[call_id], timeout=10).status_code
            except requests.RequestException as exc:
                answers[call_id] = type(exc).__name__
    return answers


def accepted(answer: int | str) -> bool:
    return isinstance(answer, int) and 200 <= answer < 300


def unresolved(answers: dict[str, int | str], records: dict[str, Record | None]) -> list[str]:
    """Calls that should be terminal and are not: accepted ones missing or open in the ledger, and rejected
    ones the ledger nevertheless holds open (recorded, then refused: they must still be synced)."""
    return [
        call_id
        for call_id, answer in answers.items()
        if ((record := records.get(call_id)) is None and accepted(answer))
        or (record is not None and record.state not in TERMINAL)
    ]


def wait_terminal(
    ledger: Ledger, answers: dict[str, int | str], timeout: float, console: Console, every: float = 15.0
) -> bool:
    """Until every call that should be terminal is (True) or ``timeout`` (False); says how many are left."""
    started = time.monotonic()
    next_report = started + every
    pending = list(answers)
    while True:
        records = {call_id: ledger.get(call_id) for call_id in pending}
        pending = unresolved({c: answers[c] for c in pending}, records)
        if not pending:
            return True
        now = time.monotonic()
        if now > started + timeout:
            return False
        if now > next_report:
            states = Counter(r.state.value if (r := records.get(c)) else "missing" for c in pending)
            console.print(f"  waiting {now - started:4.0f}s: {len(pending)} open ({dict(states)})", highlight=False)
            next_report = now + every
        time.sleep(1.0)
