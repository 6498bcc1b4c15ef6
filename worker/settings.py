"""Typed settings, read from the environment (and `.env`).

Every field's ``description`` is its help text: the README table and ``crm-sync settings`` print it.
Secrets are ``SecretStr`` so that printing a ``Settings`` never shows them.
Settings are data: build one ``Settings`` at the edge (CLI, web app, Celery worker) and pass it in.
"""

from __future__ import annotations

from datetime import time
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class UnknownNumberPolicy(StrEnum):
    CREATE = "create"
    SKIP = "skip"


class SalesforceAuthFlow(StrEnum):
    ACCESS_TOKEN = "access_token"  # noqa: S105 - a flow's name
    PASSWORD = "password"  # noqa: S105
    CLIENT_CREDENTIALS = "client_credentials"
    JWT_BEARER = "jwt_bearer"


class Settings(BaseSettings):
    """All settings of the service. Field names are the environment variable names (case-insensitive)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # --- Redis / Celery -------------------------------------------------------------------------------
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis for the Celery broker, the ledger, locks, rate limits and caches (single Redis, or "
        "a managed Redis with failover behind one address; rediss:// for TLS). Ignored when REDIS_SENTINELS is set.",
    )
    redis_sentinels: str = Field(
        "",
        description="Redis Sentinel addresses, comma-separated host:port (port 26379 when left out); set = "
        "every Redis client finds the primary through them and follows a failover.",
    )
    redis_sentinel_master: str = Field("mymaster", description="The master name the Sentinels monitor.")
    redis_sentinel_password: SecretStr = Field(
        SecretStr(""), description="Password of the Sentinels themselves (requirepass of sentinel.conf), if any."
    )
    redis_username: str = Field("", description="Redis ACL user of the data nodes, with REDIS_SENTINELS.")
    redis_password: SecretStr = Field(
        SecretStr(""), description="Password of the Redis data nodes, with REDIS_SENTINELS (in REDIS_URL otherwise)."
    )
    redis_db: int = Field(0, description="Database number, with REDIS_SENTINELS (in REDIS_URL otherwise).")
    redis_tls: bool = Field(
        False, description="TLS to the Sentinels and the data nodes, with REDIS_SENTINELS (rediss:// otherwise)."
    )
    redis_tls_ca_file: str = Field(
        "", description="CA bundle verifying the Redis/Sentinel certificates; empty = the system store."
    )
    redis_wait_replicas_ms: int = Field(
        500,
        description="How long the intake waits for a replica to confirm an accepted webhook (WAIT) before "
        "answering 503; only when the primary has replicas; 0 = do not wait.",
    )
    celery_visibility_timeout: int = Field(
        900,
        description="Seconds before Redis redelivers an unacknowledged task (a killed worker's): longer than "
        "the longest sync, rate-limit waits included.",
    )
    worker_concurrency: int = Field(16, description="Threads per Celery worker (the work is I/O-bound).")
    web_concurrency: int = Field(
        2, description="Intake (web) processes: uvicorn workers sharing the port (the Procfile's --workers)."
    )

    # --- Twenty2 -----------------------------------------------------------------------------------------
    twenty2_base_url: str = Field("https://api.twentytwo.in/api", description="Twenty2 API base URL.")
    twenty2_workspace_id: str = Field("", description="Twenty2 workspace id, sent as x-workspace-id.")
    twenty2_api_key: SecretStr = Field(SecretStr(""), description="Twenty2 API key (Basic auth user).")
    twenty2_api_secret: SecretStr = Field(SecretStr(""), description="Twenty2 API secret (Basic auth password).")
    twenty2_connect_timeout: float = Field(3.05, description="Seconds to connect to Twenty2.")
    twenty2_read_timeout: float = Field(15.0, description="Seconds to wait for a Twenty2 response.")
    twenty2_rate_limit_per_minute: int = Field(
        60, description="Requests per minute allowed towards Twenty2, per workspace, shared by all workers."
    )
    twenty2_webhook_secret: SecretStr = Field(
        SecretStr(""),
        description="Shared secret(s) for the intake, comma-separated to rotate; sent as path token or Bearer.",
    )

    # --- Salesforce -------------------------------------------------------------------------------------
    salesforce_instance_url: str = Field("", description="Instance URL, with SALESFORCE_ACCESS_TOKEN.")
    salesforce_access_token: SecretStr = Field(SecretStr(""), description="A ready session/access token.")
    salesforce_login_url: str = Field(
        "https://login.salesforce.com",
        description="OAuth host: login, test (sandbox), My Domain or local sandbox.",
    )
    salesforce_username: str = Field("", description="Username (password or JWT bearer flow).")
    salesforce_password: SecretStr = Field(SecretStr(""), description="Password (password flow).")
    salesforce_security_token: SecretStr = Field(SecretStr(""), description="Security token appended to the password.")
    salesforce_client_id: str = Field("", description="Connected-app consumer key (client credentials, JWT, password).")
    salesforce_client_secret: SecretStr = Field(SecretStr(""), description="Connected-app consumer secret.")
    salesforce_private_key_file: str = Field("", description="PEM private key for the JWT bearer flow.")
    salesforce_api_version: str = Field("62.0", description="Salesforce REST API version.")
    salesforce_task_external_id_field: str = Field(
        "Twenty2_Call_Id__c",
        description="Task custom field (Text, External ID) holding the call id: makes writes idempotent.",
    )
    salesforce_timeout: float = Field(30.0, description="Seconds to wait for a Salesforce response.")

    # --- Behaviour ----------------------------------------------------------------------------------------
    crm_sync_ca_bundle: str = Field(
        "", description="CA bundle for outgoing HTTPS (the sandbox's CA in demo/tests); empty = system store."
    )
    crm_sync_lead_id_param: str = Field(
        "salesforce_id", description="input_parameters key that carries the Salesforce Lead id."
    )
    crm_sync_phone_region: str = Field("IN", description="Default region for phone numbers without country code.")
    crm_sync_unknown_number: UnknownNumberPolicy = Field(
        UnknownNumberPolicy.CREATE, description="No Lead for the number: create one, or skip and record why."
    )
    crm_sync_new_lead_company: str = Field(
        "Unknown (Twenty2 call)", description="Company written on Leads created for unknown numbers."
    )
    crm_sync_mapping_file: Path = Field(
        REPO_ROOT / "config" / "mapping.toml",
        description="Mapping of output parameters to Salesforce fields.",
    )
    crm_sync_timezone: str = Field("Asia/Kolkata", description="Workspace time zone for callback times.")
    crm_sync_calling_window: str = Field("09:00-21:00", description="Hours (workspace zone) when callbacks may be due.")
    crm_sync_working_days: str = Field(
        "Mon,Tue,Wed,Thu,Fri,Sat", description="Days on which vague callbacks may fall due."
    )
    crm_sync_max_attempts: int = Field(8, description="Attempts for a retryable failure before it is recorded failed.")
    crm_sync_retry_base_seconds: float = Field(10.0, description="First retry delay; doubles each attempt (jittered).")
    crm_sync_retry_max_seconds: float = Field(900.0, description="Largest retry delay.")
    crm_sync_api_reserve: float = Field(
        0.10, ge=0, le=1, description="Share of the org's daily API allowance left untouched: syncs hold when reached."
    )
    crm_sync_auto_replay_minutes: float = Field(
        30.0, description="How often beat replays failed syncs whose last error was retryable (0 = never)."
    )
    crm_sync_auto_replay_max: int = Field(3, description="Automatic replays per call at most; then ops decide.")
    crm_sync_limit_hold_seconds: float = Field(
        60.0,
        description="How long held work waits at the daily API limit (or the reserve) before trying again; also "
        "how often, at most, one worker asks Salesforce whether the allowance is back (GET /limits).",
    )
    crm_sync_ledger_retention_days: int = Field(
        30,
        description="Days resolved (synced/skipped) ledger records are kept; unresolved ones are never expired.",
    )
    crm_sync_data_key: SecretStr = Field(
        SecretStr(""),
        description="Key(s) sealing personal data kept in Redis (phone hints, Lead snapshots), comma-separated, "
        "newest first, to rotate; empty = derived from this deployment's API credentials.",
    )
    crm_sync_http_host: str = Field("127.0.0.1", description="Intake bind address.")
    crm_sync_http_port: int = Field(8000, description="Intake port (Procfile uses $PORT when set).")
    crm_sync_log_format: str = Field("console", description="Log rendering: console or json.")

    # --- Intake security ---------------------------------------------------------------------------------
    crm_sync_intake_signing_secret: SecretStr = Field(
        SecretStr(""),
        description="HMAC-SHA256 signing secret(s), comma-separated to rotate; empty = no signature check.",
    )
    crm_sync_intake_signature_header: str = Field(
        "X-Twenty2-Signature", description="Header carrying the body signature (sha256=<hex> or bare hex)."
    )
    crm_sync_intake_timestamp_header: str = Field(
        "X-Twenty2-Timestamp", description="Header carrying the signed Unix timestamp (seconds)."
    )
    crm_sync_intake_signature_tolerance: int = Field(
        300, description="Seconds a signed timestamp may lie in the past or future (the replay window)."
    )
    crm_sync_intake_signature_only: bool = Field(
        False, description="With signing secrets set, a valid signature alone suffices (no shared secret)."
    )
    crm_sync_intake_rate_limit_per_minute: int = Field(
        600, description="Webhook requests per minute per source address, shared via Redis; 0 disables."
    )
    crm_sync_trusted_proxies: str = Field(
        "", description="Comma-separated proxy IPs/networks whose X-Forwarded-For names the real client."
    )

    # --- Ops console, metrics, alerts ----------------------------------------------------------------
    crm_sync_ops_token: SecretStr = Field(
        SecretStr(""),
        description="Ops console sign-in token, or a comma list of label:token to rotate (the label is who "
        "the ledger records); empty = console off.",
    )
    crm_sync_ops_behind_tls: bool = Field(
        False,
        description="The console is reached over HTTPS (TLS proxy in front): allows it on a non-loopback address.",
    )
    crm_sync_ops_session_hours: float = Field(12.0, description="Hours a console sign-in stays valid.")
    crm_sync_alert_webhook_url: SecretStr = Field(
        SecretStr(""), description="Slack-compatible incoming webhook for alerts (JSON {text}); empty = no alerts."
    )
    crm_sync_alert_retryable_threshold: int = Field(
        20, description="Alert when more retryable failures than this happen within 15 minutes."
    )
    crm_sync_alert_repeat_minutes: float = Field(
        15.0, description="The same alert is sent at most once per this many minutes (the rest are counted)."
    )
    crm_sync_alert_check_seconds: float = Field(30.0, description="How often beat looks for alert conditions.")

    # --- Reconciliation and audit (GET /call/logs) ------------------------------------------------------
    crm_sync_reconcile_every_seconds: float = Field(
        20.0,
        description="How often beat lists Twenty2's calls (GET /call/logs) to sync finished calls whose webhook "
        "never came; 0 turns reconciliation off.",
    )
    crm_sync_reconcile_lookback_hours: float = Field(
        48.0,
        description="Hours looked back past the watermark (the newest finished call already handled), so a "
        "call whose status turned final late is still found.",
    )
    crm_sync_reconcile_batch: int = Field(
        8,
        description="Calls one pass queues at most (the rest wait for the next pass); keep it below "
        "WORKER_CONCURRENCY so webhook syncs always find a free worker.",
    )
    crm_sync_reconcile_max_pages: int = Field(
        20, description="Pages of GET /call/logs one pass reads at most (when Twenty2 paginates at all)."
    )
    crm_sync_reconcile_reserve: int = Field(
        5,
        description="Twenty2 requests per minute reconciliation always leaves free for webhook-driven fetches "
        "(it also waits while any webhook-driven fetch waits for the shared limit).",
    )
    crm_sync_reconcile_max_wait_seconds: float = Field(
        120.0,
        description="Longest a reconciliation request waits for room in the Twenty2 budget; then the pass "
        "ends (or the call is retried later).",
    )
    crm_sync_audit_every_seconds: float = Field(
        3600.0,
        description="How often beat runs the three-way audit (Twenty2, ledger, Salesforce) over the last "
        "CRM_SYNC_AUDIT_WINDOW_HOURS and publishes its summary (metric, log event, alert); 0 = never.",
    )
    crm_sync_audit_window_hours: float = Field(
        24.0, description="Hours of calls the scheduled audit compares (the CLI takes --since)."
    )

    # automatic callbacks (worker.autocall; per-agent switches and limits are in the mapping file)
    crm_sync_auto_callback_kill_switch: bool = Field(
        False,
        description="Stop every automatic callback at once: none is triggered while true (each one due meanwhile "
        "is refused with reason kill_switch and stays an open follow-up Task for a human).",
    )
    crm_sync_auto_callback_window: str = Field(
        "09:00-21:00",
        description="Hours, in the lead's zone, when an automatic callback may be placed (Twenty2's own "
        "09:00-21:00 IST always applies on top: it would queue a call outside it to the next morning).",
    )
    crm_sync_auto_callback_zone_field: str = Field(
        "",
        description="Lead field holding the lead's IANA time zone (e.g. Asia/Dubai); empty or unreadable = "
        "CRM_SYNC_TIMEZONE.",
    )
    crm_sync_auto_callback_opt_out_fields: str = Field(
        "DoNotCall",
        description="Lead checkbox fields, comma-separated, any of which set means: never call automatically.",
    )
    crm_sync_auto_callback_closed_statuses: str = Field(
        "Closed - Not Converted,Closed - Converted",
        description="Lead Status values, comma-separated, for which no automatic callback is placed.",
    )
    crm_sync_auto_callback_sweep_seconds: float = Field(
        15.0, gt=0, description="How often beat looks for due callbacks (a callback is placed within one sweep)."
    )
    crm_sync_auto_callback_task_refresh_seconds: float = Field(
        300.0,
        ge=0,
        description="How often the sweep re-reads the follow-up Tasks of all scheduled callbacks (one batched "
        "Salesforce query per 200): a Task a rep moved (earlier or later) or completed moves or cancels its "
        "callback within this interval. 0 = only when the callback comes due.",
    )
    crm_sync_auto_callback_max_concurrent: int = Field(
        3, ge=1, description="Automatic calls in progress at once per workspace at most (Twenty2 allows 3)."
    )
    crm_sync_auto_callback_answer_grace_seconds: float = Field(
        60.0,
        description="How long a trigger whose answer was lost waits before GET /call/logs decides whether the "
        "call was placed (never a second trigger before that look).",
    )
    crm_sync_auto_callback_call_minutes: float = Field(
        30.0,
        description="A placed callback counts against the concurrency limit until its call ends, at most this long.",
    )
    crm_sync_auto_callback_log_pages: int = Field(
        5, ge=1, description="Pages of GET /call/logs read per sweep (lost answers, newer calls, calls ended)."
    )

    @field_validator("redis_sentinels")
    @classmethod
    def _valid_sentinels(cls, value: str) -> str:
        parse_sentinels(value)
        return value

    @cached_property
    def sentinels(self) -> list[tuple[str, int]]:
        """``REDIS_SENTINELS`` as (host, port) pairs; empty = a plain ``REDIS_URL``."""
        return parse_sentinels(self.redis_sentinels)

    @field_validator("crm_sync_data_key")
    @classmethod
    def _long_data_keys(cls, value: SecretStr) -> SecretStr:
        if any(len(k.strip()) < 16 for k in value.get_secret_value().split(",") if k.strip()):
            raise ValueError("each CRM_SYNC_DATA_KEY key must be at least 16 characters (a random secret)")
        return value

    @field_validator("crm_sync_timezone")
    @classmethod
    def _valid_zone(cls, value: str) -> str:
        ZoneInfo(value)
        return value

    @field_validator("crm_sync_calling_window", "crm_sync_auto_callback_window")
    @classmethod
    def _valid_window(cls, value: str) -> str:
        _parse_window(value)
        return value

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.crm_sync_timezone)

    @cached_property
    def calling_window(self) -> tuple[time, time]:
        return _parse_window(self.crm_sync_calling_window)

    @cached_property
    def auto_callback_window(self) -> tuple[time, time]:
        return _parse_window(self.crm_sync_auto_callback_window)

    @cached_property
    def working_days(self) -> frozenset[int]:
        names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        return frozenset(names.index(d.strip().lower()[:3]) for d in self.crm_sync_working_days.split(",") if d.strip())

    @property
    def webhook_secrets(self) -> list[str]:
        return [s.strip() for s in self.twenty2_webhook_secret.get_secret_value().split(",") if s.strip()]

    @property
    def data_keys(self) -> list[str]:
        """``CRM_SYNC_DATA_KEY``'s keys, newest first (empty: derive one, see ``worker.personal``)."""
        return [k.strip() for k in self.crm_sync_data_key.get_secret_value().split(",") if k.strip()]

    @property
    def salesforce_auth_flow(self) -> SalesforceAuthFlow:
        """Which login flow the Salesforce settings select (first match wins)."""
        if self.salesforce_instance_url and self.salesforce_access_token.get_secret_value():
            return SalesforceAuthFlow.ACCESS_TOKEN
        if self.salesforce_private_key_file and self.salesforce_client_id and self.salesforce_username:
            return SalesforceAuthFlow.JWT_BEARER
        if self.salesforce_username and self.salesforce_password.get_secret_value():
            return SalesforceAuthFlow.PASSWORD
        if self.salesforce_client_id and self.salesforce_client_secret.get_secret_value():
            return SalesforceAuthFlow.CLIENT_CREDENTIALS
        raise ValueError("no Salesforce credentials set")

    @property
    def ops_tokens(self) -> dict[str, str]:
        """Console tokens by label (an unlabelled token is ``ops``)."""
        tokens: dict[str, str] = {}
        for number, item in enumerate(self.crm_sync_ops_token.get_secret_value().split(",")):
            label, sep, token = item.strip().partition(":")
            if not sep:
                label, token = ("ops" if number == 0 else f"ops{number + 1}"), item.strip()
            if token:
                tokens[label.strip() or f"ops{number + 1}"] = token
        return tokens

    @property
    def has_twenty2_credentials(self) -> bool:
        return bool(self.twenty2_api_key.get_secret_value() and self.twenty2_workspace_id)

    @property
    def has_salesforce_credentials(self) -> bool:
        try:
            self.salesforce_auth_flow  # noqa: B018 - property raises when nothing is set
        except ValueError:
            return False
        return True

    @property
    def requests_verify(self) -> str | bool:
        """Value for ``requests``' ``verify``: the CA bundle when set, else the system store. Never False."""
        return self.crm_sync_ca_bundle or True


