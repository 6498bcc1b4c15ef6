"""Alerts to a Slack-compatible incoming webhook (``CRM_SYNC_ALERT_WEBHOOK_URL``, JSON ``{"text": …}``).

``notify(kind, text, **fields)`` is the one way to send one (the audit calls it for calls missing in
Salesforce). Rate limit, shared by every process through Redis: at most one message per ``kind`` per
``CRM_SYNC_ALERT_REPEAT_MINUTES``. Event alerts (``pending=True``, e.g. each call that failed) that arrive
within the window wait in a Redis list and go out together in the next message (ten lines at most, then "and
N more"), so nothing is dropped and nothing floods; condition alerts (a threshold crossed) are simply not
repeated within the window.

``check(runtime)`` runs on beat every ``CRM_SYNC_ALERT_CHECK_SECONDS`` (the ``crm_sync.alerts`` task) and
looks for: calls recorded ``failed`` since the last look (permanent errors and exhausted retries), more
retryable failures than ``CRM_SYNC_ALERT_RETRYABLE_THRESHOLD`` in 15 minutes, and the Salesforce allowance
down to the reserve.
"""

from __future__ import annotations

import time
from typing import Any, cast

import redis
import requests
import structlog

from worker import once
from worker.celery_app import app
from worker.ledger import State
from worker.runtime import Runtime, get_runtime
from worker.settings import Settings

log = structlog.get_logger(__name__)

PREFIX = "crm-sync:alerts"
MAX_LINES = 10
WINDOW_15M = 900
#: On the first look (no cursor yet), failures this recent are still reported.
FIRST_LOOK_SECONDS = 300

# Take the window for ``kind`` if it is free; then hand back (and clear) what waited. KEYS: window, pending,
# taken. ARGV: token of this call, window seconds. Returns false when the window is taken, else the waiting
# lines. The window holds the token and the lines stay in ``taken`` while it lasts, so a call resent after
# its answer was lost (worker.once) gets the same lines back instead of "taken", with the lines gone.
_TAKE = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then return redis.call('LRANGE', KEYS[3], 0, -1) end
if held then return false end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('DEL', KEYS[3])
local lines = redis.call('LRANGE', KEYS[2], 0, -1)
if #lines > 0 then
  redis.call('RENAME', KEYS[2], KEYS[3])
  redis.call('EXPIRE', KEYS[3], ARGV[2])
end
return lines
"""


class Alerter:
    def __init__(self, settings: Settings, client: redis.Redis, *, http: requests.Session | None = None) -> None:
        self.url = settings.crm_sync_alert_webhook_url.get_secret_value()
        self.window = max(1, int(settings.crm_sync_alert_repeat_minutes * 60))
        self.r = client
        self.http = http or requests.Session()
        self.verify = settings.requests_verify
        self._take = client.register_script(_TAKE)

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def notify(self, kind: str, text: str, *, pending: bool = True, **fields: Any) -> bool:
        """Send ``text`` (plus ``fields`` as ``key=value``) under ``kind``; True when a message went out now.
        Within the window, a ``pending`` alert waits for the next message of its kind; others are dropped."""
        if not self.enabled:
            return False
        line = text + "".join(f" {k}={v}" for k, v in fields.items())
        waiting = f"{PREFIX}:pending:{kind}"
        if pending:
            self.r.rpush(waiting, line)
        return self._send_if_free(kind, None if pending else line)

    def flush(self, kind: str) -> bool:
        """Send what waits for ``kind`` once its window is free (beat calls this each look)."""
        if not self.enabled or not self.r.llen(f"{PREFIX}:pending:{kind}"):
            return False
        return self._send_if_free(kind, None)

    def _send_if_free(self, kind: str, line: str | None) -> bool:
        window, waiting = f"{PREFIX}:window:{kind}", f"{PREFIX}:pending:{kind}"
        taken = self._take(keys=[window, waiting, f"{PREFIX}:taken:{kind}"], args=[once.token(), self.window])
        if taken is None:
            return False
        lines = [v.decode() if isinstance(v, bytes) else str(v) for v in cast(list[Any], taken)]
        if line is not None:
            lines.append(line)
        if not lines:
            self.r.delete(window)
            return False
        shown = lines[:MAX_LINES]
        more = len(lines) - len(shown)
        text = "\n".join(f"[crm-sync] {item}" for item in shown) + (f"\n… and {more} more" if more else "")
        try:
            response = self.http.post(self.url, json={"text": text}, timeout=(3.05, 10), verify=self.verify)
            response.raise_for_status()
        except requests.RequestException as exc:
            # Not sent: put the lines back and free the window, so the next look tries again.
            log.warning("alerts.send_failed", kind=kind, error=type(exc).__name__)
            pipe = self.r.pipeline(transaction=True)
            if lines:
                pipe.lpush(waiting, *reversed(lines))
            pipe.delete(window)
            pipe.execute()
            return False
        log.info("alerts.sent", kind=kind, lines=len(lines))
        return True


def _alerter(runtime: Runtime) -> Alerter:
    return Alerter(runtime.settings, runtime.redis)


def notify(kind: str, text: str, **fields: Any) -> bool:
    """Send an alert through the process's runtime (see ``Alerter.notify``)."""
    return _alerter(get_runtime()).notify(kind, text, **fields)


