"""Find where a call belongs in Salesforce: the Lead named by id, else the Lead with the caller's number.

Order: a Salesforce id in ``input_parameters`` (key configurable) first; else every common spelling of the
number in ``Phone``/``MobilePhone`` by SOQL (exact string match, as Salesforce compares); else a SOSL phone
search. Every candidate is confirmed by parsing its number back. A converted Lead yields its Contact.

With a ``LeadCache``, a snapshot read ahead (see ``worker.salesforce.leadcache``) answers first, and a miss
reads ahead for the other pending calls in the same two requests.
"""

from __future__ import annotations

from typing import Any, Protocol

import structlog
from simple_salesforce import format_soql

from worker.errors import PermanentError, SalesforceRejected, Stage
from worker.phones import digits_only, mask, same_number, spellings
from worker.plan import LeadTarget, lead_phone
from worker.salesforce.leadcache import LeadCache
from worker.twenty2.models import CallDetail, is_lead_id

log = structlog.get_logger(__name__)

BASE_FIELDS = ("Id", "OwnerId", "IsConverted", "ConvertedContactId", "Phone", "MobilePhone", "LastModifiedDate")
#: What a query answers for an id Salesforce does not accept.
INVALID_ID_CODES = frozenset({"INVALID_QUERY_FILTER_OPERATOR", "MALFORMED_ID", "INVALID_ID_FIELD"})
#: Calls whose Leads one read-ahead fetches (one SOQL by id + one SOSL by number).
READ_AHEAD = 100


class QueryClient(Protocol):
    def query(self, soql: str) -> list[dict[str, Any]]: ...

    def search(self, sosl: str) -> list[dict[str, Any]]: ...


class LeadFinder:
    """Resolves a call to a ``LeadTarget`` (or None when no Lead has the number)."""

    def __init__(
        self,
        client: QueryClient,
        *,
        lead_fields: frozenset[str],
        id_param: str,
        region: str,
        cache: LeadCache | None = None,
        read_ahead: int = READ_AHEAD,
    ) -> None:
        self.client = client
        self.fields = list(dict.fromkeys([*BASE_FIELDS, *sorted(lead_fields)]))
        self.id_param = id_param
        self.region = region
        self.cache = cache
        self.read_ahead = read_ahead

    def find(self, detail: CallDetail, *, fresh: bool = False) -> LeadTarget | None:
        """The call's target. ``fresh`` skips the cache (after Salesforce said a snapshot was stale)."""
        if self.cache is not None and not fresh:
            self.cache.drop_hint(detail.call.call_id)
            target = self._cached(detail)
            if target is None and not self.cache.was_searched(lead_phone(detail)):
                self._read_ahead(detail)
                target = self._cached(detail)
            if target is not None:
                return target
            return self._lookup(detail, searched=self.cache.was_searched(lead_phone(detail)))
        return self._lookup(detail)

    def forget(self, target: LeadTarget | None, detail: CallDetail) -> None:
        """Drop the snapshot of ``target`` (we wrote it, or Salesforce said it changed)."""
        if self.cache is not None and target is not None:
            self.cache.forget(target.converted_from or target.record_id, lead_phone(detail))

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
        phone = lead_phone(detail)
        row = self.cache.by_phone(phone)
        if row is None or not self._same(row, phone):
            return None
        return self._target(row, matched_by="phone (read ahead)")

    def _read_ahead(self, detail: CallDetail) -> None:
        assert self.cache is not None
        hints = self.cache.take_hints(self.read_ahead - 1)
        ids = {h["lead_id"] for h in hints if isinstance(h.get("lead_id"), str) and is_lead_id(h["lead_id"])}
        numbers = {digits_only(h.get("phone"))[-10:] for h in hints if not h.get("lead_id")}
        own_id = self._lead_id_param(detail)
        if own_id:
            ids.add(own_id)
        else:
            numbers.add(digits_only(lead_phone(detail))[-10:])
        numbers.discard("")
        rows: list[dict[str, Any]] = []
        try:
            if ids:
                rows += self.client.query(self._select("WHERE Id IN {}", sorted(ids)))
            if numbers:
                # Only ASCII digits reach the search terms, so no SOSL reserved character can.
                terms = " OR ".join(sorted(numbers))
                found = self.client.search(f"FIND {{{terms}}} IN PHONE FIELDS RETURNING Lead({', '.join(self.fields)})")
                rows += found
                # Only numbers the search found nothing for: a number with hits is the full lookup's to settle.
                self.cache.searched([n for n in sorted(numbers) if not any(self._same(r, n) for r in found)])
        except SalesforceRejected as exc:
            # Reading ahead is an optimisation: whatever it could not read, each call looks up itself.
            log.warning("lead.read_ahead_refused", code=exc.code)
        self.cache.put(rows)
        log.debug("lead.read_ahead", calls=len(hints) + 1, ids=len(ids), numbers=len(numbers), leads=len(rows))

    # --- full lookup ---------------------------------------------------------------------------------------
    def _lookup(self, detail: CallDetail, *, searched: bool = False) -> LeadTarget | None:
        """The full lookup; ``searched``: a phone search covered this number moments ago (not repeated)."""
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
        candidates = self._by_phone(phone, search=not searched)
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

    def _by_phone(self, phone: str | None, *, search: bool = True) -> list[dict[str, Any]]:
        variants = spellings(phone, self.region)
        if not variants:
            return []
        rows = self.client.query(
            self._select(
                "WHERE Phone IN {variants} OR MobilePhone IN {variants} ORDER BY LastModifiedDate DESC LIMIT 20",
                variants=variants,
            )
        )
        matched = [r for r in rows if self._same(r, phone)]
        if matched or not search:
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