SENTINEL_PORT = 26379


def parse_sentinels(value: str) -> list[tuple[str, int]]:
    """``"a:26379, b, [::1]:26380"`` → ``[("a", 26379), ("b", 26379), ("::1", 26380)]``; raises ValueError."""
    found = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        if item.startswith("["):
            host, sep, rest = item[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise ValueError(f"sentinel address {item!r}: write [ipv6]:port")
            port_text = rest[1:]
        elif item.count(":") > 1:
            raise ValueError(f"sentinel address {item!r}: an IPv6 address goes in brackets, [::1]:26379")
        else:
            host, _, port_text = item.partition(":")
        if not host or "/" in host or "@" in host:
            raise ValueError(f"sentinel address {item!r}: expected host:port")
        try:
            port = int(port_text) if port_text else SENTINEL_PORT
        except ValueError:
            raise ValueError(f"sentinel address {item!r}: the port is not a number") from None
        if not 0 < port < 65536:
            raise ValueError(f"sentinel address {item!r}: port out of range")
        found.append((host, port))
    return found


def _parse_window(value: str) -> tuple[time, time]:
    start, _, end = value.partition("-")
    first, last = time.fromisoformat(start.strip()), time.fromisoformat(end.strip())
    if not first < last:
        raise ValueError(f"calling window {value!r}: start must be before end")
    return first, last


def settings_help() -> list[tuple[str, str, str]]:
    """(ENV_NAME, default, help) for every setting, for the README and ``crm-sync settings``."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, SecretStr):
            shown = "(secret)"
        else:
            shown = str(default.value if isinstance(default, StrEnum) else default)
            if isinstance(default, Path):
                shown = str(default.relative_to(REPO_ROOT)) if default.is_relative_to(REPO_ROOT) else shown
        rows.append((name.upper(), shown, field.description or ""))
    return rows


def settings_markdown() -> str:
    """The README's settings table (a test keeps the README equal to it)."""
    lines = ["| setting | default | what it is |", "| --- | --- | --- |"]
    lines += [
        f"| `{name}` | `{default}` | {text} |" if default else f"| `{name}` | | {text} |"
        for name, default, text in settings_help()
    ]
    return "\n".join(lines)
