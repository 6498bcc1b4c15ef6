"""Lead snapshots in Redis, so a streamed call usually costs one Salesforce request (the composite write).

How it works:

- The intake leaves a *hint* per accepted call: the number and the Salesforce id the webhook names. The
  webhook is untrusted, so a hint only chooses what to read ahead; the worker still matches the Lead
  against the call detail it fetched itself.
- A worker that finds no snapshot for its call reads ahead for up to 100 pending hints at once, oldest
  first (``worker.salesforce.lead_reader``: one composite of queries, one SOSL phone search), and stores a
  snapshot per Lead found. One read-ahead runs at a time, so a call that misses while one is in flight
  waits for it rather than reading a second, smaller batch; in a backlog, the call in the middle of a batch
  starts reading the next batch in the background.
- Snapshots carry the Lead's ``LastModifiedDate``: the Lead update is sent with ``If-Unmodified-Since``,
  so a Lead changed in Salesforce since it was read fails the write (412) instead of being overwritten
  from stale values; the worker then reads the Lead again and re-plans.
- A snapshot is dropped when the Lead is written by us, or when Salesforce says it is gone or converted.
- A number for which the read-ahead (exact spellings by SOQL, then Salesforce's phone search) found no Lead
  is remembered as such for a minute: a call to it then creates its Lead in its one composite request,
  with no lookup of its own. Creating a Lead for a number holds a Redis lock on the number and marks it
  ``created`` (for a minute, not overwritable by an older reading), so a second call to the same new
  number, on any worker, reads the Lead instead of creating another.

  The price of that minute: a Lead a user creates in Salesforce for the same number in the minute between
  the read-ahead and the call's write is not seen, and the call creates a second Lead.

No phone number is written to Redis in clear (``worker.personal``): keys carry a keyed digest of the
number (E.164), snapshots keep the Lead's numbers only as such digests (enough to confirm a match) and
their mapped field values sealed, and a hint's number is sealed (and read back for at most ``HINT_TTL``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, cast

import redis
from redis.exceptions import LockError
from redis.lock import Lock

from worker.personal import PersonalData
from worker.phones import e164
from worker.redis_clients import RetrySafeLock

#: Snapshots live this long (seconds): enough to drain a backlog, short enough to stay close to the org.
DEFAULT_TTL = 900
#: How long (seconds) a reading "no Lead has this number" is trusted, and a creation remembered.
NO_LEAD_TTL = 60
#: How long (seconds) a worker may hold a number while it creates its Lead, and waits for another's hold.
CREATE_LOCK_SECONDS = 60
#: Pending hints kept (oldest dropped first): far more than a backlog reads ahead in a snapshot's lifetime.
MAX_HINTS = 100_000
#: Longest wait (seconds) for another worker's read-ahead; also how long one may hold the turn.
READ_AHEAD_WAIT = 10
#: Seconds a hint is read back (its sealed token carries its time) and the hints kept after the last one.
HINT_TTL = 3600
_NO_LEAD, _CREATED = b"none", b"created"
#: Snapshot fields kept in clear: ids, flags and times, nothing personal.
CLEAR_FIELDS = frozenset({"Id", "OwnerId", "IsConverted", "ConvertedContactId", "LastModifiedDate"})
#: Fields a snapshot keeps only as digests (matching), unless the mapping writes them (then sealed).
PHONE_FIELDS = ("Phone", "MobilePhone")


class LeadCache:
    def __init__(
        self,
        client: redis.Redis,
        *,
        region: str,
        data: PersonalData,
        ttl: int = DEFAULT_TTL,
        prefix: str = "crm-sync",
        kept_fields: frozenset[str] = frozenset(),
    ) -> None:
        """``kept_fields``: phone fields the planner reads (mapped Lead fields); kept in snapshots, sealed."""
        self.r = client
        self.region = region
        self.data = data
        self.ttl = ttl
        self.prefix = prefix
        self.kept_fields = kept_fields

    def _digest(self, number: str) -> str:
        # Key names and values show up in every Redis tool and in its files: a keyed digest, never the number.
        return self.data.digest(number)

    def _lead(self, lead_id: str) -> str:
        return f"{self.prefix}:lead:{lead_id}"

    def _phone(self, number: str) -> str:
        return f"{self.prefix}:lead-phone:{self._digest(number)}"

    @property
    def _hints(self) -> str:
        return f"{self.prefix}:lead-hints"

    # --- snapshots -------------------------------------------------------------------------------------
    def by_id(self, lead_id: str) -> dict[str, Any] | None:
        """The Lead row as read ahead (its phone fields only when the mapping writes them), or None."""
        snapshot = self._snapshot(lead_id)
        return self._row(snapshot) if snapshot is not None else None

    def by_phone(self, phone: str | None) -> dict[str, Any] | None:
        """The one Lead read ahead with the number (confirmed: one of its numbers is the same), or None."""
        number = e164(phone, self.region)
        if number is None:
            return None
        lead_id = self.r.get(self._phone(number))
        snapshot = self._snapshot(cast(bytes, lead_id).decode()) if lead_id else None
        if snapshot is None or self._digest(number) not in snapshot.get("numbers", ()):
            return None
        return self._row(snapshot)

    def _snapshot(self, lead_id: str) -> dict[str, Any] | None:
        raw = self.r.get(self._lead(lead_id))
        return cast(dict[str, Any], json.loads(cast(bytes, raw))) if raw else None

    def _row(self, snapshot: dict[str, Any]) -> dict[str, Any] | None:
        row = {k: v for k, v in snapshot.items() if k in CLEAR_FIELDS}
        if "sealed" in snapshot:
            values = self.data.unseal(snapshot["sealed"])
            if not isinstance(values, dict):
                return None  # sealed with a key no longer configured: read the Lead again
            row.update(values)
        return row

    def _seal_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """What a snapshot keeps of a Lead row: clear fields, digests of its numbers, the rest sealed."""
        snapshot: dict[str, Any] = {k: v for k, v in row.items() if k in CLEAR_FIELDS}
        numbers = {e164(row.get(f), self.region) for f in PHONE_FIELDS}
        snapshot["numbers"] = sorted(self._digest(n) for n in numbers if n)
        personal = {
            k: v
            for k, v in row.items()
            if k not in CLEAR_FIELDS and k != "attributes" and (k not in PHONE_FIELDS or k in self.kept_fields)
        }
        if personal:
            snapshot["sealed"] = self.data.seal(personal)
        return snapshot

    def put(self, rows: list[dict[str, Any]]) -> None:
        """Store Lead rows (as queried) by id and by each of their numbers. A number several unconverted
        Leads share is not indexed: which one a call belongs to is the full lookup's decision."""
        numbers: dict[str, set[str]] = {}
        for row in rows:
            for field in PHONE_FIELDS:
                number = e164(row.get(field), self.region)
                if number:
                    numbers.setdefault(number, set()).add(row["Id"])
        pipe = self.r.pipeline(transaction=False)
        for row in rows:
            pipe.set(self._lead(row["Id"]), json.dumps(self._seal_row(row)), ex=self.ttl)
        for number, ids in numbers.items():
            if len(ids) == 1:
                pipe.set(self._phone(number), next(iter(ids)), ex=self.ttl)
            else:
                pipe.delete(self._phone(number))
        pipe.execute()

    def no_lead(self, numbers: list[str]) -> None:
        """Remember that reading just now found no Lead with ``numbers``. Never overwrites a newer ``created``."""
        pipe = self.r.pipeline(transaction=False)
        for number in numbers:
            normal = e164(number, self.region)
            if normal:
                pipe.set(self._number_state(normal), _NO_LEAD, ex=NO_LEAD_TTL, nx=True)
        pipe.execute()

    def has_no_lead(self, phone: str | None) -> bool:
        """True when a reading of the last minute found no Lead with the number, and none was created since."""
        normal = e164(phone, self.region)
        return bool(normal and self.r.get(self._number_state(normal)) == _NO_LEAD)

    def lead_created(self, phone: str | None) -> None:
        """A Lead was (or may have been) created with the number: look it up again from now on."""
        normal = e164(phone, self.region)
        if normal:
            self.r.set(self._number_state(normal), _CREATED, ex=NO_LEAD_TTL)

    def creation_lock(self, phone: str | None) -> Lock | None:
        """The lock a worker holds on the number while it creates its Lead (None for no number)."""
        normal = e164(phone, self.region)
        if normal is None:
            return None
        return self.r.lock(
            f"{self.prefix}:lead-create:{self._digest(normal)}",
            timeout=CREATE_LOCK_SECONDS,
            blocking_timeout=CREATE_LOCK_SECONDS,
            sleep=0.02,
            lock_class=RetrySafeLock,
        )

    @contextmanager
    def reading_ahead(self) -> Iterator[None]:
        """Held while a worker reads ahead: one read-ahead at a time (on every worker), so a call that
        misses while another read-ahead is in flight waits for it (it likely covers this call too) instead of
        reading a second, smaller batch. After ``READ_AHEAD_WAIT`` seconds it goes ahead without the lock."""
        lock = self.r.lock(
            f"{self.prefix}:lead-read-ahead",
            timeout=READ_AHEAD_WAIT,
            blocking_timeout=READ_AHEAD_WAIT,
            sleep=0.01,
            lock_class=RetrySafeLock,
        )
        held = lock.acquire()
        try:
            yield
        finally:
            if held:
                with suppress(LockError):  # expired meanwhile: nothing to undo
                    lock.release()

    def _number_state(self, number: str) -> str:
        return f"{self.prefix}:lead-number:{self._digest(number)}"

    def forget(self, lead_id: str | None, *phones: str | None) -> None:
        keys = [self._lead(lead_id)] if lead_id else []
        keys += [self._phone(n) for n in (e164(p, self.region) for p in phones) if n]
        if keys:
            self.r.delete(*keys)

    # --- hints -----------------------------------------------------------------------------------------
    @property
    def _hint_order(self) -> str:
        return f"{self.prefix}:lead-hint-order"

    @property
    def hint_keys(self) -> tuple[str, str]:
        """(hints hash, hint order list): for the intake's one-round-trip accept script, which writes a hint
        exactly as ``hint`` does (HSET, RPUSH, LTRIM to ``MAX_HINTS``, EXPIRE both ``HINT_TTL``)."""
        return self._hints, self._hint_order

    def sealed_hint(self, *, phone: str | None, lead_id: str | None) -> str:
        """The hint as ``hint`` stores it (sealed: it holds the number), or '' when there is nothing to hint."""
        return self.data.seal({"phone": phone, "lead_id": lead_id}) if phone or lead_id else ""

    def hint(self, call_id: str, *, phone: str | None, lead_id: str | None) -> None:
        """Remember what an accepted webhook says about its Lead (read ahead later, never trusted). Hints are
        read ahead in arrival order, the order the queue hands the calls to the workers. The hint is sealed
        (it holds the number); both keys expire ``HINT_TTL`` after the last hint."""
        if phone or lead_id:
            pipe = self.r.pipeline(transaction=False)
            pipe.hset(self._hints, call_id, self.sealed_hint(phone=phone, lead_id=lead_id))
            pipe.rpush(self._hint_order, call_id)
            pipe.ltrim(self._hint_order, -MAX_HINTS, -1)  # ids of hints dropped meanwhile pile up otherwise
            pipe.expire(self._hints, HINT_TTL)
            pipe.expire(self._hint_order, HINT_TTL)
            pipe.execute()

    def drop_hint(self, call_id: str) -> bool:
        """The call is being synced: its hint need not be read ahead (its id stays in the order list, skipped).
        Returns True when this call is the one a read-ahead marked to start reading the next batch."""
        pipe = self.r.pipeline(transaction=False)
        pipe.hdel(self._hints, call_id)
        pipe.delete(self._next_batch(call_id))
        return bool(pipe.execute()[1])

    def read_next_batch_at(self, call_id: str) -> None:
        """Mark the call whose sync starts the next read-ahead, so a backlog's next batch is read before its
        first call needs it."""
        self.r.set(self._next_batch(call_id), 1, ex=self.ttl)

    def _next_batch(self, call_id: str) -> str:
        return f"{self.prefix}:lead-next-batch:{call_id}"

    def take_hints(self, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` pending hints, oldest first, removed so that no other worker reads them ahead too."""
        found: list[dict[str, Any]] = []
        while len(found) < limit:
            popped = cast(list[bytes] | None, self.r.lpop(self._hint_order, limit - len(found)))
            if not popped:
                break
            ids = [raw.decode() for raw in popped]
            pipe = self.r.pipeline(transaction=False)
            for call_id in ids:
                pipe.hget(self._hints, call_id)
                pipe.hdel(self._hints, call_id)
            replies = pipe.execute()
            for call_id, value, deleted in zip(ids, replies[::2], replies[1::2], strict=True):
                if value and deleted:  # whoever deletes it reads it ahead; gone: dropped or taken already
                    hint = self.data.unseal(value, max_age=HINT_TTL)
                    if isinstance(hint, dict):  # else too old, or sealed with a key no longer configured
                        found.append({"call_id": call_id, **hint})
        return found
