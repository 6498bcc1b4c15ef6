"""Who may post to the intake: a shared secret (path token or Bearer) and, optionally, an HMAC signature.

Twenty2 documents no request signing (reference §5): all it can carry is the shared secret, as the last
path segment of the webhook URL it is given. Signing is for senders that can sign (a relay in front of us,
our own replays, a future Twenty2 feature).

The rule, in this order; every failure is a 401 and nothing is enqueued:

1. **Shared secret** (``TWENTY2_WEBHOOK_SECRET``, comma-separated to rotate): the path token, else
   ``Authorization: Bearer``, compared in constant time with every configured secret. Checked before the
   body is read. Required, except in signature-only mode (3). No secret configured: nothing is accepted.
   Failure code ``UNAUTHORIZED``.
2. **Signature** (``CRM_SYNC_INTAKE_SIGNING_SECRET``, comma-separated to rotate): when set, every request
   must carry the signature header (default ``X-Twenty2-Signature``: ``sha256=<hex>`` or bare hex) and the
   timestamp header (default ``X-Twenty2-Timestamp``: Unix seconds). The signed string is
   ``{timestamp}.{raw body}``, HMAC-SHA256, compared in constant time with every signing secret. Checked
   on the raw body, read under the size cap. Codes: ``MISSING_SIGNATURE`` (a header absent),
   ``BAD_SIGNATURE`` (malformed, or no secret matches), ``STALE_SIGNATURE`` (authentic, but the timestamp
   lies more than ``CRM_SYNC_INTAKE_SIGNATURE_TOLERANCE`` seconds in the past or future).
3. **Signature-only** (``CRM_SYNC_INTAKE_SIGNATURE_ONLY=true``) skips (1), but only while signing secrets
   are set: without them the flag changes nothing and the shared secret stays required, so no setting
   ever opens the intake.

A captured signed request replayed inside the window is harmless: the worker re-fetches the call and the
ledger answers ``duplicate`` for a call id it has already queued.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from worker.settings import Settings

UNAUTHORIZED = "UNAUTHORIZED"
MISSING_SIGNATURE = "MISSING_SIGNATURE"
BAD_SIGNATURE = "BAD_SIGNATURE"
STALE_SIGNATURE = "STALE_SIGNATURE"

#: Failure code → the message sent back (never says which secret, or how close a guess came).
MESSAGES = {
    UNAUTHORIZED: "missing or wrong webhook secret",
    MISSING_SIGNATURE: "signature or timestamp header missing",
    BAD_SIGNATURE: "signature does not match the body",
    STALE_SIGNATURE: "signature timestamp outside the accepted window",
}

_HEX_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")
_SIGNATURE_PREFIX = "sha256="
_DEFAULTS = Settings.model_fields


def split_secrets(value: str) -> tuple[bytes, ...]:
    """Comma-separated secrets → their UTF-8 bytes, blanks dropped."""
    return tuple(part.strip().encode() for part in value.split(",") if part.strip())


def matches_any(offered: bytes, secrets: tuple[bytes, ...]) -> bool:
    """Constant-time comparison with every secret: all are compared, so timing tells not which (or none)."""
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(offered, secret)
    return matched


@dataclass(frozen=True)
class IntakeAuth:
    """The intake's authentication settings, checked per request (see the module docstring for the rule)."""

    shared_secrets: tuple[bytes, ...]
    signing_secrets: tuple[bytes, ...] = ()
    signature_header: str = _DEFAULTS["crm_sync_intake_signature_header"].default
    timestamp_header: str = _DEFAULTS["crm_sync_intake_timestamp_header"].default
    tolerance: int = _DEFAULTS["crm_sync_intake_signature_tolerance"].default
    signature_only: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> IntakeAuth:
        return cls(
            shared_secrets=split_secrets(settings.twenty2_webhook_secret.get_secret_value()),
            signing_secrets=split_secrets(settings.crm_sync_intake_signing_secret.get_secret_value()),
            signature_header=settings.crm_sync_intake_signature_header,
            timestamp_header=settings.crm_sync_intake_timestamp_header,
            tolerance=settings.crm_sync_intake_signature_tolerance,
            signature_only=settings.crm_sync_intake_signature_only,
        )

    @property
    def needs_signature(self) -> bool:
        return bool(self.signing_secrets)

    @property
    def needs_shared_secret(self) -> bool:
        return not (self.signature_only and self.signing_secrets)

    def check_shared_secret(self, token: str | None, authorization: str | None) -> str | None:
        """None when the path token (else the Bearer value) is a configured secret; else ``UNAUTHORIZED``."""
        offered = token
        if offered is None and authorization and authorization[:7].lower() == "bearer ":
            offered = authorization[7:].strip()
        if not offered or not self.shared_secrets:
            return UNAUTHORIZED
        # surrogatepass: a token may carry any code point, even a lone surrogate; encoding it must not raise.
        return None if matches_any(offered.encode("utf-8", "surrogatepass"), self.shared_secrets) else UNAUTHORIZED

    def check_signature(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> str | None:
        """None when ``body`` carries a valid, fresh signature by a signing secret; else the failure code."""
        signature = headers.get(self.signature_header)
        timestamp = headers.get(self.timestamp_header)
        if not signature or not timestamp:
            return MISSING_SIGNATURE
        signature, timestamp = signature.strip().lower(), timestamp.strip()
        signature = signature.removeprefix(_SIGNATURE_PREFIX)
        if not _HEX_SIGNATURE.fullmatch(signature) or not _UNIX_SECONDS.fullmatch(timestamp):
            return BAD_SIGNATURE
        signed = timestamp.encode() + b"." + body
        expected = tuple(
            hmac.new(secret, signed, hashlib.sha256).hexdigest().encode() for secret in self.signing_secrets
        )
        if not matches_any(signature.encode(), expected):
            return BAD_SIGNATURE
        # Freshness only after authenticity: STALE then means a genuine but old (replayed) or skewed request.
        now = time.time() if now is None else now
        if abs(now - int(timestamp)) > self.tolerance:
            return STALE_SIGNATURE
        return None
