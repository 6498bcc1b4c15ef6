"""Find where a call belongs in Salesforce: the Lead named by id, else the Lead with the caller's number.

Order: a Salesforce id in ``input_parameters`` (key configurable) first; else every common spelling of the
number in ``Phone``/``MobilePhone`` by SOQL (exact string match, as Salesforce compares); else a SOSL phone
search. Every candidate is confirmed by parsing its number back. A converted Lead yields its Contact.

With a ``LeadCache``, a snapshot read ahead (see ``worker.salesforce.lead_cache``) answers first, and a miss
reads ahead for the other pending calls (``worker.salesforce.lead_reader``: usually one composite request
and one search for up to 100 calls). A number the read-ahead found no Lead for is answered "no Lead"
without a request of its own; the Lead the call then creates is made under ``creating_lead``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from simple_salesforce import format_soql

from worker.errors import REDIS_DOWN, PermanentError, RetryableError, SalesforceRejected, Stage, redis_errors
from worker.phones import digits_only, mask, same_number, spellings
from worker.plan import LeadTarget, lead_phone
from worker.salesforce.lead_cache import LeadCache
from worker.salesforce.lead_reader import PHONE_ROWS_LIMIT, LeadReader, ReadClient
from worker.twenty2.models import CallDetail, is_lead_id

log = structlog.get_logger(__name__)

BASE_FIELDS = ("Id", "OwnerId", "IsConverted", "ConvertedContactId", "Phone", "MobilePhone", "LastModifiedDate")
#: What a query answers for an id Salesforce does not accept.
INVALID_ID_CODES = frozenset({"INVALID_QUERY_FILTER_OPERATOR", "MALFORMED_ID", "INVALID_ID_FIELD"})
#: Calls whose Leads one read-ahead fetches (usually one composite of queries + one search).
READ_AHEAD = 100
#: Pending calls from which a read-ahead counts as a backlog, whose next batch is read before it is needed.
NEXT_BATCH_MIN = 20


class _Unread:
    """The cache holds nothing about a call's Lead: neither a snapshot nor a "no Lead" reading."""


_UNREAD = _Unread()


