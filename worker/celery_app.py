"""The Celery application: Redis broker, JSON only, late acks, redelivery on worker loss.

Retries and holds do not use Celery countdowns (an ETA longer than Redis' visibility timeout is delivered
twice, and a worker holding ETA tasks can die when Redis drops): a retry is a time in the ledger's
``due`` sorted set, and the ``crm_sync.sweep`` beat task enqueues what has come due.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import setup_logging

from worker.logs import configure_logging
from worker.redis_clients import celery_broker
from worker.settings import Settings

QUEUE = "crm-sync"


def make_celery(settings: Settings) -> Celery:
    app = Celery("crm_sync", include=["worker.tasks", "worker.alerts", "worker.autocall.tasks"])
    broker_url, transport_options, use_ssl = celery_broker(settings)
    app.conf.update(
        broker_url=broker_url,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options,
        broker_use_ssl=use_ssl,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=QUEUE,
        task_publish_retry=True,
        # The intake must answer within Twenty2's 5 s: give up publishing quickly and answer 503.
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0.1,
            "interval_step": 0.3,
            "interval_max": 0.5,
        },
        worker_hijack_root_logger=False,
        # No remote control (celery inspect / control): nothing here uses it, and its broadcast (pub/sub)
        # channel is what crashed a worker on reconnecting through Sentinel in the failover run.
        worker_enable_remote_control=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        beat_schedule={
            "sweep": {"task": "crm_sync.sweep", "schedule": 5.0},
            "alerts": {"task": "crm_sync.alerts", "schedule": settings.crm_sync_alert_check_seconds},
            "autocall": {"task": "crm_sync.autocall_sweep", "schedule": settings.crm_sync_auto_callback_sweep_seconds},
            **(
                {"reconcile": {"task": "crm_sync.reconcile", "schedule": settings.crm_sync_reconcile_every_seconds}}
                if settings.crm_sync_reconcile_every_seconds > 0
                else {}
            ),
            **(
                {"audit": {"task": "crm_sync.audit", "schedule": settings.crm_sync_audit_every_seconds}}
                if settings.crm_sync_audit_every_seconds > 0
                else {}
            ),
            **(
                {
                    "auto-replay": {
                        "task": "crm_sync.auto_replay",
                        "schedule": settings.crm_sync_auto_replay_minutes * 60,
                    }
                }
                if settings.crm_sync_auto_replay_minutes > 0
                else {}
            ),
        },
        timezone="UTC",
    )
    return app


@setup_logging.connect
def _configure_logging(**_: Any) -> None:
    """Worker and beat log through our redacting structlog setup (connecting here replaces Celery's own)."""
    configure_logging(Settings().crm_sync_log_format)


app = make_celery(Settings())

# Workers and beat report their heartbeat to Redis (the ops console shows who is alive).
import worker.heartbeat  # noqa: E402, F401
