"""Read the Leads of many calls in a handful of requests: what ``LeadFinder`` would ask call by call.

``LeadReader.read(ids, phones)`` answers, per key (a call id), what LeadFinder's own queries would return:

- the Leads named by id: ``SELECT … FROM Lead WHERE Id IN (…)``, 500 ids a query;
- for keys without an id, or whose id named no Lead, the Leads holding any spelling of the number
  (``phones.spellings``): ``… WHERE Phone IN (…) OR MobilePhone IN (…)``, as many numbers as fit in ~90,000
  characters (SOQL allows 100,000);
- for numbers no spelling matched: Salesforce's phone search with OR-ed terms,
  ``FIND {n1 OR n2 …} IN PHONE FIELDS``, 250 numbers a search (under the 4,000 characters beyond which
  SOSL drops its operators).

The queries travel five to a composite request (one API call: a composite holds at most 5 query or
collection subrequests; the SOQL sits in the request body, clear of the REST URI length limit); SOSL cannot
go into a composite, so each search is one request. For a batch of calls that is usually one composite and,
when some number matched no spelling, one search.

Two users: the bulk path (``worker.salesforce.lead_batch``) and the streaming path's read-ahead
(``LeadFinder``), which also learns from it which numbers no Lead has.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlencode

import structlog
from simple_salesforce import format_soql

from worker import retry as retries
from worker.errors import SalesforceRejected, SalesforceUnavailable, Stage
from worker.phones import digits_only, e164, spellings
from worker.salesforce.client import classify_errors

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

Row = dict[str, Any]
K = TypeVar("K", bound=Hashable)


class ReadClient(Protocol):
    def composite(self, subrequests: list[dict[str, Any]], *, all_or_none: bool) -> list[dict[str, Any]]: ...

    def query(self, soql: str) -> list[dict[str, Any]]: ...

    def search(self, sosl: str) -> list[dict[str, Any]]: ...


@dataclass
class LeadReads:
    """What was read for one call. Each list is None when it was not read (not needed, or refused)."""

    lead_id: str | None = None
    id_rows: list[Row] | None = None  # the Lead named by id: [row] or [] (no such Lead)
    phone_rows: list[Row] | None = None  # rows holding a spelling of the number, newest first, at most 20
    search_rows: list[Row] | None = None  # phone-search hits that are the same number

    def rows(self) -> list[Row]:
        return [*(self.id_rows or ()), *(self.phone_rows or ()), *(self.search_rows or ())]

    def no_lead_for_number(self, region: str, phone: str | None) -> bool:
        """True when both the exact spellings and the phone search were read and found no Lead with the number."""
        number = e164(phone, region)
        if number is None or self.phone_rows is None or self.search_rows is None:
            return False
        return not _holds(self.phone_rows, number, region) and not _holds(self.search_rows, number, region)


@dataclass(frozen=True)
class _Read:
    """One SOQL query of the bulk read and what to do with its rows (None: Salesforce refused it)."""

    soql: str
    apply: Callable[[list[Row] | None], None]


class LeadReader(Generic[K]):
    """Reads Leads for many keys at once with ``client``; field names are the caller's (validated API names)."""

    def __init__(self, client: ReadClient, *, fields: list[str], region: str, api_version: str) -> None:
        self.client = client
        self.fields = fields
        self.region = region
        self.base = f"/services/data/v{api_version}"

    def read(self, ids: Mapping[K, str], phones: Mapping[K, str | None]) -> dict[K, LeadReads]:
        """``ids``: the Lead id each key names (valid ids only); ``phones``: each key's number. Raises a
        ``SyncError`` only when the reads themselves fail; a refused query leaves its lists None."""
        answers: dict[K, LeadReads] = {key: LeadReads() for key in {*ids, *phones}}
        by_number = {key: phone for key, phone in phones.items() if key not in ids}
        # The ids and the numbers of keys without an id go out together (usually one composite request);
        # the numbers of keys whose id named no Lead follow.
        self._run([*self._id_reads(ids, answers), *self._phone_reads(by_number, answers)])
        unknown_ids = {key: phones.get(key) for key in ids if answers[key].id_rows == []}
        self._run(self._phone_reads(unknown_ids, answers))
        by_number.update(unknown_ids)
        self._search({k: p for k, p in by_number.items() if self._needs_search(answers[k].phone_rows, p)}, answers)
        return answers

    # --- by id ------------------------------------------------------------------------------------------

    def _id_reads(self, wanted: Mapping[K, str], answers: dict[K, LeadReads]) -> list[_Read]:
        unique = list(dict.fromkeys(wanted.values()))

        def apply(batch: list[str], rows: list[Row] | None) -> None:
            if rows is None:
                return  # this batch failed: those calls ask LeadFinder's own way
            by_id = {str(r["Id"])[:15]: r for r in rows if r.get("Id")}  # a 15- and 18-character id meet here
            for key, lead_id in wanted.items():
                if lead_id in batch:
                    answers[key].lead_id = lead_id
                    row = by_id.get(lead_id[:15])
                    answers[key].id_rows = [row] if row is not None else []

        return [
            _Read(self._select("WHERE Id IN {ids}", ids=batch), functools.partial(apply, batch))
            for batch in (unique[i : i + IDS_PER_QUERY] for i in range(0, len(unique), IDS_PER_QUERY))
        ]

    # --- by phone ---------------------------------------------------------------------------------------

    def _phone_reads(self, phones: Mapping[K, str | None], answers: dict[K, LeadReads]) -> list[_Read]:
        variants = {key: spellings(phone, self.region) for key, phone in phones.items()}
        for key, spelled in variants.items():
            if not spelled:
                answers[key].phone_rows = []  # LeadFinder asks nothing for a number it cannot read

        def apply(batch: list[K], rows: list[Row] | None) -> None:
            if rows is None:
                return
            by_value: dict[str, list[Row]] = {}
            for row in rows:
                for name in ("Phone", "MobilePhone"):
                    if row.get(name):
                        by_value.setdefault(str(row[name]).casefold(), []).append(row)
            for key in batch:
                # What LeadFinder's own query for this call answers: its spellings, newest first, at most 20.
                found = {r["Id"]: r for s in variants[key] for r in by_value.get(s.casefold(), [])}
                newest = sorted(found.values(), key=lambda r: str(r.get("LastModifiedDate") or ""), reverse=True)
                answers[key].phone_rows = newest[:PHONE_ROWS_LIMIT]

        return [
            _Read(
                self._select("WHERE Phone IN {v} OR MobilePhone IN {v}", v=sorted({s for k in b for s in variants[k]})),
                functools.partial(apply, b),
            )
            for b in self._phone_batches({k: v for k, v in variants.items() if v})
        ]

    def _phone_batches(self, variants: Mapping[K, list[str]]) -> list[list[K]]:
        """Keys grouped so that each group's query stays under ``SOQL_MAX_CHARS``."""
        batches: list[list[K]] = []
        current: list[K] = []
        size = 0
        for key, spelled in variants.items():
            # Each spelling appears twice (Phone IN, MobilePhone IN), quoted and comma-separated.
            cost = 2 * sum(len(s) + 3 for s in spelled)
            if current and size + cost > SOQL_MAX_CHARS - 2_000:
                batches.append(current)
                current, size = [], 0
            current.append(key)
            size += cost
        if current:
            batches.append(current)
        return batches

    def _needs_search(self, rows: list[Row] | None, phone: str | None) -> bool:
        # LeadFinder searches when no row of its phone query is the same number.
        number = e164(phone, self.region)
        if rows is None or number is None:
            return False
        return not _holds(rows, number, self.region)

    def _search(self, phones: Mapping[K, str | None], answers: dict[K, LeadReads]) -> None:
        terms: dict[str, list[K]] = {}
        for key, phone in phones.items():
            # Only ASCII digits reach the search term, so no SOSL reserved character can.
            digits = digits_only(phone)[-10:]
            if digits:
                terms.setdefault(digits, []).append(key)
        ordered = list(terms)
        fields = ", ".join(self.fields)
        for start in range(0, len(ordered), NUMBERS_PER_SEARCH):
            chunk = ordered[start : start + NUMBERS_PER_SEARCH]
            try:
                hits = self.client.search(f"FIND {{{' OR '.join(chunk)}}} IN PHONE FIELDS RETURNING Lead({fields})")
            except SalesforceRejected as exc:
                log.warning("lead_reads.search_refused", code=exc.code, numbers=len(chunk))
                continue  # those calls search on their own
            if len(hits) >= SEARCH_ROW_CAP:
                log.warning("lead_reads.search_capped", numbers=len(chunk), hits=len(hits))
                continue  # some hits may be missing: those calls search on their own
            by_number: dict[str, list[Row]] = {}
            for hit in hits:
                for hit_number in _numbers(hit, self.region):
                    by_number.setdefault(hit_number, []).append(hit)
            for term in chunk:
                for key in terms[term]:
                    number = e164(phones[key], self.region)
                    answers[key].search_rows = list(by_number.get(number, [])) if number else []

    # --- plumbing ---------------------------------------------------------------------------------------

    def _select(self, where: str, **kwargs: Any) -> str:
        # Field names are the caller's (validated API names); values go through format_soql.
        return format_soql(f"SELECT {', '.join(self.fields)} FROM Lead {where}", **kwargs)  # noqa: S608

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
        retrying = retries.SALESFORCE_READS.retrying(
            SalesforceUnavailable,
            event="lead_reads.read_retry",
        )
        try:
            return retrying(self.client.composite, subrequests, all_or_none=False)
        except SalesforceUnavailable as exc:
            exc.stage = Stage.LOOKUP
            raise

    def _rows(self, reply: dict[str, Any] | None, soql: str) -> list[Row] | None:
        if reply is None:
            return None
        status = int(reply.get("httpStatusCode") or 500)
        body = reply.get("body")
        if status >= 300 or not isinstance(body, dict):
            items = body if isinstance(body, list) else [body]
            error = classify_errors(items, status, stage=Stage.LOOKUP)
            log.warning("lead_reads.query_refused", code=error.code, http_status=status)
            return None
        if not body.get("done", True):
            # More than one page (2,000 rows): the client follows the pages of a plain query.
            return self.client.query(soql)
        return list(body.get("records") or [])


def _holds(rows: list[Row], number: str, region: str) -> bool:
    """Whether some row has ``number`` (E.164) as its Phone or MobilePhone."""
    return any(number in _numbers(row, region) for row in rows)


def _numbers(row: Row, region: str) -> set[str]:
    """The row's numbers (Phone, MobilePhone) in E.164."""
    return {n for n in (e164(row.get("Phone"), region), e164(row.get("MobilePhone"), region)) if n}
