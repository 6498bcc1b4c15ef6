"""Where reconciliation and the audit leave their state in Redis, read by the ops console and ``/metrics``.

- ``crm-sync:reconcile:watermark``: the newest end time (epoch seconds) among finished calls a pass handled;
- ``crm-sync:reconcile:last``: the last pass's summary (JSON: when, listed, found, queued, ...);
- ``crm-sync:audit:last``: the last audit's summary (JSON: when, compared, findings by kind, ...).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, cast

import redis

WATERMARK_KEY = "crm-sync:reconcile:watermark"
LAST_RUN_KEY = "crm-sync:reconcile:last"
LAST_AUDIT_KEY = "crm-sync:audit:last"
RUN_LOCK_KEY = "crm-sync:reconcile:pass-lock"


def read_watermark(client: redis.Redis) -> datetime | None:
    raw = client.get(WATERMARK_KEY)
    return datetime.fromtimestamp(float(cast(Any, raw)), UTC) if raw else None


def write_watermark(client: redis.Redis, when: datetime | None) -> None:
    if when is not None:
        client.set(WATERMARK_KEY, repr(when.timestamp()))


def save(client: redis.Redis, key: str, summary: dict[str, Any]) -> None:
    client.set(key, json.dumps(summary, default=str))


def load(client: redis.Redis, key: str) -> dict[str, Any] | None:
    raw = client.get(key)
    if not raw:
        return None
    try:
        data = json.loads(cast(Any, raw))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def last_run(client: redis.Redis) -> dict[str, Any] | None:
    return load(client, LAST_RUN_KEY)


def last_audit(client: redis.Redis) -> dict[str, Any] | None:
    return load(client, LAST_AUDIT_KEY)
