"""Write many records with sObject Collections inside composite requests, each record on its own.

A collection subrequest carries up to 200 records and a composite request up to 5 collection subrequests,
and Salesforce counts the composite as ONE API call: up to 1,000 records per call. Writes are grouped by
kind (creates, updates, upserts per sObject and external-id field), packed into collections of at most
200 records and composites of at most 5 collections and ``max_body_bytes`` (a conservative cap on the
request body; no primary source states the real one).

``allOrNone`` is false at both levels: each record succeeds or fails alone and the results come back in
input order, so ``write`` answers one ``RecordResult`` per write given, in the same order. A refused
record's errors are sorted with ``classify_errors`` (``UNABLE_TO_LOCK_ROW`` retryable, validation rules
permanent, ...); a whole request that fails (timeout, 5xx, daily limit) gives its error to every record it
carried.

A Task's ``TaskSubtype`` can only be set when the Task is created: an upsert that finds the Task already
there refuses the field (``INVALID_FIELD_FOR_INSERT_UPDATE``). Only those records are sent once more
without their create-only fields.

Collections have no per-record conditional update (no ``If-Unmodified-Since``): whatever a write is based
on must be read just before it (see ``worker.sync.bulk``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import structlog

from worker.errors import SalesforceRejected, Stage, SyncError
from worker.plan import RecordWrite, Ref
from worker.salesforce.client import COLLECTION_MAX, classify_errors
from worker.salesforce.composite_writer import inert_text, refused_for_create_only, without_create_only

log = structlog.get_logger(__name__)

#: Collection subrequests per composite request (Salesforce: at most 5 query or collection subrequests).
COLLECTIONS_PER_COMPOSITE = 5
DEFAULT_MAX_BODY_BYTES = 3_000_000


class CompositeClient(Protocol):
    def composite(self, subrequests: list[dict[str, Any]], *, all_or_none: bool) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class RecordResult:
    """One record's outcome: its id when written, else the sorted error."""

    record_id: str | None = None
    error: SyncError | None = None
    created: bool | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Written:
    """``results[i]`` belongs to ``writes[i]``; ``composites`` requests were sent, ``resent`` records again."""

    results: list[RecordResult]
    composites: int = 0
    resent: int = 0


@dataclass
class _Collection:
    method: str
    path: str
    indexes: list[int] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    size: int = 0


