"""What one process needs, built once from ``Settings``: Redis, the ledger, and (lazily) the API clients."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING

import redis
from celery import Celery

from worker.celery_app import make_celery
from worker.ledger import Ledger
from worker.logs import register_secrets
from worker.personal import PersonalData
from worker.redis_clients import redis_client, uses_sentinel
from worker.replicas import ReplicaConfirm
from worker.retry import REDIS, REDIS_INTAKE, Backoff
from worker.salesforce.budget import ApiBudget
from worker.salesforce.lead_cache import LeadCache
from worker.settings import Settings

if TYPE_CHECKING:
    from worker.autocall.store import CallbackStore
    from worker.sync.services import Services


@dataclass
class Runtime:
    settings: Settings
    #: Who uses this runtime: ``intake`` (the web process: Redis retries short enough for Twenty2's 5 s) or
    #: ``app`` (worker, beat, CLI).
    purpose: str = "app"
    _services: Services | None = field(default=None, repr=False)
    #: The clock of time-driven work (automatic callbacks); tests and the chaos run move it.
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        s = self.settings
        register_secrets(
            [
                s.twenty2_api_key.get_secret_value(),
                s.twenty2_api_secret.get_secret_value(),
                s.salesforce_access_token.get_secret_value(),
                s.salesforce_password.get_secret_value(),
                s.salesforce_security_token.get_secret_value(),
                s.salesforce_client_secret.get_secret_value(),
                *s.webhook_secrets,
                *s.ops_tokens.values(),
                s.crm_sync_alert_webhook_url.get_secret_value(),
                *(v.strip() for v in s.crm_sync_intake_signing_secret.get_secret_value().split(",")),
                *s.data_keys,
                s.redis_password.get_secret_value(),
                s.redis_sentinel_password.get_secret_value(),
            ]
        )

    @cached_property
    def redis(self) -> redis.Redis:
        return redis_client(self.settings, purpose=self.purpose, policy=POLICIES.get(self.purpose))

    @cached_property
    def replicas(self) -> ReplicaConfirm:
        """Confirms that writes so far reached a replica (``worker.replicas``; a no-op without replicas)."""
        return ReplicaConfirm(
            self.redis, timeout_ms=self.settings.redis_wait_replicas_ms, required=uses_sentinel(self.settings)
        )

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.redis, retention_days=self.settings.crm_sync_ledger_retention_days)

    @cached_property
    def lead_cache(self) -> LeadCache:
        return LeadCache(self.redis, region=self.settings.crm_sync_phone_region, data=self.personal_data)

    @cached_property
    def personal_data(self) -> PersonalData:
        """Digests and seals phone numbers kept in Redis (``CRM_SYNC_DATA_KEY``, else derived)."""
        return PersonalData.from_settings(self.settings)

    @cached_property
    def callbacks(self) -> CallbackStore:
        """The automatic callbacks (``worker.autocall``); each move is noted on the source call's record."""
        from worker.autocall.store import CallbackStore

        return CallbackStore(self.redis, self.personal_data, ledger=self.ledger)

    @cached_property
    def budget(self) -> ApiBudget:
        return ApiBudget(self.redis, reserve=self.settings.crm_sync_api_reserve)

    @cached_property
    def celery(self) -> Celery:
        """A Celery app bound to this runtime's broker, for publishing."""
        return make_celery(self.settings)

    def enqueue(self, call_id: str) -> None:
        """Queue ``sync_call(call_id)``; raises when the broker cannot take it (after a short retry)."""
        self.celery.send_task("crm_sync.sync_call", args=[call_id])

    @property
    def has_services(self) -> bool:
        return self._services is not None

    @property
    def services(self) -> Services:
        with self._lock:
            if self._services is None:
                # Imported here: the web process never needs the API clients.
                from worker.sync.services import Services

                self._services = Services.from_settings(self.settings)
            return self._services


#: Redis retry policy per runtime purpose.
POLICIES: dict[str, Backoff] = {"app": REDIS, "intake": REDIS_INTAKE}

_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime(purpose: str = "app") -> Runtime:
    """The process-wide runtime (worker and web processes), built from the environment on first use
    (``purpose``: see ``Runtime.purpose``; the first caller's counts)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime(Settings(), purpose=purpose)
        return _runtime
