"""Lead snapshots in Redis, so a streamed call usually costs one Salesforce request (the composite write).

How it works:

- The intake leaves a *hint* per accepted call: the number and the Salesforce id the webhook names. The
  webhook is untrusted, so a hint only chooses what to read ahead; the worker still matches the Lead
  against the call detail it fetched itself.
- A worker that finds no snapshot for its call reads ahead for up to ``batch`` pending hints at once
  (one SOQL query by id, one SOSL phone search), and stores a snapshot per Lead found.
- Snapshots carry the Lead's ``LastModifiedDate``: the Lead update is sent with ``If-Unmodified-Since``,
  so a Lead changed in Salesforce since it was read fails the write (412) instead of being overwritten
  from stale values; the worker then reads the Lead again and re-plans.
- A snapshot is dropped when the Lead is written by us, or when Salesforce says it is gone or converted.
- Numbers the read-ahead's phone search covered are remembered for two minutes: a call to a number no Lead
  has then skips a second, identical search (its exact-spelling SOQL check still runs).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, cast

import redis

from worker.phones import e164

#: Snapshots live this long (seconds): enough to drain a backlog, short enough to stay close to the org.
DEFAULT_TTL = 900
#: A phone search that found nothing is trusted this long (seconds) by the lookup of the same number.
SEARCHED_TTL = 120


def _digest(number: str) -> str:
    # Key names show up in every Redis tool: they carry a digest of the number, never the number.
    return hashlib.sha256(number.encode()).hexdigest()[:32]


class LeadCache:
    def __init__(self, client: redis.Redis, *, region: str, ttl: int = DEFAULT_TTL, prefix: str = "crm-sync") -> None:
        self.r = client
        self.region = region
        self.ttl = ttl
        self.prefix = prefix

    def _lead(self, lead_id: str) -> str:
        return f"{self.prefix}:lead:{lead_id}"

    def _phone(self, number: str) -> str:
        return f"{self.prefix}:lead-phone:{_digest(number)}"

    @property
    def _hints(self) -> str:
        return f"{self.prefix}:lead-hints"

    # --- snapshots -------------------------------------------------------------------------------------
    def by_id(self, lead_id: str) -> dict[str, Any] | None:
        raw = self.r.get(self._lead(lead_id))
        return json.loads(cast(bytes, raw)) if raw else None

    def by_phone(self, phone: str | None) -> dict[str, Any] | None:
        number = e164(phone, self.region)
        if number is None:
            return None
        lead_id = self.r.get(self._phone(number))
        return self.by_id(cast(bytes, lead_id).decode()) if lead_id else None

    def put(self, rows: list[dict[str, Any]]) -> None:
        """Store Lead rows (as queried) by id and by each of their numbers. A number several unconverted
        Leads share is not indexed: which one a call belongs to is the full lookup's decision."""
        numbers: dict[str, set[str]] = {}
        for row in rows:
            for field in ("Phone", "MobilePhone"):
                number = e164(row.get(field), self.region)
                if number:
                    numbers.setdefault(number, set()).add(row["Id"])
        pipe = self.r.pipeline(transaction=False)
        for row in rows:
            snapshot = {k: v for k, v in row.items() if k != "attributes"}
            pipe.set(self._lead(row["Id"]), json.dumps(snapshot), ex=self.ttl)
        for number, ids in numbers.items():
            if len(ids) == 1:
                pipe.set(self._phone(number), next(iter(ids)), ex=self.ttl)
            else:
                pipe.delete(self._phone(number))
        pipe.execute()

    def searched(self, numbers: list[str]) -> None:
        """Remember that a phone search just now found no Lead for ``numbers`` (a lookup need not repeat it)."""
        pipe = self.r.pipeline(transaction=False)
        for number in numbers:
            normal = e164(number, self.region)
            if normal:
                pipe.set(self._searched(normal), 1, ex=SEARCHED_TTL)
        pipe.execute()

    def was_searched(self, phone: str | None) -> bool:
        normal = e164(phone, self.region)
        return bool(normal and self.r.exists(self._searched(normal)))

    def _searched(self, number: str) -> str:
        return f"{self.prefix}:lead-searched:{_digest(number)}"

    def forget(self, lead_id: str | None, *phones: str | None) -> None:
        keys = [self._lead(lead_id)] if lead_id else []
        keys += [self._phone(n) for n in (e164(p, self.region) for p in phones) if n]
        if keys:
            self.r.delete(*keys)

    # --- hints -----------------------------------------------------------------------------------------
    def hint(self, call_id: str, *, phone: str | None, lead_id: str | None) -> None:
        """Remember what an accepted webhook says about its Lead (read ahead later, never trusted)."""
        if phone or lead_id:
            self.r.hset(self._hints, call_id, json.dumps({"phone": phone, "lead_id": lead_id}))

    def drop_hint(self, call_id: str) -> None:
        self.r.hdel(self._hints, call_id)

    def take_hints(self, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` pending hints, removed so that no other worker reads them ahead too."""
        found: list[dict[str, Any]] = []
        cursor = 0
        while len(found) < limit:
            cursor, batch = cast(tuple[int, dict[Any, Any]], self.r.hscan(self._hints, cursor, count=limit))
            for key, value in batch.items():
                if len(found) >= limit:
                    break
                call_id = key.decode() if isinstance(key, bytes) else str(key)
                if self.r.hdel(self._hints, key):  # whoever deletes it reads it ahead
                    found.append({"call_id": call_id, **json.loads(value)})
            if cursor == 0:
                break
        return found
