"""Personal data kept in Redis: keyed digests for matching, Fernet tokens for what must be read back.

Phone numbers are personal data (India's DPDP Act), and whatever the service writes to Redis also lands in
its AOF and RDB files on disk. So no number is written in clear:

- where only *matching* is needed (which snapshot belongs to a number, "no Lead has this number", the lock
  held while a Lead is created) the key or value carries ``digest(e164)``: HMAC-SHA256 with a key of this
  deployment. A plain hash would not do: there are only ~10^10 Indian mobile numbers, so an unkeyed
  SHA-256 of one is reversed by trying them all;
- what must be read back (the number in an intake hint, a Lead snapshot's mapped field values) is
  ``seal``-ed: a Fernet token (AES-128-CBC + HMAC-SHA256, with its creation time, so a reader can refuse
  tokens older than it cares for).

Keys: ``CRM_SYNC_DATA_KEY``, one or more secrets (comma-separated, newest first). The first seals and
digests; every one of them unseals (``MultiFernet``), so a key can be rotated without losing what was
sealed with the previous one. Digests made with an old key no longer match: those cache entries miss and
are read again from Salesforce (they expire within minutes anyway). When the setting is empty the key is
derived from this deployment's API credentials (HKDF-SHA256), so every process of one deployment derives
the same key and another deployment cannot; changing those credentials then changes the key (same effect
as a rotation without the old key: cached entries are read again, nothing is lost).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

if TYPE_CHECKING:
    from worker.settings import Settings

_INFO = b"crm-sync personal data v1"
_DERIVED_INFO = b"crm-sync derived data key v1"


def _subkeys(secret: bytes) -> tuple[bytes, bytes]:
    """(HMAC key, Fernet key) from one configured secret: one secret, two independent keys."""
    material = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=_INFO).derive(secret)
    return material[:32], base64.urlsafe_b64encode(material[32:])


@dataclass(frozen=True)
class PersonalData:
    """Digests and seals personal data with the deployment's keys (``secrets``: newest first, at least one)."""

    secrets: tuple[bytes, ...]
    derived: bool = False
    _mac: bytes = field(init=False, repr=False)
    _fernet: MultiFernet = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.secrets:
            raise ValueError("PersonalData needs at least one key")
        keys = [_subkeys(s) for s in self.secrets]
        object.__setattr__(self, "_mac", keys[0][0])
        object.__setattr__(self, "_fernet", MultiFernet([Fernet(k[1]) for k in keys]))

    @classmethod
    def from_settings(cls, settings: Settings) -> PersonalData:
        """The keys of ``CRM_SYNC_DATA_KEY``, else one derived from the deployment's credentials."""
        configured = settings.data_keys
        if configured:
            return cls(tuple(k.encode() for k in configured))
        parts = [
            settings.twenty2_workspace_id,
            settings.twenty2_api_key.get_secret_value(),
            settings.twenty2_api_secret.get_secret_value(),
            settings.salesforce_client_id,
            settings.salesforce_client_secret.get_secret_value(),
            settings.salesforce_username,
            settings.salesforce_password.get_secret_value(),
        ]
        material = "\0".join(parts).encode()
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_DERIVED_INFO).derive(material)
        return cls((derived,), derived=True)

    def digest(self, value: str) -> str:
        """A keyed digest of ``value`` (128 bits, hex): equal values give equal digests, nothing gives the value."""
        return hmac.new(self._mac, value.encode(), hashlib.sha256).hexdigest()[:32]

    def seal(self, value: Any) -> str:
        """``value`` (JSON-serialisable) as a Fernet token, sealed with the newest key."""
        return self._fernet.encrypt(json.dumps(value, separators=(",", ":")).encode()).decode()

    def unseal(self, token: str | bytes, *, max_age: int | None = None) -> Any | None:
        """What ``seal`` sealed, or None when the token is unreadable with every key (rotated away, derived
        from other credentials, corrupt) or older than ``max_age`` seconds."""
        try:
            raw = self._fernet.decrypt(token if isinstance(token, bytes) else token.encode(), ttl=max_age)
        except InvalidToken:
            return None
        return json.loads(raw)
