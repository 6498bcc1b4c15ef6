"""Find where a call belongs in Salesforce: the Lead named by id, else the Lead with the caller's number.

Order: a Salesforce id in ``input_parameters`` (key configurable) first; else every common spelling of the
number in ``Phone``/``MobilePhone`` by SOQL (exact string match, as Salesforce compares); else a SOSL phone
search. Every candidate is confirmed by parsing its number back. A converted Lead yields its Contact.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import structlog
from simple_salesforce import format_soql

from worker.errors import PermanentError, Stage
from worker.phones import digits_only, mask, same_number, spellings
from worker.plan import LeadTarget, lead_phone
from worker.twenty2.models import CallDetail

log = structlog.get_logger(__name__)

_SF_ID = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")
BASE_FIELDS = (
    "Id",
    "OwnerId",
    "IsConverted",
    "ConvertedContactId",
    "Phone",
    "MobilePhone",
    "LastModifiedDate",
)


class QueryClient(Protocol):
    def query(self, soql: str) -> list[dict[str, Any]]: ...

    def search(self, sosl: str) -> list[dict[str, Any]]: ...


class LeadFinder:
    """Resolves a call to a ``LeadTarget`` (or None when no Lead has the number)."""

    def __init__(self, client: QueryClient, *, lead_fields: frozenset[str], id_param: str, region: str) -> None:
        self.client = client
        self.fields = list(dict.fromkeys([*BASE_FIELDS, *sorted(lead_fields)]))
        self.id_param = id_param
        self.region = region

    def find(self, detail: CallDetail) -> LeadTarget | None:
        raw_id = detail.input_parameters.get(self.id_param)
        note = ""
        if isinstance(raw_id, str) and raw_id.strip():
            lead_id = raw_id.strip()
            if _SF_ID.match(lead_id) and lead_id.startswith("00Q"):
                rows = self.client.query(self._select("WHERE Id = {}", lead_id))
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
        best = sorted(candidates, key=lambda r: (bool(r.get("IsConverted")), str(r.get("LastModifiedDate") or "")))
        unconverted = [r for r in best if not r.get("IsConverted")]
        chosen = max(unconverted, key=lambda r: str(r.get("LastModifiedDate") or "")) if unconverted else best[-1]
        if len(unconverted) > 1:
            log.warning("lead.several_match", call_id=detail.call.call_id, phone=mask(phone), count=len(unconverted))
        return self._target(chosen, matched_by="phone" + note)

    def _by_phone(self, phone: str | None) -> list[dict[str, Any]]:
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
        )
