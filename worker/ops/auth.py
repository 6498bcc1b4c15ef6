"""Console access: sign-in tokens, the signed session cookie, CSRF tokens, and the plain-HTTP refusal.

- Tokens come from ``CRM_SYNC_OPS_TOKEN`` (``Settings.ops_tokens``: label → token). No token: console off (404).
- Signing in with a token sets ``crm_sync_ops``: a cookie signed (itsdangerous, HMAC-SHA1 over a key derived
  from that token) holding the label and a random CSRF token; Secure, HttpOnly, SameSite=Strict, path /ops.
  Removing a token from the list ends its sessions (their signature no longer verifies).
- Every POST carries the session's CSRF token in a form field; a missing or wrong one is refused (403). The
  sign-in POST, before any session, carries a nonce the sign-in page also set as a cookie (double submit).
- The console refuses a non-loopback address over plain HTTP unless ``CRM_SYNC_OPS_BEHIND_TLS`` says a TLS
  proxy is in front: at startup (the bind address) and per request (the connection's own address and scheme).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

from worker.settings import Settings

COOKIE = "crm_sync_ops"
SALT = "crm-sync-ops-session"


class ConsoleExposed(RuntimeError):
    """The console would be reachable over plain HTTP from other machines."""


@dataclass(frozen=True)
class Session:
    who: str
    csrf: str


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def refuse_plain_http(settings: Settings, host: str | None = None) -> None:
    """Raise ``ConsoleExposed`` when the console is on, bound to a non-loopback ``host`` and not behind TLS."""
    host = settings.crm_sync_http_host if host is None else host
    if settings.ops_tokens and not settings.crm_sync_ops_behind_tls and not is_loopback(host):
        raise ConsoleExposed(
            f"the ops console (CRM_SYNC_OPS_TOKEN is set) would be served over plain HTTP on {host}: serve it "
            "behind TLS and set CRM_SYNC_OPS_BEHIND_TLS=true, bind to 127.0.0.1, or unset CRM_SYNC_OPS_TOKEN"
        )


def request_allowed(settings: Settings, scheme: str, server_host: str | None) -> bool:
    """Whether a request may reach the console: over HTTPS, behind TLS, or on a loopback address."""
    return scheme == "https" or settings.crm_sync_ops_behind_tls or is_loopback(server_host)


class SessionSigner:
    def __init__(self, settings: Settings) -> None:
        self.tokens = settings.ops_tokens
        self.max_age = int(settings.crm_sync_ops_session_hours * 3600)

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    def _serializer(self, token: str) -> URLSafeTimedSerializer:
        # A key per token, derived (the token itself never signs anything shown to the browser).
        key = hashlib.sha256(b"crm-sync ops session\0" + token.encode()).hexdigest()
        return URLSafeTimedSerializer(key, salt=SALT)

    def sign_in(self, given: str) -> tuple[Session, str] | None:
        """The session and its cookie value for a correct token, else None (compared in constant time)."""
        found = None
        for label, token in self.tokens.items():
            if hmac.compare_digest(given.strip().encode(), token.encode()):
                found = label
        if found is None:
            return None
        session = Session(found, secrets.token_urlsafe(24))
        value = self._serializer(self.tokens[found]).dumps({"who": session.who, "csrf": session.csrf})
        return session, value

    def read(self, cookie: str | None) -> Session | None:
        if not cookie or not self.tokens:
            return None
        for token in self.tokens.values():
            try:
                data = self._serializer(token).loads(cookie, max_age=self.max_age)
            except BadSignature:
                continue
            valid = isinstance(data, dict) and isinstance(data.get("csrf"), str)
            if valid and self.tokens.get(data.get("who")) == token:
                return Session(data["who"], data["csrf"])
        return None


def csrf_ok(session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf.encode(), str(given).encode())
