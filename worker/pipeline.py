"""One sync, one way: fetch (Twenty2 detail, the Lead) → plan (pure) → write (one composite request).

``Services`` holds the long-lived clients of one process; ``run_sync`` is the whole sync of one call
without the bookkeeping (the ledger is the task's job, see ``worker.tasks``), so the CLI's inline
``sync`` and dry run use exactly the same path as the worker.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
import structlog

from worker.errors import MappingError, SalesforceRejected
from worker.mapping import Mapping, load_mapping
from worker.personal import PersonalData
from worker.plan import LeadTarget, PlanContext, SyncPlan, build_plan
from worker.ratelimit import SharedRateLimit
from worker.salesforce.client import SalesforceClient
from worker.salesforce.leadcache import PHONE_FIELDS, LeadCache
from worker.salesforce.leads import LeadFinder
from worker.salesforce.writer import PlanWriter
from worker.settings import Settings, UnknownNumberPolicy
from worker.twenty2.client import Twenty2Client
from worker.twenty2.models import CallDetail

log = structlog.get_logger(__name__)

#: Lead fields whose length the plan needs to trim values and new Leads to.
_LENGTH_FIELDS = ("LastName", "FirstName", "Company")


@dataclass
class SyncOutcome:
    plan: SyncPlan
    salesforce_ids: dict[str, str]
    detail: CallDetail

    @property
    def summary(self) -> str:
        parts = [f"{ref} {sf_id}" for ref, sf_id in self.salesforce_ids.items() if sf_id]
        return ", ".join(parts) or "nothing written"


@dataclass
class Services:
    """The clients one process uses for every sync (thread-safe, built once)."""

    settings: Settings
    twenty2: Twenty2Client
    salesforce: SalesforceClient
    mapping: Mapping
    finder: LeadFinder
    writer: PlanWriter
    _lengths: dict[str, int] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Services:
        mapping = overrides.pop("mapping", None) or load_mapping(settings.crm_sync_mapping_file)
        limit = SharedRateLimit(
            settings.redis_url,
            key=f"twenty2:{settings.twenty2_workspace_id}",
            per_minute=settings.twenty2_rate_limit_per_minute,
        )
        twenty2 = overrides.pop("twenty2", None) or Twenty2Client(settings, before_request=limit.acquire)
        salesforce = overrides.pop("salesforce", None) or SalesforceClient(settings)
        cache = overrides.pop("cache", None) or LeadCache(
            redis.Redis.from_url(settings.redis_url, socket_timeout=3),
            region=settings.crm_sync_phone_region,
            data=PersonalData.from_settings(settings),
            kept_fields=mapping.lead_fields() & frozenset(PHONE_FIELDS),
        )
        finder = LeadFinder(
            salesforce,
            lead_fields=mapping.lead_fields(),
            id_param=settings.crm_sync_lead_id_param,
            region=settings.crm_sync_phone_region,
            api_version=settings.salesforce_api_version,
            cache=cache,
        )
        writer = PlanWriter(salesforce, api_version=settings.salesforce_api_version)
        return cls(settings, twenty2, salesforce, mapping, finder, writer)

    def field_lengths(self) -> dict[str, int]:
        """Lead field lengths from describe, read once; the mapping is checked against the org then."""
        with self._lock:
            if self._lengths is None:
                describe = self.salesforce.describe(self.mapping.sobject)
                problems = self.mapping.check_against_describe(self.mapping.sobject, describe)
                if problems:
                    raise MappingError("mapping does not fit the org: " + "; ".join(problems), stage="plan")
                self._lengths = {f["name"]: int(f["length"]) for f in describe.get("fields", []) if f.get("length")}
            return self._lengths

    def context(self, now: datetime) -> PlanContext:
        s = self.settings
        return PlanContext(
            now=now,
            tz=s.tz,
            task_external_id_field=s.salesforce_task_external_id_field,
            calling_window=s.calling_window,
            working_days=s.working_days,
            new_lead_company=s.crm_sync_new_lead_company,
            create_unknown=s.crm_sync_unknown_number is UnknownNumberPolicy.CREATE,
            phone_region=s.crm_sync_phone_region,
            field_lengths={
                k: v for k, v in self.field_lengths().items() if k in _LENGTH_FIELDS or k in self.mapping.lead_fields()
            },
        )


def plan_call(
    services: Services, call_id: str, *, now: datetime | None = None, fresh: bool = False
) -> tuple[CallDetail, SyncPlan]:
    """Fetch the call and its Lead, and plan the writes (no write). ``fresh``: read the Lead now, leaving
    the read-ahead cache alone (dry runs)."""
    detail = services.twenty2.get_call_detail(call_id)
    target = services.finder.find(detail, fresh=fresh)
    return detail, _plan(services, detail, target, now)


def _plan(services: Services, detail: CallDetail, target: LeadTarget | None, now: datetime | None) -> SyncPlan:
    transcript = None
    if detail.call.connected and detail.transcript is not None:
        transcript = services.twenty2.fetch_transcript(detail.transcript)
    return build_plan(
        detail, target, services.mapping, services.context(now or datetime.now(UTC)), transcript=transcript
    )


#: What Salesforce answers when the Lead we planned against is no longer as we read it.
STALE_TARGET_CODES = frozenset(
    {
        "CANNOT_UPDATE_CONVERTED_LEAD",
        "ENTITY_IS_DELETED",
        "INVALID_CROSS_REFERENCE_KEY",
        "ENTITY_FAILED_IFLASTMODIFIED_ON_UPDATE",  # If-Unmodified-Since refused (412)
        "PRECONDITION_FAILED",
    }
)


def _stale_target(exc: SalesforceRejected) -> bool:
    return exc.code in STALE_TARGET_CODES or exc.http_status == 412


def run_sync(services: Services, call_id: str, *, now: datetime | None = None) -> SyncOutcome:
    """Sync one call. Raises the sorted errors of ``worker.errors``; writes all or nothing.

    When Salesforce says the Lead changed since it was read (modified: 412; converted; deleted), the Lead is
    read again, the call re-planned and written once more. A call that creates a Lead holds its number
    meanwhile (``LeadFinder.creating_lead``), so two calls to one new number make one Lead.
    """
    detail, plan = plan_call(services, call_id, now=now)
    if not plan.creates_lead:
        return _write(services, detail, plan, now)
    with services.finder.creating_lead(detail) as still_without_lead:
        if not still_without_lead:
            plan = _plan(services, detail, services.finder.find(detail, fresh=True), now)
        return _write(services, detail, plan, now)


def _write(services: Services, detail: CallDetail, plan: SyncPlan, now: datetime | None) -> SyncOutcome:
    try:
        ids = services.writer.apply(plan)
    except SalesforceRejected as exc:
        if not _stale_target(exc):
            raise
        log.info("sync.lead_changed_meanwhile", call_id=detail.call.call_id, code=exc.code, status=exc.http_status)
        services.finder.forget(plan.target, detail)
        plan = _plan(services, detail, services.finder.find(detail, fresh=True), now)
        ids = services.writer.apply(plan)
    if plan.write("lead") is not None:
        services.finder.forget(plan.target, detail)  # our own write changed it
    return SyncOutcome(plan=plan, salesforce_ids=ids, detail=detail)
