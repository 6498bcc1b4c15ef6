"""The overview's figures, computed from Redis at read time (every worker on every machine counts once).

Sources: the ledger's state sets and metrics keys (``worker.ledger``), the Celery queue lists of the broker,
the shared Salesforce usage (``ApiBudget``), the shared Twenty2 rate-limit window (``SharedRateLimit``) and
the processes' heartbeats (``worker.heartbeat``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, cast

from worker import heartbeat
from worker.celery_app import QUEUE
from worker.ledger import Ledger, State
from worker.ratelimit import SharedRateLimit
from worker.runtime import Runtime

#: kombu's Redis transport keeps one list per priority step: ``crm-sync``, ``crm-sync\x06\x163``, ...
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)
#: A heartbeat older than this (seconds) counts as a dead process (heartbeats are written every 10 s).
ALIVE_WITHIN = 30.0
HOURS = 24
LATENCY_WINDOW = 3600.0


def queue_keys(queue: str = QUEUE) -> list[str]:
    return [queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS]


def queue_depth(runtime: Runtime) -> int:
    """Tasks waiting in the broker (every priority list of the queue)."""
    pipe = runtime.redis.pipeline(transaction=False)
    for name in queue_keys():
        pipe.llen(name)
    return sum(int(n) for n in pipe.execute())


def twenty2_limiter(runtime: Runtime) -> SharedRateLimit:
    s = runtime.settings
    return SharedRateLimit(s, key=f"twenty2:{s.twenty2_workspace_id}", per_minute=s.twenty2_rate_limit_per_minute)


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def recent_latencies(ledger: Ledger, since: float) -> list[float]:
    raw = cast(list[Any], ledger.r.zrangebyscore(ledger.metrics_key("latency-recent"), since, "+inf"))
    return [float((m.decode() if isinstance(m, bytes) else m).rpartition("|")[2]) for m in raw]


def retryable_failures(ledger: Ledger, since: float) -> int:
    return int(ledger.r.zcount(ledger.metrics_key("retryable"), since, "+inf"))  # type: ignore[arg-type]


def hourly(ledger: Ledger, now: float, hours: int = HOURS) -> list[dict[str, Any]]:
    """Per hour of the last ``hours`` (oldest first): how many calls now in each state were last updated then."""
    top = math.floor(now / 3600) * 3600 + 3600
    starts = [top - 3600 * (hours - i) for i in range(hours)]
    pipe = ledger.r.pipeline(transaction=False)
    for start in starts:
        for state in State:
            pipe.zcount(ledger.state_key(state), start, f"({start + 3600}")
    counts = iter(pipe.execute())
    return [{"start": start, **{state.value: int(next(counts)) for state in State}} for start in starts]


@dataclass
class Overview:
    now: float
    counts: dict[str, int]
    hours: list[dict[str, Any]]
    syncs_last_minute: int
    latency_p50: float | None
    latency_p95: float | None
    latency_samples: int
    sf_used: int | None
    sf_max: int | None
    sf_seen_at: float | None
    reserve: float
    twenty2_used: int
    twenty2_limit: int
    queue_depth: int
    due: int
    oldest_queued: tuple[str, float] | None
    retryable_15m: int
    heartbeats: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def sf_remaining_share(self) -> float | None:
        if self.sf_used is None or not self.sf_max:
            return None
        return max(self.sf_max - self.sf_used, 0) / self.sf_max

    @property
    def holding(self) -> bool:
        share = self.sf_remaining_share
        return share is not None and share <= self.reserve

    def alive(self, role: str) -> list[dict[str, Any]]:
        return [b for b in self.heartbeats.get(role, []) if self.now - float(b["at"]) <= ALIVE_WITHIN]


def overview(runtime: Runtime, now: float | None = None) -> Overview:
    """Every figure of the overview page, read now."""
    now = time.time() if now is None else now
    ledger = runtime.ledger
    usage = runtime.budget.last()
    latencies = recent_latencies(ledger, now - LATENCY_WINDOW)
    oldest = cast(list[Any], ledger.r.zrange(ledger.state_key(State.QUEUED), 0, 0, withscores=True))
    limiter = twenty2_limiter(runtime)
    return Overview(
        now=now,
        counts=ledger.counts(),
        hours=hourly(ledger, now),
        syncs_last_minute=int(ledger.r.zcount(ledger.metrics_key("latency-recent"), now - 60, "+inf")),  # type: ignore[arg-type]
        latency_p50=percentile(latencies, 0.50),
        latency_p95=percentile(latencies, 0.95),
        latency_samples=len(latencies),
        sf_used=usage.used if usage else None,
        sf_max=usage.maximum if usage else None,
        sf_seen_at=usage.seen_at if usage else None,
        reserve=runtime.settings.crm_sync_api_reserve,
        twenty2_used=limiter.used(),
        twenty2_limit=runtime.settings.twenty2_rate_limit_per_minute,
        queue_depth=queue_depth(runtime),
        due=int(ledger.r.zcard(ledger.due_key)),  # type: ignore[arg-type]
        oldest_queued=(_s(oldest[0][0]), float(oldest[0][1])) if oldest else None,
        retryable_15m=retryable_failures(ledger, now - 900),
        heartbeats=heartbeat.read(runtime.redis),
    )


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
