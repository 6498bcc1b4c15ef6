"""Chaos run of automatic callbacks: N calls promise callbacks over a simulated day (clock sped up); sweeper
processes (each one beat + worker: the callback sweep in a loop) are SIGKILLed and restarted at random, trigger
answers are lost, Redis is restarted; every eligible callback must be placed exactly once at its time.

Usage: ``.venv/bin/python chaos/callbacks.py [--calls 200] [--sweepers 2] [--speed 120] [--seed 1] [--json]``

Setup (clock stopped at 08:30 IST): N Leads, N completed calls promising a callback at a time drawn over
09:00–21:00 IST (a few at 22:00: outside the window, due 09:00 next day; ten at 17:00 at once: more than the 3
concurrent calls), each synced through the real sync path (plan → Salesforce → the hook schedules). Then some
promises stop being eligible: Leads set DoNotCall, Leads converted, follow-up Tasks completed by a "rep"; some
Tasks are moved by a "rep" to a new time. The clock then runs at ``--speed``× (jumping ahead over idle gaps,
never past a due callback) until 10:00 IST next day.

The figures (all from the Twenty2 stand-in's dialer, i.e. what was really placed, checked against times this
script computed itself, not against the product's own schedule):

- ``placed_once``: eligible callbacks placed exactly once; ``missed``: eligible, never placed;
- ``placed_twice``: callbacks placed more than once (target 0); ``ineligible_placed`` (target 0);
- ``outside_window``: calls placed outside 09:00–21:00 IST (target 0);
- ``on_time``: placed within one sweep interval (in simulated seconds) after the expected instant, ``early``
  (target 0), ``late``: later than that, with the lateness of each (only the 17:00 cluster, queued behind the
  3-call limit, may be late);
- ``max_in_flight`` (target ≤ 3), kills, lost answers, Redis restarts.

Exit status 1 when a target is missed. ``run(ChaosOptions(...))`` returns the figures (tests/tools uses it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO_ROOT))

import redis  # noqa: E402

IST_OFFSET = timedelta(hours=5, minutes=30)
DAY = datetime(2030, 1, 10, tzinfo=UTC)  # a Thursday
START = DAY + timedelta(hours=8, minutes=30) - IST_OFFSET  # 08:30 IST
END = DAY + timedelta(days=1, hours=10) - IST_OFFSET  # 10:00 IST next day
CLOCK_KEY = "chaos:clock"
DATA_KEY = "chaos-callbacks-data-key-0123456"
AGENT = "69de483c68b23495c853b43a"
#: How long a stand-in callback call lasts (ringing + talk, simulated seconds).
CALL_SECONDS = 65


@dataclass
class ChaosOptions:
    calls: int = 200
    sweepers: int = 2
    speed: float = 120.0
    sweep_interval: float = 0.25  # real seconds between one sweeper's sweeps
    kill_every: float = 2.0  # real seconds between kills (one sweeper at a time)
    seed: int = 1
    work_dir: Path | None = None


# --- the shared clock: the stand-in's SandboxClock in this process, mirrored in Redis for the sweepers ----


class SharedClock:
    """Simulated time = ``sim0 + (time.time() - real0) * speed``, the parameters kept in Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._cache: tuple[float, float, float] | None = None
        self._read_at = 0.0

    def publish(self, sim0: float, real0: float, speed: float) -> None:
        self.r.set(CLOCK_KEY, json.dumps([sim0, real0, speed]))

    def now(self) -> datetime:
        if self._cache is None or time.time() - self._read_at > 0.02:
            try:
                raw = cast(Any, self.r.get(CLOCK_KEY))
            except redis.ConnectionError:  # Redis restarting: the parameters read last still hold
                raw = None
            if raw is not None:
                sim0, real0, speed = json.loads(raw)
                self._cache, self._read_at = (sim0, real0, speed), time.time()
        assert self._cache is not None, "the clock was never published"
        sim0, real0, speed = self._cache
        return datetime.fromtimestamp(sim0 + (time.time() - real0) * speed, UTC)


def set_clock(boxes: Any, shared: SharedClock, moment: datetime, speed: float) -> None:
    real0 = time.time()
    boxes.twenty2.dialer.clock.reset(start=moment, speed=speed, real_start=real0)
    shared.publish(moment.timestamp(), real0, speed)


# --- a sweeper process (beat + worker) ------------------------------------------------------------------


