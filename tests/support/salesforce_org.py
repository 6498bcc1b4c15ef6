"""Shared pytest fixtures: the Salesforce sandbox served over real HTTPS (trustme CA, verification on) and a
``SalesforceClient`` pointed at it. A plain module, not a conftest: the conftest of each folder whose tests
use them imports the fixtures (``from support.salesforce_org import sf_client, sf_org, sf_server``).

    if TYPE_CHECKING:  # import the types only: a plain import first would stop pytest rewriting asserts here
        from support.salesforce_org import SandboxOrg

    def test_something(sf_org: SandboxOrg, sf_client: SalesforceClient) -> None:
        lead_id = sf_org.state.demo_ids["priya"]
        ...

- ``sf_server`` (session scope): one ``SalesforceState`` + uvicorn thread for the whole run. Faults, usage,
  records, added fields / picklists (``state.add_field``, ``state.schema.set_picklist``) and the OAuth config
  are per test: ``sf_org`` resets them.
- ``sf_org`` (function scope): the same server with the org reset to the demo data (users, leads with
  phones in several spellings, one converted lead), faults off, usage 0; a ``SandboxOrg`` with helpers:
  ``settings(**overrides)`` (password flow against the sandbox, its CA bundle), ``client(**kw)``,
  ``http()`` (a verifying ``requests.Session``), ``token()``, ``rest(method, path, ..., headers=...)`` (raw
  authorised REST call), ``admin(method, path, json)`` (the ``/_sandbox`` endpoints).
- ``sf_client``: ``SalesforceClient(sf_org.settings())``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from standins.salesforce import OAuthConfig, SalesforceState, create_app
from standins.stack.https import TLSFiles, make_tls_files, serve_in_thread
from standins.stack.sandboxes import API_VERSION
from worker.salesforce.client import SalesforceClient
from worker.settings import Settings


@dataclass
class SandboxServer:
    state: SalesforceState
    base_url: str
    tls: TLSFiles


@dataclass
class SandboxOrg:
    """A reset sandbox org plus helpers to reach it."""

    state: SalesforceState
    base_url: str
    ca_pem: Path

    @property
    def oauth(self) -> OAuthConfig:
        return self.state.oauth

    def settings(self, **overrides: Any) -> Settings:
        """Settings for the password flow against the sandbox (override any field, e.g. another flow)."""
        values: dict[str, Any] = {
            "salesforce_login_url": self.base_url,
            "salesforce_username": self.oauth.username,
            "salesforce_password": self.oauth.password,
            "salesforce_security_token": self.oauth.security_token,
            "salesforce_client_id": self.oauth.client_id,
            "salesforce_client_secret": self.oauth.client_secret,
            "salesforce_api_version": API_VERSION,
            "salesforce_timeout": 5.0,
            "crm_sync_ca_bundle": str(self.ca_pem),
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    def client(self, **kwargs: Any) -> SalesforceClient:
        settings = kwargs.pop("settings", None) or self.settings()
        return SalesforceClient(settings, **kwargs)

    def http(self) -> requests.Session:
        """A session trusting the sandbox CA. Pass ``verify=org.verify`` on each request too:
        requests lets ``REQUESTS_CA_BUNDLE`` override a Session's own ``verify``."""
        session = requests.Session()
        session.verify = self.verify
        return session

    @property
    def verify(self) -> str:
        return str(self.ca_pem)

    def token(self) -> str:
        return self.state.issue_token()

    def rest(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        token: str | None = None,
        version: str = API_VERSION,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """A raw REST call: ``path`` relative to ``/services/data/v{version}/``; ``headers`` are sent too
        (e.g. ``If-Unmodified-Since``)."""
        with self.http() as http:
            return http.request(
                method,
                f"{self.base_url}/services/data/v{version}/{path}",
                json=json,
                params=params,
                headers={**(headers or {}), "Authorization": f"Bearer {token or self.token()}"},
                timeout=10,
                verify=self.verify,
            )

    def admin(self, method: str, path: str, json: Any = None) -> requests.Response:
        with self.http() as http:
            return http.request(method, f"{self.base_url}/_sandbox/{path}", json=json, timeout=10, verify=self.verify)


@pytest.fixture(scope="session")
def sf_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    tls = make_tls_files(tmp_path_factory.mktemp("sf-sandbox-tls"))
    state = SalesforceState(demo=True)
    with serve_in_thread(create_app(state), tls) as base_url:
        yield SandboxServer(state, base_url, tls)


@pytest.fixture
def sf_org(sf_server: SandboxServer) -> SandboxOrg:
    sf_server.state.oauth = OAuthConfig()
    sf_server.state.reset(demo=True)
    return SandboxOrg(sf_server.state, sf_server.base_url, sf_server.tls.ca_pem)


@pytest.fixture
def sf_client(sf_org: SandboxOrg) -> Iterator[SalesforceClient]:
    client = sf_org.client()
    yield client
    client.http.close()
