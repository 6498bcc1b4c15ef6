"""What the callback runner reads and writes outside Redis: the follow-up Task and the Lead in Salesforce,
the call logs of Twenty2. Thin: every decision is in ``worker.autocall.rules``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from simple_salesforce import format_soql

from worker.autocall.rules import LeadFacts, TaskFacts
from worker.phones import same_number
from worker.salesforce.client import SalesforceClient
from worker.twenty2.client import Twenty2Client
from worker.twenty2.models import CallInfo

_SF_ID = re.compile(r"[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?")
_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _sf_time(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value)
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


#: The follow-up Task's fields the callback rules read (``task_facts``).
TASK_FIELDS = "Id, Status, IsClosed, ReminderDateTime"
#: Ids per batched Task query: the query travels in the URI (GET), and 200 quoted 18-character ids keep it
#: near 6,000 characters encoded, well under the REST URI limit (16,384) and SOQL's 100,000.
TASK_IDS_PER_QUERY = 200


def task_facts(row: dict[str, Any]) -> TaskFacts:
    """The Task-to-facts rule, in one place: closed when Salesforce says so (or its status is Completed);
    its due time is ``ReminderDateTime`` (what the follow-up Task is written with, ``worker.plan``)."""
    return TaskFacts(
        status=str(row.get("Status") or ""),
        is_closed=bool(row.get("IsClosed")) or row.get("Status") == "Completed",
        due=_sf_time(row.get("ReminderDateTime")),
    )


def _quoted_id(value: str) -> str:
    if not _SF_ID.fullmatch(value):
        raise ValueError("not a Salesforce id")
    return f"'{value}'"


class SalesforceFacts:
    """The follow-up Task and the Lead, read fresh (never from the Lead cache: a rep's change must count)."""

    def __init__(self, client: SalesforceClient, *, opt_out_fields: Iterable[str], zone_field: str = "") -> None:
        self.client = client
        self.opt_out_fields = tuple(f for f in opt_out_fields if _FIELD.fullmatch(f))
        self.zone_field = zone_field if _FIELD.fullmatch(zone_field or "") else ""

    def task(self, task_id: str) -> TaskFacts | None:
        soql = f"SELECT {TASK_FIELDS} FROM Task WHERE Id = {_quoted_id(task_id)}"  # noqa: S608 - a checked id
        rows = self.client.query(soql)
        return task_facts(rows[0]) if rows else None

    def tasks(self, task_ids: Iterable[str]) -> dict[str, TaskFacts]:
        """Many Tasks at once: one ``WHERE Id IN (…)`` query per ``TASK_IDS_PER_QUERY`` ids. Keyed by the
        15-character id (an 18-character one and its 15-character form meet there); a Task that no longer
        exists is absent. Ids that are not Salesforce ids are left out of the query (and so absent)."""
        wanted = list(dict.fromkeys(i for i in task_ids if _SF_ID.fullmatch(i)))
        found: dict[str, TaskFacts] = {}
        for start in range(0, len(wanted), TASK_IDS_PER_QUERY):
            batch = wanted[start : start + TASK_IDS_PER_QUERY]
            soql = format_soql(f"SELECT {TASK_FIELDS} FROM Task WHERE Id IN {{ids}}", ids=batch)  # noqa: S608
            for row in self.client.query(soql):
                if row.get("Id"):
                    found[str(row["Id"])[:15]] = task_facts(row)
        return found

    def lead(self, lead_id: str) -> tuple[LeadFacts | None, ZoneInfo | None]:
        """The Lead's facts, and its own zone when the settings name a zone field holding a valid one."""
        fields = ["Id", "IsConverted", "Status", *self.opt_out_fields]
        if self.zone_field:
            fields.append(self.zone_field)
        rows = self.client.query(
            f"SELECT {', '.join(dict.fromkeys(fields))} FROM Lead WHERE Id = {_quoted_id(lead_id)}"  # noqa: S608 - checked
        )
        if not rows:
            return None, None
        row = rows[0]
        zone: ZoneInfo | None = None
        if self.zone_field and isinstance(row.get(self.zone_field), str):
            try:
                zone = ZoneInfo(row[self.zone_field].strip())
            except (ZoneInfoNotFoundError, ValueError):
                zone = None
        facts = LeadFacts(
            is_converted=bool(row.get("IsConverted")),
            status=str(row.get("Status") or ""),
            opted_out=tuple(f for f in self.opt_out_fields if row.get(f) is True),
        )
        return facts, zone

    def complete_task(self, task_id: str, description: str) -> None:
        self.client.update("Task", task_id, {"Status": "Completed", "Description": description})

    def task_description(self, task_id: str) -> str:
        soql = f"SELECT Id, Description FROM Task WHERE Id = {_quoted_id(task_id)}"  # noqa: S608 - a checked id
        rows = self.client.query(soql)
        return str(rows[0].get("Description") or "") if rows else ""

    def note_on_task(self, task_id: str, description: str) -> None:
        self.client.update("Task", task_id, {"Description": description})


@dataclass(frozen=True)
class CallLogView:
    """One sweep's read of ``GET /call/logs`` (newest first, a few pages): the runner's questions about it."""

    calls: tuple[CallInfo, ...]

    @classmethod
    def read(cls, client: Twenty2Client, *, max_pages: int) -> CallLogView:
        calls: list[CallInfo] = []
        for page in client.iter_call_logs(max_pages=max_pages):
            calls.extend(page.calls)
        return cls(tuple(calls))

    def placed_since(self, *, phone: str, agent_id: str, since: datetime, skew_seconds: float = 120) -> CallInfo | None:
        """A call to ``phone`` from ``agent_id`` that started (or is queued) since ``since``: a trigger whose
        answer was lost, found. A queued call has no start time yet: it counts."""
        for call in self.calls:
            if call.agent_id != agent_id or not same_number(call.callee_phone or "", phone):
                continue
            if call.started_at is None or call.started_at.timestamp() >= since.timestamp() - skew_seconds:
                return call
        return None

    def newer_call_reached(self, *, phone: str, after: datetime, except_ids: Iterable[str]) -> CallInfo | None:
        """A connected call to ``phone`` that started after ``after`` (not one of ``except_ids``)."""
        skip = set(except_ids)
        for call in self.calls:
            if call.call_id in skip or not call.connected or not same_number(call.callee_phone or "", phone):
                continue
            if call.started_at is not None and call.started_at > after:
                return call
        return None

    def ended(self, call_id: str) -> bool | None:
        """True when the logs show ``call_id`` final, False when still running, None when not listed."""
        for call in self.calls:
            if call.call_id == call_id:
                return call.is_final
        return None