def sweeper(interval: float) -> None:
    """Run the callback sweep forever on the shared clock (this process is what the run SIGKILLs)."""
    from worker.autocall.tasks import runner_for
    from worker.runtime import Runtime
    from worker.settings import Settings

    settings = Settings()
    clock = SharedClock(redis.Redis.from_url(settings.redis_url))
    runtime = Runtime(settings, now=clock.now)
    runner = runner_for(runtime)
    pid = os.getpid()
    while True:
        began = time.monotonic()
        try:
            runner.sweep()
            took = time.monotonic() - began
            pipe = clock.r.pipeline()
            pipe.set(f"chaos:alive:{pid}", took, px=1500)
            pipe.rpush("chaos:sweeps", took)
            pipe.execute()
        except Exception as exc:  # Redis restarting, a stand-in busy: the next sweep tries again
            print(f"sweeper: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        time.sleep(interval)


# --- the run ---------------------------------------------------------------------------------------------


@dataclass
class Promise:
    call_id: str
    lead_id: str
    phone: str
    said: datetime  # the time the caller asked for
    expected: datetime | None  # when it must be placed (None: must not be placed)
    kind: str  # normal, outside, cluster, moved, opted_out, converted, completed


def _ist(hour: int, minute: int) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute) - IST_OFFSET


def _phrase(moment: datetime) -> str:
    local = moment + IST_OFFSET
    hour = local.hour % 12 or 12
    return f"today {hour}:{local.minute:02d} {'pm' if local.hour >= 12 else 'am'}"


