"""Find the Leads of many calls with a handful of requests, by LeadFinder's own rules.

``LeadBatch.resolve(details)`` reads in bulk what ``LeadFinder.find`` would ask Salesforce call by call:

- the Leads named by id in ``input_parameters``: ``SELECT … FROM Lead WHERE Id IN (…)``, 500 ids a query;
- the Leads holding any spelling of each number (``phones.spellings``):
  ``… WHERE Phone IN (…) OR MobilePhone IN (…)``, as many numbers as fit in ~90,000 characters
  (SOQL allows 100,000);
- for numbers no spelling matched: Salesforce's phone search with OR-ed terms,
  ``FIND {n1 OR n2 …} IN PHONE FIELDS``, 250 numbers a search (under the 4,000 characters beyond which
  SOSL drops its operators).

The queries travel five to a composite request (one API call: a composite holds at most 5 query or
collection subrequests; the SOQL sits in the request body, clear of the REST URI length limit); SOSL cannot
go into a composite, so each search is one request.

The rules are not copied: each call still goes through ``LeadFinder.find``, unchanged, with a query client
that answers from the rows read in bulk (``_Prefetched``): the id query with the Lead read by id, the phone
query with the rows a per-call query would have returned (same spellings, newest first, at most 20), the
search with the hits that are the same number (``phones.same_number``). Whatever it asks that was not read
in bulk goes to Salesforce as before, so a change in LeadFinder can cost requests, never correctness.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

import structlog
from simple_salesforce import format_soql

from worker.errors import SalesforceRejected, SalesforceUnavailable, Stage, SyncError
from worker.phones import digits_only, same_number, spellings
from worker.plan import LeadTarget, lead_phone
from worker.salesforce.client import classify_errors
from worker.salesforce.leads import LeadFinder
from worker.twenty2.models import CallDetail, is_lead_id

log = structlog.get_logger(__name__)

#: Query subrequests per composite request (Salesforce: at most 5 query or collection subrequests).
QUERIES_PER_COMPOSITE = 5
IDS_PER_QUERY = 500
#: Characters per phone query; SOQL statements may hold 100,000.
SOQL_MAX_CHARS = 90_000
#: Numbers per SOSL search: 250 x "dddddddddd OR " stays under SOSL's 4,000 characters.
NUMBERS_PER_SEARCH = 250
#: SOSL returns at most 2,000 rows: a search that hits the cap may have left some out.
SEARCH_ROW_CAP = 2_000
#: LeadFinder's phone query: ``ORDER BY LastModifiedDate DESC LIMIT 20``.
PHONE_ROWS_LIMIT = 20
READ_ATTEMPTS = 3

Row = dict[str, Any]


class BatchClient(Protocol):
    def composite(self, subrequests: list[dict[str, Any]], *, all_or_none: bool) -> list[dict[str, Any]]: ...

    def query(self, soql: str) -> list[dict[str, Any]]: ...

    def search(self, sosl: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class _Read:
    """One SOQL query of the bulk read and what to do with its rows (None: Salesforce refused it)."""

    soql: str
    apply: Callable[[list[Row] | None], None]


@dataclass
class _Prefetched:
    """LeadFinder's query client for ONE call: answers from bulk reads, else asks Salesforce."""

    client: BatchClient
    lead_id: str | None = None
    id_rows: list[Row] | None = None  # None: not read in bulk
    phone_rows: list[Row] | None = None
    search_rows: list[Row] | None = None
    delegated: list[str] = field(default_factory=list)

    def query(self, soql: str) -> list[Row]:
        if self.id_rows is not None and self.lead_id and format_soql("Id = {}", self.lead_id) in soql:
            return [dict(r) for r in self.id_rows]
        if self.phone_rows is not None and " Phone IN " in soql and " MobilePhone IN " in soql:
            return [dict(r) for r in self.phone_rows]
        self.delegated.append("query")
        return self.client.query(soql)

    def search(self, sosl: str) -> list[Row]:
        if self.search_rows is not None:
            return [dict(r) for r in self.search_rows]
        self.delegated.append("search")
        return self.client.search(sosl)


