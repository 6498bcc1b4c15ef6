"""Send a ``SyncPlan`` to Salesforce as ONE composite request with ``allOrNone``: all of it or none of it.

A composite request counts as one API call. Upserts keyed by the call id make a redelivered or replayed
call update the same Tasks instead of adding new ones. A Task's ``TaskSubtype`` can only be set when the
Task is created; when the upsert finds the Task already there Salesforce refuses the field, so the
request is sent once more without it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC
from email.utils import format_datetime
from typing import Any, Protocol
from urllib.parse import quote

import structlog

from worker.errors import SalesforceRejected, SyncError
from worker.plan import RecordWrite, Ref, SyncPlan
from worker.salesforce.client import composite_error

log = structlog.get_logger(__name__)


class CompositeClient(Protocol):
    def composite(self, subrequests: list[dict[str, Any]], *, all_or_none: bool) -> list[dict[str, Any]]: ...


class CompositeWriter:
    """Applies plans through ``client.composite``; returns the Salesforce ids written, by plan ref."""

    def __init__(self, client: CompositeClient, *, api_version: str) -> None:
        self.client = client
        self.base = f"/services/data/v{api_version}"

    def apply(self, plan: SyncPlan) -> dict[str, str]:
        writes = list(plan.writes)
        try:
            return self._send(writes)
        except SalesforceRejected as exc:
            if not refused_for_create_only(exc, writes):
                raise
            log.info("salesforce.task_exists_resend", call_id=plan.call_id)
            trimmed = [without_create_only(w) for w in writes]
            return self._send(trimmed)

    def subrequests(self, writes: list[RecordWrite]) -> list[dict[str, Any]]:
        """The composite subrequests for ``writes`` (public for dry runs and tests)."""
        return [self._subrequest(w) for w in writes]

    def _send(self, writes: list[RecordWrite]) -> dict[str, str]:
        results = self.client.composite(self.subrequests(writes), all_or_none=True)
        error = composite_error(results)
        if error is not None:
            raise error
        by_ref = {r.get("referenceId"): r for r in results}
        ids: dict[str, str] = {}
        for write in writes:
            body = by_ref.get(write.ref, {}).get("body")
            record_id = body.get("id") if isinstance(body, dict) else None
            ids[write.ref] = str(record_id or write.record_id or "")
        return ids

    def _subrequest(self, write: RecordWrite) -> dict[str, Any]:
        sub: dict[str, Any] = {
            "method": HTTP_METHOD[write.method],
            "url": f"{self.base}/sobjects/{write.sobject}{_path(write)}",
            "referenceId": write.ref,
            "body": {k: _render(v) for k, v in write.fields.items()},
        }
        if write.unmodified_since is not None:
            # A record changed in Salesforce since we read it fails (412) instead of being overwritten.
            since = format_datetime(write.unmodified_since.astimezone(UTC), usegmt=True)
            sub["httpHeaders"] = {"If-Unmodified-Since": since}
        return sub


HTTP_METHOD = {"create": "POST", "update": "PATCH", "upsert": "PATCH"}


def _path(write: RecordWrite) -> str:
    """The part of the sObject URL after the object name, per write method."""
    if write.method == "update" and write.record_id:
        return f"/{quote(write.record_id, safe='')}"
    if write.method == "upsert" and write.external_id is not None:
        field, value = write.external_id
        return f"/{field}/{quote(value, safe='')}"
    if write.method == "create":
        return ""
    raise ValueError(f"cannot send write {write.ref}: method {write.method}")


def _render(value: Any) -> Any:
    return f"@{{{value.name}.id}}" if isinstance(value, Ref) else inert_text(value)


def inert_text(value: Any) -> Any:
    """Data that can never read as a composite reference: Salesforce resolves ``@{ref.path}`` anywhere in a
    subrequest body (collections included), so "@{lead.id}" said on a call would be replaced and "@{x.id}"
    would fail the whole request. A zero-width space after "@" breaks the syntax, not the text."""
    return value.replace("@{", "@\u200b{") if isinstance(value, str) else value


def refused_for_create_only(error: SyncError, writes: Iterable[RecordWrite]) -> bool:
    """``error`` refused only a create-only field (``TaskSubtype``) one of ``writes`` carries: the record
    exists already, and the same write without that field will go through."""
    if error.code != "INVALID_FIELD_FOR_INSERT_UPDATE":
        return False
    carried = {f for w in writes for f in w.create_only if f in w.fields}
    named = set(error.details.get("fields") or [])
    return bool(carried) and (bool(carried & named) or any(f in error.message for f in carried))


def without_create_only(write: RecordWrite) -> RecordWrite:
    return replace(
        write, fields={k: v for k, v in write.fields.items() if k not in write.create_only}, create_only=frozenset()
    )
