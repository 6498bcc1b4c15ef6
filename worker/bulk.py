"""Bulk sync: many call ids (replays, backfills) for a few Salesforce API calls per thousand calls.

``BulkSync(runtime).run(call_ids, source=...)`` works through the ids in chunks (default 1,000). Per chunk:

1. **accept** each call into the ledger (``replay``: forced, as the old re-queue did; ``backfill``: only new
   or failed calls, so running a backfill twice does nothing the second time), take its per-call lock
   (``crm-sync:lock:{call_id}``, the streaming worker's; a call another worker holds is left to it and
   nothing is recorded for it), mark it ``syncing``. A keeper thread renews the locks while the chunk runs;
2. **fetch** every call's detail and transcript from Twenty2 on a small thread pool; the client's shared
   rate limit keeps this process and every worker together within Twenty2's 60 requests a minute;
3. **read the Leads** in bulk (``LeadBatch``: LeadFinder's rules on rows read a few composite requests at a
   time), after the fetch, so Lead values are as fresh as possible when the writes go out;
4. **plan** each call with the pure ``build_plan``. Calls of one Lead are planned in call order, each on the
   values the one before would have left, and their Lead changes are merged into one update; calls of one
   unknown number create ONE Lead (the earliest call creates it, the others update it);
5. **write** with sObject Collections in composite requests (``CollectionWriter``, up to 1,000 records per
   API call, ``allOrNone`` false): phase 1 the Lead creates; phase 2 the Lead updates and the call and
   follow-up Task upserts, whose ``WhoId`` is the Lead phase 1 created. Task upserts refused only because
   the Task exists (``TaskSubtype``) are sent again without it. A call whose Lead turned out converted
   (``CANNOT_UPDATE_CONVERTED_LEAD``) is looked up, planned and written once more, as the streaming path does;
6. **record** each call as the streaming path does: every record written → ``synced`` with the ids; else
   the first refused record's error → ``record_error`` (retry later, held, failed or skipped). Twenty2 and
   plan errors are recorded per call the same way. A failed call is recorded, never dropped.

Trade-offs against the streaming path (one all-or-none composite per call):

- **Not all-or-none per call.** A call whose Task is refused may still have its Lead updated (and the other
  way round); it is recorded failed with the reason, and a replay completes it (the writes are upserts and
  Lead values, so sending them again is safe).
- **No conditional update.** Collections carry no per-record ``If-Unmodified-Since``, so a Lead changed by
  someone else between the bulk read and the write is overwritten with values planned on the old ones. The
  window is kept short by reading the Leads only after the (slow, rate-limited) Twenty2 fetch, right
  before planning and writing.
- **Locks are held for the whole chunk.** Streaming workers skip calls a bulk run holds (their task ends
  ``busy``; the bulk run records the outcome). A process that dies leaves its locks to expire (5 minutes)
  and its calls ``syncing``; beat's stale sweep re-queues them.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import requests
import structlog
from redis.lock import Lock

from worker.errors import PermanentError, Stage, SyncError
from worker.ledger import RESOLVED, State
from worker.phones import e164
from worker.pipeline import STALE_TARGET_CODES, Services, SyncOutcome
from worker.plan import LeadTarget, PlanContext, RecordWrite, Ref, SyncPlan, build_plan, call_reference_time, lead_phone
from worker.runtime import Runtime
from worker.salesforce.bulk_writer import CollectionWriter, RecordResult
from worker.salesforce.lead_batch import LeadBatch
from worker.tasks import LOCK_SECONDS, record_error
from worker.twenty2.models import CallDetail

log = structlog.get_logger(__name__)

DEFAULT_CHUNK = 1_000
DEFAULT_THREADS = 8
#: Ledger states a backfill leaves alone: already done, or on its way through the workers.
_LEFT_ALONE = {State.SYNCED: "resolved", State.SKIPPED: "resolved", State.QUEUED: "pending", State.SYNCING: "pending"}

#: Outcomes in a report: the ledger state recorded, or why a call was not synced by this run.
OUTCOMES = ("synced", "skipped", "queued", "failed", "busy", "resolved", "pending")


@dataclass
class BulkReport:
    """What one run did. ``outcomes``: synced / skipped / queued (retry later or held) / failed (recorded),
    busy (another worker held the call), resolved / pending (backfill: already done / already queued)."""

    requested: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    salesforce_requests: int = 0
    twenty2_fetches: int = 0
    task_subtype_resends: int = 0
    lookups_delegated: int = 0
    chunks: int = 0
    elapsed: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "outcomes": {name: self.outcomes.get(name, 0) for name in OUTCOMES},
            "salesforce_requests": self.salesforce_requests,
            "twenty2_fetches": self.twenty2_fetches,
            "task_subtype_resends": self.task_subtype_resends,
            "lookups_delegated": self.lookups_delegated,
            "chunks": self.chunks,
            "elapsed_seconds": round(self.elapsed, 3),
        }


@dataclass
class _Call:
    """One call going through a chunk: its detail, plan, written ids, or the error that stopped it."""

    call_id: str
    detail: CallDetail | None = None
    transcript: str | None = None
    plan: SyncPlan | None = None
    error: SyncError | None = None
    ids: dict[str, str] = field(default_factory=dict)
    results: dict[str, RecordResult] = field(default_factory=dict)
    synced: bool = False  # every record written


@dataclass
class _Group:
    """Calls that write to one Lead/Contact (``target``), or to one new Lead (``target`` None), in call order."""

    target: LeadTarget | None
    calls: list[_Call]


OnPhase = Callable[[str], None]
OnDone = Callable[[str, str], None]


class BulkSync:
    """Bulk mode over a ``Runtime`` (its Redis, ledger, settings and API clients)."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        chunk_size: int = DEFAULT_CHUNK,
        threads: int = DEFAULT_THREADS,
        on_phase: OnPhase | None = None,
        on_done: OnDone | None = None,
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.chunk_size = max(1, chunk_size)
        self.threads = max(1, threads)
        self.on_phase = on_phase or (lambda _text: None)
        self.on_done = on_done or (lambda _call_id, _outcome: None)
        self._sf_requests = 0
        self._t2_fetches = 0
        self._count_lock = threading.Lock()

    @property
    def services(self) -> Services:
        return self.runtime.services

    # --- the run -----------------------------------------------------------------------------------------

    def run(self, call_ids: Iterable[str], *, source: str, force: bool) -> BulkReport:
        """Sync ``call_ids`` (duplicates dropped, order kept). ``force``: re-sync whatever the ledger says
        (replay); otherwise only calls new to the ledger or failed (backfill)."""
        ids = list(dict.fromkeys(call_ids))
        report = BulkReport(requested=len(ids))
        started = time.monotonic()
        hooks = self.services.salesforce.http.hooks.setdefault("response", [])
        hooks.append(self._count_salesforce)
        try:
            for start in range(0, len(ids), self.chunk_size):
                self._chunk(ids[start : start + self.chunk_size], source=source, force=force, report=report)
                report.chunks += 1
        finally:
            hooks.remove(self._count_salesforce)
            report.salesforce_requests = self._sf_requests
            report.twenty2_fetches = self._t2_fetches
            report.elapsed = time.monotonic() - started
        log.info("bulk.done", **report.as_dict())
        return report

    def _chunk(self, ids: list[str], *, source: str, force: bool, report: BulkReport) -> None:
        self.on_phase(f"accepting {len(ids)} calls")
        wanted: list[str] = []
        for call_id in ids:
            before = self.runtime.ledger.accept(call_id, source=source, force=force)
            left = None if force or before is None else _LEFT_ALONE.get(before)
            if left:
                self._done(report, call_id, left)
            else:
                wanted.append(call_id)
        locks: dict[str, Lock] = {}
        # As the worker's lock: never longer than the visibility timeout; the keeper renews it meanwhile.
        lock_seconds = min(LOCK_SECONDS, self.settings.celery_visibility_timeout)
        for call_id in wanted:
            lock = self.runtime.redis.lock(f"crm-sync:lock:{call_id}", timeout=lock_seconds, blocking=False)
            if lock.acquire():
                locks[call_id] = lock
            else:
                self._done(report, call_id, "busy")  # another worker syncs it and records the outcome
        if not locks:
            return
        stop = threading.Event()
        keeper = threading.Thread(target=_keep_locks, args=(list(locks.values()), lock_seconds / 3, stop), daemon=True)
        keeper.start()
        calls = {call_id: _Call(call_id) for call_id in locks}
        try:
            for call_id in calls:
                self.runtime.ledger.start(call_id)
            self._sync(calls, report)
        except Exception as exc:  # a bug, not bad data: keep every call visible and replayable
            log.exception("bulk.crashed")
            error = PermanentError(
                f"internal error: {type(exc).__name__}: {exc}"[:500], stage=Stage.PLAN, code="INTERNAL"
            )
            for call in calls.values():
                if not call.synced:
                    call.error = call.error or error
        finally:
            try:
                self._record(calls, report)
            finally:
                stop.set()
                keeper.join(timeout=5)
                for lock in locks.values():
                    try:
                        lock.release()
                    except Exception:  # expired: another worker may own it now; nothing to undo
                        log.warning("bulk.lock_expired")

    def _sync(self, calls: dict[str, _Call], report: BulkReport) -> None:
        try:
            # The org's API reserve holds bulk work as it holds the workers'.
            self.runtime.budget.check(max_age=self.settings.crm_sync_limit_hold_seconds)
        except SyncError as exc:
            for call in calls.values():
                call.error = exc
            return
        self.on_phase(f"fetching {len(calls)} calls from Twenty2")
        self._fetch(list(calls.values()))
        ready = [c for c in calls.values() if c.error is None]
        try:
            report.task_subtype_resends += self._write_round(ready, report)
            stale = [c for c in ready if c.error is not None and c.error.code in STALE_TARGET_CODES]
            if stale:
                # The Lead was converted or deleted between the read and the write: look again (a converted
                # Lead now yields its Contact) and write once more, as the streaming path does.
                log.info("bulk.lead_changed_meanwhile", calls=len(stale))
                for call in stale:
                    call.error, call.plan, call.ids, call.results = None, None, {}, {}
                report.task_subtype_resends += self._write_round(stale, report)
        finally:
            self._forget_written(ready)
            salesforce = self.services.salesforce
            self.runtime.budget.observe(salesforce.api_usage, salesforce.api_usage_seen_at)

    def _forget_written(self, calls: list[_Call]) -> None:
        """Drop the streaming path's snapshots of the Leads this run wrote (they are stale now)."""
        for call in calls:
            if call.plan is not None and call.detail is not None and call.plan.write("lead") is not None:
                self.services.finder.forget(call.plan.target, call.detail)

    # --- fetch -------------------------------------------------------------------------------------------

    def _fetch(self, calls: list[_Call]) -> None:
        with ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="bulk-fetch") as pool:
            list(pool.map(self._fetch_one, calls))

    def _fetch_one(self, call: _Call) -> None:
        twenty2 = self.services.twenty2
        try:
            self._count_twenty2()
            call.detail = twenty2.get_call_detail(call.call_id)
            link = call.detail.transcript
            if call.detail.call.connected and link is not None:
                if link.url:
                    self._count_twenty2()
                call.transcript = twenty2.fetch_transcript(link)
        except SyncError as exc:
            call.error = exc
        except Exception as exc:  # a bug, not bad data
            log.exception("bulk.fetch_crashed", call_id=call.call_id)
            call.error = PermanentError(
                f"internal error: {type(exc).__name__}: {exc}"[:500], stage=Stage.FETCH, code="INTERNAL"
            )

    # --- one round: read Leads, plan, write ---------------------------------------------------------------

    def _write_round(self, calls: list[_Call], report: BulkReport) -> int:
        """Look up, plan and write ``calls`` (fetched, no error yet); sets each call's ids or error."""
        if not calls:
            return 0
        services = self.services
        self.on_phase(f"reading the Leads of {len(calls)} calls")
        batch = LeadBatch(services.salesforce, services.finder, api_version=self.settings.salesforce_api_version)
        try:
            ctx = services.context(datetime.now(UTC))
            targets = batch.resolve({c.call_id: _detail(c) for c in calls})
        except SyncError as exc:
            for call in calls:
                call.error = exc
            return 0
        finally:
            report.lookups_delegated += batch.delegated
        groups = self._groups(calls, targets, ctx)
        writer = CollectionWriter(services.salesforce, api_version=self.settings.salesforce_api_version)

        self.on_phase(f"planning {len(calls)} calls; creating new Leads")
        creators = [self._plan_group(group, ctx) for group in groups]
        creates = [(call, _write(call, "lead")) for call in creators if call is not None]
        written = writer.write([w for _, w in creates])
        for call, _ in creates:
            if call.detail is not None:
                services.finder.note_created(call.detail)  # the streaming path must not trust "no Lead" now
        resent = written.resent
        for (call, write), result in zip(creates, written.results, strict=True):
            call.results[write.ref] = result
            if result.ok and result.record_id:
                call.ids[write.ref] = result.record_id
            else:
                call.error = result.error
        for group, creator in zip(groups, creators, strict=True):
            if creator is not None:
                self._plan_after_create(group, creator, ctx)

        self.on_phase(f"writing Lead updates and Tasks of {len(calls)} calls")
        owners, writes = self._second_phase(groups)
        written = writer.write(writes)
        resent += written.resent
        for (members, ref), result in zip(owners, written.results, strict=True):
            for call in members:
                call.results[ref] = result
        for call in calls:
            self._settle(call)
        return resent

    def _groups(
        self, calls: list[_Call], targets: dict[str, LeadTarget | SyncError | None], ctx: PlanContext
    ) -> list[_Group]:
        by_key: dict[str, _Group] = {}
        for call in calls:
            target = targets.get(call.call_id)
            if isinstance(target, SyncError):
                call.error = target
                continue
            detail = _detail(call)
            if target is not None:
                key = f"record:{target.record_id}"
            else:
                # One new Lead per number: the spelling does not matter, the number does.
                key = f"new:{e164(lead_phone(detail), self.settings.crm_sync_phone_region) or call.call_id}"
            by_key.setdefault(key, _Group(target, [])).calls.append(call)
        for group in by_key.values():
            group.calls.sort(key=lambda c: call_reference_time(_detail(c), ctx))
        return list(by_key.values())

    def _plan_group(self, group: _Group, ctx: PlanContext) -> _Call | None:
        """Plan a group's calls on its found record; for a new number, plan until one call creates the
        Lead (returned: it is written in phase 1) and leave the rest for after the create."""
        if group.target is not None:
            self._plan_in_order(group.calls, group.target, ctx)
            return None
        for call in group.calls:
            self._plan(call, None, ctx)
            if call.plan is not None:
                return call
        return None

    def _plan_after_create(self, group: _Group, creator: _Call, ctx: PlanContext) -> None:
        later = group.calls[group.calls.index(creator) + 1 :]
        lead_id = creator.ids.get("lead")
        if lead_id is None:
            # The Lead could not be created: the calls waiting for it share the reason.
            for call in later:
                call.error = creator.error
            return
        create = _write(creator, "lead")
        target = LeadTarget(
            record_id=lead_id,
            sobject="Lead",
            owner_id=None,
            matched_by=f"phone (Lead created in this run by call {creator.call_id})",
            fields={k: v for k, v in create.fields.items() if not isinstance(v, Ref)},
        )
        self._plan_in_order(later, target, ctx)

    def _plan_in_order(self, calls: list[_Call], target: LeadTarget, ctx: PlanContext) -> None:
        for call in calls:
            self._plan(call, target, ctx)
            update = call.plan.write("lead") if call.plan is not None else None
            if update is not None and update.method == "update":
                # The next call of this Lead sees the values this one leaves.
                target = replace(target, fields={**target.fields, **update.fields})

    def _plan(self, call: _Call, target: LeadTarget | None, ctx: PlanContext) -> None:
        try:
            call.plan = build_plan(_detail(call), target, self.services.mapping, ctx, transcript=call.transcript)
        except SyncError as exc:
            call.error = exc
        except Exception as exc:  # a bug, not bad data
            log.exception("bulk.plan_crashed", call_id=call.call_id)
            call.error = PermanentError(
                f"internal error: {type(exc).__name__}: {exc}"[:500], stage=Stage.PLAN, code="INTERNAL"
            )

    def _second_phase(self, groups: list[_Group]) -> tuple[list[tuple[list[_Call], str]], list[RecordWrite]]:
        """Phase-2 writes and, for each, the calls it belongs to: one merged update per Lead, then Tasks."""
        owners: list[tuple[list[_Call], str]] = []
        writes: list[RecordWrite] = []
        tasks: list[tuple[_Call, RecordWrite]] = []
        for group in groups:
            merged: dict[str, dict[str, Any]] = defaultdict(dict)
            members: dict[str, list[_Call]] = defaultdict(list)
            for call in group.calls:
                if call.plan is None or call.error is not None:
                    continue
                for write in call.plan.writes:
                    if write.method == "create":
                        continue  # phase 1
                    if write.sobject == "Lead" and write.method == "update" and write.record_id:
                        merged[write.record_id].update(write.fields)
                        members[write.record_id].append(call)
                    else:
                        tasks.append((call, _resolved(write, call.ids)))
            for lead_id, fields in merged.items():
                owners.append((members[lead_id], "lead"))
                writes.append(
                    RecordWrite(ref="lead", sobject="Lead", method="update", fields=fields, record_id=lead_id)
                )
        for call, write in tasks:
            owners.append(([call], write.ref))
            writes.append(write)
        return owners, writes

    @staticmethod
    def _settle(call: _Call) -> None:
        """The call's outcome from its records, in plan order: the first refused record decides."""
        if call.plan is None or call.error is not None:
            return
        for write in call.plan.writes:
            result = call.results.get(write.ref)
            if result is None or result.error is not None:
                call.error = result.error if result is not None else None
                if call.error is None:
                    call.error = PermanentError(f"{write.ref} was not written", stage=Stage.WRITE, code="NOT_WRITTEN")
                return
            call.ids[write.ref] = result.record_id or write.record_id or ""
        call.synced = True

    # --- recording ---------------------------------------------------------------------------------------

    def _record(self, calls: dict[str, _Call], report: BulkReport) -> None:
        ledger = self.runtime.ledger
        for call in calls.values():
            phone = lead_phone(call.detail) if call.detail is not None else None
            if call.error is not None:
                outcome = record_error(ledger, self.settings, call.call_id, call.error, phone=phone)
            elif call.synced and call.plan is not None and call.detail is not None:
                summary = SyncOutcome(plan=call.plan, salesforce_ids=call.ids, detail=call.detail).summary
                ledger.synced(call.call_id, salesforce_ids=call.ids, summary=summary, phone=phone)
                outcome = "synced"
            else:  # interrupted before an outcome: left syncing, for the stale sweep to re-queue
                continue
            self._done(report, call.call_id, outcome)

    def _done(self, report: BulkReport, call_id: str, outcome: str) -> None:
        report.outcomes[outcome] += 1
        self.on_done(call_id, outcome)

    # --- counting ----------------------------------------------------------------------------------------

    def _count_salesforce(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if "/services/data/" in response.url:
            with self._count_lock:
                self._sf_requests += 1

    def _count_twenty2(self) -> None:
        with self._count_lock:
            self._t2_fetches += 1


def _detail(call: _Call) -> CallDetail:
    assert call.detail is not None  # only fetched calls are looked up and planned
    return call.detail


def _write(call: _Call, ref: str) -> RecordWrite:
    assert call.plan is not None
    write = call.plan.write(ref)
    assert write is not None
    return write


def _resolved(write: RecordWrite, ids: dict[str, str]) -> RecordWrite:
    """``write`` with ``Ref``s replaced by the ids phase 1 wrote."""
    if not any(isinstance(v, Ref) for v in write.fields.values()):
        return write
    return replace(write, fields={k: ids.get(v.name, v) if isinstance(v, Ref) else v for k, v in write.fields.items()})


def _keep_locks(locks: Sequence[Lock], every: float, stop: threading.Event) -> None:
    """Renew the chunk's locks (to their full lifetime) every ``every`` seconds until ``stop``."""
    while not stop.wait(every):
        for lock in locks:
            try:
                lock.reacquire()
            except Exception:
                log.warning("bulk.lock_lost")


def ledger_preview(runtime: Runtime, call_ids: Iterable[str], *, force: bool) -> Counter[str]:
    """What a run would do with ``call_ids`` (read only): ``sync`` or the outcome it would leave alone."""
    counts: Counter[str] = Counter()
    for call_id in dict.fromkeys(call_ids):
        record = runtime.ledger.get(call_id)
        if force or record is None or record.state not in _LEFT_ALONE:
            counts["sync"] += 1
        else:
            counts[_LEFT_ALONE[record.state]] += 1
    return counts


__all__ = ["OUTCOMES", "RESOLVED", "BulkReport", "BulkSync", "ledger_preview"]
