"""The load generator: ``wrk`` (installed when missing) and the prepared request mix it posts."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from intakebench.options import LUA, MIX, SECRET, WRK_THREADS
from standins.stack.sandboxes import Sandboxes

# --- the load generator -------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """``wrk``'s path, installing the Debian package first when it is missing (as scripts/_venv.sh does
    for redis-server)."""
    found = shutil.which("wrk")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], check=True, stdout=subprocess.DEVNULL)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and apt-get could not install it")
    return found


def wrk(
    url: str,
    requests_file: Path,
    *,
    connections: int,
    duration: int,
    rate: int = 0,
    limit: int = 0,
    timeout: int = 10,
) -> dict[str, Any]:
    """One wrk run; its figures (requests, duration, latency percentiles in ms, statuses, accepted ids)."""
    out = requests_file.with_suffix(f".{time.monotonic_ns()}.out")
    command = [
        ensure_wrk(),
        "-t",
        str(WRK_THREADS),
        "-c",
        str(connections),
        "-d",
        f"{duration}s",
        "--timeout",
        f"{timeout}s",
        "-s",
        str(LUA),
        url,
        "--",
        str(requests_file),
        str(rate),
        str(limit),
        str(WRK_THREADS),
    ]
    env = dict(os.environ, CRM_SYNC_LOAD_OUT=str(out))
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, timeout=duration + timeout + 60)
    lines = out.read_text().splitlines()
    head = json.loads(lines[0])
    statuses: Counter[int] = Counter()
    accepted: list[str] = []
    span = 0.0
    for line in lines[1:]:
        kind, _, rest = line.partition("\t")
        if kind == "status":
            code, n = rest.split("\t")
            statuses[int(code)] += int(n)
        elif kind == "span_ms":
            span = float(rest) / 1000
        elif kind == "accepted" and rest:
            accepted.append(rest)
    errors = head["errors"]
    # A run with a request limit idles once it is sent: its rate is over the time from the first send to
    # the last answer. (Its idle connections also count as wrk "timeouts": unanswered = limit - answered.)
    seconds = span if limit else head["duration_us"] / 1e6
    return {
        "requests": head["requests"],
        "seconds": round(seconds, 2),
        "requests_per_second": round(head["requests"] / seconds, 1) if seconds else 0.0,
        "p50_ms": head["p50_us"] / 1000,
        "p99_ms": head["p99_us"] / 1000,
        "max_ms": head["max_us"] / 1000,
        # Idle connections of a limited run are closed by the server's keep-alive timeout: read errors that
        # are no failed request; its failures are the unanswered ones.
        "socket_errors": 0 if limit else errors["connect"] + errors["read"] + errors["write"],
        "timeouts": max(0, limit - head["requests"]) if limit else errors["timeout"],
        "statuses": dict(sorted(statuses.items())),
        "accepted": accepted,
    }


# --- the requests -------------------------------------------------------------------------------------------


class Mix:
    """Writes request sequences for the Lua script: one ``path<TAB>content-type<TAB>body`` line each."""

    def __init__(self, boxes: Sandboxes, seed: int = 5) -> None:
        self.boxes = boxes
        self.rng = random.Random(seed)
        self.sent: list[str] = []  # valid call ids written so far (what duplicates redeliver)

    def write(self, path: Path, n: int) -> Path:
        kinds = self.rng.choices(list(MIX), weights=list(MIX.values()), k=n)
        fresh = iter(self.boxes.twenty2.add_generated_calls(kinds.count("valid"), seed=self.rng.randrange(2**31)))
        lines = []
        for kind in kinds:
            if kind == "duplicate" and not self.sent:
                kind = "valid"
                fresh = iter([*self.boxes.twenty2.add_generated_calls(1, seed=self.rng.randrange(2**31)), *fresh])
            lines.append(getattr(self, kind)(fresh))
        path.write_text("".join("\t".join(parts) + "\n" for parts in lines))
        return path

    def _post(self, call_id: str) -> tuple[str, str, str]:
        body = json.dumps(self.boxes.twenty2.webhook_payload(call_id), separators=(",", ":"))
        return (f"/webhooks/twenty2/{SECRET}", "application/json", body)

    def valid(self, fresh: Iterator[str]) -> tuple[str, str, str]:
        call_id = next(fresh)
        self.sent.append(call_id)
        return self._post(call_id)

    def duplicate(self, fresh: Iterator[str]) -> tuple[str, str, str]:
        return self._post(self.rng.choice(self.sent[-2000:]))

    def malformed(self, fresh: Iterator[str]) -> tuple[str, str, str]:
        path = f"/webhooks/twenty2/{SECRET}"
        return self.rng.choice(
            [
                (path, "application/json", '{"event":"call.completed","call":{"call_id":'),  # cut short: 400
                (path, "application/json", '{"call_id":NaN}'),  # 400
                (path, "application/json", '{"event":"call.completed","call":{}}'),  # no call id: 422
                (path, "text/plain", "call_id=6a100328ba090039ac8610a2"),  # 415
            ]
        )

    def unauthenticated(self, fresh: Iterator[str]) -> tuple[str, str, str]:
        body = json.dumps({"call_id": self.rng.choice(self.sent or ["6a100328ba090039ac8610a2"])})
        return self.rng.choice(
            [
                ("/webhooks/twenty2/not-the-secret", "application/json", body),
                ("/webhooks/twenty2", "application/json", body),
            ]
        )


# --- the service --------------------------------------------------------------------------------------------
