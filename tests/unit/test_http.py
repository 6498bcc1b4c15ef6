"""The API clients' sessions read the proxy and CA environment as requests does, once per host."""

from __future__ import annotations

import pytest

from worker.http import new_session


def settings_for(url: str, verify: bool | str = True) -> dict[str, object]:
    return dict(new_session(pool_size=4).merge_environment_settings(url, {}, None, verify, None))


def test_proxy_from_the_environment_is_used_for_other_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    proxies = settings_for("https://api.twentytwo.in/api/call/detail")["proxies"]
    assert isinstance(proxies, dict) and proxies.get("https") == "http://proxy.internal:3128"


def test_no_proxy_hosts_go_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    proxies = settings_for("https://127.0.0.1:8443/services/data")["proxies"]
    assert isinstance(proxies, dict) and "https" not in proxies


def test_ca_bundle_variable_is_honoured_when_verify_is_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/corp-ca.pem")
    assert settings_for("https://example.my.salesforce.com/")["verify"] == "/etc/corp-ca.pem"
    assert settings_for("https://example.my.salesforce.com/", verify="/srv/ca.pem")["verify"] == "/srv/ca.pem"


def test_environment_is_read_once_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    session = new_session(pool_size=4)
    first = session.merge_environment_settings("https://api.twentytwo.in/api/a", {}, None, True, None)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    again = session.merge_environment_settings("https://api.twentytwo.in/api/b", {}, None, True, None)
    other = session.merge_environment_settings("https://storage.example/rec.mp3", {}, None, True, None)
    assert first["proxies"] == again["proxies"] == {}  # same host: the reading from its first request
    assert other["proxies"].get("https") == "http://proxy.internal:3128"  # a new host: read now
    again["proxies"]["https"] = "mutated"  # callers get copies: the cached reading stays as read
    assert session.merge_environment_settings("https://api.twentytwo.in/", {}, None, True, None)["proxies"] == {}
