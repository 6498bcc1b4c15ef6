"""The sync ledger: one record per call id the intake accepts, in Redis, so ops can see and replay syncs.

Keys (``{p}`` is the prefix, ``crm-sync`` by default):

- ``{p}:call:{id}``     hash: state, attempts, failures, timestamps, Salesforce ids, last error (JSON)
- ``{p}:history:{id}``  list of JSON events (newest last, capped)
- ``{p}:state:{state}`` sorted set of call ids by last update time: list by state and time without scanning
- ``{p}:due``           sorted set of call ids by the time they are due again (retries and holds), swept by beat
- ``{p}:metrics:*``     what ``/metrics`` and the ops console read, kept by the same transition scripts (so every
  worker on every machine counts into one place): ``syncs`` (hash "state|stage|code" → outcomes recorded),
  ``latency`` (hash: syncs per intake→Salesforce latency bucket ``bucket:{n}`` (n-th bound of
  ``LATENCY_BUCKETS``, from 1) or ``bucket:inf``, ``count``, ``sum`` of seconds), ``latency-recent``
  (sorted set of "id|seconds" by sync time, the last 24 h) and ``retryable`` (retryable failures by time, 24 h)

States: ``queued`` → ``syncing`` → ``synced`` | ``skipped`` | ``failed`` (and back to ``queued`` for a retry,
a hold or a replay). Resolved records (synced, skipped) expire after the retention period; unresolved ones
(queued, syncing, failed) never expire.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

import redis

from worker.errors import SyncError
from worker.once import OnceScript
from worker.phones import mask


class State(StrEnum):
    QUEUED = "queued"
    SYNCING = "syncing"
    SYNCED = "synced"
    SKIPPED = "skipped"
    FAILED = "failed"


RESOLVED = frozenset({State.SYNCED, State.SKIPPED})
HISTORY_CAP = 100

# Accept a call atomically: create it queued, or re-queue it when it is failed (or forced); report the
# state it had so the intake knows whether to enqueue.
# KEYS: call, history, the 5 state sets. ARGV: id, now, event json, force, source
_ACCEPT = """
local state = redis.call('HGET', KEYS[1], 'state')
local force = ARGV[4] == '1'
if state and not force and state ~= 'failed' then
  redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
  redis.call('RPUSH', KEYS[2], ARGV[3])
  redis.call('LTRIM', KEYS[2], -HISTORY_CAP, -1)
  return state
end
if not state then
  redis.call('HSET', KEYS[1], 'call_id', ARGV[1], 'first_seen', ARGV[2], 'attempts', 0, 'failures', 0)
end
redis.call('HSET', KEYS[1], 'state', 'queued', 'updated_at', ARGV[2], 'queued_at', ARGV[2], 'failures', 0,
  'source', ARGV[5])
redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[2])
for i = 3, 7 do redis.call('ZREM', KEYS[i], ARGV[1]) end
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('LTRIM', KEYS[2], -HISTORY_CAP, -1)
return state or ''
""".replace("HISTORY_CAP", str(HISTORY_CAP))
#: The accept transition's Lua (KEYS: call, history, the 5 state sets; ARGV: id, now, event json, force,
#: source; returns the state before, '' when new), for scripts that accept and do more in one round trip.
ACCEPT_SCRIPT = _ACCEPT

#: Upper bounds (seconds) of the intake→Salesforce latency histogram (``/metrics``); "+Inf" beyond.
LATENCY_BUCKETS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0)
#: How long the per-sync latency samples and retryable-failure times are kept (p50/p95, alert windows).
METRICS_WINDOW = 86400

# Move a call to a state in one script (one round trip; a MULTI pipeline of the same commands costs the
# worker several times the CPU to build and parse, on every transition of every call).
# KEYS: call, history, due set, the target state's set, the 5 state sets, then the metrics keys: syncs,
#       latency, latency-recent, retryable.
# ARGV: id, state, now, history entry json, attempts +1 ('1'/'0'), failures +1, due_at ('' = not due),
#       expiry seconds ('0' = keep), outcome label ('state|stage|code', '' = not an outcome), retryable
#       failure ('1'/'0'), synced ('1': observe the latency since queued_at), then field name / value pairs.
_MOVE = """
local key, history, id, now = KEYS[1], KEYS[2], ARGV[1], ARGV[3]
redis.call('HSETNX', key, 'first_seen', now)
redis.call('HSET', key, 'call_id', id, 'state', ARGV[2], 'updated_at', now)
for i = 12, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
if ARGV[9] ~= '' then redis.call('HINCRBY', KEYS[10], ARGV[9], 1) end
local keep_after = tonumber(now) - METRICS_WINDOW
if ARGV[10] == '1' then
  redis.call('ZADD', KEYS[13], now, id .. '|' .. now)
  redis.call('ZREMRANGEBYSCORE', KEYS[13], '-inf', keep_after)
