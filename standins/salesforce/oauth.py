"""``POST /services/oauth2/token``: the password, client-credentials, JWT-bearer and refresh-token grants,
and the session check of every REST request."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import jwt
from cryptography import x509

from standins.salesforce.org import ORG_ID, Org

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class OAuthError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(error)
        self.error = error
        self.description = description


def _public_key(pem: str) -> Any:
    if "BEGIN CERTIFICATE" in pem:
        return x509.load_pem_x509_certificate(pem.encode()).public_key()
    return pem


class OAuthServer(Org):
    """The org's OAuth 2.0 token endpoint and the session check of REST requests."""

    def oauth_token(self, form: dict[str, str], base_url: str) -> tuple[int, dict[str, Any]]:
        """Answer ``POST /services/oauth2/token``: (status, JSON body)."""
        grant = form.get("grant_type", "")
        handlers: dict[str, Callable[[dict[str, str], str], str]] = {
            "password": self._grant_password,
            "client_credentials": self._grant_client_credentials,
            JWT_GRANT: self._grant_jwt,
            "refresh_token": self._grant_refresh,
        }
        handler = handlers.get(grant)
        with self.lock:
            self._stats["oauth"][grant or "(none)"] += 1
            if handler is None:
                return 400, {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type not supported",
                }
            try:
                user_id = handler(form, self.base_url or base_url)
            except OAuthError as exc:
                self._stats["oauth"][f"error:{exc.error}"] += 1
                return 400, {"error": exc.error, "error_description": exc.description}
            token = self._issue(user_id, self.oauth.client_id)
        issued_at = str(int(time.time() * 1000))
        login = self.base_url or base_url
        identity = f"{login}/id/{ORG_ID}/{user_id}"
        signature = base64.b64encode(
            hmac.new(self.oauth.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256).digest()
        ).decode()
        return 200, {
            "access_token": token,
            "instance_url": self.base_url or base_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": signature,
            "scope": "api",
        }

    def _check_client(self, form: dict[str, str], *, secret_required: bool) -> None:
        if not hmac.compare_digest(form.get("client_id", ""), self.oauth.client_id):
            raise OAuthError("invalid_client_id", "client identifier invalid")
        secret = form.get("client_secret")
        if (secret_required or secret is not None) and not hmac.compare_digest(secret or "", self.oauth.client_secret):
            raise OAuthError("invalid_client", "invalid client credentials")

    def _grant_password(self, form: dict[str, str], base_url: str) -> str:
        self._check_client(form, secret_required=True)
        user_id = self._user_by_name(form.get("username", ""))
        expected = self.oauth.password + self.oauth.security_token
        if (
            user_id is None
            or form.get("username") != self.oauth.username
            or not hmac.compare_digest(form.get("password", ""), expected)
        ):
            raise OAuthError("invalid_grant", "authentication failure")
        return user_id

    def _grant_client_credentials(self, form: dict[str, str], base_url: str) -> str:
        self._check_client(form, secret_required=True)
        if not self.oauth.client_credentials_enabled:
            raise OAuthError("invalid_grant", "no client credentials user enabled")
        return self.integration_user_id

    def _grant_refresh(self, form: dict[str, str], base_url: str) -> str:
        self._check_client(form, secret_required=False)
        user_id = self._refresh_tokens.get(form.get("refresh_token", ""))
        if user_id is None:
            raise OAuthError("invalid_grant", "expired access/refresh token")
        return user_id

    def _grant_jwt(self, form: dict[str, str], base_url: str) -> str:
        assertion = form.get("assertion", "")
        try:
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise OAuthError("invalid_grant", "invalid assertion") from None
        if claims.get("iss") != self.oauth.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if not self.oauth.jwt_public_key_pem:
            raise OAuthError("invalid_grant", "invalid assertion")
        audiences = list(self.oauth.jwt_audiences) or [base_url.rstrip("/")]
        try:
            jwt.decode(
                assertion,
                _public_key(self.oauth.jwt_public_key_pem),
                algorithms=["RS256"],
                audience=audiences,
                options={"require": ["exp", "iss", "sub", "aud"]},
            )
        except jwt.InvalidAudienceError:
            raise OAuthError("invalid_grant", "audience is invalid") from None
        except jwt.PyJWTError:
            raise OAuthError("invalid_grant", "invalid assertion") from None
        user_id = self._user_by_name(str(claims.get("sub", "")))
        if user_id is None:
            raise OAuthError("invalid_grant", "invalid assertion")
        return user_id

    def _session_user(self, authorization: str | None) -> str | None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or not token:
            return None
        entry = self._tokens.get(token.strip())
        if entry is None:
            return None
        if entry.expires_at is not None and time.time() > entry.expires_at:
            del self._tokens[token.strip()]
            return None
        return entry.user_id
