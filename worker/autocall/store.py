"""Automatic callbacks in Redis: one record per promise, a due-time sorted set swept by beat, atomic moves.

Keys (``{p}`` = ``crm-sync:autocall``):

- ``{p}:cb:{id}``       hash: the callback (phone and input parameters sealed, ``worker.personal``)
- ``{p}:hist:{id}``     list of JSON events (newest last, capped)
- ``{p}:due``           sorted set: scheduled callbacks by due time (what the sweep reads)
- ``{p}:state:{state}`` sorted set per state by last change (listing without scanning)
- ``{p}:inflight``      sorted set: placed callbacks whose call has not ended, by when they stop counting
- ``{p}:unknown``       sorted set: triggered callbacks whose call id is not known yet, by intent time
- ``{p}:by-call:{id}``  the callback a placed Twenty2 call belongs to
- ``{p}:count:lead:{lead}:{day}``, ``{p}:count:ws:{day}``, ``{p}:cost:{day}``: today's calls and INR cost

States: ``scheduled`` → ``triggered`` (the intent: recorded BEFORE the trigger is sent) → ``done``; or
``cancelled`` / ``refused`` with a reason (``worker.autocall.rules.REASONS``); an unanswered attempt goes
back to ``scheduled`` for the next one. Every move is one Lua script that checks the state it expects, so
two beats or two workers never both claim one callback (``claim``) nor both resolve a lost answer
(``lease``). With AOF on, the whole schedule survives a Redis restart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

import redis

from worker.ledger import Ledger
from worker.once import OnceScript
from worker.personal import PersonalData
from worker.phones import mask

PREFIX = "crm-sync:autocall"
HISTORY_CAP = 50
COUNTER_TTL = 3 * 86400


class CbState(StrEnum):
    SCHEDULED = "scheduled"
    TRIGGERED = "triggered"
    DONE = "done"
    CANCELLED = "cancelled"
    REFUSED = "refused"


FINAL = frozenset({CbState.DONE, CbState.CANCELLED, CbState.REFUSED})

# Create a callback unless one exists. KEYS: cb, hist, due, scheduled set. ARGV: id, now, due, event, k/v...
_SCHEDULE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'state', 'scheduled', 'due_at', ARGV[3], 'created_at', ARGV[2], 'updated_at', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[4])
return 1
"""

# Move a callback from one of the expected states. KEYS: cb, hist, due, inflight, 5 state sets (in CbState
# order). ARGV: id, now, expected (comma list), new state, due ('' = not due), event, keep_inflight, k/v...
_MOVE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'missing' end
local ok = false
for s in string.gmatch(ARGV[3], '[^,]+') do if s == state then ok = true end end
if not ok then return state end
for i = 8, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'state', ARGV[4], 'updated_at', ARGV[2])
for i = 5, 9 do redis.call('ZREM', KEYS[i], ARGV[1]) end
local order = {scheduled = 5, triggered = 6, done = 7, cancelled = 8, refused = 9}
redis.call('ZADD', KEYS[order[ARGV[4]]], ARGV[2], ARGV[1])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'due_at', ARGV[5])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
else
  redis.call('ZREM', KEYS[3], ARGV[1])
end
if ARGV[7] ~= '1' then redis.call('ZREM', KEYS[4], ARGV[1]) end
redis.call('RPUSH', KEYS[2], ARGV[6])
redis.call('LTRIM', KEYS[2], -HISTORY_CAP, -1)
return 'ok'
""".replace("HISTORY_CAP", str(HISTORY_CAP))

# Claim a due callback: the intent, recorded before any trigger. KEYS: cb, hist, due, inflight, scheduled
# set, triggered set, lead count, ws count, cost, unknown set. ARGV: id, now, lease_until, max_concurrent, counts_until,
# lead cap, ws cap, cost ceiling, event, counter ttl.
_CLAIM = """
if redis.call('HGET', KEYS[1], 'state') ~= 'scheduled' then return 'taken' end
local now = tonumber(ARGV[2])
if tonumber(redis.call('HGET', KEYS[1], 'due_at')) > now then return 'not_due' end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[4]) then return 'full' end
if tonumber(redis.call('GET', KEYS[7]) or '0') >= tonumber(ARGV[6]) then return 'lead_cap' end
if tonumber(redis.call('GET', KEYS[8]) or '0') >= tonumber(ARGV[7]) then return 'workspace_cap' end
if tonumber(redis.call('GET', KEYS[9]) or '0') >= tonumber(ARGV[8]) then return 'cost_ceiling' end
redis.call('INCR', KEYS[7]); redis.call('EXPIRE', KEYS[7], ARGV[10])
redis.call('INCR', KEYS[8]); redis.call('EXPIRE', KEYS[8], ARGV[10])
redis.call('HSET', KEYS[1], 'state', 'triggered', 'updated_at', ARGV[2], 'intent_at', ARGV[2],
  'lease_until', ARGV[3], 'call_id', '', 'sent', '0')
