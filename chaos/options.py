"""What a chaos run is asked to do (``ChaosOptions``) and the service settings it changes, with why."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

WEBHOOK_SECRET = "chaos-run-webhook-secret-7f3a9c"  # the private intake of this run only

#: Settings the run changes, and why (printed with the results).
RUN_SETTINGS: dict[str, tuple[str, str]] = {
    "CRM_SYNC_RETRY_BASE_SECONDS": ("0.5", "short retries, so the run takes minutes"),
    "CRM_SYNC_RETRY_MAX_SECONDS": ("4", "short retries, so the run takes minutes"),
    "CRM_SYNC_MAX_ATTEMPTS": ("10", "retryable faults must not exhaust the attempts"),
    "CRM_SYNC_LIMIT_HOLD_SECONDS": ("3", "the daily-limit hold ends within the run"),
    "TWENTY2_READ_TIMEOUT": ("2", "hung Twenty2 requests (3 s) time out"),
    "TWENTY2_RATE_LIMIT_PER_MINUTE": ("0", "lifted (and the sandbox's 60/min too): the run is not bounded by it"),
    "CRM_SYNC_INTAKE_RATE_LIMIT_PER_MINUTE": ("0", "lifted: every webhook comes from 127.0.0.1"),
}
#: Not changed: CELERY_VISIBILITY_TIMEOUT stays at its default (15 min); a killed worker's calls must come
#: back through the dead-worker sweep (``chaos.worker_loss`` measures how fast).


def as_env(settings: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Settings with their reasons as environment variables (name → value)."""
    return {name: value for name, (value, _why) in settings.items()}


@dataclass(frozen=True)
class ChaosOptions:
    """What to run. ``timeout`` bounds each wait for the calls to become terminal (run, then replay)."""

    events: int = 1000
    workers: int = 2
    seed: int = 1
    post_rate: float = 40.0  # webhooks per second
    min_window: float = 12.0  # the posting (and the chaos schedule over it) lasts at least this long
    worker_kills: int = 4
    fault_rate: float = 0.10
    timeout: float = 900.0
    settle: float = 5.0
    work_dir: Path | None = None
    #: Settings a scenario changes on top of ``RUN_SETTINGS`` (name → (value, why)); printed with them.
    overrides: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def settings(self) -> dict[str, tuple[str, str]]:
        """The settings the run changes: ``RUN_SETTINGS``, then ``overrides``."""
        return {**RUN_SETTINGS, **self.overrides}

    @property
    def window(self) -> float:
        """Seconds over which the webhooks are posted and the scheduled faults fire."""
        return max(self.min_window, self.events / self.post_rate)
