"""The three-way audit's comparison (pure): Twenty2's calls, the ledger's records, Salesforce's Tasks.

Inputs, read by ``worker.reconcile.audit_run``: the calls ``GET /call/logs`` listed (all of them, and the
window's start), the ledger records of those calls and of the window, and for every call id the ids of the
Tasks that carry its external id (the call Task: the call id; the follow-up Task: call id + ``-callback``).

Findings, one per call and kind, each with the command that fixes it:

==================== ================================================================ =========================
kind                 what it means                                                    fix
==================== ================================================================ =========================
``not_in_ledger``    a finished call Twenty2 has that the ledger never heard of        ``crm-sync replay ID``
``task_missing``     the ledger says synced, no call Task has the call's external id   ``crm-sync replay ID``
``task_duplicated``  more than one call Task has the call's external id                ``crm-sync replay --dedupe ID``
``followup_missing`` the ledger recorded a follow-up Task, none has its external id    ``crm-sync replay ID``
``followup_duplicated`` more than one follow-up Task for the call                      ``crm-sync replay --dedupe ID``
``ledger_only``      a ledger record (in the window) whose call Twenty2 does not list  none: inspect it
==================== ================================================================ =========================

Calls that ended less than ``settle`` seconds before the audit are not judged yet (their webhook may be on
its way); calls not final yet are not judged either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from worker.ledger import Record, State
from worker.plan import CALLBACK_SUFFIX
from worker.reconcile.decide import call_time
from worker.twenty2.models import CallInfo

#: The ledger's ref of the follow-up Task write (a ``SyncPlan`` write ref).
FOLLOWUP_REF = "followUp"


class Kind(StrEnum):
    NOT_IN_LEDGER = "not_in_ledger"
    TASK_MISSING = "task_missing"
    TASK_DUPLICATED = "task_duplicated"
    FOLLOWUP_MISSING = "followup_missing"
    FOLLOWUP_DUPLICATED = "followup_duplicated"
    LEDGER_ONLY = "ledger_only"


#: Kinds that mean "a finished call is not (once) in Salesforce": the operator's alert.
MISSING_IN_SALESFORCE = frozenset({Kind.NOT_IN_LEDGER, Kind.TASK_MISSING, Kind.FOLLOWUP_MISSING})
#: Kind → the replay flags that fix it (None: no command fixes it; ops inspect it).
FIX_FLAGS: Mapping[Kind, str | None] = {
    Kind.NOT_IN_LEDGER: "",
    Kind.TASK_MISSING: "",
    Kind.FOLLOWUP_MISSING: "",
    Kind.TASK_DUPLICATED: "--dedupe ",
    Kind.FOLLOWUP_DUPLICATED: "--dedupe ",
    Kind.LEDGER_ONLY: None,
}
_TEXT: Mapping[Kind, str] = {
    Kind.NOT_IN_LEDGER: "finished in Twenty2 ({status}), unknown to the ledger: its webhook never came",
    Kind.TASK_MISSING: "ledger says synced; no call Task with its external id in Salesforce (deleted?)",
    Kind.TASK_DUPLICATED: "{count} call Tasks with its external id in Salesforce",
    Kind.FOLLOWUP_MISSING: "ledger recorded a follow-up Task; none with its external id in Salesforce",
    Kind.FOLLOWUP_DUPLICATED: "{count} follow-up Tasks with its external id in Salesforce",
    Kind.LEDGER_ONLY: "ledger has it ({state}); Twenty2 does not list the call",
}


@dataclass(frozen=True)
class Finding:
    kind: Kind
    call_id: str
    detail: str
    #: Salesforce ids of the Tasks concerned (duplicates: all of them, oldest first as listed).
    task_ids: tuple[str, ...] = ()

    @property
    def fix(self) -> str | None:
        """The command that fixes this finding, or None when no command does."""
        flags = FIX_FLAGS[self.kind]
        return None if flags is None else f"crm-sync replay {flags}{self.call_id}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "call_id": self.call_id,
            "detail": self.detail,
            "task_ids": list(self.task_ids),
            "fix": self.fix,
        }


@dataclass(frozen=True)
class AuditReport:
    since: datetime
    now: datetime
    listed: int
    compared: int
    settling: int
    in_progress: int
    findings: tuple[Finding, ...] = field(default=())

    def by_kind(self) -> dict[str, int]:
        found = dict.fromkeys((k.value for k in Kind), 0)
        for finding in self.findings:
            found[finding.kind.value] += 1
        return found

    @property
    def missing_in_salesforce(self) -> int:
        return sum(1 for f in self.findings if f.kind in MISSING_IN_SALESFORCE)

    def summary(self) -> dict[str, Any]:
        """What the metric, the log event, the console and the alert read."""
        return {
            "since": self.since.isoformat(timespec="seconds"),
            "at": self.now.isoformat(timespec="seconds"),
            "at_ts": self.now.timestamp(),
            "listed": self.listed,
            "compared": self.compared,
            "settling": self.settling,
            "in_progress": self.in_progress,
            "findings": len(self.findings),
            "missing_in_salesforce": self.missing_in_salesforce,
            "by_kind": self.by_kind(),
        }

    def as_dict(self) -> dict[str, Any]:
        return {**self.summary(), "items": [f.as_dict() for f in self.findings]}


def task_ids_wanted(call_ids: Iterable[str]) -> list[str]:
    """The external ids to read Tasks by: each call's call Task and follow-up Task."""
    wanted: list[str] = []
    for call_id in call_ids:
        wanted += [call_id, call_id + CALLBACK_SUFFIX]
    return wanted