class LeadBatch:
    """Resolves many calls to ``LeadTarget`` / None / the ``SyncError`` LeadFinder raised for that call."""

    def __init__(self, client: BatchClient, finder: LeadFinder, *, api_version: str) -> None:
        self.client = client
        self.finder = finder
        self.base = f"/services/data/v{api_version}"
        self.delegated = 0  # per-call requests LeadFinder still made (not read in bulk)

    def resolve(self, details: Mapping[str, CallDetail]) -> dict[str, LeadTarget | SyncError | None]:
        """One answer per call id. Raises a ``SyncError`` only when the bulk reads themselves fail."""
        answers = {call_id: _Prefetched(self.client) for call_id in details}
        wanted = self._wanted_ids(details)
        phones = {c: lead_phone(d) for c, d in details.items() if c not in wanted}
        # The ids and the numbers of calls without an id go out together (usually one composite request);
        # the numbers of calls whose id named no Lead follow.
        self._run([*self._id_reads(wanted, answers), *self._phone_reads(phones, answers)])
        unknown_ids = {c: lead_phone(details[c]) for c in wanted if answers[c].id_rows == []}
        self._run(self._phone_reads(unknown_ids, answers))
        phones.update(unknown_ids)
        self._search_phones({c: p for c, p in phones.items() if self._needs_search(answers[c].phone_rows, p)}, answers)
        results: dict[str, LeadTarget | SyncError | None] = {}
        for call_id, detail in details.items():
            finder = copy.copy(self.finder)
            finder.client = answers[call_id]
            try:
                # fresh: the rows just read, never the streaming path's snapshots.
                results[call_id] = finder.find(detail, fresh=True)
            except SyncError as exc:
                results[call_id] = exc
            self.delegated += len(answers[call_id].delegated)
        return results

    # --- by id ------------------------------------------------------------------------------------------

    def _wanted_ids(self, details: Mapping[str, CallDetail]) -> dict[str, str]:
        wanted: dict[str, str] = {}
        for call_id, detail in details.items():
            raw = detail.input_parameters.get(self.finder.id_param)
            if isinstance(raw, str) and is_lead_id(raw.strip()):
                wanted[call_id] = raw.strip()
        return wanted

    def _id_reads(self, wanted: Mapping[str, str], answers: dict[str, _Prefetched]) -> list[_Read]:
        unique = list(dict.fromkeys(wanted.values()))

        def apply(batch: list[str], rows: list[Row] | None) -> None:
            if rows is None:
                return  # this batch failed: those calls ask LeadFinder's own way
            by_id = {str(r["Id"])[:15]: r for r in rows if r.get("Id")}  # a 15- and 18-character id meet here
            for call_id, lead_id in wanted.items():
                if lead_id in batch:
                    answers[call_id].lead_id = lead_id
                    row = by_id.get(lead_id[:15])
                    answers[call_id].id_rows = [row] if row is not None else []

        return [
            _Read(self._select("WHERE Id IN {ids}", ids=batch), functools.partial(apply, batch))
            for batch in (unique[i : i + IDS_PER_QUERY] for i in range(0, len(unique), IDS_PER_QUERY))
        ]

    # --- by phone ---------------------------------------------------------------------------------------

    def _phone_reads(self, phones: Mapping[str, str | None], answers: dict[str, _Prefetched]) -> list[_Read]:
        variants = {call_id: spellings(phone, self.finder.region) for call_id, phone in phones.items()}
        for call_id, spelled in variants.items():
            if not spelled:
                answers[call_id].phone_rows = []  # LeadFinder asks nothing for a number it cannot read

        def apply(batch: list[str], rows: list[Row] | None) -> None:
            if rows is None:
                return
            by_value: dict[str, list[Row]] = {}
            for row in rows:
                for name in ("Phone", "MobilePhone"):
                    if row.get(name):
                        by_value.setdefault(str(row[name]).casefold(), []).append(row)
            for call_id in batch:
                # What LeadFinder's own query for this call answers: its spellings, newest first, at most 20.
                found = {r["Id"]: r for s in variants[call_id] for r in by_value.get(s.casefold(), [])}
                newest = sorted(found.values(), key=lambda r: str(r.get("LastModifiedDate") or ""), reverse=True)
                answers[call_id].phone_rows = newest[:PHONE_ROWS_LIMIT]

        return [
            _Read(
                self._select("WHERE Phone IN {v} OR MobilePhone IN {v}", v=sorted({s for c in b for s in variants[c]})),
                functools.partial(apply, b),
            )
            for b in self._phone_batches({c: v for c, v in variants.items() if v})
        ]

    def _phone_batches(self, variants: Mapping[str, list[str]]) -> list[list[str]]:
        """Calls grouped so that each group's query stays under ``SOQL_MAX_CHARS``."""
        batches: list[list[str]] = []
        current: list[str] = []
        size = 0
        for call_id, spelled in variants.items():
            # Each spelling appears twice (Phone IN, MobilePhone IN), quoted and comma-separated.
            cost = 2 * sum(len(s) + 3 for s in spelled)
            if current and size + cost > SOQL_MAX_CHARS - 2_000:
                batches.append(current)
                current, size = [], 0
            current.append(call_id)
            size += cost
        if current:
            batches.append(current)
        return batches

    def _needs_search(self, rows: list[Row] | None, phone: str | None) -> bool:
        # LeadFinder searches when no row of its phone query is the same number.
        if rows is None or not spellings(phone, self.finder.region):
            return False
        return not any(self._same(row, phone) for row in rows)

    def _same(self, row: Row, phone: str | None) -> bool:
        return any(same_number(row.get(f), phone, self.finder.region) for f in ("Phone", "MobilePhone"))

    def _search_phones(self, phones: Mapping[str, str | None], answers: dict[str, _Prefetched]) -> None:
        terms: dict[str, list[str]] = {}
        for call_id, phone in phones.items():
            # Only ASCII digits reach the search term, so no SOSL reserved character can.
            digits = digits_only(phone)[-10:]
            if digits:
                terms.setdefault(digits, []).append(call_id)
        ordered = list(terms)
        fields = ", ".join(self.finder.fields)
        for start in range(0, len(ordered), NUMBERS_PER_SEARCH):
            chunk = ordered[start : start + NUMBERS_PER_SEARCH]
            try:
                hits = self.client.search(f"FIND {{{' OR '.join(chunk)}}} IN PHONE FIELDS RETURNING Lead({fields})")
            except SalesforceRejected as exc:
                log.warning("lead_batch.search_refused", code=exc.code, numbers=len(chunk))
                continue  # those calls search on their own
            if len(hits) >= SEARCH_ROW_CAP:
                log.warning("lead_batch.search_capped", numbers=len(chunk), hits=len(hits))
                continue  # some hits may be missing: those calls search on their own
            for term in chunk:
                for call_id in terms[term]:
                    answers[call_id].search_rows = [h for h in hits if self._same(h, phones[call_id])]

    # --- plumbing ---------------------------------------------------------------------------------------

    def _select(self, where: str, **kwargs: Any) -> str:
        # Field names are LeadFinder's (validated API names); values go through format_soql.
        return format_soql(f"SELECT {', '.join(self.finder.fields)} FROM Lead {where}", **kwargs)  # noqa: S608

    def _run(self, reads: list[_Read]) -> None:
        """Send the queries five to a composite request and hand each its rows (every page), or None when
        Salesforce refused that query."""
        for start in range(0, len(reads), QUERIES_PER_COMPOSITE):
            chunk = reads[start : start + QUERIES_PER_COMPOSITE]
            subrequests = [
                {"method": "GET", "url": f"{self.base}/query?{urlencode({'q': r.soql})}", "referenceId": f"q{i}"}
                for i, r in enumerate(chunk)
            ]
            replies = {r.get("referenceId"): r for r in self._read(subrequests)}
            for i, read in enumerate(chunk):
                read.apply(self._rows(replies.get(f"q{i}"), read.soql))

    def _read(self, subrequests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # A composite of queries only reads, so it is safe to send again (the client never retries POSTs).
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                return self.client.composite(subrequests, all_or_none=False)
            except SalesforceUnavailable as exc:
                if attempt == READ_ATTEMPTS:
                    exc.stage = Stage.LOOKUP
                    raise
                log.warning("lead_batch.read_retry", attempt=attempt, code=exc.code)
                time.sleep(0.5 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _rows(self, reply: dict[str, Any] | None, soql: str) -> list[Row] | None:
        if reply is None:
            return None
        status = int(reply.get("httpStatusCode") or 500)
        body = reply.get("body")
        if status >= 300 or not isinstance(body, dict):
            items = body if isinstance(body, list) else [body]
            error = classify_errors(items, status, stage=Stage.LOOKUP)
            log.warning("lead_batch.query_refused", code=error.code, http_status=status)
            return None
        if not body.get("done", True):
            # More than one page (2,000 rows): the client follows the pages of a plain query.
            return self.client.query(soql)
        return list(body.get("records") or [])
