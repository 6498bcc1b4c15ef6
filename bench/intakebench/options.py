"""The intake load run's constants, targets and options."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from worker.ledger import State

REPO_ROOT = Path(__file__).resolve().parents[2]
LUA = REPO_ROOT / "bench" / "intake_load.lua"
SECRET = "load-webhook-secret-8d2f41"  # the private intake of this run only
APP_SPEC = "worker.intake.app:create_app"
BARE_SPEC = "bare_app:create_app"  # plain ASGI: the ceiling
BARE_FASTAPI_SPEC = "bare_app:create_fastapi_app"  # the same behind FastAPI
#: Share of each kind of request in the mix.
MIX = {"valid": 0.80, "duplicate": 0.08, "malformed": 0.06, "unauthenticated": 0.06}
#: Resolved = the call reached Salesforce (synced) or was decided not to (skipped): not lost.
DONE_STATES = (State.SYNCED, State.SKIPPED)
THROUGHPUT_CONNECTIONS = 64
WRK_THREADS = 2

TARGET_SHARE = 0.50
TARGET_STEADY_P99_MS = 100.0
TARGET_BURST_MAX_S = 5.0


@dataclass
class LoadOptions:
    seconds: int = 10
    rate: int = 500
    steady_seconds: int = 0  # 0: as long as ``seconds``
    burst: int = 10_000
    burst_seconds: int = 10
    baseline: str | None = None
    rounds: int = 1
    drain_timeout: float = 900.0
    drain: bool = True
    busy_worker: bool = False
    #: Requests in each of (a), (a') and (b) at most (0: as many as ``seconds`` allows). A small run's cap:
    #: uncapped, its drain grows with the machine's speed (every webhook (b) accepts is synced afterwards).
    throughput_limit: int = 0
    steady_connections: int = 100
    burst_connections: int = 500
    work_dir: Path | None = None
    say: Callable[[str], None] = field(default=lambda text: print(text, file=sys.stderr, flush=True))
