"""The sync benchmark's entry function on a tiny data set without latency: every figure comes out.

Timing targets are not asserted here (a tiny N on a busy test machine says nothing about them); the
benchmark itself reports them against its targets.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from sync_benchmark import PATHS, BenchOptions, markdown, run_benchmark

FIGURES = (
    "salesforce_per_call",
    "twenty2_per_call",
    "twenty2_detail_per_call",
    "twenty2_transcript_per_call",
    "calls_per_second",
    "latency_p50_seconds",
    "latency_p95_seconds",
    "cpu_seconds_per_1000_calls",
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    options = BenchOptions(
        calls=30,
        twenty2_latency_ms=0,
        salesforce_latency_ms=0,
        concurrency=4,
        drain=True,
        drain_calls=8,
        work_dir=tmp_path_factory.mktemp("bench"),
        say=lambda _text: None,
    )
    return run_benchmark(options)


def test_tiny_benchmark_produces_every_figure(tiny_run: dict[str, Any]) -> None:
    results = tiny_run["results"]
    assert set(results) == set(PATHS)
    for path, figures in results.items():
        assert figures["calls"] == 30 and figures["outcomes"].get("synced") == 30, (path, figures["outcomes"])
        for name in FIGURES:
            assert isinstance(figures[name], int | float) and figures[name] >= 0, (path, name, figures[name])
        assert figures["twenty2_detail_per_call"] >= 1.0, path  # every call's detail was fetched
        assert "ceiling_calls_per_second" in figures and "share_of_ceiling" in figures
    # The naive sync asks Salesforce several times per call; bulk a few times for all of them.
    assert results["naive"]["salesforce_per_call"] >= 3.0 > results["bulk"]["salesforce_per_call"] * 10
    for path in ("stream", "bulk"):
        assert all(value is not None for value in tiny_run["ratios_to_naive"][path].values()), path
    assert [t["target"][:3] for t in tiny_run["targets"]] == ["(b)", "(b)", "(c)"]

    drain = tiny_run["drain"]
    assert drain["calls"] == 8 and drain["limited"]["outcomes"].get("synced") == 8
    for name in ("drain_seconds", "ideal_seconds", "ratio_to_limit", "twenty2_api_requests_per_minute", "twenty2_429"):
        assert isinstance(drain[name], int | float), name
    assert drain["lifted"]["calls_per_second"] is not None

    table = markdown(tiny_run)
    assert "| (a) naive |" in table and "| (c) bulk |" in table and "| lifted |" in table
