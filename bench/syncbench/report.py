"""The benchmark's figures as Markdown tables (what ``bench/RESULTS.md`` keeps)."""

from __future__ import annotations

from typing import Any

from syncbench.options import LABELS


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(result: dict[str, Any]) -> str:
    o = result["options"]
    lines = []
    if result["results"]:
        lines += [
            f"{o['calls']} calls; injected latency Twenty2 {o['twenty2_latency_ms']:.0f} ms, Salesforce "
            f"{o['salesforce_latency_ms']:.0f} ms per request; concurrency {o['concurrency']} x {o['workers']} "
            "worker(s); Twenty2 limit lifted.",
            "",
            "| path | Salesforce req/call | Twenty2 req/call (detail + transcript) | calls/s | ceiling calls/s | "
            "p50 latency s | p95 latency s | CPU-s / 1,000 calls | outcomes |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for path, r in result["results"].items():
            t2 = (
                f"{r['twenty2_per_call']:.2f} "
                f"({r['twenty2_detail_per_call']:.2f} + {r['twenty2_transcript_per_call']:.2f})"
            )
            outcomes = ", ".join(f"{k} {v}" for k, v in r["outcomes"].items())
            lines.append(
                f"| {LABELS[path]} | {r['salesforce_per_call']:.3f} | {t2} | {_fmt(r['calls_per_second'], 1)} | "
                f"{_fmt(r['ceiling_calls_per_second'], 1)} | {_fmt(r['latency_p50_seconds'])} | "
                f"{_fmt(r['latency_p95_seconds'])} | {_fmt(r['cpu_seconds_per_1000_calls'])} | {outcomes} |"
            )
        if result["ratios_to_naive"]:
            lines += [
                "",
                "| vs (a) naive | Salesforce req/call | Twenty2 req/call | calls/s | p50 latency | p95 latency "
                "| CPU / call |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            ]
            for path, r in result["ratios_to_naive"].items():
                lines.append(
                    f"| {LABELS[path]} | {_fmt(r['salesforce_per_call'], 3)} | {_fmt(r['twenty2_per_call'])} | "
                    f"{_fmt(r['calls_per_second'])} | {_fmt(r['latency_p50_seconds'])} | "
                    f"{_fmt(r['latency_p95_seconds'])} | {_fmt(r['cpu_seconds_per_1000_calls'])} |"
                )
        if result["targets"]:
            lines += ["", "| target | measured | met |", "| --- | ---: | --- |"]
            for t in result["targets"]:
                lines.append(f"| {t['target']} | {_fmt(t['value'], 3)} | {'yes' if t['met'] else 'NO'} |")
    drain = result.get("drain")
    if drain:
        lifted = drain["lifted"]
        lines += [
            "",
            f"Drain: a backlog of {drain['calls']} calls through the streaming path.",
            "",
            "| Twenty2 limit | drain time s | ideal (calls / limit) s | ratio | Twenty2 API req/min | 429s | calls/s | "
            "ceiling calls/s | share of ceiling |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {drain['limit_per_minute']}/min (sandbox and product) | {drain['drain_seconds']:.0f} | "
            f"{drain['ideal_seconds']:.0f} | {_fmt(drain['ratio_to_limit'])} | "
            f"{_fmt(drain['twenty2_api_requests_per_minute'], 1)} | {drain['twenty2_429']} | "
            f"{_fmt(drain['limited']['calls_per_second'])} | – | – |",
            f"| lifted | {lifted['figures']['seconds']:.0f} | – | – | – | {lifted['figures']['twenty2_429']} | "
            f"{_fmt(lifted['calls_per_second'], 1)} | {_fmt(lifted['ceiling_calls_per_second'], 1)} | "
            f"{_fmt(lifted['share_of_ceiling'])} |",
        ]
    return "\n".join(lines)
