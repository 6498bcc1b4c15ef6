"""The Twenty2 stand-in's dialer: what ``POST /agent/trigger-outbound-call`` sets going, on a controllable clock.

As documented (``twenty2-api.md`` §3.1, §6, §7):

- a trigger inside the calling hours (09:00–21:00 IST) starts the call at once; outside them the call is
  queued and starts at 09:00 IST the next opening (a trigger between 00:00 and 09:00 starts at 09:00 that
  same morning: the docs' "next day" is ambiguous there, and this is the reading that never calls at night);
- at most 3 calls run at once per workspace: a 4th trigger while 3 run is refused with 429
  ``RATE_LIMIT_EXCEEDED`` (format A; the docs list "Concurrent calls: 3" under the rate limits and say
  nothing else about a 4th call);
- a started call later ends ``completed`` or ``failed`` (unanswered) after its duration, and the post-call
  webhook is POSTed to the configured URL (one attempt, no retry, no signature: none are documented).

The clock (``SandboxClock``) is wall time plus an offset the tests move (``advance``/``set``), optionally
sped up (``speed``). ``tick()`` moves calls along to the clock's now; every API request ticks, and
``start_ticker`` ticks from a thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import requests

from standins.twenty2.data import RATE_PER_SECOND, add_month

if TYPE_CHECKING:
    from standins.twenty2.state import Twenty2State

IST = ZoneInfo("Asia/Kolkata")
CALLING_HOURS = (clock_time(9), clock_time(21))
MAX_CONCURRENT_CALLS = 3


class SandboxClock:
    """Wall time moved by an offset (and optionally sped up from a start instant). Thread-safe."""

    def __init__(self, *, start: datetime | None = None, speed: float = 1.0) -> None:
        self._lock = threading.Lock()
        self.reset(start=start, speed=speed)

    def reset(self, *, start: datetime | None = None, speed: float = 1.0, real_start: float | None = None) -> None:
        """Run from ``start`` (default: now) at ``speed``× from the wall time ``real_start`` (default: now)."""
        with self._lock:
            self._real0 = time.time() if real_start is None else real_start
            self._sim0 = (start or datetime.now(UTC)).timestamp()
            self._speed = speed

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), UTC)

    def timestamp(self) -> float:
        with self._lock:
            return self._sim0 + (time.time() - self._real0) * self._speed

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._real0, self._sim0 = time.time(), moment.timestamp()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._sim0 += seconds


@dataclass
class Outcome:
    """How a placed call ends: ``completed`` (answered, talked ``duration`` s) or ``failed`` (unanswered,
    rings ``duration`` s); ``output_parameters`` for a completed one."""

    status: str = "completed"
    duration: int = 60
    output_parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class Placed:
    """One triggered call as the dialer sees it."""

    call_id: str
    agent_id: str
    callee_phone: str
    caller_phone: str
    triggered_at: datetime
    starts_at: datetime
    outcome: Outcome
    started: bool = False
    ended: bool = False
    webhook_status: int | None = None


def next_calling_slot(moment: datetime) -> datetime:
    """``moment`` if inside 09:00–21:00 IST, else the next 09:00 IST."""
    local = moment.astimezone(IST)
    opens, closes = CALLING_HOURS
    if local.time() < opens:
        return local.replace(hour=9, minute=0, second=0, microsecond=0).astimezone(UTC)
    if local.time() >= closes:
        day = (local + timedelta(days=1)).date()
        return datetime.combine(day, opens, IST).astimezone(UTC)
    return moment


class Dialer:
    """Triggered calls, their start (calling hours), the concurrency limit, their end and webhook."""

    def __init__(self, state: Twenty2State) -> None:
        self._state = state
        self._lock = threading.RLock()
        self.clock = SandboxClock()
        self.webhook_url: str | None = None
        self.webhook_verify: str | bool = True
        self.outcome_for: Callable[[str, dict[str, Any]], Outcome] = lambda phone, params: Outcome()
        self.max_concurrent = MAX_CONCURRENT_CALLS
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.placed: dict[str, Placed] = {}
            self.refused_concurrency = 0
            self.max_in_flight = 0
            self.webhooks_sent = 0
            self.lost_answers = 0
            self.clock.reset()
            self.outcome_for = lambda phone, params: Outcome()
            self.webhook_url = None

    # trigger ----------------------------------------------------------------------------------------------

    def in_flight(self) -> int:
        """Calls started and not ended (what the concurrency limit counts)."""
        with self._lock:
            return sum(1 for p in self.placed.values() if p.started and not p.ended)

    def trigger(self, agent_id: str, callee: str, caller: str, params: dict[str, Any]) -> str | None:
        """Queue one call; the call id, or None when the concurrency limit refuses it."""
        with self._lock:
            self.tick()
            now = self.clock.now()
            starts = next_calling_slot(now)
            if starts <= now and self.in_flight() >= self.max_concurrent:
                self.refused_concurrency += 1
                return None
            call_id = self._state.queue_call(agent_id, callee, caller, params)
            outcome = self.outcome_for(callee, params)
            self.placed[call_id] = Placed(call_id, agent_id, callee, caller, now, starts, outcome)
            self.tick()
            return call_id

    def lose_next_answers(self, n: int) -> None:
        """The next ``n`` successful triggers place their call, but the answer is cut off in transit."""
        with self._lock:
            self.lost_answers += n

    def take_lost_answer(self) -> bool:
        with self._lock:
            if self.lost_answers <= 0:
                return False
            self.lost_answers -= 1
            return True

    # time passing -----------------------------------------------------------------------------------------

    def tick(self) -> None:
        """Start calls whose time came, end calls whose duration ran out (webhooks sent after the lock)."""
        ended: list[str] = []
        with self._lock:
            now = self.clock.now()
            for placed in sorted(self.placed.values(), key=lambda p: p.starts_at):
                if not placed.started and placed.starts_at <= now:
                    placed.started = True
                    self._state.update_call(placed.call_id, status="in-progress", started_at=placed.starts_at)
                if placed.started and not placed.ended:
                    end = placed.starts_at + timedelta(seconds=placed.outcome.duration + 5)
                    if end <= now:
                        placed.ended = True
                        self._finish(placed, end)
                        ended.append(placed.call_id)
            self.max_in_flight = max(self.max_in_flight, self.in_flight())
            url, verify = self.webhook_url, self.webhook_verify
        if url:
            for call_id in ended:
                self._post_webhook(url, verify, call_id)

    def _finish(self, placed: Placed, end: datetime) -> None:
        outcome = placed.outcome
        answered = outcome.status == "completed"
        talk = outcome.duration if answered else 0
        self._state.update_call(
            placed.call_id,
            status=outcome.status,
            started_at=placed.starts_at,
            answered_at=end - timedelta(seconds=talk) if answered else None,
            ended_at=end,
            duration_seconds=talk,
            billed_duration_seconds=talk,
            cost=(Decimal(talk) * RATE_PER_SECOND).quantize(Decimal("0.01")),
            disconnection_reason="user_hangup" if answered else "unanswered",
            recording_available=answered,
            transcript="Agent: Namaste, aapne callback ke liye kaha tha.\nUser: Haan ji.\n" if answered else None,
            output_parameters=outcome.output_parameters if answered else {},
            links_expire_at=add_month(end),
        )

    def _post_webhook(self, url: str, verify: str | bool, call_id: str) -> None:
        payload = self._state.webhook_payload(call_id)
        try:
            response = requests.post(url, json=payload, timeout=5, verify=verify)
            status: int | None = response.status_code
        except requests.RequestException:
            status = None
        with self._lock:
            self.placed[call_id].webhook_status = status
            self.webhooks_sent += 1

    def start_ticker(self, interval: float = 0.2) -> None:
        """Tick from a daemon thread every ``interval`` real seconds (until ``stop_ticker``)."""
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(interval):
                self.tick()

        self._ticker = threading.Thread(target=run, name="t2-dialer", daemon=True)
        self._ticker.start()

    def stop_ticker(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
            self._ticker = None

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "placed": len(self.placed),
                "in_flight": self.in_flight(),
                "max_in_flight": self.max_in_flight,
                "refused_concurrency": self.refused_concurrency,
                "webhooks_sent": self.webhooks_sent,
                "now": self.clock.now().isoformat(),
            }