class LeadFinder:
    """Resolves a call to a ``LeadTarget`` (or None when no Lead has the number)."""

    def __init__(
        self,
        client: ReadClient,
        *,
        lead_fields: frozenset[str],
        id_param: str,
        region: str,
        api_version: str,
        cache: LeadCache | None = None,
        read_ahead: int = READ_AHEAD,
    ) -> None:
        self.client = client
        self.fields = list(dict.fromkeys([*BASE_FIELDS, *sorted(lead_fields)]))
        self.id_param = id_param
        self.region = region
        self.cache = cache
        self.read_ahead = read_ahead
        self.reader: LeadReader[str] = LeadReader(client, fields=self.fields, region=region, api_version=api_version)

    def find(self, detail: CallDetail, *, fresh: bool = False) -> LeadTarget | None:
        """The call's target. ``fresh`` skips the cache (after Salesforce said a snapshot was stale)."""
        if self.cache is None or fresh:
            return self._lookup(detail)
        with redis_errors(Stage.LOOKUP):
            return self._find_cached(detail)

    def _find_cached(self, detail: CallDetail) -> LeadTarget | None:
        assert self.cache is not None
        if self.cache.drop_hint(detail.call.call_id):
            self._read_next_batch()
        answer = self._cache_answer(detail)
        if isinstance(answer, _Unread):
            with self.cache.reading_ahead():
                answer = self._cache_answer(detail)  # the read-ahead this call waited for may have read it
                if isinstance(answer, _Unread):
                    self._read_ahead(detail)
                    answer = self._cache_answer(detail)
        if not isinstance(answer, _Unread):
            return answer
        target = self._lookup(detail)
        phone = lead_phone(detail)
        if target is None and phone:
            self.cache.no_lead([phone])  # just read: the creation under the number's lock may trust it
        return target

    def forget(self, target: LeadTarget | None, detail: CallDetail) -> None:
        """Drop the snapshot of ``target`` (we wrote it, or Salesforce said it changed). Never raises on a
        Redis outage: after a write, the call is written and must be recorded so, not failed; and a snapshot
        left behind is safe (the next update of that Lead is conditional, so Salesforce answers 412 and the
        Lead is read again; a converted or deleted one is refused and read again) and expires with the
        cache's TTL."""
        if self.cache is None or target is None:
            return
        try:
            self.cache.forget(target.converted_from or target.record_id, lead_phone(detail))
        except REDIS_DOWN as exc:
            log.warning("lead.snapshot_kept", lead=target.record_id, error=type(exc).__name__)

    def note_created(self, detail: CallDetail) -> None:
        """A Lead was (or may have been) created for the call's number elsewhere (bulk mode): calls to the
        number look it up again instead of trusting an older "no Lead" reading."""
        if self.cache is not None:
            self.cache.lead_created(lead_phone(detail))

    @contextmanager
    def creating_lead(self, detail: CallDetail) -> Iterator[bool]:
        """Hold the call's number while a Lead is created for it. Yields whether the number is still known
        to have no Lead (else the caller finds the Lead again, fresh: another call may have just created
        it). On the way out the number is marked as having a Lead, whatever happened inside (a create that
        timed out may still have been made)."""
        phone = lead_phone(detail)
        lock = self.cache.creation_lock(phone) if self.cache is not None else None
        if self.cache is None or lock is None:
            yield False
            return
        with redis_errors(Stage.LOOKUP):
            if not lock.acquire():
                raise RetryableError(
                    f"another worker is creating the Lead for {mask(phone)}",
                    stage=Stage.LOOKUP,
                    code="LEAD_CREATION_BUSY",
                )
        try:
            with redis_errors(Stage.LOOKUP):
                still_without_lead = self.cache.has_no_lead(phone)
            yield still_without_lead
        finally:
            try:
                self.note_created(detail)
                lock.release()
            except Exception as exc:  # expired, or Redis away: the marks expire within a minute anyway
                log.warning("lead.creation_unmarked", phone=mask(phone), error=type(exc).__name__)

    # --- cache -------------------------------------------------------------------------------------------
    def _lead_id_param(self, detail: CallDetail) -> str | None:
        raw = detail.input_parameters.get(self.id_param)
        return raw.strip() if isinstance(raw, str) and is_lead_id(raw.strip()) else None

    def _cached(self, detail: CallDetail) -> LeadTarget | None:
        assert self.cache is not None
        lead_id = self._lead_id_param(detail)
        if lead_id is not None:
            row = self.cache.by_id(lead_id)
            return self._target(row, matched_by=f"{self.id_param} in input_parameters (read ahead)") if row else None
        row = self.cache.by_phone(lead_phone(detail))  # confirmed there: one of the Lead's numbers is the same
        if row is None:
            return None
        return self._target(row, matched_by="phone (read ahead)")

    def _cache_answer(self, detail: CallDetail) -> LeadTarget | _Unread | None:
        """What the cache knows: the target's snapshot, None (no Lead has the number: read just now), or
        ``_UNREAD``. A call naming a Lead id is looked up by it; only a call found by its number can be
        answered "no Lead"."""
        assert self.cache is not None
        target = self._cached(detail)
        if target is not None:
            return target
        if self._lead_id_param(detail) is None and self.cache.has_no_lead(lead_phone(detail)):
            return None
        return _UNREAD

    def _read_next_batch(self) -> None:
        """Read the next pending calls ahead in the background: this call's own batch was read already."""
        threading.Thread(target=self._read_ahead_quietly, name="lead-read-ahead", daemon=True).start()

    def _read_ahead_quietly(self) -> None:
        assert self.cache is not None
        try:
            with self.cache.reading_ahead():
                self._read_ahead(None)
        except Exception as exc:  # an optimisation: each call of the batch still finds its Lead itself
            log.warning("lead.read_ahead_failed", error=type(exc).__name__)

    def _read_ahead(self, detail: CallDetail | None) -> None:
        """Read the Leads of this call (if any) and of up to ``read_ahead - 1`` pending ones into the cache.
        In a backlog, the call in the middle of the batch is marked to read the batch after it."""
        assert self.cache is not None
        hints = self.cache.take_hints(self.read_ahead - 1)
        ids: dict[str, str] = {}
        phones: dict[str, str | None] = {}
        for hint in hints:
            key, lead_id = str(hint.get("call_id")), hint.get("lead_id")
            if isinstance(lead_id, str) and is_lead_id(lead_id):
                ids[key] = lead_id
            elif hint.get("phone"):
                phones[key] = str(hint["phone"])
        if detail is not None:
            own, own_id = detail.call.call_id, self._lead_id_param(detail)
            phones[own] = lead_phone(detail)
            if own_id:
                ids[own] = own_id
        if not ids and not phones:
            return
        try:
            reads = self.reader.read(ids, phones)
        except SalesforceRejected as exc:
            # Reading ahead is an optimisation: whatever it could not read, each call looks up itself.
            log.warning("lead.read_ahead_refused", code=exc.code)
            return
        rows = [row for answer in reads.values() for row in answer.rows()]
        self.cache.put(list({row["Id"]: row for row in rows if row.get("Id")}.values()))
        without = [str(phones[k]) for k, a in reads.items() if a.no_lead_for_number(self.region, phones.get(k))]
        self.cache.no_lead(without)
        if len(hints) >= NEXT_BATCH_MIN:
            self.cache.read_next_batch_at(str(hints[len(hints) // 2]["call_id"]))
        log.debug("lead.read_ahead", calls=len(reads), ids=len(ids), leads=len(rows), without_lead=len(without))

    # --- full lookup ---------------------------------------------------------------------------------------
    def _lookup(self, detail: CallDetail) -> LeadTarget | None:
        """The full lookup: by id, else by the number's spellings, else by Salesforce's phone search."""
        raw_id = detail.input_parameters.get(self.id_param)
        note = ""
        if isinstance(raw_id, str) and raw_id.strip():
            lead_id = raw_id.strip()
            if is_lead_id(lead_id):
                rows = self._by_id(lead_id)
                if rows:
                    return self._target(rows[0], matched_by=f"{self.id_param} in input_parameters")
                note = f" ({self.id_param} {lead_id} not found)"
            else:
                note = f" ({self.id_param} is not a Lead id)"
            log.warning("lead.id_unusable", call_id=detail.call.call_id, reason=note.strip(" ()"))
        phone = lead_phone(detail)
        candidates = self._by_phone(phone)
        if not candidates:
            return None
        unconverted = [r for r in candidates if not r.get("IsConverted")]
        newest = lambda r: str(r.get("LastModifiedDate") or "")  # noqa: E731 - a sort key
        chosen = max(unconverted or candidates, key=newest)
        if len(unconverted) > 1:
            log.warning("lead.several_match", call_id=detail.call.call_id, phone=mask(phone), count=len(unconverted))
        return self._target(chosen, matched_by="phone" + note)

    def _by_id(self, lead_id: str) -> list[dict[str, Any]]:
        try:
            return self.client.query(self._select("WHERE Id = {}", lead_id))
        except SalesforceRejected as exc:
            # An id of the right shape Salesforce still refuses (bad checksum): as good as not found.
            if exc.code in INVALID_ID_CODES:
                return []
            raise

    def _by_phone(self, phone: str | None) -> list[dict[str, Any]]:
        variants = spellings(phone, self.region)
        if not variants:
            return []
        rows = self.client.query(
            self._select(
                "WHERE Phone IN {variants} OR MobilePhone IN {variants} ORDER BY LastModifiedDate DESC LIMIT {limit}",
                variants=variants,
                limit=PHONE_ROWS_LIMIT,
            )
        )
        matched = [r for r in rows if self._same(r, phone)]
        if matched:
            return matched
        # Spellings we did not think of: Salesforce's phone search, then confirm each hit ourselves.
        # Only ASCII digits reach the search term, so no SOSL reserved character can.
        digits = digits_only(phone)[-10:]
        sosl = f"FIND {{{digits}}} IN PHONE FIELDS RETURNING Lead({', '.join(self.fields)})"
        return [r for r in self.client.search(sosl) if self._same(r, phone)]

    def _same(self, row: dict[str, Any], phone: str | None) -> bool:
        return any(same_number(row.get(f), phone, self.region) for f in ("Phone", "MobilePhone"))

    def _select(self, where: str, *args: Any, **kwargs: Any) -> str:
        # Field names come from the mapping file (validated API names), values go through format_soql.
        return format_soql(f"SELECT {', '.join(self.fields)} FROM Lead {where}", *args, **kwargs)  # noqa: S608

    def _target(self, row: dict[str, Any], *, matched_by: str) -> LeadTarget:
        fields = {k: v for k, v in row.items() if k != "attributes"}
        if row.get("IsConverted"):
            contact = row.get("ConvertedContactId")
            if not contact:
                raise PermanentError(
                    f"Lead {row['Id']} is converted but has no converted Contact to log the call on",
                    stage=Stage.LOOKUP,
                    code="CONVERTED_WITHOUT_CONTACT",
                )
            return LeadTarget(
                record_id=contact,
                sobject="Contact",
                owner_id=row.get("OwnerId"),
                matched_by=matched_by,
                converted_from=row["Id"],
            )
        return LeadTarget(
            record_id=row["Id"],
            sobject="Lead",
            owner_id=row.get("OwnerId"),
            matched_by=matched_by,
            fields=fields,
            last_modified=row.get("LastModifiedDate"),
        )
