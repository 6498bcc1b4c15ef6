"""Structured logging: every log line is an event with fields (structlog), secrets and phones scrubbed.

Two guards, so a careless call site cannot leak: fields whose *name* is sensitive are replaced, and any
configured secret value found anywhere in a rendered line is replaced by ``[redacted]``.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

import structlog

from worker.phones import mask

_SENSITIVE_KEYS = re.compile(r"(authorization|password|secret|token|api_key|private_key|session_id|assertion)", re.I)
_PHONE_KEYS = re.compile(r"(phone|number)$", re.I)
_secrets: set[str] = set()


def register_secrets(values: Iterable[str]) -> None:
    """Values never to appear in logs (API secrets, tokens, webhook secrets); empty strings are ignored."""
    _secrets.update(v for v in values if v and len(v) >= 4)


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _secrets:
            if secret in value:
                value = value.replace(secret, "[redacted]")
    return value


def _redacted(_: Any) -> str:
    return "[redacted]"


def _masked(value: Any) -> Any:
    return mask(value) if isinstance(value, str) else value


@functools.lru_cache(maxsize=4096)
def _field_rule(key: str) -> Callable[[Any], Any]:
    """What a field of this name gets (by name; a line's field names come from a small, fixed set)."""
    if _SENSITIVE_KEYS.search(key):
        return _redacted
    if _PHONE_KEYS.search(key):
        return _masked
    return _scrub_value


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        event[key] = _field_rule(key)(value)
    return event


def configure_logging(fmt: str = "console", level: int = logging.INFO) -> None:
    """Configure structlog and the stdlib root logger once per process (web, worker, CLI)."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        # ``shared`` (with _redact) has run on every event by now: ours before the handoff, the standard
        # library's (Celery, uvicorn) as foreign_pre_chain; redacting again would only cost each line.
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # urllib3's debug lines carry full request URLs (SOQL/SOSL with phone numbers): never below INFO.
    logging.getLogger("urllib3").setLevel(max(level, logging.INFO))
    # Celery's per-task "Task … received" / "Task … succeeded" lines repeat what the worker's own events
    # (sync.synced, sync.retry_scheduled, …) say with the call id, at two rendered lines per call: only
    # their warnings and errors (a task that raised) are kept.
    for name in ("celery.worker.strategy", "celery.app.trace"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
