"""Reusable pytest fixtures: the Twenty2 sandbox over real HTTPS, plus settings and clients pointed at it.

The conftest of each folder whose tests use them imports the fixtures (``tests/`` is on ``sys.path`` under
pytest's default import mode); a test module imports the type::

    from support.twenty2_server import T2Sandbox

    def test_something(t2: T2Sandbox) -> None:
        t2.state.fail_next(1, 503)
        detail = t2.client().get_call_detail("call_9c4d7e12ab")

Fixture ``t2_server`` (session scope) starts one sandbox for the whole run; fixture ``t2`` (function
scope) resets its state before and after each test and closes the clients and sessions it made.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from standins.stack.https import TLSFiles, make_tls_files, serve_in_thread
from standins.twenty2 import Twenty2State, create_app
from worker.retry import TWENTY2, Backoff
from worker.settings import Settings
from worker.twenty2.client import Twenty2Client


@dataclass
class T2Sandbox:
    """A running sandbox: its state, URLs, CA, and settings/clients/sessions that trust that CA."""

    state: Twenty2State
    root_url: str  # https://127.0.0.1:PORT
    api_url: str  # root_url + "/api" (= TWENTY2_BASE_URL)
    ca_pem: Path
    settings: Settings
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def settings_with(self, **overrides: Any) -> Settings:
        return self.settings.model_copy(update=overrides)

    def client(
        self,
        *,
        retry: Backoff = TWENTY2,
        settings: Settings | None = None,
        before_request: Callable[[], None] | None = None,
    ) -> Twenty2Client:
        """A client of the sandbox (its retries do not wait in tests: ``retry.testing``)."""
        client = Twenty2Client(settings or self.settings, retry=retry, before_request=before_request)
        self._closers.append(client.close)
        return client

    def session(self) -> requests.Session:
        """A plain session trusting the sandbox CA (for raw HTTP against the sandbox)."""
        session = requests.Session()
        session.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment overrides session.verify
        session.verify = str(self.ca_pem)
        self._closers.append(lambda: close_session(session))
        return session

    def auth_headers(self, **overrides: str) -> dict[str, str]:
        token = base64.b64encode(f"{self.state.api_key}:{self.state.api_secret}".encode()).decode()
        headers = {
            "Authorization": f"Basic {token}",
            "x-workspace-id": self.state.workspace_id,
            "Content-Type": "application/json",
        }
        headers.update(overrides)
        return headers

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()


def close_session(session: requests.Session) -> None:
    """Close a session's pooled sockets now (urllib3 2 leaves them to the garbage collector, which would
    keep the sandbox's TLS shutdown waiting)."""
    for adapter in session.adapters.values():
        if isinstance(adapter, HTTPAdapter):
            for key in adapter.poolmanager.pools.keys():  # noqa: SIM118 - the container refuses iteration
                pool = adapter.poolmanager.pools.get(key)
                if pool is not None:
                    pool.close()
    session.close()


def sandbox_settings(api_url: str, ca_pem: Path, state: Twenty2State, **overrides: Any) -> Settings:
    """Settings for the sandbox, ignoring any ``.env`` and environment values for these fields."""
    values: dict[str, Any] = {
        "twenty2_base_url": api_url,
        "twenty2_workspace_id": state.workspace_id,
        "twenty2_api_key": state.api_key,
        "twenty2_api_secret": state.api_secret,
        "twenty2_connect_timeout": 2.0,
        "twenty2_read_timeout": 5.0,
        "crm_sync_ca_bundle": str(ca_pem),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="session", name="t2_server")
def t2_server_fixture(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Twenty2State, str, TLSFiles]]:
    """One sandbox for the session: (state, root URL, TLS files)."""
    tls = make_tls_files(tmp_path_factory.mktemp("t2-tls"))
    state = Twenty2State()
    with serve_in_thread(create_app(state), tls) as root_url:
        state.base_url = f"{root_url}/api"
        yield state, root_url, tls
        state.reset()  # releases hung requests so the server stops at once


@pytest.fixture(name="t2")
def t2_fixture(t2_server: tuple[Twenty2State, str, TLSFiles]) -> Iterator[T2Sandbox]:
    """The session's sandbox, freshly reset, with settings and clients pointed at it."""
    state, root_url, tls = t2_server
    state.reset()
    sandbox = T2Sandbox(
        state=state,
        root_url=root_url,
        api_url=f"{root_url}/api",
        ca_pem=tls.ca_pem,
        settings=sandbox_settings(f"{root_url}/api", tls.ca_pem, state),
    )
    try:
        yield sandbox
    finally:
        sandbox.close()
        state.reset()
