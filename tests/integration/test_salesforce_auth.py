"""Every login flow of ``obtain_session`` against the sandbox's token endpoint, over real HTTPS."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from standins.stack.ports import free_port
from worker.errors import SalesforceAuthError, SalesforceUnavailable
from worker.salesforce.auth import SalesforceSession, obtain_session
from worker.settings import SalesforceAuthFlow

if TYPE_CHECKING:
    from support.salesforce_org import SandboxOrg


@pytest.fixture
def http() -> requests.Session:
    return requests.Session()


@pytest.fixture
def rsa_key_pair(tmp_path: Path) -> tuple[Path, str]:
    """A connected app's key pair: the private key file (worker side) and the public key PEM (org side)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = tmp_path / "server.key"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public.decode()


@pytest.fixture
def jwt_org(sf_org: SandboxOrg, rsa_key_pair: tuple[Path, str]) -> SandboxOrg:
    """The sandbox org with the connected app's certificate (public key) uploaded."""
    sf_org.state.oauth.jwt_public_key_pem = rsa_key_pair[1]
    return sf_org


def _works(org: SandboxOrg, session: SalesforceSession) -> bool:
    reply = org.rest("GET", "limits", token=session.access_token)
    return reply.status_code == 200


def test_password_flow(sf_org: SandboxOrg, http: requests.Session) -> None:
    settings = sf_org.settings()
    assert settings.salesforce_auth_flow is SalesforceAuthFlow.PASSWORD
    session = obtain_session(settings, http)
    assert session.instance_url == sf_org.base_url
    assert _works(sf_org, session)
    assert session.access_token not in repr(session)


def test_client_credentials_flow(sf_org: SandboxOrg, http: requests.Session) -> None:
    settings = sf_org.settings(salesforce_username="", salesforce_password="")
    assert settings.salesforce_auth_flow is SalesforceAuthFlow.CLIENT_CREDENTIALS
    session = obtain_session(settings, http)
    assert _works(sf_org, session)


def test_jwt_bearer_flow(jwt_org: SandboxOrg, rsa_key_pair: tuple[Path, str], http: requests.Session) -> None:
    settings = jwt_org.settings(salesforce_private_key_file=str(rsa_key_pair[0]), salesforce_password="")
    assert settings.salesforce_auth_flow is SalesforceAuthFlow.JWT_BEARER
    session = obtain_session(settings, http)
    assert _works(jwt_org, session)


def test_jwt_with_the_wrong_audience(
    jwt_org: SandboxOrg, rsa_key_pair: tuple[Path, str], http: requests.Session
) -> None:
    jwt_org.state.oauth.jwt_audiences = ("https://login.salesforce.com",)
    settings = jwt_org.settings(salesforce_private_key_file=str(rsa_key_pair[0]))
    with pytest.raises(SalesforceAuthError) as caught:
        obtain_session(settings, http)
    assert caught.value.code == "invalid_grant"
    assert "audience is invalid" in caught.value.message


def test_jwt_signed_with_another_key(jwt_org: SandboxOrg, tmp_path: Path, http: requests.Session) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "other.key"
    key_file.write_bytes(
        other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    with pytest.raises(SalesforceAuthError) as caught:
        obtain_session(jwt_org.settings(salesforce_private_key_file=str(key_file)), http)
    assert (caught.value.code, caught.value.message) == (
        "invalid_grant",
        "Salesforce login refused: invalid_grant: invalid assertion",
    )


def test_jwt_with_an_unreadable_key_file(sf_org: SandboxOrg, tmp_path: Path, http: requests.Session) -> None:
    key_file = tmp_path / "not-a-key.pem"
    key_file.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SalesforceAuthError) as caught:
        obtain_session(sf_org.settings(salesforce_private_key_file=str(key_file)), http)
    assert caught.value.code == "INVALID_PRIVATE_KEY"


def test_wrong_client_secret(sf_org: SandboxOrg, http: requests.Session) -> None:
    with pytest.raises(SalesforceAuthError) as caught:
        obtain_session(sf_org.settings(salesforce_client_secret="guess-1234"), http)
    assert caught.value.code == "invalid_client"
    assert "guess-1234" not in str(caught.value)
    assert not caught.value.retryable


def test_wrong_password(sf_org: SandboxOrg, http: requests.Session) -> None:
    with pytest.raises(SalesforceAuthError) as caught:
        obtain_session(sf_org.settings(salesforce_password="hunter2"), http)
    assert (caught.value.code, caught.value.http_status) == ("invalid_grant", 400)
    assert (
        str(caught.value) == "[write / invalid_grant] Salesforce login refused: invalid_grant: authentication failure"
    )


def test_unknown_client_id(sf_org: SandboxOrg, http: requests.Session) -> None:
    with pytest.raises(SalesforceAuthError) as caught:
        obtain_session(sf_org.settings(salesforce_client_id="someone-else"), http)
    assert caught.value.code == "invalid_client_id"


def test_access_token_flow_uses_the_given_token(sf_org: SandboxOrg, http: requests.Session) -> None:
    token = sf_org.token()
    settings = sf_org.settings(salesforce_instance_url=sf_org.base_url + "/", salesforce_access_token=token)
    session = obtain_session(settings, http)
    assert session == SalesforceSession(sf_org.base_url, token)
    assert sf_org.state.stats()["oauth"] == {}


def test_login_host_down_is_unavailable(sf_org: SandboxOrg, http: requests.Session) -> None:
    settings = sf_org.settings(salesforce_login_url=f"https://127.0.0.1:{free_port()}")
    with pytest.raises(SalesforceUnavailable) as caught:
        obtain_session(settings, http)
    assert caught.value.code == "CONNECTION_ERROR"
    assert sf_org.oauth.password not in str(caught.value)


def test_login_host_with_an_untrusted_certificate_fails(sf_org: SandboxOrg, http: requests.Session) -> None:
    settings = sf_org.settings(crm_sync_ca_bundle="")  # the system store does not trust the sandbox CA
    with pytest.raises(SalesforceUnavailable):
        obtain_session(settings, http)


def test_no_credentials_is_an_auth_error(http: requests.Session, sf_org: SandboxOrg) -> None:
    settings = sf_org.settings(salesforce_username="", salesforce_password="", salesforce_client_secret="")
    with pytest.raises(SalesforceAuthError) as caught:
        obtain_session(settings, http)
    assert caught.value.code == "NO_CREDENTIALS"