def compare(
    listed: Sequence[CallInfo],
    records: Mapping[str, Record],
    tasks: Mapping[str, Sequence[str]],
    *,
    since: datetime,
    now: datetime,
    settle: timedelta = timedelta(0),
    window_records: Iterable[Record] = (),
) -> AuditReport:
    """Compare the three systems for the calls of the window. ``records``: ledger records by call id (those
    of the listed calls at least); ``tasks``: Task ids by external id (absent = none); ``window_records``:
    the ledger's records first seen in the window (for ``ledger_only``)."""
    findings: list[Finding] = []
    listed_ids = {call.call_id for call in listed}
    compared = settling = in_progress = 0
    judged: set[str] = set()
    for call in listed:
        if call.call_id in judged:
            continue
        when = call_time(call)
        if when is not None and when < since:
            continue
        judged.add(call.call_id)
        if not call.is_final:
            in_progress += 1
            continue
        if when is not None and when > now - settle:
            settling += 1
            continue
        compared += 1
        findings += _judge(call, records.get(call.call_id), tasks)
    for record in window_records:
        if record.call_id not in listed_ids:
            findings.append(
                Finding(Kind.LEDGER_ONLY, record.call_id, _TEXT[Kind.LEDGER_ONLY].format(state=record.state.value))
            )
    findings.sort(key=lambda f: (list(Kind).index(f.kind), f.call_id))
    return AuditReport(
        since=since,
        now=now,
        listed=len(listed_ids),
        compared=compared,
        settling=settling,
        in_progress=in_progress,
        findings=tuple(findings),
    )


def _judge(call: CallInfo, record: Record | None, tasks: Mapping[str, Sequence[str]]) -> list[Finding]:
    call_id = call.call_id
    if record is None:
        return [Finding(Kind.NOT_IN_LEDGER, call_id, _TEXT[Kind.NOT_IN_LEDGER].format(status=call.status or "ended"))]
    found: list[Finding] = []
    call_tasks = tuple(tasks.get(call_id, ()))
    followups = tuple(tasks.get(call_id + CALLBACK_SUFFIX, ()))
    if len(call_tasks) > 1:
        found.append(
            Finding(
                Kind.TASK_DUPLICATED, call_id, _TEXT[Kind.TASK_DUPLICATED].format(count=len(call_tasks)), call_tasks
            )
        )
    if len(followups) > 1:
        found.append(
            Finding(
                Kind.FOLLOWUP_DUPLICATED,
                call_id,
                _TEXT[Kind.FOLLOWUP_DUPLICATED].format(count=len(followups)),
                followups,
            )
        )
    if record.state is not State.SYNCED:
        return found  # skipped: nothing was to be written; queued/syncing/failed: on its way or with ops
    if not call_tasks:  # every synced call wrote its call Task
        found.append(Finding(Kind.TASK_MISSING, call_id, _TEXT[Kind.TASK_MISSING]))
    if not followups and record.salesforce_ids.get(FOLLOWUP_REF):
        found.append(Finding(Kind.FOLLOWUP_MISSING, call_id, _TEXT[Kind.FOLLOWUP_MISSING]))
    return found
