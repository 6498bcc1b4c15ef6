"""HTTP sessions for the API clients: kept-alive connections for every worker thread, and the environment
(proxies, ``NO_PROXY``, CA bundle variables) read once per host instead of on every request.

requests re-reads the proxy environment on each request when ``trust_env`` is on (it walks the whole
process environment): on a busy worker that was over a tenth of its CPU. Settings are the same as
requests' own, taken when a host is first called; a change to the environment after start is not seen.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

if TYPE_CHECKING:
    from requests.sessions import _Settings

#: Distinct (host, settings) entries kept; beyond it the cache starts over (hosts are few: APIs, storage).
_MAX_ENTRIES = 256


class _EnvOnceSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[Hashable, dict[str, Any]] = {}

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> _Settings:
        parts = urlsplit(str(url))
        key = (parts.scheme, parts.netloc, tuple(sorted((proxies or {}).items())), stream, verify, cert)
        try:
            found = self._environment.get(key)
        except TypeError:  # an unhashable setting: no caching for it
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        if found is None:
            fresh_proxies = dict(proxies) if proxies is not None else None
            found = dict(super().merge_environment_settings(url, fresh_proxies, stream, verify, cert))
            if len(self._environment) >= _MAX_ENTRIES:
                self._environment.clear()
            self._environment[key] = found  # a race computes the same entry twice, harmlessly
        return cast("_Settings", {**found, "proxies": dict(found.get("proxies") or {})})


def new_session(*, pool_size: int) -> requests.Session:
    """A session whose pool keeps one connection per thread (requests' default of 10 would make threads
    beyond it open, and TLS-handshake, a new connection for every request)."""
    session = _EnvOnceSession()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(10, pool_size))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
