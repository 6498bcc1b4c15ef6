"""Flood control for the intake: at most N webhook requests a minute per source, counted in Redis.

The count lives in Redis (the ``limits`` library, moving window), so every web process shares it. Every
request to a webhook route counts, authenticated or not, so a source guessing secrets gets 429s as well.
A source over its budget is answered 429 with ``Retry-After``; other sources are not affected.

The source is the socket peer. ``X-Forwarded-For`` is believed only when the peer is one of
``CRM_SYNC_TRUSTED_PROXIES``: the client is then the right-most address not itself a trusted proxy
(entries to its left are whatever the client chose to send). IPv6 sources are counted per /64, the block
one subscriber holds, so rotating addresses inside it does not reset the budget.

When Redis fails, the check lets the request through (fail open) and stops asking Redis for a moment:
the flood check must never turn an outage into 500s or stalls; the enqueue answers 503 on its own.
"""

from __future__ import annotations

import ipaddress
import math
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import structlog
from limits import RateLimitItemPerMinute
from limits.strategies import MovingWindowRateLimiter

from worker import retry
from worker.redis_clients import limits_storage, settings_for
from worker.settings import Settings

log = structlog.get_logger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Prefix length by which sources of each IP version are grouped.
SOURCE_PREFIX = {4: 32, 6: 64}
#: Seconds during which Redis is not asked again after it failed (requests pass meanwhile).
PAUSE_AFTER_FAILURE = 2.0
#: Seconds between two "flooded" warnings for the same source (a flood must not flood the logs too).
WARN_EVERY = 60.0
#: Sources remembered for that; the memory is simply cleared when full.
WARN_MEMORY = 1024
#: Redis timeout (seconds) for the check: short, so a hung Redis costs a request little before it fails open.
REDIS_TIMEOUT = 0.5
_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9.:_-]")


@dataclass(frozen=True)
class FloodVerdict:
    allowed: bool
    retry_after: int = 0


ALLOWED = FloodVerdict(allowed=True)


def parse_networks(value: str) -> tuple[IPNetwork, ...]:
    """``"10.0.0.1, 192.168.0.0/16, ::1"`` → networks; a bad entry raises ValueError (a setting typo)."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip())


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _source_of(ip: IPAddress) -> str:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    network = ipaddress.ip_network(f"{ip}/{SOURCE_PREFIX[ip.version]}", strict=False)
    return str(ip) if network.num_addresses == 1 else str(network)


class FloodGuard:
    """``per_minute`` webhook requests per minute per source, shared through Redis; ``<= 0`` disables."""

    def __init__(
        self,
        redis: Settings | str,
        *,
        per_minute: int,
        trusted_proxies: Iterable[IPNetwork] = (),
        key_prefix: str = "crm-sync-intake",
    ) -> None:
        self.per_minute = per_minute
        self.trusted_proxies = tuple(trusted_proxies)
        self._item = RateLimitItemPerMinute(max(per_minute, 1), namespace="flood")
        self._settings = settings_for(redis)
        self._key_prefix = key_prefix
        self._limiter: MovingWindowRateLimiter | None = None
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self._warned_at: dict[str, float] = {}

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def source(self, peer: str | None, forwarded_for: Iterable[str] = ()) -> str:
        """The key a request is counted under: its client address (see the module docstring)."""
        if not peer:
            return "unknown"
        peer_ip = _ip(peer)
        if peer_ip is None:
            # Not an address (an in-process test client, a unix socket name): count it by its name.
            return "name:" + _UNSAFE_KEY_CHARS.sub("_", peer[:64])
        client = peer_ip
        if self._trusted(peer_ip):
            hops = [hop for header in forwarded_for for hop in header.split(",")]
            for hop in reversed(hops):
                hop_ip = _ip(hop)
                if hop_ip is None:
                    break  # a trusted proxy never writes garbage: keep the last address we can trust
                client = hop_ip
                if not self._trusted(hop_ip):
                    break
        return _source_of(client)

    def check(self, source: str) -> FloodVerdict:
        """Count one request from ``source``; blocking (Redis): call it off the event loop."""
        if not self.enabled or time.monotonic() < self._paused_until:
            return ALLOWED
        try:
            limiter = self._get_limiter()
            if limiter.hit(self._item, source):
                return ALLOWED
            reset_at = limiter.get_window_stats(self._item, source).reset_time
        except Exception as exc:  # any storage failure: fail open, never a 500
            self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
            log.warning("intake.flood_check_unavailable", error=type(exc).__name__)
            return ALLOWED
        verdict = FloodVerdict(allowed=False, retry_after=max(1, math.ceil(reset_at - time.time())))
        self._warn(source, verdict)
        return verdict

    def _warn(self, source: str, verdict: FloodVerdict) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._warned_at.get(source, -WARN_EVERY) < WARN_EVERY:
                return
            if len(self._warned_at) >= WARN_MEMORY:
                self._warned_at.clear()
            self._warned_at[source] = now
        log.warning("intake.flooded", source=source, per_minute=self.per_minute, retry_after=verdict.retry_after)

    def _trusted(self, ip: IPAddress) -> bool:
        return any(ip in network for network in self.trusted_proxies)

    def _get_limiter(self) -> MovingWindowRateLimiter:
        with self._lock:
            if self._limiter is None:
                storage = limits_storage(
                    self._settings, key_prefix=self._key_prefix, socket_timeout=REDIS_TIMEOUT, policy=retry.ONCE
                )
                self._limiter = MovingWindowRateLimiter(storage)
            return self._limiter
