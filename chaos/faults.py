"""The faults of a chaos run: transient API faults for the whole run, and a schedule of one-off actions
(worker SIGKILLs, a Redis restart, a Salesforce daily-limit burst) over the posting window.

``fault_schedule`` is the plan (pure: when each action fires); ``Chaos`` carries it out against the live
stack and logs every action with its time. A new one-off fault is a method of ``Chaos``, an entry in
``Chaos.actions`` and a time in ``fault_schedule`` (or in ``Chaos.start(extra=...)``)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from chaos import worker_loss
from chaos.options import ChaosOptions
from standins.stack.processes import Stack
from standins.stack.redis_server import RedisServer
from standins.stack.sandboxes import Sandboxes

#: Twenty2 faults: (share of the API requests, answer); a hang lasts past TWENTY2_READ_TIMEOUT.
TWENTY2_FAULTS: tuple[tuple[float, int | None], ...] = ((0.4, 429), (0.3, 500), (0.3, None))
TWENTY2_HANG_SECONDS = 3.0
#: Salesforce fault kinds alternated every second (a lock only ever hits a write).
SALESFORCE_FAULT_KINDS = ("server_unavailable", "lock")
LIMIT_BURST_SECONDS = 4.0
RESTART_DELAY_SECONDS = 1.0


def fault_schedule(window: float, worker_kills: int) -> list[tuple[float, str]]:
    """When each one-off action fires, in seconds after the posting starts, by its name in ``Chaos.actions``:
    the kills spread evenly over the middle 80% of the window, the Redis restart at 50%, the limit burst at 70%."""
    schedule = [(window * (0.1 + 0.8 * (k + 0.5) / worker_kills), "kill_worker") for k in range(worker_kills)]
    return [*schedule, (window * 0.5, "restart_redis"), (window * 0.7, "limit_burst")]


class Chaos:
    """Transient faults for the whole run, and a schedule of kills, one Redis restart and one limit burst
    spread over the posting window. Every action is logged with its time."""

    def __init__(
        self,
        boxes: Sandboxes,
        stack: Stack,
        redis_server: RedisServer,
        options: ChaosOptions,
        rng: random.Random,
        workers: list[str],
    ) -> None:
        self.boxes, self.stack, self.redis_server = boxes, stack, redis_server
        self.options, self.rng = options, rng
        self.workers = workers
        self.log: list[str] = []
        self.kills: list[dict[str, Any]] = []
        self.redis_downtime = 0.0
        self.limit_rejections = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._t0 = time.monotonic()
        self._restarts = 0

    @property
    def actions(self) -> dict[str, Callable[[], None]]:
        """The one-off actions ``fault_schedule`` names."""
        return {"kill_worker": self.kill_worker, "restart_redis": self.restart_redis, "limit_burst": self.limit_burst}

    def note(self, text: str) -> None:
        self.log.append(f"t+{time.monotonic() - self._t0:6.1f}s  {text}")

    def start(self, window: float, extra: Sequence[tuple[float, Callable[[], None]]] = ()) -> None:
        """Turn the transient faults on and schedule the one-off actions (``extra``: more, at their times)."""
        self._t0 = time.monotonic()
        rate = self.options.fault_rate
        for share, status in TWENTY2_FAULTS:
            if status is None:
                self.boxes.twenty2.hang_randomly(rate * share, seconds=TWENTY2_HANG_SECONDS)
            else:
                self.boxes.twenty2.fail_randomly(rate * share, status)
        self.boxes.salesforce.set_faults(fail_rate=rate, fail_kind=SALESFORCE_FAULT_KINDS[0], seed=self.options.seed)
        self.note(
            f"faults on: Twenty2 {rate:.0%} (429/500/hang {TWENTY2_HANG_SECONDS:.0f}s), "
            f"Salesforce {rate:.0%} ({' / '.join(SALESFORCE_FAULT_KINDS)}, alternating each second)"
        )
        actions = self.actions
        schedule = [(at, actions[name]) for at, name in fault_schedule(window, self.options.worker_kills)]
        for at, action in [*schedule, *extra]:
            self._spawn(self._at(at, action))
        self._spawn(self._alternate_salesforce_faults)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _spawn(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _at(self, at: float, action: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            if not self._stop.wait(max(0.0, self._t0 + at - time.monotonic())):
                action()

        return run

    def _alternate_salesforce_faults(self) -> None:
        turn = 0
        while not self._stop.wait(1.0):
            turn += 1
            kind = SALESFORCE_FAULT_KINDS[turn % len(SALESFORCE_FAULT_KINDS)]
            self.boxes.salesforce.set_faults(fail_kind=kind)

    def kill_worker(self) -> None:
        name = self.rng.choice(self.workers)
        process = self.stack.processes[name]
        held = worker_loss.held_before_kill(self.redis_server.url, process.pid)
        self.stack.kill(name)  # SIGKILL to the process group: no warm shutdown, no requeue by the worker
        killed_at = time.time()
        self._restarts += 1
        new_name = f"{name.split('.')[0]}.{self._restarts}"
        time.sleep(RESTART_DELAY_SECONDS)
        self.stack.start(new_name, entry="worker")
        self.workers[self.workers.index(name)] = new_name
        self.kills.append(
            {"killed": name, "pid": process.pid, "restarted_as": new_name, "killed_at": killed_at, "held": held}
        )
        self.note(f"SIGKILL {name} (pid {process.pid}, process group, held {len(held)} calls); restarted as {new_name}")

    def restart_redis(self) -> None:
        started = time.monotonic()
        self.redis_server.restart()  # SIGTERM (AOF flushed), then the same port and directory
        self.redis_downtime = time.monotonic() - started
        self.note(f"Redis restarted (graceful, AOF, same port): down {self.redis_downtime:.2f}s")

    def limit_burst(self) -> None:
        sf = self.boxes.salesforce
        before = sf.stats()["errors"].get("REQUEST_LIMIT_EXCEEDED", 0)
        usage = sf.set_usage()
        sf.set_usage(used=usage["max"])
        self.note(f"Salesforce at its daily API limit (REQUEST_LIMIT_EXCEEDED) for {LIMIT_BURST_SECONDS:.0f}s")
        time.sleep(LIMIT_BURST_SECONDS)
        sf.set_usage(used=usage["used"])
        self.limit_rejections = sf.stats()["errors"].get("REQUEST_LIMIT_EXCEEDED", 0) - before
        self.note(f"Salesforce limit lifted ({self.limit_rejections} requests refused meanwhile)")

    def summary(self) -> dict[str, Any]:
        sf, t2 = self.boxes.salesforce.stats(), self.boxes.twenty2.stats()
        return {
            "worker_kills": self.kills,
            "redis_restarts": 1 if self.redis_downtime else 0,
            "redis_downtime_seconds": round(self.redis_downtime, 2),
            "limit_burst_rejections": self.limit_rejections,
            "salesforce_faults": sf["faults"],
            "twenty2_faults": t2["faults_injected"],
            "twenty2_answers": t2["by_status"],
            "log": list(self.log),
        }
