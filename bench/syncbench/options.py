"""What a benchmark run is asked to do (``BenchOptions``), its paths, and the targets it reports against."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

WEBHOOK_SECRET = "bench-webhook-secret-5c1e9a"  # the private intake of this run only
PATHS = ("naive", "stream", "bulk")
LABELS = {"naive": "(a) naive", "stream": "(b) streaming", "bulk": "(c) bulk"}
FINAL_STATES = ("synced", "skipped", "failed")

#: Targets the figures are reported against.
TARGET_STREAM_SF_PER_CALL = 1.05
TARGET_BULK_SF_PER_CALL = 0.02
TARGET_STREAM_CEILING_SHARE = 0.80


@dataclass
class BenchOptions:
    calls: int = 2000
    twenty2_latency_ms: float = 120.0
    salesforce_latency_ms: float = 80.0
    concurrency: int = 16
    workers: int = 1
    paths: tuple[str, ...] = PATHS
    drain: bool = False
    drain_only: bool = False
    drain_calls: int = 600
    drain_limit: int = 60
    seed: int = 7
    unknown_share: float = 0.2
    timeout: float = 3600.0
    work_dir: Path | None = None
    say: Callable[[str], None] = field(default=lambda text: print(text, file=sys.stderr, flush=True))
