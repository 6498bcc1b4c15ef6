"""Log in to Salesforce: turn the settings' credentials into an access token and an instance URL.

Every flow of ``Settings.salesforce_auth_flow`` posts to ``{SALESFORCE_LOGIN_URL}/services/oauth2/token``
itself (simple-salesforce's own login builds ``https://{domain}.salesforce.com`` and cannot reach a My
Domain or the local sandbox); the reply's ``instance_url`` is used for every later call.

- ``access_token``: the configured token and instance URL, as given (no request).
- ``password``: grant ``password`` with client id/secret and password + security token.
- ``client_credentials``: grant ``client_credentials`` with client id/secret.
- ``jwt_bearer``: an RS256 assertion signed with the private key file (iss = client id, sub = username,
  aud = the login URL, exp = now + 3 minutes).

Errors: the token endpoint refusing (``invalid_grant``, ``invalid_client_id``, ...) → ``SalesforceAuthError``
(permanent) carrying its ``error`` / ``error_description``; a 5xx, timeout or connection error →
``SalesforceUnavailable``. Messages never contain passwords, secrets, assertions or tokens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import requests

from worker.errors import SalesforceAuthError, SalesforceUnavailable, Stage
from worker.settings import SalesforceAuthFlow, Settings

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_LIFETIME_SECONDS = 180


@dataclass(frozen=True)
class SalesforceSession:
    """Where and with what to call the REST API. The token is kept out of ``repr``."""

    instance_url: str
    access_token: str = field(repr=False)


def obtain_session(settings: Settings, http: requests.Session) -> SalesforceSession:
    """Log in with the flow the settings select; see the module docstring for errors."""
    try:
        flow = settings.salesforce_auth_flow
    except ValueError as exc:
        raise SalesforceAuthError(str(exc), stage=Stage.WRITE, code="NO_CREDENTIALS") from None
    if flow is SalesforceAuthFlow.ACCESS_TOKEN:
        return SalesforceSession(
            settings.salesforce_instance_url.rstrip("/"), settings.salesforce_access_token.get_secret_value()
        )
    form = _FORMS[flow](settings)
    return _token_request(settings, http, form)


def _password_form(settings: Settings) -> dict[str, str]:
    return {
        "grant_type": "password",
        "client_id": settings.salesforce_client_id,
        "client_secret": settings.salesforce_client_secret.get_secret_value(),
        "username": settings.salesforce_username,
        "password": settings.salesforce_password.get_secret_value()
        + settings.salesforce_security_token.get_secret_value(),
    }


def _client_credentials_form(settings: Settings) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": settings.salesforce_client_id,
        "client_secret": settings.salesforce_client_secret.get_secret_value(),
    }


def _jwt_form(settings: Settings) -> dict[str, str]:
    try:
        key = Path(settings.salesforce_private_key_file).read_text(encoding="utf-8")
    except OSError as exc:
        raise SalesforceAuthError(
            f"cannot read SALESFORCE_PRIVATE_KEY_FILE: {exc.strerror}", code="INVALID_PRIVATE_KEY"
        ) from None
    now = int(time.time())
    claims = {
        "iss": settings.salesforce_client_id,
        "sub": settings.salesforce_username,
        "aud": settings.salesforce_login_url.rstrip("/"),
        "iat": now,
        "exp": now + JWT_LIFETIME_SECONDS,
    }
    try:
        assertion = jwt.encode(claims, key, algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError):
        raise SalesforceAuthError(
            "SALESFORCE_PRIVATE_KEY_FILE is not a usable RSA private key (PEM)", code="INVALID_PRIVATE_KEY"
        ) from None
    return {"grant_type": JWT_GRANT, "assertion": assertion}


_FORMS = {
    SalesforceAuthFlow.PASSWORD: _password_form,
    SalesforceAuthFlow.CLIENT_CREDENTIALS: _client_credentials_form,
    SalesforceAuthFlow.JWT_BEARER: _jwt_form,
}


def _token_request(settings: Settings, http: requests.Session, form: dict[str, str]) -> SalesforceSession:
    url = settings.salesforce_login_url.rstrip("/") + "/services/oauth2/token"
    try:
        response = http.post(
            url,
            data=form,
            headers={"Accept": "application/json"},
            timeout=settings.salesforce_timeout,
            verify=settings.requests_verify,
        )
    except requests.RequestException as exc:
        # requests' messages name host, port and path only; the form (secrets) is never part of them.
        raise SalesforceUnavailable(
            f"Salesforce login failed: {type(exc).__name__}: {str(exc)[:300]}", code="CONNECTION_ERROR"
        ) from None
    reply = _json(response)
    if response.status_code >= 500:
        raise SalesforceUnavailable(
            f"Salesforce login answered HTTP {response.status_code}",
            code=str(reply.get("error") or "SERVER_ERROR"),
            http_status=response.status_code,
        )
    if response.status_code != 200:
        error = str(reply.get("error") or f"HTTP_{response.status_code}")
        description = str(reply.get("error_description") or "")[:300]
        raise SalesforceAuthError(
            f"Salesforce login refused: {error}: {description}".rstrip(": "),
            code=error,
            http_status=response.status_code,
        )
    token, instance = reply.get("access_token"), reply.get("instance_url")
    if not isinstance(token, str) or not isinstance(instance, str) or not token or not instance:
        raise SalesforceAuthError("Salesforce login reply has no access_token / instance_url", code="BAD_TOKEN_REPLY")
    return SalesforceSession(instance.rstrip("/"), token)


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
