"""Bulk sync: many call ids (replays, backfills) for a few Salesforce API calls per thousand calls.

The bulk path, the streaming path's pair (``worker.sync.stream``); what they share is ``worker.sync.core``.
``BulkSync(runtime).run(call_ids, source=...)`` works through the ids in chunks (default 1,000). Per chunk:

1. **accept** each call into the ledger (``replay``: forced, as the old re-queue did; ``backfill``: only new
   or failed calls, so running a backfill twice does nothing the second time), take its per-call lock
   (``crm-sync:lock:{call_id}``, the streaming worker's; a call another worker holds is left to it and
   nothing is recorded for it), mark it ``syncing``. A keeper thread renews the locks while the chunk runs;
2. **fetch** every call's detail and transcript from Twenty2 on a small thread pool; the client's shared
   rate limit keeps this process and every worker together within Twenty2's 60 requests a minute;
3. **read the Leads** in bulk (``LeadBatch``: LeadFinder's rules on rows read a few composite requests at a
   time), after the fetch, so Lead values are as fresh as possible when the writes go out;
4. **plan** each call with the pure ``build_plan`` (the pure decisions of steps 4-6 are in
   ``worker.sync.bulk_plan``). Calls of one Lead are planned in call order, each on the values the one
   before would have left, and their Lead changes are merged into one update; calls of one unknown number
   create ONE Lead (the earliest call creates it, the others update it);
5. **write** with sObject Collections in composite requests (``CollectionWriter``, up to 1,000 records per
   API call, ``allOrNone`` false): phase 1 the Lead creates; phase 2 the Lead updates and the call and
   follow-up Task upserts, whose ``WhoId`` is the Lead phase 1 created. Task upserts refused only because
   the Task exists (``TaskSubtype``) are sent again without it. A call whose Lead turned out changed,
   converted or deleted (``core.is_stale_target``, the streaming path's rule) is looked up, planned and
   written once more;
6. **record** each call as the streaming path does: every record written → ``synced`` with the ids; else
   the first refused record's error → ``core.record_error`` (retry later, held, failed or skipped). Twenty2 and
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
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
import structlog
from redis.lock import Lock

from worker.errors import InternalError, SalesforceLimitExceeded, Stage, SyncError, internal_errors
from worker.ledger import RESOLVED, State
from worker.runtime import Runtime
from worker.salesforce.collection_writer import CollectionWriter
from worker.salesforce.lead_batch import LeadBatch
from worker.sync import bulk_plan, core
from worker.sync.bulk_plan import BulkCall, detail_of, write_of
from worker.sync.core import SyncOutcome
from worker.sync.services import Services

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
    #: Salesforce's own refusals of the daily limit (its message → calls held): the replay tried, and
    #: Salesforce still said no.
    refused: Counter[str] = field(default_factory=Counter)

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
            "salesforce_refused": dict(self.refused),
        }


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
        self._stage = Stage.RECORD  # where a chunk is: the stage an unsorted crash is recorded at
        self._hold = True

    @property
    def services(self) -> Services:
        return self.runtime.services

    # --- the run -----------------------------------------------------------------------------------------

    def run(self, call_ids: Iterable[str], *, source: str, force: bool, hold: bool = True) -> BulkReport:
        """Sync ``call_ids`` (duplicates dropped, order kept). ``force``: re-sync whatever the ledger says
        (replay); otherwise only calls new to the ledger or failed (backfill). ``hold=False`` (an operator's
        replay): never held by the API reserve or an earlier limit reading: the writes go to Salesforce,
        and what it still refuses is in ``BulkReport.refused``."""
        self._hold = hold
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
        self._phase(Stage.RECORD, f"accepting {len(ids)} calls")
        wanted: list[str] = []
        for call_id in ids:
            before = self.runtime.ledger.accept(call_id, source=source, force=force)
            left = None if force or before is None else _LEFT_ALONE.get(before)
            if left:
                self._done(report, call_id, left)
            else:
                wanted.append(call_id)
        locks: dict[str, Lock] = {}
        for call_id in wanted:
            lock = core.call_lock(self.runtime, call_id)
            if core.acquire(lock):
                locks[call_id] = lock
            else:
                self._done(report, call_id, "busy")  # another worker syncs it and records the outcome
        if not locks:
            return
        stop = threading.Event()
        every = core.lock_seconds(self.settings) / 3
        keeper = threading.Thread(target=_keep_locks, args=(list(locks.values()), every, stop), daemon=True)
        keeper.start()
        calls = {call_id: BulkCall(call_id) for call_id in locks}
        try:
            with internal_errors(Stage.RECORD):
                for call_id in calls:
                    self.runtime.ledger.start(call_id)
            self._sync(calls, report)
        except Exception as exc:  # a crash, not bad data: keep every call visible and replayable
            if not isinstance(exc, SyncError):
                log.exception("sync.crashed", stage=self._stage.value, calls=len(calls))
                exc = InternalError.wrap(exc, stage=self._stage)
            for call in calls.values():
                if not call.synced:
                    call.error = call.error or exc
        finally:
            try:
                self._record(calls, report)
            finally:
                stop.set()
                keeper.join(timeout=5)
                for lock in locks.values():
                    core.release(lock)

    def _phase(self, stage: Stage, text: str) -> None:
        self._stage = stage
        self.on_phase(text)

    def _sync(self, calls: dict[str, BulkCall], report: BulkReport) -> None:
        try:
            # The org's API reserve holds bulk work as it holds the workers' (not an operator's replay).
            if self._hold:
                core.check_budget(self.runtime)
        except SyncError as exc:
            for call in calls.values():
                call.error = exc
            return
        self._phase(Stage.FETCH, f"fetching {len(calls)} calls from Twenty2")
        self._fetch(list(calls.values()))
        ready = [c for c in calls.values() if c.error is None]
        try:
            report.task_subtype_resends += self._write_round(ready, report)
            stale = [c for c in ready if c.error is not None and core.is_stale_target(c.error)]
            if stale:
                # The Lead changed, was converted or deleted between the read and the write: look again (a
                # converted Lead now yields its Contact) and write once more, as the streaming path does.
                for call in stale:
                    if call.plan is not None and call.error is not None:
                        core.lead_changed(self.services, call.plan, detail_of(call), call.error)
                    call.reset()
                report.task_subtype_resends += self._write_round(stale, report)
        finally:
            for call in ready:
                if call.plan is not None and call.detail is not None:
                    core.forget_written(self.services, call.plan, call.detail)
            core.observe_budget(self.runtime)

    # --- fetch -------------------------------------------------------------------------------------------

    def _fetch(self, calls: list[BulkCall]) -> None:
        with ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="bulk-fetch") as pool:
            list(pool.map(self._fetch_one, calls))

    def _fetch_one(self, call: BulkCall) -> None:
        try:
            call.detail, call.transcript = core.fetch_call(self.services, call.call_id, on_request=self._count_twenty2)
        except SyncError as exc:
            call.error = exc

    # --- one round: read Leads, plan, write ---------------------------------------------------------------

    def _write_round(self, calls: list[BulkCall], report: BulkReport) -> int:
        """Look up, plan and write ``calls`` (fetched, no error yet); sets each call's ids or error."""
        if not calls:
            return 0
        services = self.services
        mapping = services.mapping
        self._phase(Stage.LOOKUP, f"reading the Leads of {len(calls)} calls")
        batch = LeadBatch(services.salesforce, services.finder, api_version=self.settings.salesforce_api_version)
        try:
            with internal_errors(Stage.PLAN):
                ctx = services.context(datetime.now(UTC))
            with internal_errors(Stage.LOOKUP):
                targets = batch.resolve({c.call_id: detail_of(c) for c in calls})
        except SyncError as exc:
            for call in calls:
                call.error = exc
            return 0
        finally:
            report.lookups_delegated += batch.delegated
        with internal_errors(Stage.PLAN):
            groups = bulk_plan.group_calls(calls, targets, ctx, region=self.settings.crm_sync_phone_region)
        writer = CollectionWriter(services.salesforce, api_version=self.settings.salesforce_api_version)

        self._phase(Stage.PLAN, f"planning {len(calls)} calls; creating new Leads")
        creators = [bulk_plan.plan_group(group, mapping, ctx) for group in groups]
        resent = self._create_leads([call for call in creators if call is not None], writer)
        with internal_errors(Stage.PLAN):
            for group, creator in zip(groups, creators, strict=True):
                if creator is not None:
                    bulk_plan.plan_after_create(group, creator, mapping, ctx)

        self._phase(Stage.WRITE, f"writing Lead updates and Tasks of {len(calls)} calls")
        with internal_errors(Stage.PLAN):
            owners, writes = bulk_plan.second_phase(groups)
        with internal_errors(Stage.WRITE):
            written = writer.write(writes)
        resent += written.resent
        for (members, ref), result in zip(owners, written.results, strict=True):
            for call in members:
                call.results[ref] = result
        for call in calls:
            bulk_plan.settle(call)
        return resent

    def _create_leads(self, creators: list[BulkCall], writer: CollectionWriter) -> int:
        """Phase 1: the new Leads, one per unknown number; each creator gets its Lead id or the error."""
        creates = [(call, write_of(call, "lead")) for call in creators]
        with internal_errors(Stage.WRITE):
            written = writer.write([w for _, w in creates])
        for call, _ in creates:
            self.services.finder.note_created(detail_of(call))  # the streaming path must not trust "no Lead" now
        for (call, write), result in zip(creates, written.results, strict=True):
            call.results[write.ref] = result
            if result.ok and result.record_id:
                call.ids[write.ref] = result.record_id
            else:
                call.error = result.error
        return written.resent

    # --- recording ---------------------------------------------------------------------------------------

    def _record(self, calls: dict[str, BulkCall], report: BulkReport) -> None:
        ledger = self.runtime.ledger
        for call in calls.values():
            if call.error is not None:
                outcome = core.record_error(ledger, self.settings, call.call_id, call.error, detail=call.detail)
                if isinstance(call.error, SalesforceLimitExceeded) and call.error.code == "REQUEST_LIMIT_EXCEEDED":
                    report.refused[call.error.message] += 1
            elif call.synced and call.plan is not None and call.detail is not None:
                outcome = core.record_synced(
                    self.runtime, SyncOutcome(plan=call.plan, salesforce_ids=call.ids, detail=call.detail)
                )
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