class CollectionWriter:
    """Sends ``RecordWrite``s (no ``Ref`` left in them) as collections in composite requests."""

    def __init__(
        self, client: CompositeClient, *, api_version: str, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    ) -> None:
        self.client = client
        self.base = f"/services/data/v{api_version}"
        self.max_body_bytes = max_body_bytes

    def write(self, writes: Sequence[RecordWrite]) -> Written:
        written = self._send(writes)
        refused = [
            i
            for i, (w, r) in enumerate(zip(writes, written.results, strict=True))
            if r.error is not None and refused_for_create_only(r.error, [w])
        ]
        if refused:
            log.info("salesforce.bulk_task_exists_resend", records=len(refused))
            trimmed = [without_create_only(writes[i]) for i in refused]
            again = self._send(trimmed)
            for i, result in zip(refused, again.results, strict=True):
                written.results[i] = result
            written.composites += again.composites
            written.resent += len(refused)
        return written

    # --- packing -----------------------------------------------------------------------------------------

    def _collections(self, writes: Sequence[RecordWrite]) -> list[_Collection]:
        groups: dict[tuple[str, str], list[_Collection]] = {}
        for index, write in enumerate(writes):
            method, path, record = self._record(write)
            size = len(json.dumps(record, default=str)) + 1
            bucket = groups.setdefault((method, path), [])
            if not bucket or len(bucket[-1].records) >= COLLECTION_MAX or bucket[-1].size + size > self.max_body_bytes:
                bucket.append(_Collection(method, path))
            current = bucket[-1]
            current.indexes.append(index)
            current.records.append(record)
            current.size += size
        return [c for bucket in groups.values() for c in bucket]

    def _record(self, write: RecordWrite) -> tuple[str, str, dict[str, Any]]:
        unresolved = [k for k, v in write.fields.items() if isinstance(v, Ref)]
        if unresolved:
            raise ValueError(f"write {write.ref}: unresolved references in {unresolved}")
        record: dict[str, Any] = {
            "attributes": {"type": write.sobject},
            **{k: inert_text(v) for k, v in write.fields.items()},
        }
        if write.method == "create":
            return "POST", f"{self.base}/composite/sobjects", record
        if write.method == "update" and write.record_id:
            return "PATCH", f"{self.base}/composite/sobjects", {**record, "Id": write.record_id}
        if write.method == "upsert" and write.external_id is not None:
            name, value = write.external_id
            path = f"{self.base}/composite/sobjects/{quote(write.sobject, safe='')}/{quote(name, safe='')}"
            return "PATCH", path, {**record, name: value}
        raise ValueError(f"cannot send write {write.ref}: method {write.method}")

    def _composites(self, collections: list[_Collection]) -> list[list[_Collection]]:
        packed: list[list[_Collection]] = []
        size = 0
        for collection in collections:
            if (
                not packed
                or len(packed[-1]) >= COLLECTIONS_PER_COMPOSITE
                or size + collection.size > self.max_body_bytes
            ):
                packed.append([])
                size = 0
            packed[-1].append(collection)
            size += collection.size
        return packed

    # --- sending -----------------------------------------------------------------------------------------

    def _send(self, writes: Sequence[RecordWrite]) -> Written:
        results: list[RecordResult | None] = [None] * len(writes)
        composites = self._composites(self._collections(writes))
        for batch in composites:
            subrequests = [
                {
                    "method": c.method,
                    "url": c.path,
                    "referenceId": f"c{n}",
                    "body": {"allOrNone": False, "records": c.records},
                }
                for n, c in enumerate(batch)
            ]
            try:
                replies = {r.get("referenceId"): r for r in self.client.composite(subrequests, all_or_none=False)}
            except SyncError as exc:
                # The whole request failed (timeout, 5xx, limit): what it carried may or may not be written;
                # every record gets the error (upserts make sending it again safe).
                for collection in batch:
                    for index in collection.indexes:
                        results[index] = RecordResult(error=exc)
                continue
            for n, collection in enumerate(batch):
                for index, result in zip(
                    collection.indexes, _per_record(replies.get(f"c{n}"), collection), strict=True
                ):
                    results[index] = result
        return Written([r if r is not None else RecordResult(error=_missing()) for r in results], len(composites))


def _per_record(reply: dict[str, Any] | None, collection: _Collection) -> list[RecordResult]:
    count = len(collection.indexes)
    if reply is None:
        return [RecordResult(error=_missing())] * count
    status = int(reply.get("httpStatusCode") or 500)
    body = reply.get("body")
    if status >= 300 or not isinstance(body, list) or len(body) != count or not all(isinstance(b, dict) for b in body):
        # The subrequest itself was refused (or answered out of shape): its records share the error.
        items = body if isinstance(body, list) else [body]
        error = classify_errors(items, status, stage=Stage.WRITE) if status >= 300 else _missing()
        return [RecordResult(error=error)] * count
    out = []
    for item in body:
        if item.get("success"):
            created = item.get("created")
            out.append(
                RecordResult(record_id=str(item.get("id") or ""), created=created if created is None else bool(created))
            )
        else:
            # A refused record: HTTP 400 is what the same write alone would have answered.
            out.append(RecordResult(error=classify_errors(list(item.get("errors") or []), 400, stage=Stage.WRITE)))
    return out


def _missing() -> SyncError:
    return SalesforceRejected(
        "Salesforce answered a collection without a result per record", stage=Stage.WRITE, code="BAD_RESPONSE"
    )
