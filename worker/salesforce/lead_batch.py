"""Find the Leads of many calls with a handful of requests, by LeadFinder's own rules.

``LeadBatch.resolve(details)`` reads in bulk (``worker.salesforce.lead_reader``) what ``LeadFinder.find``
would ask Salesforce call by call.

The rules are not copied: each call still goes through ``LeadFinder.find``, unchanged, with a query client
that answers from the rows read in bulk (``_Prefetched``): the id query with the Lead read by id, the phone
query with the rows a per-call query would have returned (same spellings, newest first, at most 20), the
search with the hits that are the same number (``phones.same_number``). Whatever it asks that was not read
in bulk goes to Salesforce as before, so a change in LeadFinder can cost requests, never correctness.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simple_salesforce import format_soql

from worker.errors import SyncError
from worker.plan import LeadTarget, lead_phone
from worker.salesforce.lead_finder import LeadFinder
from worker.salesforce.lead_reader import LeadReader, LeadReads, ReadClient, Row
from worker.twenty2.models import CallDetail, is_lead_id


@dataclass
class _Prefetched:
    """LeadFinder's query client for ONE call: answers from bulk reads, else asks Salesforce."""

    client: ReadClient
    reads: LeadReads
    delegated: list[str] = field(default_factory=list)

    def query(self, soql: str) -> list[Row]:
        reads = self.reads
        if reads.id_rows is not None and reads.lead_id and format_soql("Id = {}", reads.lead_id) in soql:
            return [dict(r) for r in reads.id_rows]
        if reads.phone_rows is not None and " Phone IN " in soql and " MobilePhone IN " in soql:
            return [dict(r) for r in reads.phone_rows]
        self.delegated.append("query")
        return self.client.query(soql)

    def composite(self, subrequests: list[dict[str, Any]], *, all_or_none: bool) -> list[dict[str, Any]]:
        self.delegated.append("composite")
        return self.client.composite(subrequests, all_or_none=all_or_none)

    def search(self, sosl: str) -> list[Row]:
        if self.reads.search_rows is not None:
            return [dict(r) for r in self.reads.search_rows]
        self.delegated.append("search")
        return self.client.search(sosl)


class LeadBatch:
    """Resolves many calls to ``LeadTarget`` / None / the ``SyncError`` LeadFinder raised for that call."""

    def __init__(self, client: ReadClient, finder: LeadFinder, *, api_version: str) -> None:
        self.client = client
        self.finder = finder
        self.reader: LeadReader[str] = LeadReader(
            client, fields=finder.fields, region=finder.region, api_version=api_version
        )
        self.delegated = 0  # per-call requests LeadFinder still made (not read in bulk)

    def resolve(self, details: Mapping[str, CallDetail]) -> dict[str, LeadTarget | SyncError | None]:
        """One answer per call id. Raises a ``SyncError`` only when the bulk reads themselves fail."""
        reads = self.reader.read(self._wanted_ids(details), {c: lead_phone(d) for c, d in details.items()})
        results: dict[str, LeadTarget | SyncError | None] = {}
        for call_id, detail in details.items():
            answer = _Prefetched(self.client, reads[call_id])
            finder = copy.copy(self.finder)
            finder.client = answer
            try:
                # fresh: the rows just read, never the streaming path's snapshots.
                results[call_id] = finder.find(detail, fresh=True)
            except SyncError as exc:
                results[call_id] = exc
            self.delegated += len(answer.delegated)
        return results

    def _wanted_ids(self, details: Mapping[str, CallDetail]) -> dict[str, str]:
        wanted: dict[str, str] = {}
        for call_id, detail in details.items():
            raw = detail.input_parameters.get(self.finder.id_param)
            if isinstance(raw, str) and is_lead_id(raw.strip()):
                wanted[call_id] = raw.strip()
        return wanted