end
if ARGV[11] == '1' then
  local since = tonumber(redis.call('HGET', key, 'queued_at') or redis.call('HGET', key, 'first_seen') or now)
  local seconds = math.max(tonumber(now) - since, 0)
  local bucket = 'inf'
  for i, bound in ipairs({LATENCY_BUCKETS}) do
    if seconds <= bound then bucket = tostring(i) break end
  end
  redis.call('HINCRBY', KEYS[11], 'bucket:' .. bucket, 1)
  redis.call('HINCRBY', KEYS[11], 'count', 1)
  redis.call('HINCRBYFLOAT', KEYS[11], 'sum', seconds)
  redis.call('ZADD', KEYS[12], now, id .. '|' .. string.format('%.3f', seconds))
  redis.call('ZREMRANGEBYSCORE', KEYS[12], '-inf', keep_after)
end
if ARGV[5] == '1' then redis.call('HINCRBY', key, 'attempts', 1) end
if ARGV[6] == '1' then redis.call('HINCRBY', key, 'failures', 1) end
if ARGV[7] == '' then
  redis.call('HDEL', key, 'next_attempt_at')
  redis.call('ZREM', KEYS[3], id)
else
  redis.call('ZADD', KEYS[3], ARGV[7], id)
end
for i = 5, 9 do redis.call('ZREM', KEYS[i], id) end
redis.call('ZADD', KEYS[4], now, id)
redis.call('RPUSH', history, ARGV[4])
redis.call('LTRIM', history, -HISTORY_CAP, -1)
if ARGV[8] ~= '0' then
  redis.call('EXPIRE', key, ARGV[8])
  redis.call('EXPIRE', history, ARGV[8])
else
  redis.call('PERSIST', key)
  redis.call('PERSIST', history)
end
""".replace("HISTORY_CAP", str(HISTORY_CAP)).replace("METRICS_WINDOW", str(METRICS_WINDOW))
_MOVE = _MOVE.replace("{LATENCY_BUCKETS}", "{" + ", ".join(repr(b) for b in LATENCY_BUCKETS) + "}")


@dataclass(frozen=True)
class Record:
    """A call's ledger record as ops see it."""

    call_id: str
    state: State
    attempts: int
    failures: int
    deliveries: int
    first_seen: float
    updated_at: float
    next_attempt_at: float | None
    salesforce_ids: dict[str, str]
    last_error: dict[str, Any] | None
    summary: str
    auto_replays: int = 0
    source: str = ""
    queued_at: float | None = None
    phone: str = ""  # masked (worker.phones.mask): the last four digits
    callback: str = ""  # the state of the automatic callback this call promised (worker.autocall)

    @property
    def retryable(self) -> bool | None:
        return None if self.last_error is None else bool(self.last_error.get("retryable"))

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> Record:
        return cls(
            call_id=data["call_id"],
            state=State(data.get("state", "queued")),
            attempts=int(data.get("attempts", 0)),
            failures=int(data.get("failures", 0)),
            deliveries=int(data.get("deliveries", 0)),
            first_seen=float(data.get("first_seen", 0)),
            updated_at=float(data.get("updated_at", 0)),
            next_attempt_at=float(data["next_attempt_at"]) if data.get("next_attempt_at") else None,
            salesforce_ids=json.loads(data.get("salesforce_ids") or "{}"),
            last_error=json.loads(data["last_error"]) if data.get("last_error") else None,
            summary=data.get("summary", ""),
            auto_replays=int(data.get("auto_replays", 0)),
            source=data.get("source", ""),
            queued_at=float(data["queued_at"]) if data.get("queued_at") else None,
            phone=data.get("phone", ""),
            callback=data.get("callback", ""),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "state": self.state.value,
            "attempts": self.attempts,
            "failures": self.failures,
            "deliveries": self.deliveries,
            "first_seen": _iso(self.first_seen),
            "updated_at": _iso(self.updated_at),
            "next_attempt_at": _iso(self.next_attempt_at) if self.next_attempt_at else None,
            "salesforce_ids": self.salesforce_ids,
            "last_error": self.last_error,
            "summary": self.summary,
            "auto_replays": self.auto_replays,
            "source": self.source,
            "phone": self.phone,
            "callback": self.callback,
        }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


