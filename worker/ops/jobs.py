"""What the console changes: replays (bulk mode, in a thread of the web process, progress in Redis), purges,
and the action log. Every action names who did it (the token's label) in each call's ledger history and in
the console's action log (``crm-sync:ops:actions``, newest first, capped).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import Counter
from typing import Any, cast

import structlog

from worker.ledger import State
from worker.runtime import Runtime

log = structlog.get_logger(__name__)

ACTIONS_KEY = "crm-sync:ops:actions"
ACTIONS_CAP = 500
JOB_TTL = 7 * 86400


def job_key(job_id: str) -> str:
    return f"crm-sync:ops:job:{job_id}"


def record_action(runtime: Runtime, who: str, what: str, **detail: Any) -> None:
    """Append to the console's action log (newest first)."""
    entry = json.dumps({"at": time.time(), "who": who, "what": what, **detail})
    pipe = runtime.redis.pipeline(transaction=False)
    pipe.lpush(ACTIONS_KEY, entry)
    pipe.ltrim(ACTIONS_KEY, 0, ACTIONS_CAP - 1)
    pipe.execute()
    log.info("ops.action", who=who, what=what, **{k: v for k, v in detail.items() if k != "call_ids"})


def actions(runtime: Runtime, limit: int = 20) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in cast(list[Any], runtime.redis.lrange(ACTIONS_KEY, 0, limit - 1))]


def start_replay(runtime: Runtime, call_ids: list[str], *, who: str, what: str, wait: bool = False) -> str:
    """Replay ``call_ids`` in bulk mode (forced, as ``crm-sync replay``) in a background thread; returns the job
    id whose progress ``job()`` reads. Each call's history gets an ``ops_replay`` entry naming ``who``."""
    job_id = secrets.token_hex(8)
    ids = list(dict.fromkeys(call_ids))
    runtime.redis.hset(
        job_key(job_id),
        mapping={
            "who": who,
            "what": what,
            "total": len(ids),
            "done": 0,
            "phase": "starting",
            "status": "running",
            "started_at": time.time(),
            "outcomes": "{}",
        },
    )
    runtime.redis.expire(job_key(job_id), JOB_TTL)
    for call_id in ids:
        runtime.ledger.note(call_id, "ops_replay", who=who, job=job_id)
    record_action(runtime, who, what, job=job_id, calls=len(ids), call_ids=ids[:20])
    thread = threading.Thread(target=_run, args=(runtime, job_id, ids), name=f"ops-replay-{job_id}", daemon=True)
    thread.start()
    if wait:
        thread.join()
    return job_id


def _run(runtime: Runtime, job_id: str, ids: list[str]) -> None:
    from worker.sync.bulk import BulkSync

    key = job_key(job_id)
    outcomes: Counter[str] = Counter()

    def on_phase(text: str) -> None:
        runtime.redis.hset(key, "phase", text)

    def on_done(_call_id: str, outcome: str) -> None:
        # The totals, not an increment: a write resent after its answer was lost (worker.once) counts once.
        # BulkSync records its outcomes one after another, so the totals only grow.
        outcomes[outcome] += 1
        runtime.redis.hset(key, mapping={"done": sum(outcomes.values()), "outcomes": json.dumps(outcomes)})

    try:
        report = BulkSync(runtime, on_phase=on_phase, on_done=on_done).run(ids, source="replay", force=True)
        runtime.redis.hset(
            key,
            mapping={
                "status": "done",
                "phase": "done",
                "finished_at": time.time(),
                "outcomes": json.dumps(report.as_dict()["outcomes"]),
                "salesforce_requests": report.salesforce_requests,
            },
        )
    except Exception as exc:  # the calls stay in the ledger (failed or syncing, swept later): say what broke
        log.exception("ops.replay_crashed", job=job_id)
        runtime.redis.hset(key, mapping={"status": "crashed", "phase": f"{type(exc).__name__}: {exc}"[:300]})


def job(runtime: Runtime, job_id: str) -> dict[str, Any] | None:
    raw = cast(dict[Any, Any], runtime.redis.hgetall(job_key(job_id)))
    if not raw:
        return None
    data = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v) for k, v in raw.items()
    }
    data["outcomes"] = json.loads(data.get("outcomes") or "{}")
    data["total"], data["done"] = int(data["total"]), int(data["done"])
    return data


def purge(runtime: Runtime, *, older_than_days: float, who: str) -> int:
    """Delete failed records last updated more than ``older_than_days`` ago (``crm-sync failures purge``)."""
    before = time.time() - older_than_days * 86400
    removed = runtime.ledger.purge(before=before, states=[State.FAILED])
    record_action(runtime, who, "purge failures", older_than_days=older_than_days, removed=removed)
    return removed


def count_purgeable(runtime: Runtime, *, older_than_days: float) -> int:
    before = time.time() - older_than_days * 86400
    return int(runtime.redis.zcount(runtime.ledger.state_key(State.FAILED), "-inf", before))  # type: ignore[arg-type]
