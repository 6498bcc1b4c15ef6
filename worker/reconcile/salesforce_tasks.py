"""The audit's Salesforce side: the Tasks that carry given external ids, read in a few SOQL queries, and
the removal of duplicate copies (``crm-sync replay --dedupe``).

Ids go into the query as SOQL string literals; only Twenty2 call ids (optionally with the follow-up suffix)
are accepted, so nothing else can travel into SOQL. A query's ``IN`` list is filled up to ``QUERY_CHARS``
characters (the query travels in the URL of a GET, which Salesforce caps at 16,384 bytes): about 280
external ids a query (24-character call ids), so a thousand calls (two external ids each) cost eight
requests (measured in the chaos run).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from simple_salesforce.format import format_soql

from worker.plan import CALLBACK_SUFFIX
from worker.salesforce.client import SalesforceClient
from worker.twenty2.models import is_call_id

#: Longest ``IN`` list (characters) one query carries.
QUERY_CHARS = 9000


@dataclass
class TaskReading:
    """Task ids by external id (oldest first), and how many Salesforce requests reading them took."""

    by_external_id: dict[str, list[str]]
    requests: int


def _valid(external_id: str) -> bool:
    base = external_id.removesuffix(CALLBACK_SUFFIX)
    return is_call_id(base)


def batches(external_ids: Iterable[str], *, max_chars: int = QUERY_CHARS) -> Iterator[list[str]]:
    """External ids cut into ``IN`` lists of at most ``max_chars`` characters each (ids quoted)."""
    batch: list[str] = []
    size = 0
    for external_id in dict.fromkeys(external_ids):
        if not _valid(external_id):
            raise ValueError(f"not a call id: {external_id[:40]!r}")
        cost = len(external_id) + 3  # quotes and comma
        if batch and size + cost > max_chars:
            yield batch
            batch, size = [], 0
        batch.append(external_id)
        size += cost
    if batch:
        yield batch


def read_tasks(salesforce: SalesforceClient, field: str, external_ids: Sequence[str]) -> TaskReading:
    """Every Task whose ``field`` is one of ``external_ids``; one query per ``batches`` list (plus a page
    request per 2,000 Tasks)."""
    found: dict[str, list[str]] = {}
    requests = 0
    for batch in batches(external_ids):
        query = f"SELECT Id, {field} FROM Task WHERE {field} IN {{ids}} ORDER BY CreatedDate ASC, Id ASC"  # noqa: S608
        soql = format_soql(query, ids=batch)
        records = salesforce.query(soql)
        requests += 1 + len(records) // 2000
        for record in records:
            value = record.get(field)
            if value:
                found.setdefault(str(value), []).append(str(record["Id"]))
    return TaskReading(found, requests)


def dedupe(salesforce: SalesforceClient, field: str, call_id: str, *, keep: Iterable[str] = ()) -> list[str]:
    """Delete the extra copies of the call's Tasks (call Task and follow-up Task), keeping per external id
    the one the ledger recorded (``keep``), else the oldest. Returns the ids deleted."""
    keep_ids = set(keep)
    reading = read_tasks(salesforce, field, [call_id, call_id + CALLBACK_SUFFIX])
    deleted: list[str] = []
    for ids in reading.by_external_id.values():
        if len(ids) < 2:
            continue
        kept = next((i for i in ids if i in keep_ids), ids[0])
        for task_id in ids:
            if task_id != kept:
                salesforce.delete("Task", task_id)
                deleted.append(task_id)
    return deleted