class Ledger:
    """Reads and moves ledger records. Every transition is one atomic Redis transaction."""

    def __init__(self, client: redis.Redis, *, retention_days: int = 30, prefix: str = "crm-sync") -> None:
        self.r = client
        self.retention_seconds = retention_days * 86400
        self.prefix = prefix
        self._accept = OnceScript(self.r, _ACCEPT)  # a retried call answers as its first did (worker.once)
        self._move_script = OnceScript(self.r, _MOVE)
        self._count_replay = OnceScript(self.r, "redis.call('HINCRBY', KEYS[1], 'auto_replays', 1)")

    # -- keys ---------------------------------------------------------------------------------------------
    def _call(self, call_id: str) -> str:
        return f"{self.prefix}:call:{call_id}"

    def _history(self, call_id: str) -> str:
        return f"{self.prefix}:history:{call_id}"

    def _state(self, state: State) -> str:
        return f"{self.prefix}:state:{state.value}"

    @property
    def due_key(self) -> str:
        return f"{self.prefix}:due"

    def state_key(self, state: State) -> str:
        """The sorted set of ``state``'s call ids by last update time."""
        return self._state(state)

    @functools.cached_property  # read for every accepted call; the prefix never changes
    def state_keys(self) -> tuple[str, ...]:
        """Every state's sorted set, in ``State``'s order (the accept script's KEYS[3] to KEYS[7])."""
        return tuple(self._state(state) for state in State)

    def metrics_key(self, name: str) -> str:
        """``syncs``, ``latency``, ``latency-recent`` or ``retryable`` (see the module docstring)."""
        return f"{self.prefix}:metrics:{name}"

    # -- transitions --------------------------------------------------------------------------------------
    def accept_call(
        self, call_id: str, *, source: str, detail: dict[str, Any] | None = None, force: bool = False
    ) -> tuple[list[str], list[Any]]:
        """The keys and arguments of ``ACCEPT_SCRIPT`` for this acceptance (the intake runs the script inside
        its own one-round-trip script: ``worker.intake.queue``)."""
        now = time.time()
        event = json.dumps({"at": now, "event": "accepted", "source": source, **(detail or {})})
        keys = [self._call(call_id), self._history(call_id), *self.state_keys]
        return keys, [call_id, now, event, "1" if force else "0", source]

    def accept(
        self, call_id: str, *, source: str, detail: dict[str, Any] | None = None, force: bool = False
    ) -> State | None:
        """Record an accepted trigger (webhook, CLI, replay). Returns the state the call had before (None if new).

        The caller enqueues a sync only when this returns None or ``failed`` (or when ``force``); a webhook
        redelivered for a queued, syncing or synced call is counted and logged, nothing more.
        """
        keys, args = self.accept_call(call_id, source=source, detail=detail, force=force)
        before = cast(bytes | str, self._accept(keys=keys, args=args))
        text = before.decode() if isinstance(before, bytes) else before
        return State(text) if text else None

    def start(self, call_id: str) -> None:
        """The sync of ``call_id`` begins (a worker holds its lock)."""
        self._move(call_id, State.SYNCING, {"event": "started"}, incr_attempts=True)

    def synced(self, call_id: str, *, salesforce_ids: dict[str, str], summary: str, phone: str | None = None) -> None:
        """``phone``: the caller's number, kept masked (last four digits) for the ops console's search."""
        self._move(
            call_id,
            State.SYNCED,
            {"event": "synced", "salesforce_ids": salesforce_ids, "summary": summary},
            fields={
                "salesforce_ids": json.dumps(salesforce_ids),
                "summary": summary,
                "last_error": "",
                **_phone_field(phone),
            },
            outcome="synced||",
            observe_latency=True,
        )

    def skipped(self, call_id: str, *, error: SyncError, phone: str | None = None) -> None:
        record = error.as_record()
        self._move(
            call_id,
            State.SKIPPED,
            {"event": "skipped", "error": record},
            fields={"last_error": json.dumps(record), "summary": error.message[:300], **_phone_field(phone)},
            outcome=_outcome(State.SKIPPED, error),
        )

    def failed(
        self,
        call_id: str,
        *,
        error: SyncError,
        salesforce_ids: dict[str, str] | None = None,
        phone: str | None = None,
    ) -> None:
        record = error.as_record()
        fields = {"last_error": json.dumps(record), "summary": error.message[:300], **_phone_field(phone)}
        if salesforce_ids:
            fields["salesforce_ids"] = json.dumps(salesforce_ids)
        self._move(
            call_id,
            State.FAILED,
            {"event": "failed", "error": record},
            fields=fields,
            incr_failures=True,
            outcome=_outcome(State.FAILED, error),
            retryable_failure=error.retryable,
        )

    def retry_later(
        self,
        call_id: str,
        *,
        error: SyncError,
        due_at: float,
        counts_as_failure: bool = True,
        phone: str | None = None,
    ) -> None:
        """Back to ``queued`` with the error; swept again at ``due_at``. Holds (daily limit) do not count."""
        record = error.as_record()
        self._move(
            call_id,
            State.QUEUED,
            {"event": "retry_scheduled" if counts_as_failure else "held", "error": record, "due_at": due_at},
            fields={
                "last_error": json.dumps(record),
                "next_attempt_at": str(due_at),
                "summary": error.message[:300],
                **_phone_field(phone),
            },
            incr_failures=counts_as_failure,
            due_at=due_at,
            outcome=_outcome(State.QUEUED, error),
            retryable_failure=counts_as_failure,
        )

    def set_callback(self, call_id: str, summary: str) -> None:
        """Show the state of the automatic callback ``call_id`` promised on its record (when it has one)."""
        key = self._call(call_id)
        if self.r.exists(key):
            self.r.hset(key, "callback", summary)

    def count_auto_replay(self, call_id: str) -> None:
        """One more automatic replay of ``call_id`` (once, even when its answer was lost: ``worker.once``)."""
        self._count_replay(keys=[self._call(call_id)], args=[])

    def note(self, call_id: str, event: str, **detail: Any) -> None:
        """Append an event to the call's history without changing its state."""
        pipe = self.r.pipeline()
        pipe.rpush(self._history(call_id), json.dumps({"at": time.time(), "event": event, **detail}))
        pipe.ltrim(self._history(call_id), -HISTORY_CAP, -1)
        pipe.execute()

    def _move(
        self,
        call_id: str,
        state: State,
        event: dict[str, Any],
        *,
        fields: dict[str, str] | None = None,
        incr_attempts: bool = False,
        incr_failures: bool = False,
        due_at: float | None = None,
        outcome: str = "",
        retryable_failure: bool = False,
        observe_latency: bool = False,
    ) -> None:
        now = time.time()
        keys = [self._call(call_id), self._history(call_id), self.due_key, self._state(state)]
        keys += [self._state(other) for other in State]
        keys += [self.metrics_key(name) for name in ("syncs", "latency", "latency-recent", "retryable")]
        expiry = self.retention_seconds if state in RESOLVED and self.retention_seconds > 0 else 0
        args: list[Any] = [
            call_id,
            state.value,
            repr(now),
            json.dumps({"at": now, "state": state.value, **event}),
            int(incr_attempts),
            int(incr_failures),
            "" if due_at is None else repr(due_at),
            expiry,
            outcome,
            int(retryable_failure),
            int(observe_latency),
        ]
        for name, value in (fields or {}).items():
            args += [name, value]
        self._move_script(keys=keys, args=args)

    # -- reads --------------------------------------------------------------------------------------------
    def get(self, call_id: str) -> Record | None:
        data = self.r.hgetall(self._call(call_id))
        if not data:
            return None
        return Record.from_hash({_s(k): _s(v) for k, v in cast(dict[Any, Any], data).items()})

    def get_many(self, call_ids: list[str]) -> list[Record]:
        """The records of ``call_ids`` that exist, in order, read in one pipelined round trip."""
        pipe = self.r.pipeline(transaction=False)
        for call_id in call_ids:
            pipe.hgetall(self._call(call_id))
        found = []
        for data in pipe.execute():
            if data:
                found.append(Record.from_hash({_s(k): _s(v) for k, v in cast(dict[Any, Any], data).items()}))
        return found

    def history(self, call_id: str) -> list[dict[str, Any]]:
        return [json.loads(item) for item in cast(list[Any], self.r.lrange(self._history(call_id), 0, -1))]

    def find(
        self,
        *,
        states: list[State] | None = None,
        since: float | None = None,
        until: float | None = None,
        reason: str | None = None,
        limit: int = 1000,
    ) -> list[Record]:
        """Records in ``states`` (default: all) updated within [since, until], newest first; ``reason``
        filters on the last error's code, class or message (case-insensitive substring)."""
        found: list[Record] = []
        for state in states or list(State):
            ids = self.r.zrevrangebyscore(
                self._state(state),
                until if until is not None else "+inf",
                since if since is not None else "-inf",
            )
            for raw in cast(list[Any], ids):
                record = self.get(_s(raw))
                if record is None:
                    self.r.zrem(self._state(state), raw)  # expired resolved record: drop its index entry
                    continue
                if reason and not _matches(record, reason):
                    continue
                found.append(record)
        found.sort(key=lambda rec: rec.updated_at, reverse=True)
        return found[:limit]

    def counts(self) -> dict[str, int]:
        return {state.value: int(self.r.zcard(self._state(state))) for state in State}  # type: ignore[arg-type]

    def claim_due(self, now: float | None = None, limit: int = 500) -> list[str]:
        """Take the calls whose retry/hold time has come. Safe with several sweepers: ZREM decides the claim."""
        now = time.time() if now is None else now
        claimed = []
        for raw in cast(list[Any], self.r.zrangebyscore(self.due_key, "-inf", now, start=0, num=limit)):
            if self.r.zrem(self.due_key, raw):
                claimed.append(_s(raw))
        return claimed

    def unclaim(self, call_id: str, due_at: float) -> None:
        self.r.zadd(self.due_key, {call_id: due_at})

    def stale(self, older_than: float, limit: int = 500) -> list[str]:
        """Calls queued or syncing, not due for a retry, untouched since ``older_than``: their task was lost."""
        found = []
        for state in (State.QUEUED, State.SYNCING):
            for raw in cast(
                list[Any], self.r.zrangebyscore(self._state(state), "-inf", older_than, start=0, num=limit)
            ):
                call_id = _s(raw)
                if self.r.zscore(self.due_key, call_id) is None:
                    found.append(call_id)
        return found

    def touch(self, call_id: str) -> None:
        """Mark a queued/syncing record as alive again (after re-enqueueing a stale one)."""
        now = time.time()
        record = self.get(call_id)
        if record is None:
            return
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self._call(call_id), "updated_at", str(now))
        pipe.zadd(self._state(record.state), {call_id: now})
        pipe.execute()

    def purge(self, *, before: float, states: list[State] | None = None) -> int:
        """Delete records (and history) last updated before ``before``. Defaults to resolved and failed ones;
        never touches queued or syncing records."""
        removed = 0
        for state in states or [State.SYNCED, State.SKIPPED, State.FAILED]:
            if state in (State.QUEUED, State.SYNCING):
                continue
            for raw in cast(list[Any], self.r.zrangebyscore(self._state(state), "-inf", before)):
                call_id = _s(raw)
                pipe = self.r.pipeline(transaction=True)
                pipe.delete(self._call(call_id), self._history(call_id))
                pipe.zrem(self._state(state), call_id)
                pipe.zrem(self.due_key, call_id)
                pipe.execute()
                removed += 1
        return removed


def _phone_field(phone: str | None) -> dict[str, str]:
    return {"phone": mask(phone)} if phone else {}


def _outcome(state: State, error: SyncError) -> str:
    """The ``syncs`` metric's field for an outcome: ``state|stage|code``."""
    return f"{state.value}|{error.stage.value}|{error.code or ''}"


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _matches(record: Record, reason: str) -> bool:
    error = record.last_error or {}
    haystack = " ".join(str(error.get(k) or "") for k in ("code", "class", "message", "stage")).lower()
    return reason.lower() in haystack