def plan_promises(n: int, rng: random.Random) -> list[tuple[datetime, str]]:
    """(time asked for, kind) for n promises: clusters, outside-window ones, and kinds that end ineligible."""
    out: list[tuple[datetime, str]] = [(_ist(17, 0), "cluster") for _ in range(min(10, n // 10))]
    out += [(_ist(22, 0), "outside") for _ in range(max(1, n // 40))]
    kinds = ["normal"] * 14 + ["moved", "opted_out", "converted", "completed"]
    while len(out) < n:
        minute = rng.randrange(9 * 60 + 5, 20 * 60 + 55)
        out.append((_ist(minute // 60, minute % 60), rng.choice(kinds)))
    rng.shuffle(out)
    return out


def run(options: ChaosOptions) -> dict[str, Any]:
    from standins.stack.redis_server import RedisServer
    from standins.stack.sandboxes import Sandboxes
    from standins.twenty2.dialer import IST, next_calling_slot
    from worker.runtime import Runtime
    from worker.sync.services import Services
    from worker.sync.stream import sync_and_record
    from worker.twenty2.client import Twenty2Client

    rng = random.Random(options.seed)
    work = options.work_dir or Path(tempfile.mkdtemp(prefix="chaos-callbacks-"))
    mapping = work / "mapping.toml"
    text = (REPO_ROOT / "config" / "mapping.toml").read_text()
    for key, value in {
        "enabled": "true",
        "per_workspace_per_day": "100000",
        "daily_cost_ceiling_inr": "1000000",
    }.items():
        text = text.replace(
            next(line for line in text.splitlines() if line.startswith(f"{key} = ")), f"{key} = {value}"
        )
    mapping.write_text(text)
    server = RedisServer(work / "redis").start()
    figures: dict[str, Any] = {}
    procs: list[subprocess.Popen[bytes]] = []
    started = time.monotonic()
    with Sandboxes(work / "tls") as boxes:
        boxes.twenty2.rate_limit_per_minute = None  # the sweepers' requests are many at this speed
        extra = {
            "REDIS_URL": server.url,
            "TWENTY2_RATE_LIMIT_PER_MINUTE": "0",
            "CRM_SYNC_MAPPING_FILE": str(mapping),
            "CRM_SYNC_DATA_KEY": DATA_KEY,
            "CRM_SYNC_LOG_FORMAT": "json",
        }
        env = {**os.environ, **boxes.env, **extra}
        settings = boxes.settings(**{k.lower(): v for k, v in extra.items()})
        shared = SharedClock(redis.Redis.from_url(server.url))
        set_clock(boxes, shared, START, 0.0)
        runtime = Runtime(settings, _services=Services.from_settings(settings, twenty2=Twenty2Client(settings)),
                          now=shared.now)  # fmt: skip
        sf = runtime.services.salesforce
        promises: list[Promise] = []
        for i, (said, kind) in enumerate(plan_promises(options.calls, rng)):
            phone = f"98{i:08d}"
            lead = sf.create("Lead", {"LastName": f"Chaos {i}", "Company": "Chaos", "Phone": phone})
            call_id = boxes.twenty2.add_call(
                callee_phone=phone, agent_id=AGENT, ended_at=START, input_parameters={"salesforce_id": lead},
                output_parameters={"interested": "yes", "callback_requested": "yes", "callback_time": _phrase(said)},
            )  # fmt: skip
            assert sync_and_record(runtime, call_id) == "synced"
            promises.append(Promise(call_id, lead, phone, said, next_calling_slot(said), kind))
        tasks = {t["Twenty2_Call_Id__c"]: t["Id"] for t in boxes.salesforce.records("Task")}
        for p in promises:
            task_id = tasks[p.call_id + "-callback"]
            if p.kind == "opted_out":
                sf.update("Lead", p.lead_id, {"DoNotCall": True})
                p.expected = None
            elif p.kind == "converted":
                boxes.salesforce.convert_lead(p.lead_id)
                p.expected = None
            elif p.kind == "completed":
                sf.update("Task", task_id, {"Status": "Completed"})
                p.expected = None
            elif p.kind == "moved":
                # later only: the callback reads its Task when it comes due (an earlier time counts from then)
                moved = p.said + timedelta(minutes=rng.choice([40, 95]))
                sf.update("Task", task_id, {"ReminderDateTime": moved.strftime("%Y-%m-%dT%H:%M:%S.000Z")})
                p.expected = next_calling_slot(moved) if moved > START else next_calling_slot(START)
        scheduled = runtime.callbacks.counts()["scheduled"]
        boxes.twenty2.dialer.start_ticker(0.02)

        logs = (work / "sweepers.log").open("ab")

        def spawn() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [sys.executable, __file__, "--sweeper", str(options.sweep_interval)],
                env=env, stdout=logs, stderr=logs,
            )  # fmt: skip

        procs = [spawn() for _ in range(options.sweepers)]
        deadline = time.monotonic() + 60
        while len(alive(shared.r)) < options.sweepers and time.monotonic() < deadline:
            time.sleep(0.1)  # the clock runs once every sweeper has swept once
        set_clock(boxes, shared, START, options.speed)
        kills = lost = redis_restarts = jumps = 0
        last_kill = last_loss = time.monotonic()
        restarted_redis = False
        store = runtime.callbacks
        while shared.now() < END:
            time.sleep(0.05)
            now = shared.now()
            if time.monotonic() - last_kill > options.kill_every and len(alive(shared.r)) >= 2:
                # SIGKILL one at random, mid-sweep or not, while another one is up (with none up nothing
                # could be placed on time; that is an outage, not this run's question)
                victim = rng.randrange(len(procs))
                procs[victim].send_signal(signal.SIGKILL)
                procs[victim].wait()
                procs[victim] = spawn()
                kills += 1
                last_kill = time.monotonic()
            if time.monotonic() - last_loss > 3.0:
                boxes.twenty2.dialer.lose_next_answers(1)
                lost += 1
                last_loss = time.monotonic()
            if not restarted_redis and now > _ist(13, 0):
                server.restart()  # SIGTERM: the AOF is flushed; the schedule must come back whole
                restarted_redis, redis_restarts = True, 1
            try:
                busy = bool(store.in_flight(now)) or unresolved(store)
                head = cast(list[Any], store.r.zrange(store.due_key, 0, 0, withscores=True))
            except redis.ConnectionError:
                continue
            if not busy and boxes.twenty2.dialer.in_flight() == 0:
                target = datetime.fromtimestamp(float(head[0][1]), UTC) - timedelta(seconds=20) if head else END
                if target - now > timedelta(minutes=2):
                    set_clock(boxes, shared, min(target, END), options.speed)  # skip idle time
                    jumps += 1
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        boxes.twenty2.dialer.stop_ticker()
        durations = sorted(float(d) for d in cast(list[Any], shared.r.lrange("chaos:sweeps", 0, -1)))
        p99 = durations[int(len(durations) * 0.99)] if durations else 0.0
        # one sweep: the pause between two sweeps plus a sweep's own run time (its 99th percentile)
        sweep_sim = (options.sweep_interval + p99) * options.speed
        figures = measure(boxes, promises, IST, sweep_sim, store)
        figures.update(
            calls=options.calls, scheduled=scheduled, sweepers=options.sweepers, speed=options.speed,
            one_sweep_sim_s=round(sweep_sim, 1), sweeps=len(durations),
            sweep_p99_real_ms=round(p99 * 1000, 1), kills=kills, lost_answers_injected=lost,
            redis_restarts=redis_restarts, clock_jumps=jumps, real_seconds=round(time.monotonic() - started, 1),
            max_in_flight=boxes.twenty2.dialer.max_in_flight,
            refused_by_twenty2_concurrency=boxes.twenty2.dialer.refused_concurrency,
        )  # fmt: skip
    server.stop()
    return figures


def alive(client: redis.Redis) -> list[Any]:
    try:
        return list(client.scan_iter("chaos:alive:*"))
    except redis.ConnectionError:
        return []


def unresolved(store: Any) -> bool:
    """Any callback triggered whose call id is not known yet (a lost answer being resolved)?"""
    return bool(store.unknown())


def crowded(promise: Promise, promises: list[Promise]) -> bool:
    """Were 3 or more other callbacks due at the same time or in the call's length before it (so this one
    had to wait behind the 3-concurrent-call limit)?"""
    assert promise.expected is not None
    window = timedelta(seconds=CALL_SECONDS)
    others = [
        p for p in promises
        if p is not promise and p.expected is not None and promise.expected - window <= p.expected <= promise.expected
    ]  # fmt: skip
    return len(others) >= 3


def measure(boxes: Any, promises: list[Promise], ist: Any, sweep_sim: float, store: Any) -> dict[str, Any]:
    """What the dialer placed, against what was expected."""
    placed: dict[str, list[Any]] = {}
    for item in boxes.twenty2.dialer.placed.values():
        source = boxes.twenty2.get_call(item.call_id).input_parameters.get("crm_sync_source_call_id")
        placed.setdefault(str(source), []).append(item)
    outside = sum(1 for items in placed.values() for p in items if not 9 <= p.triggered_at.astimezone(ist).hour < 21)
    counts: Counter[str] = Counter()
    late: list[float] = []
    late_kinds: Counter[str] = Counter()
    details: list[str] = []
    for promise in promises:
        got = placed.get(promise.call_id, [])
        if promise.expected is None:
            counts["ineligible"] += 1
            counts["ineligible_placed"] += bool(got)
            continue
        counts["eligible"] += 1
        if not got:
            counts["missed"] += 1
            continue
        counts["placed_once" if len(got) == 1 else "placed_twice"] += 1
        delay = (got[0].triggered_at - promise.expected).total_seconds()
        if delay < 0:
            counts["early"] += 1
        elif delay <= sweep_sim:
            counts["on_time"] += 1
        else:
            history = [e.get("event") for e in store.history(f"cb_{promise.call_id}")]
            why = "recovered" if "taken_over" in history else "queued" if crowded(promise, promises) else "other"
            counts[f"late_{why}"] += 1
            late.append(round(delay, 1))
            late_kinds[why] += 1
            if why == "other":
                details.append(
                    f"{promise.kind} expected {promise.expected:%H:%M:%S} placed {got[0].triggered_at:%d %H:%M:%S} "
                    f"{history}"
                )
    for key in ("eligible", "placed_once", "missed", "placed_twice", "ineligible", "ineligible_placed", "early",
                "on_time", "late_queued", "late_recovered", "late_other"):  # fmt: skip
        counts.setdefault(key, 0)
    recovered: Counter[str] = Counter()
    for promise in promises:
        for event in store.history(f"cb_{promise.call_id}"):
            if event.get("event") == "taken_over":
                recovered["taken_over"] += 1
            if event.get("event") == "placed":
                recovered[f"placed_from_{event.get('how')}"] += 1
    return {
        **dict(counts),
        **dict(recovered),
        "outside_window": outside,
        "late_seconds": sorted(late),
        "late_by_cause": dict(late_kinds),
        "late_other_detail": details,
        "placements": sum(len(v) for v in placed.values()),
    }


def missed_targets(f: dict[str, Any]) -> list[str]:
    checks = {
        "every eligible callback placed": f["missed"] == 0,
        "0 placed twice": f["placed_twice"] == 0,
        "0 ineligible placed": f["ineligible_placed"] == 0,
        "0 outside the window": f["outside_window"] == 0,
        "0 early": f["early"] == 0,
        "late only when queued behind the 3-call limit or recovering a lost answer": f["late_other"] == 0,
        "at most 3 in flight": f["max_in_flight"] <= 3,
    }
    return [name for name, ok in checks.items() if not ok]


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--sweeper":
        sweeper(float(sys.argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--sweepers", type=int, default=2)
    parser.add_argument("--speed", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = run(ChaosOptions(calls=args.calls, sweepers=args.sweepers, speed=args.speed, seed=args.seed))
    missed = missed_targets(figures)
    if args.json:
        print(json.dumps({**figures, "missed_targets": missed}, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:32} {value}")
        print("targets:", "all met" if not missed else "MISSED: " + "; ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