def check(runtime: Runtime, *, now: float | None = None, alerter: Alerter | None = None) -> list[str]:
    """One look for alert conditions; returns the kinds that sent a message."""
    alerter = alerter or _alerter(runtime)
    if not alerter.enabled:
        return []
    now = time.time() if now is None else now
    sent = []
    ledger, settings = runtime.ledger, runtime.settings
    cursor_key = f"{PREFIX}:cursor:failed"
    since = float(cast(Any, runtime.redis.get(cursor_key)) or now - FIRST_LOOK_SECONDS)
    ids = [
        i.decode() if isinstance(i, bytes) else str(i)
        for i in cast(list[Any], runtime.redis.zrangebyscore(ledger.state_key(State.FAILED), f"({since}", now))
    ]
    for record in ledger.get_many(ids):
        error = record.last_error or {}
        why = "retries exhausted" if error.get("retryable") else "permanent error"
        code = f" / {error.get('code')}" if error.get("code") else ""
        alerter.r.rpush(
            f"{PREFIX}:pending:call_failed",
            f"call {record.call_id} failed ({why}): "
            f"[{error.get('stage')}{code}] {str(error.get('message') or '')[:200]}",
        )
    runtime.redis.set(cursor_key, repr(now))
    if alerter.flush("call_failed"):
        sent.append("call_failed")
    retryable = int(runtime.redis.zcount(ledger.metrics_key("retryable"), now - WINDOW_15M, "+inf"))  # type: ignore[arg-type]
    if retryable > settings.crm_sync_alert_retryable_threshold and alerter.notify(
        "retryable_failures",
        f"{retryable} retryable failures in the last 15 minutes (threshold "
        f"{settings.crm_sync_alert_retryable_threshold}): Salesforce or Twenty2 may be down or slow",
        pending=False,
    ):
        sent.append("retryable_failures")
    usage = runtime.budget.last()
    if (
        usage is not None
        and usage.remaining_share <= settings.crm_sync_api_reserve
        and alerter.notify(
            "api_reserve",
            f"Salesforce daily API allowance at its reserve: {usage.remaining} of {usage.maximum} left "
            f"(reserve {settings.crm_sync_api_reserve:.0%}); new syncs are held until it recovers",
            pending=False,
        )
    ):
        sent.append("api_reserve")
    return sent


@app.task(name="crm_sync.alerts", ignore_result=True)
def alerts_task() -> list[str]:
    return check(get_runtime())


__all__ = ["Alerter", "check", "notify"]
