"""Measuring one path: the stand-ins' request counters, latencies from the ledger, CPU, the figures, the
ratios to the naive path and the targets."""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

from syncbench.options import (
    FINAL_STATES,
    TARGET_BULK_SF_PER_CALL,
    TARGET_STREAM_CEILING_SHARE,
    TARGET_STREAM_SF_PER_CALL,
    BenchOptions,
)
from syncbench.sandboxes import SandboxProcess
from worker.ledger import Ledger

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(share * 100) - 1]


def proc_cpu(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def counters(box: SandboxProcess) -> dict[str, Any]:
    sf = box.sf("GET", "stats")
    t2 = box.t2("GET", "stats")
    by_path: dict[str, int] = t2.get("by_path", {})
    return {
        "salesforce": sum(sf.get("api_requests", {}).values()),
        "salesforce_by_kind": dict(sf.get("api_requests", {})),
        "twenty2": int(t2.get("requests", 0)),
        "twenty2_detail": sum(v for k, v in by_path.items() if k == "/api/call/detail"),
        "twenty2_storage": sum(v for k, v in by_path.items() if k.startswith("/api/storage/")),
        "twenty2_429": int(t2.get("by_status", {}).get("429", 0)),
    }


def figures(
    path: str,
    options: BenchOptions,
    n: int,
    *,
    seconds: float,
    latencies: list[float],
    cpu: float,
    counts: dict[str, Any],
    outcomes: dict[str, int],
) -> dict[str, Any]:
    sf_per_call = counts["salesforce"] / n
    t2_per_call = counts["twenty2"] / n
    per_call_latency = (t2_per_call * options.twenty2_latency_ms + sf_per_call * options.salesforce_latency_ms) / 1000
    ceiling = None
    if path != "bulk" and per_call_latency > 0:
        ceiling = options.concurrency * options.workers / per_call_latency
    rate = n / seconds if seconds > 0 else None
    return {
        "path": path,
        "calls": n,
        "outcomes": outcomes,
        "seconds": round(seconds, 3),
        "calls_per_second": round(rate, 2) if rate else None,
        "salesforce_requests": counts["salesforce"],
        "salesforce_per_call": round(sf_per_call, 4),
        "salesforce_by_kind": counts["salesforce_by_kind"],
        "twenty2_requests": counts["twenty2"],
        "twenty2_per_call": round(t2_per_call, 3),
        "twenty2_detail_per_call": round(counts["twenty2_detail"] / n, 3),
        "twenty2_transcript_per_call": round(counts["twenty2_storage"] / n, 3),
        "twenty2_429": counts["twenty2_429"],
        "latency_p50_seconds": round_or_none(percentile(latencies, 0.50)),
        "latency_p95_seconds": round_or_none(percentile(latencies, 0.95)),
        "cpu_seconds": round(cpu, 3),
        "cpu_seconds_per_1000_calls": round(cpu / n * 1000, 3),
        "ceiling_calls_per_second": round_or_none(ceiling),
        "share_of_ceiling": round(rate / ceiling, 3) if rate and ceiling else None,
    }


def round_or_none(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def ledger_latencies(
    ledger: Ledger, call_ids: list[str], *, since: float | None = None
) -> tuple[list[float], float, float]:
    """Seconds from acceptance (or ``since``) to ``synced`` per synced call, and the first accept / last outcome."""
    latencies, first, last = [], float("inf"), 0.0
    for call_id in call_ids:
        history = ledger.history(call_id)
        accepted = next((h["at"] for h in history if h.get("event") == "accepted"), None)
        synced = next((h["at"] for h in reversed(history) if h.get("event") == "synced"), None)
        ended = next((h["at"] for h in reversed(history) if h.get("event") in FINAL_STATES), None)
        start = since if since is not None else accepted
        if start is not None:
            first = min(first, start)
            if synced is not None:
                latencies.append(synced - start)
        if ended is not None:
            last = max(last, ended)
    return latencies, first, last


def ledger_outcomes(ledger: Ledger) -> dict[str, int]:
    return {state: count for state, count in ledger.counts().items() if count}


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    base = results.get("naive")
    if base is None:
        return {}
    keys = (
        "salesforce_per_call",
        "twenty2_per_call",
        "calls_per_second",
        "latency_p50_seconds",
        "latency_p95_seconds",
        "cpu_seconds_per_1000_calls",
    )
    out: dict[str, dict[str, float | None]] = {}
    for path in ("stream", "bulk"):
        if path in results:
            out[path] = {k: _ratio(results[path][k], base[k]) for k in keys}
    return out


def _ratio(value: float | None, base: float | None) -> float | None:
    return round(value / base, 3) if value is not None and base else None


def targets(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    if "stream" in results:
        s = results["stream"]
        out.append(
            {
                "target": f"(b) Salesforce requests per call <= {TARGET_STREAM_SF_PER_CALL}",
                "value": s["salesforce_per_call"],
                "met": s["salesforce_per_call"] <= TARGET_STREAM_SF_PER_CALL,
            }
        )
        share = s["share_of_ceiling"]
        out.append(
            {
                "target": f"(b) throughput >= {TARGET_STREAM_CEILING_SHARE:.0%} of concurrency / per-call latency",
                "value": share,
                "met": share is not None and share >= TARGET_STREAM_CEILING_SHARE,
            }
        )
    if "bulk" in results:
        b = results["bulk"]
        out.append(
            {
                "target": f"(c) Salesforce requests per call <= {TARGET_BULK_SF_PER_CALL}",
                "value": b["salesforce_per_call"],
                "met": b["salesforce_per_call"] <= TARGET_BULK_SF_PER_CALL,
            }
        )
    return out