redis.call('ZREM', KEYS[3], ARGV[1]); redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('ZADD', KEYS[6], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
redis.call('ZADD', KEYS[10], ARGV[2], ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[9])
redis.call('LTRIM', KEYS[2], -HISTORY_CAP, -1)
return 'ok'
""".replace("HISTORY_CAP", str(HISTORY_CAP))

# Give back a claim's place in today's caps (its call was not placed), never below 0. KEYS: cb, lead count,
# ws count. Run once per call (worker.once): a resent DECR would give a Lead one call more than its cap.
_UNCOUNT = """
for i = 2, 3 do
  if redis.call('DECR', KEYS[i]) < 0 then redis.call('SET', KEYS[i], 0, 'KEEPTTL') end
end
"""

# Add a callback call's INR cost to its day. KEYS: cb, cost. ARGV: amount, counter ttl. Once per call.
_ADD_COST = """
redis.call('INCRBYFLOAT', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
"""

# Take the periodic Task re-read if it is due (one taker among beats). KEYS: mark. ARGV: now, every.
# A clock that went back (now before the mark) counts as due.
_REFRESH = """
local last = tonumber(redis.call('GET', KEYS[1]) or '')
local now = tonumber(ARGV[1])
if last and now >= last and now - last < tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""

# Take over a triggered callback whose answer is unknown (no call id) once its holder's lease ran out.
# KEYS: cb. ARGV: now, lease_until.
_LEASE = """
if redis.call('HGET', KEYS[1], 'state') ~= 'triggered' then return 0 end
if redis.call('HGET', KEYS[1], 'call_id') ~= '' then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0') > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'lease_until', ARGV[2])
return 1
"""


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ts(value: str | None) -> datetime | None:
    return datetime.fromtimestamp(float(value), UTC) if value else None


@dataclass(frozen=True)
class Callback:
    """One promised callback as stored (numbers masked; ``phone``/``inputs`` only when unsealed)."""

    id: str
    state: CbState
    source_call_id: str
    lead_id: str
    task_id: str
    task_external_id: str
    phone_masked: str
    source_agent_id: str
    agent_id: str
    caller_phone: str
    attempt: int
    attempts: int
    gap_minutes: float
    due_at: datetime | None
    task_due_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None
    intent_at: datetime | None
    lease_until: float
    call_id: str
    call_ids: tuple[str, ...]
    reason: str
    reason_text: str
    outcome: str
    sent: bool
    source_ended_at: datetime | None
    phone: str = field(default="", repr=False)
    inputs: dict[str, Any] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat(timespec="seconds") if value else None

        return {
            "id": self.id,
            "state": self.state.value,
            "source_call_id": self.source_call_id,
            "lead_id": self.lead_id,
            "task_id": self.task_id,
            "phone": self.phone_masked,
            "agent_id": self.agent_id,
            "attempt": self.attempt,
            "attempts": self.attempts,
            "due_at": iso(self.due_at),
            "task_due_at": iso(self.task_due_at),
            "intent_at": iso(self.intent_at),
            "call_id": self.call_id,
            "call_ids": list(self.call_ids),
            "reason": self.reason,
            "reason_text": self.reason_text,
            "outcome": self.outcome,
            "updated_at": iso(self.updated_at),
        }


class CallbackStore:
    """Reads and moves callbacks; every move is one atomic script. ``ledger``: the source call's ledger
    record is told each move (its ``callback`` field and history)."""

    def __init__(self, client: redis.Redis, data: PersonalData, *, ledger: Ledger | None = None) -> None:
        self.r = client
        self.data = data
        self.ledger = ledger
        # Each move answers its retry as it answered the first call (worker.once): a claim whose answer was
        # lost is still this beat's, not "taken" by nobody.
        self._schedule = OnceScript(client, _SCHEDULE)
        self._move = OnceScript(client, _MOVE)
        self._claim = OnceScript(client, _CLAIM)
        self._lease = OnceScript(client, _LEASE)
        self._uncount = OnceScript(client, _UNCOUNT)
        self._add_cost = OnceScript(client, _ADD_COST)
        self._refresh = client.register_script(_REFRESH)

    # keys -------------------------------------------------------------------------------------------------
    @staticmethod
    def key(cb_id: str) -> str:
        return f"{PREFIX}:cb:{cb_id}"

    @staticmethod
    def hist_key(cb_id: str) -> str:
        return f"{PREFIX}:hist:{cb_id}"

    due_key = f"{PREFIX}:due"
    inflight_key = f"{PREFIX}:inflight"
    unknown_key = f"{PREFIX}:unknown"  # triggered, call id not known yet (the answer may be lost)
    task_refresh_key = f"{PREFIX}:task-refresh-at"  # when the sweep last re-read the follow-up Tasks

    @staticmethod
    def state_key(state: CbState) -> str:
        return f"{PREFIX}:state:{state.value}"

    @staticmethod
    def lead_count_key(lead_id: str, day: str) -> str:
        return f"{PREFIX}:count:lead:{lead_id}:{day}"

    @staticmethod
    def ws_count_key(day: str) -> str:
        return f"{PREFIX}:count:ws:{day}"

    @staticmethod
    def cost_key(day: str) -> str:
        return f"{PREFIX}:cost:{day}"

    def _state_keys(self) -> list[str]:
        return [self.state_key(s) for s in CbState]

    # writes -----------------------------------------------------------------------------------------------
    def schedule(
        self, cb_id: str, *, now: datetime, due: datetime, phone: str, inputs: dict[str, Any], **fields: Any
    ) -> bool:
        """Record a new scheduled callback (False: one exists already, left as it is)."""
        values = {
            "id": cb_id,
            "phone_sealed": self.data.seal(phone),
            "phone_masked": mask(phone),
            "inputs_sealed": self.data.seal(inputs),
            "attempt": 1,
            **fields,
        }
        args: list[Any] = [cb_id, now.timestamp(), due.timestamp(), self._event(now, "scheduled", due=due.isoformat())]
        for name, value in values.items():
            args += [name, "" if value is None else str(value)]
        keys = [self.key(cb_id), self.hist_key(cb_id), self.due_key, self.state_key(CbState.SCHEDULED)]
        created = bool(self._schedule(keys=keys, args=args))
        if created:
            self._tell_ledger(fields.get("source_call_id", ""), "scheduled", due=due.isoformat())
        return created

    def move(
        self,
        cb_id: str,
        *,
        now: datetime,
        expected: tuple[CbState, ...],
        to: CbState,
        due: datetime | None = None,
        keep_inflight: bool = False,
        event: str | None = None,
        **fields: Any,
    ) -> bool:
        """Move ``cb_id`` to ``to`` if it is in one of ``expected`` (True), else leave it (False)."""
        detail = {k: v for k, v in fields.items() if k in {"reason", "reason_text", "call_id", "outcome", "by"}}
        args: list[Any] = [
            cb_id,
            now.timestamp(),
            ",".join(s.value for s in expected),
            to.value,
            "" if due is None else due.timestamp(),
            self._event(now, event or to.value, **({"due": due.isoformat()} if due else {}), **detail),
            "1" if keep_inflight else "0",
        ]
        for name, value in fields.items():
            args += [name, "" if value is None else str(value)]
        keys = [self.key(cb_id), self.hist_key(cb_id), self.due_key, self.inflight_key, *self._state_keys()]
        moved = _s(self._move(keys=keys, args=args)) == "ok"
        if moved:
            self.r.zrem(self.unknown_key, cb_id)
        if moved:
            record = self.get(cb_id)
            if record is not None:
                self._tell_ledger(
                    record.source_call_id, to.value, reason=fields.get("reason", ""), outcome=fields.get("outcome", ""),
                    by=fields.get("by", ""), due=due if to is CbState.SCHEDULED else None,
                )  # fmt: skip
        return moved

    def claim(
        self,
        cb: Callback,
        *,
        now: datetime,
        lease_seconds: float,
        max_concurrent: int,
        counts_seconds: float,
        day: str,
        caps: tuple[int, int, float],
    ) -> str:
        """Record the intent to trigger ``cb`` now (``ok``), atomically within the concurrency limit and the
        caps; else why not: ``taken`` (someone else has it), ``not_due``, ``full`` (3 in progress),
        ``lead_cap``, ``workspace_cap``, ``cost_ceiling``."""
        ts = now.timestamp()
        keys = [
            self.key(cb.id), self.hist_key(cb.id), self.due_key, self.inflight_key,
            self.state_key(CbState.SCHEDULED), self.state_key(CbState.TRIGGERED),
            self.lead_count_key(cb.lead_id, day), self.ws_count_key(day), self.cost_key(day), self.unknown_key,
        ]  # fmt: skip
        args: list[Any] = [
            cb.id, ts, ts + lease_seconds, max_concurrent, ts + counts_seconds, caps[0], caps[1], caps[2],
            self._event(now, "triggering", attempt=cb.attempt), COUNTER_TTL,
        ]  # fmt: skip
        answer = _s(self._claim(keys=keys, args=args))
        if answer == "ok":
            self._tell_ledger(cb.source_call_id, "triggered", attempt=cb.attempt)
        return answer

    def lease(self, cb_id: str, *, now: datetime, lease_seconds: float) -> bool:
        """Take over a triggered callback whose answer was lost (its holder's lease ran out)."""
        ts = now.timestamp()
        return bool(self._lease(keys=[self.key(cb_id)], args=[ts, ts + lease_seconds]))

    def cancel(self, cb_id: str, *, now: datetime, by: str) -> bool:
        """Ops cancel a scheduled callback (``by``: who, e.g. the console token's label or ``cli``). A callback
        already triggered cannot be: its call is placed."""
        return self.move(
            cb_id, now=now, expected=(CbState.SCHEDULED,), to=CbState.CANCELLED, reason="ops_cancelled",
            reason_text=f"cancelled by ops ({by})", by=by,
        )  # fmt: skip

    def refresh_due(self, now: datetime, every_seconds: float) -> bool:
        """Whether the periodic re-read of the follow-up Tasks is due at ``now`` (True: it is taken, by this
        caller alone, until ``every_seconds`` have passed)."""
        return bool(self._refresh(keys=[self.task_refresh_key], args=[now.timestamp(), every_seconds]))

    def mark_sent(self, cb_id: str) -> None:
        self.r.hset(self.key(cb_id), "sent", "1")

    def placed(self, cb_id: str, call_id: str, *, now: datetime, how: str) -> None:
        """The trigger's call id is known (its answer, or found in the call logs)."""
        record = self.get(cb_id)
        ids = [*(record.call_ids if record else ()), call_id]
        pipe = self.r.pipeline()
        pipe.hset(self.key(cb_id), mapping={"call_id": call_id, "call_ids": json.dumps(ids), "sent": "1"})
        pipe.set(f"{PREFIX}:by-call:{call_id}", cb_id, ex=30 * 86400)
        pipe.zrem(self.unknown_key, cb_id)
        pipe.rpush(self.hist_key(cb_id), self._event(now, "placed", call_id=call_id, how=how))
        pipe.execute()
        if record is not None:
            self._tell_ledger(record.source_call_id, "triggered", placed_call=call_id)

    def call_ended(self, cb_id: str) -> None:
        """The placed call ended: it no longer counts against the concurrency limit."""
        self.r.zrem(self.inflight_key, cb_id)

    def uncount(self, cb_id: str, lead_id: str, day: str) -> None:
        """Give back the place ``cb_id``'s claim took in today's caps (its call was not placed)."""
        self._uncount(keys=[self.key(cb_id), self.lead_count_key(lead_id, day), self.ws_count_key(day)], args=[])

    def add_cost(self, cb_id: str, day: str, amount: float) -> None:
        """Count the INR cost of ``cb_id``'s call against ``day``'s ceiling."""
        self._add_cost(keys=[self.key(cb_id), self.cost_key(day)], args=[amount, COUNTER_TTL])

    def note(self, cb_id: str, now: datetime, event: str, **detail: Any) -> None:
        self.r.rpush(self.hist_key(cb_id), self._event(now, event, **detail))

    # reads ------------------------------------------------------------------------------------------------
    def get(self, cb_id: str, *, unseal: bool = False) -> Callback | None:
        return self._parse(cast(dict[Any, Any], self.r.hgetall(self.key(cb_id))), unseal=unseal)

    def many(self, cb_ids: list[str]) -> list[Callback]:
        """The callbacks ``cb_ids`` (sealed fields left sealed), read in one round trip; missing ones left out."""
        pipe = self.r.pipeline(transaction=False)
        for cb_id in cb_ids:
            pipe.hgetall(self.key(cb_id))
        parsed = (self._parse(cast(dict[Any, Any], raw)) for raw in pipe.execute())
        return [cb for cb in parsed if cb is not None]

    def scheduled(self) -> list[str]:
        """Every scheduled callback, earliest due first."""
        return [_s(i) for i in cast(list[Any], self.r.zrange(self.due_key, 0, -1))]

    def _parse(self, raw: dict[Any, Any], *, unseal: bool = False) -> Callback | None:
        if not raw:
            return None
        d = {_s(k): _s(v) for k, v in raw.items()}
        phone, inputs = "", cast(dict[str, Any], {})
        if unseal:
            phone = self.data.unseal(d.get("phone_sealed", "")) or ""
            inputs = self.data.unseal(d.get("inputs_sealed", "")) or {}
        return Callback(
            id=d["id"],
            state=CbState(d.get("state", "scheduled")),
            source_call_id=d.get("source_call_id", ""),
            lead_id=d.get("lead_id", ""),
            task_id=d.get("task_id", ""),
            task_external_id=d.get("task_external_id", ""),
            phone_masked=d.get("phone_masked", ""),
            source_agent_id=d.get("source_agent_id", ""),
            agent_id=d.get("agent_id", ""),
            caller_phone=d.get("caller_phone", ""),
            attempt=int(d.get("attempt") or 1),
            attempts=int(d.get("attempts") or 1),
            gap_minutes=float(d.get("gap_minutes") or 30),
            due_at=_ts(d.get("due_at")),
            task_due_at=_ts(d.get("task_due_at")),
            created_at=_ts(d.get("created_at")),
            updated_at=_ts(d.get("updated_at")),
            intent_at=_ts(d.get("intent_at")),
            lease_until=float(d.get("lease_until") or 0),
            call_id=d.get("call_id", ""),
            call_ids=tuple(json.loads(d.get("call_ids") or "[]")),
            reason=d.get("reason", ""),
            reason_text=d.get("reason_text", ""),
            outcome=d.get("outcome", ""),
            sent=d.get("sent") == "1",
            source_ended_at=_ts(d.get("source_ended_at")),
            phone=phone,
            inputs=inputs,
        )

    def history(self, cb_id: str) -> list[dict[str, Any]]:
        return [json.loads(_s(item)) for item in cast(list[Any], self.r.lrange(self.hist_key(cb_id), 0, -1))]

    def due(self, now: datetime, limit: int = 500) -> list[str]:
        """Scheduled callbacks due at ``now``, earliest first."""
        ids = cast(list[Any], self.r.zrangebyscore(self.due_key, "-inf", now.timestamp(), start=0, num=limit))
        return [_s(i) for i in ids]

    def unknown(self) -> list[str]:
        """Triggered callbacks whose call id is not known yet, oldest intent first."""
        return [_s(i) for i in cast(list[Any], self.r.zrange(self.unknown_key, 0, -1))]

    def ids_in(self, state: CbState, limit: int = 1000) -> list[str]:
        return [_s(i) for i in cast(list[Any], self.r.zrevrange(self.state_key(state), 0, limit - 1))]

    def by_call(self, call_id: str) -> str | None:
        value = self.r.get(f"{PREFIX}:by-call:{call_id}")
        return _s(value) if value is not None else None

    def in_flight(self, now: datetime) -> list[str]:
        ids = cast(list[Any], self.r.zrangebyscore(self.inflight_key, now.timestamp(), "+inf"))
        return [_s(i) for i in ids]

    def counts(self) -> dict[str, int]:
        pipe = self.r.pipeline(transaction=False)
        for state in CbState:
            pipe.zcard(self.state_key(state))
        return {state.value: int(n) for state, n in zip(CbState, pipe.execute(), strict=True)}

    def today(self, lead_id: str, day: str) -> tuple[int, int, float]:
        """(calls to this lead today, calls in the workspace today, INR spent today)."""
        lead, ws, cost = cast(
            list[Any], self.r.mget([self.lead_count_key(lead_id, day), self.ws_count_key(day), self.cost_key(day)])
        )
        return int(lead or 0), int(ws or 0), float(cost or 0)

    # internals --------------------------------------------------------------------------------------------
    @staticmethod
    def _event(now: datetime, event: str, **detail: Any) -> str:
        return json.dumps({"at": now.timestamp(), "event": event, **detail}, default=str)

    def _tell_ledger(self, source_call_id: str, state: str, **detail: Any) -> None:
        if self.ledger is None or not source_call_id:
            return
        clean = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in detail.items() if v}
        summary = state + "".join(f" {k}={v}" for k, v in clean.items())
        self.ledger.set_callback(source_call_id, summary)
        self.ledger.note(source_call_id, "callback", state=state, **clean)
