"""Settings of the Redis topology: Sentinel addresses, and what the one client factory makes of them."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from pydantic import ValidationError

from worker.redis_clients import celery_broker, settings_for, uses_sentinel
from worker.settings import Settings, parse_sentinels


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_sentinel_addresses_with_and_without_ports() -> None:
    assert parse_sentinels("a:26380, b ,10.0.0.3:1") == [("a", 26380), ("b", 26379), ("10.0.0.3", 1)]


def test_ipv6_sentinels_go_in_brackets() -> None:
    assert parse_sentinels("[::1]:26381,[fe80::2]") == [("::1", 26381), ("fe80::2", 26379)]


def test_empty_means_no_sentinel() -> None:
    assert parse_sentinels("") == [] and parse_sentinels(" , ") == []
    assert not uses_sentinel(settings())


@pytest.mark.parametrize("bad", ["a:port", "a:0", "a:70000", "::1:26379", "[::1", "redis://a:26379", "u@a:1"])
def test_bad_sentinel_addresses_are_refused_by_the_settings(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_sentinels(bad)
    with pytest.raises(ValidationError):
        settings(redis_sentinels=bad)


def test_plain_url_broker_keeps_the_url_and_the_visibility_timeout() -> None:
    url, options, use_ssl = celery_broker(settings(redis_url="redis://r:6380/2"))
    assert url == "redis://r:6380/2" and options["visibility_timeout"] == 900 and use_ssl is None
    assert "master_name" not in options


def test_tls_url_broker_verifies_certificates() -> None:
    _, _, use_ssl = celery_broker(settings(redis_url="rediss://r:6380/0", redis_tls_ca_file="/ca.pem"))
    assert use_ssl is not None and use_ssl["ssl_ca_certs"] == "/ca.pem" and use_ssl["ssl_cert_reqs"] == 2


def test_sentinel_broker_is_one_url_per_sentinel_with_the_master_name_and_passwords() -> None:
    s = settings(
        redis_sentinels="s1:26379,s2:26380",
        redis_sentinel_master="crm",
        redis_password="p@ss:w/rd",
        redis_sentinel_password="sentinel-secret",
        redis_db=3,
    )
    url, options, use_ssl = celery_broker(s)
    parts = url.split(";")
    assert [p.rsplit("@", 1)[1] for p in parts] == ["s1:26379/3", "s2:26380/3"]
    assert all(p.startswith("sentinel://:") for p in parts)
    assert unquote(parts[0].split("@")[0].rsplit(":", 1)[1]) == "p@ss:w/rd"
    assert options["master_name"] == "crm" and options["sentinel_kwargs"]["password"] == "sentinel-secret"
    assert options["visibility_timeout"] == 900 and use_ssl is None


def test_sentinel_tls_applies_to_sentinels_and_nodes() -> None:
    s = settings(redis_sentinels="s1", redis_tls=True, redis_tls_ca_file="/ca.pem")
    _, options, use_ssl = celery_broker(s)
    assert options["sentinel_kwargs"]["ssl"] is True and options["sentinel_kwargs"]["ssl_ca_certs"] == "/ca.pem"
    assert use_ssl == {"ssl_cert_reqs": 2, "ssl_ca_certs": "/ca.pem"}


def test_a_plain_url_given_to_a_tool_names_only_that_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_SENTINELS", "elsewhere:26379")
    made = settings_for("redis://127.0.0.1:7000/0")
    assert made.redis_url == "redis://127.0.0.1:7000/0" and not uses_sentinel(made)


def test_the_doctor_names_where_redis_is_looked_for_without_credentials() -> None:
    from worker.doctor import _redis_target

    plain = settings(redis_url="redis://:hunter2-secret@r.example:6380/0")
    assert _redis_target(plain) == "r.example:6380/0"
    watched = settings(redis_sentinels="s1,s2:26380", redis_sentinel_master="crm", redis_password="hunter2-secret")
    assert _redis_target(watched) == "primary 'crm' via Sentinels s1:26379,s2:26380"


def test_sync_and_async_clients_are_built_for_either_topology_without_connecting() -> None:
    from redis.asyncio.sentinel import SentinelConnectionPool as AsyncSentinelPool
    from redis.sentinel import SentinelConnectionPool

    from worker.redis_clients import async_redis_client, redis_client

    plain = settings(redis_url="redis://127.0.0.1:1/3")
    assert redis_client(plain).connection_pool.connection_kwargs["db"] == 3
    assert async_redis_client(plain).connection_pool.connection_kwargs["db"] == 3
    watched = settings(redis_sentinels="127.0.0.1:1", redis_password="node-pw", redis_db=2)
    sync_pool = redis_client(watched).connection_pool
    async_pool = async_redis_client(watched).connection_pool
    assert isinstance(sync_pool, SentinelConnectionPool) and isinstance(async_pool, AsyncSentinelPool)
    assert sync_pool.connection_kwargs["password"] == "node-pw" == async_pool.connection_kwargs["password"]
    assert sync_pool.connection_kwargs["db"] == 2 and sync_pool.service_name == "mymaster"
