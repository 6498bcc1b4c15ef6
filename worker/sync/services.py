"""The long-lived clients one process uses for every sync (built once, thread-safe), both paths alike."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from worker.errors import MappingError
from worker.mapping import Mapping, load_mapping
from worker.personal import PersonalData
from worker.plan import PlanContext
from worker.ratelimit import SharedRateLimit
from worker.reconcile.priority import PriorityBudget
from worker.redis_clients import redis_client
from worker.salesforce.client import SalesforceClient
from worker.salesforce.composite_writer import CompositeWriter
from worker.salesforce.lead_cache import PHONE_FIELDS, LeadCache
from worker.salesforce.lead_finder import LeadFinder
from worker.settings import Settings, UnknownNumberPolicy
from worker.twenty2.client import Twenty2Client

#: Lead fields whose length the plan needs to trim values and new Leads to.
_LENGTH_FIELDS = ("LastName", "FirstName", "Company")


@dataclass
class Services:
    """The clients one process uses for every sync (thread-safe, built once)."""

    settings: Settings
    twenty2: Twenty2Client
    salesforce: SalesforceClient
    mapping: Mapping
    finder: LeadFinder
    writer: CompositeWriter
    #: The Twenty2 client of reconciliation: same credentials, but each request waits for room the
    #: webhook-driven fetches leave (``PriorityBudget.spare``). None: the main client serves both.
    twenty2_spare: Twenty2Client | None = None
    priority: PriorityBudget | None = None
    _lengths: dict[str, int] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _background: Services | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Services:
        mapping = overrides.pop("mapping", None) or load_mapping(settings.crm_sync_mapping_file)
        limit = SharedRateLimit(
            settings,
            key=f"twenty2:{settings.twenty2_workspace_id}",
            per_minute=settings.twenty2_rate_limit_per_minute,
        )
        priority = PriorityBudget(
            redis_client(settings, purpose="twenty2-priority"),
            limit,
            reserve=settings.crm_sync_reconcile_reserve,
            spare_max_wait=settings.crm_sync_reconcile_max_wait_seconds,
        )
        given = overrides.pop("twenty2", None)
        twenty2 = given or Twenty2Client(settings, before_request=priority.urgent)
        spare = given or Twenty2Client(settings, before_request=priority.spare)
        salesforce = overrides.pop("salesforce", None) or SalesforceClient(settings)
        cache = overrides.pop("cache", None) or LeadCache(
            redis_client(settings, purpose="lead-cache"),
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
        writer = CompositeWriter(salesforce, api_version=settings.salesforce_api_version)
        return cls(settings, twenty2, salesforce, mapping, finder, writer, twenty2_spare=spare, priority=priority)

    def background(self) -> Services:
        """These services with reconciliation's Twenty2 client: for syncing calls reconciliation found, which
        take only the Twenty2 budget webhook-driven fetches leave. Built once; shares every other client."""
        if self.twenty2_spare is None:
            return self
        with self._lock:
            if self._background is None:
                self._background = replace(self, twenty2=self.twenty2_spare, twenty2_spare=None, _background=None)
                self._background._lengths = self._lengths
            return self._background

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
