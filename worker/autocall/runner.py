"""The callback sweep (beat, every ``CRM_SYNC_AUTO_CALLBACK_SWEEP_SECONDS``): place the callbacks that came due.

One sweep, in order:

0. at most every ``CRM_SYNC_AUTO_CALLBACK_TASK_REFRESH_SECONDS`` (one beat takes it: ``store.refresh_due``),
   the follow-up Tasks of every scheduled callback are re-read in one batched query (``WHERE Id IN (…)``,
   200 ids a query), and ``rules.follow_task`` moves each callback whose Task's due time a rep changed
   (earlier or later) and cancels those whose Task was completed or deleted, so a Task moved earlier is
   followed within that interval, not only at the callback's old due time;
1. read ``GET /call/logs`` once (a few pages) when anything is in progress or due;
2. placed callbacks whose call the logs show ended stop counting against the concurrency limit, and their
   call is queued for its sync (as its webhook would; the ledger keeps a second trigger from syncing twice);
3. lost answers: a callback ``triggered`` with no call id (the trigger timed out, or a process died after
   recording its intent) whose lease ran out is taken over (atomically, one taker) and resolved by the logs:
   a call to that number from that agent since the intent → that is the call; none → triggered once more.
   Never a second trigger before that look;
4. due callbacks, earliest first: the follow-up Task and the Lead are read fresh, ``rules.decide`` says
   trigger, move, cancel or refuse; a trigger is claimed atomically (the intent, within the concurrency limit
   and the caps) BEFORE ``POST /agent/trigger-outbound-call`` is sent. Once the limit is reached the rest
   wait, in due order, for a later sweep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from worker.autocall.facts import CallLogView, SalesforceFacts
from worker.autocall.rules import REASONS, Action, Decision, Facts, decide, follow_task
from worker.autocall.store import Callback, CallbackStore, CbState
from worker.autocall.window import Window, next_opening, windows_for
from worker.errors import SyncError, Twenty2RateLimited, Twenty2Unavailable
from worker.mapping import Mapping
from worker.phones import parse_phone
from worker.settings import Settings
from worker.twenty2.client import Twenty2Client

log = structlog.get_logger(__name__)

#: Input parameters a callback call carries (besides the promising call's own inputs).
SOURCE_CALL_PARAM = "crm_sync_source_call_id"
CALLBACK_ID_PARAM = "crm_sync_callback_id"
ATTEMPT_PARAM = "crm_sync_callback_attempt"


@dataclass
class SweepReport:
    placed: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    waiting: int = 0
    unknown: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: (v if isinstance(v, int) else len(v)) for k, v in self.__dict__.items()}


def national(phone: str, region: str) -> str:
    """The number as Twenty2 takes it: national digits, no country code."""
    parsed = parse_phone(phone, region)
    return str(parsed.national_number) if parsed is not None else phone


def day_of(moment: datetime, settings: Settings) -> str:
    """The workspace day the caps and the cost ceiling count in."""
    return moment.astimezone(settings.tz).date().isoformat()


class Runner:
    """The sweep over one workspace's callbacks. ``now``: the clock (tests and the chaos run move it)."""

    def __init__(
        self,
        settings: Settings,
        store: CallbackStore,
        salesforce: SalesforceFacts,
        twenty2: Twenty2Client,
        mapping: Mapping,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_call_ended: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.sf = salesforce
        self.t2 = twenty2
        self.mapping = mapping
        self.now = now
        self.on_call_ended = on_call_ended

    # the sweep ------------------------------------------------------------------------------------------

    def sweep(self) -> SweepReport:
        report = SweepReport()
        now = self.now()
        self._refresh_tasks(now, report)
        due = self.store.due(now)
        unresolved = self._unresolved()
        in_flight = self.store.in_flight(now)
        if not (due or unresolved or in_flight):
            return report
        view = CallLogView.read(self.t2, max_pages=self.settings.crm_sync_auto_callback_log_pages)
        self._release_ended(view, in_flight)
        for cb_id in unresolved:
            self._resolve(cb_id, view, report)
        for cb_id in due:
            if len(self.store.in_flight(self.now())) >= self.settings.crm_sync_auto_callback_max_concurrent:
                report.waiting += 1
                continue
            try:
                self._due(cb_id, view, report)
            except SyncError as exc:  # Salesforce or Twenty2 unreachable: the callback waits for the next sweep
                log.warning("autocall.sweep_error", callback_id=cb_id, code=exc.code, error=str(exc))
        if report.placed or report.resolved or report.moved or report.cancelled or report.refused:
            log.info("autocall.swept", **report.as_dict())
        return report

    def _refresh_tasks(self, now: datetime, report: SweepReport) -> None:
        """Follow the follow-up Tasks of all scheduled callbacks (step 0), when the refresh interval is up."""
        every = self.settings.crm_sync_auto_callback_task_refresh_seconds
        if every <= 0 or not self.store.refresh_due(now, every):
            return
        callbacks = [cb for cb in self.store.many(self.store.scheduled()) if cb.task_id]
        if not callbacks:
            return
        try:
            tasks = self.sf.tasks(cb.task_id for cb in callbacks)
        except SyncError as exc:  # Salesforce unreachable: the due-time read still follows each Task
            log.warning("autocall.task_refresh_failed", code=exc.code, error=str(exc), callbacks=len(callbacks))
            return
        windows = self._windows(None)  # the lead's own zone is applied when the callback comes due
        changed = 0
        for cb in callbacks:
            decision = follow_task(tasks.get(cb.task_id[:15]), cb.task_due_at, now, windows)
            if decision is not None:
                self._apply(cb, decision, now, report)
                changed += 1
        log.info("autocall.tasks_refreshed", callbacks=len(callbacks), changed=changed)

    def _unresolved(self) -> list[str]:
        return self.store.unknown()

    def _release_ended(self, view: CallLogView, in_flight: list[str]) -> None:
        for cb_id in in_flight:
            cb = self.store.get(cb_id)
            if cb is not None and cb.call_id and view.ended(cb.call_id):
                self.store.call_ended(cb_id)
                if self.on_call_ended is not None:
                    # Webhooks are not retried (the docs name no retry): the callback call's sync, which
                    # closes the loop, must not depend on one arriving.
                    self.on_call_ended(cb.call_id)

    # lost answers ---------------------------------------------------------------------------------------

    def _resolve(self, cb_id: str, view: CallLogView, report: SweepReport) -> None:
        now = self.now()
        grace = self.settings.crm_sync_auto_callback_answer_grace_seconds
        if not self.store.lease(cb_id, now=now, lease_seconds=grace):
            return  # its holder is still on it (or someone else took it over)
        cb = self.store.get(cb_id, unseal=True)
        if cb is None or cb.intent_at is None:
            return
        self.store.note(cb_id, now, "taken_over", intent_at=cb.intent_at.isoformat(), sent=cb.sent)
        agent = cb.agent_id
        found = view.placed_since(phone=cb.phone, agent_id=agent, since=cb.intent_at)
        if found is not None and found.call_id not in cb.call_ids:
            self.store.placed(cb_id, found.call_id, now=now, how="call_logs")
            report.resolved.append(cb_id)
            log.info("autocall.answer_found_in_logs", callback_id=cb_id, call_id=found.call_id)
            return
        log.info("autocall.not_in_logs", callback_id=cb_id, sent=cb.sent)
        windows = self._windows(None)
        if not all(w.contains(now) for w in windows):
            self._back_to_schedule(cb, now, reason="outside_window")
            report.moved.append(cb_id)
            return
        self._trigger(cb, now, report)

    # due callbacks --------------------------------------------------------------------------------------

    def facts_for(self, cb: Callback, now: datetime, view: CallLogView | None) -> tuple[Facts, tuple[Window, ...]]:
        """Everything ``rules.decide`` needs about ``cb``, read now."""
        s = self.settings
        task = self.sf.task(cb.task_id) if cb.task_id else None
        lead, zone = self.sf.lead(cb.lead_id) if cb.lead_id else (None, None)
        windows = self._windows(zone)
        newer = False
        if view is not None and cb.source_ended_at is not None:
            newer = (
                view.newer_call_reached(phone=cb.phone, after=cb.source_ended_at, except_ids=cb.call_ids) is not None
            )
        lead_today, ws_today, cost_today = self.store.today(cb.lead_id, day_of(now, s))
        facts = Facts(
            now=now,
            due=cb.due_at or now,
            task_due=cb.task_due_at,
            kill_switch=s.crm_sync_auto_callback_kill_switch,
            rule=self.mapping.auto_callback_rule(cb.source_agent_id or None),
            task=task,
            lead=lead,
            newer_call=newer,
            windows=windows,
            closed_statuses=frozenset(
                v.strip() for v in s.crm_sync_auto_callback_closed_statuses.split(",") if v.strip()
            ),
            lead_calls_today=lead_today,
            workspace_calls_today=ws_today,
            cost_today=cost_today,
        )
        return facts, windows

    def _due(self, cb_id: str, view: CallLogView, report: SweepReport) -> None:
        now = self.now()
        cb = self.store.get(cb_id, unseal=True)
        if cb is None or cb.state is not CbState.SCHEDULED:
            return
        facts, _ = self.facts_for(cb, now, view)
        decision = decide(facts)
        if decision.action is Action.TRIGGER:
            rule = facts.rule
            answer = self.store.claim(
                cb,
                now=now,
                lease_seconds=self.settings.crm_sync_auto_callback_answer_grace_seconds,
                max_concurrent=self.settings.crm_sync_auto_callback_max_concurrent,
                counts_seconds=self.settings.crm_sync_auto_callback_call_minutes * 60,
                day=day_of(now, self.settings),
                caps=(rule.per_lead_per_day, rule.per_workspace_per_day, rule.daily_cost_ceiling_inr),
            )
            if answer == "ok":
                self._trigger(cb, now, report)
            elif answer in REASONS:
                self._apply(cb, Decision(answer), now, report)
            elif answer == "full":
                report.waiting += 1
            return
        self._apply(cb, decision, now, report)

    def _apply(self, cb: Callback, decision: Decision, now: datetime, report: SweepReport) -> None:
        fields: dict[str, Any] = {"reason": decision.reason, "reason_text": decision.text}
        action = decision.action
        if action is Action.MOVE:
            if decision.reason == "task_moved" and decision.task_due is not None:
                # the Task's own time (not the callback's opening): a Task moved outside the window is
                # followed once, not again at every read
                fields["task_due_at"] = decision.task_due.timestamp()
            self.store.move(cb.id, now=now, expected=(CbState.SCHEDULED,), to=CbState.SCHEDULED, due=decision.due,
                            event="moved", **fields)  # fmt: skip
            report.moved.append(cb.id)
        elif action is Action.CANCEL:
            self.store.move(cb.id, now=now, expected=(CbState.SCHEDULED,), to=CbState.CANCELLED, **fields)
            report.cancelled.append(cb.id)
        elif action is Action.REFUSE:
            self.store.move(cb.id, now=now, expected=(CbState.SCHEDULED,), to=CbState.REFUSED, **fields)
            report.refused.append(cb.id)
        log.info("autocall.decided", callback_id=cb.id, reason=decision.reason, action=action.value)

    # the trigger ----------------------------------------------------------------------------------------

    def input_parameters(self, cb: Callback) -> dict[str, Any]:
        """The promising call's inputs plus what brings the callback's own sync home: the Salesforce id (no
        phone search), the source call id, the callback id and the attempt number."""
        return {
            **cb.inputs,
            self.settings.crm_sync_lead_id_param: cb.lead_id,
            SOURCE_CALL_PARAM: cb.source_call_id,
            CALLBACK_ID_PARAM: cb.id,
            ATTEMPT_PARAM: str(cb.attempt),
        }

    def _trigger(self, cb: Callback, now: datetime, report: SweepReport) -> None:
        """Send the trigger of a claimed (or taken-over) callback, once, and record what its answer says."""
        self.store.mark_sent(cb.id)
        try:
            answer = self.t2.trigger_outbound_call(
                agent_id=cb.agent_id,
                callee_phone=national(cb.phone, self.settings.crm_sync_phone_region),
                caller_phone=cb.caller_phone,
                input_parameters=self.input_parameters(cb),
            )
        except Twenty2RateLimited as exc:
            # A definite no (429: the request rate or the 3 concurrent calls): nothing was placed.
            self._back_to_schedule(cb, now, reason="", keep_due=True)
            report.waiting += 1
            log.info("autocall.trigger_refused_for_now", callback_id=cb.id, code=exc.code)
            return
        except Twenty2Unavailable as exc:
            # The answer is unknown (timeout, reset, 5xx): resolved from the call logs after the grace period.
            report.unknown.append(cb.id)
            log.warning("autocall.trigger_answer_lost", callback_id=cb.id, code=exc.code)
            return
        except SyncError as exc:
            self.store.move(
                cb.id, now=now, expected=(CbState.TRIGGERED,), to=CbState.REFUSED,
                reason="trigger_rejected", reason_text=f"{REASONS['trigger_rejected'][1]} ({exc.code})",
            )  # fmt: skip
            self.store.uncount(cb.id, cb.lead_id, day_of(now, self.settings))
            report.refused.append(cb.id)
            log.warning("autocall.trigger_rejected", callback_id=cb.id, code=exc.code)
            return
        self.store.placed(cb.id, answer.call_id, now=now, how="answer")
        report.placed.append(cb.id)
        log.info(
            "autocall.placed", callback_id=cb.id, call_id=answer.call_id, attempt=cb.attempt, phone=cb.phone_masked
        )

    def _back_to_schedule(self, cb: Callback, now: datetime, *, reason: str, keep_due: bool = False) -> None:
        due = now if keep_due else next_opening(self._windows(None), now)
        fields: dict[str, Any] = {"call_id": ""}
        if reason:
            fields.update(reason=reason, reason_text=REASONS[reason][1])
        if self.store.move(cb.id, now=now, expected=(CbState.TRIGGERED,), to=CbState.SCHEDULED, due=due,
                           event="not_placed", **fields):  # fmt: skip
            self.store.uncount(cb.id, cb.lead_id, day_of(now, self.settings))

    def _windows(self, zone: Any) -> tuple[Window, ...]:
        return windows_for(zone or self.settings.tz, self.settings.auto_callback_window)
