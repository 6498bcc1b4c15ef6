"""Every Redis client of the product, built in one place from ``Settings``: single Redis, Sentinel, or a
managed Redis with failover behind one address.

- ``redis_client(settings)``: the ledger, locks, holds, heartbeats, the API budget, caches, alerts, ops.
  With ``REDIS_SENTINELS`` it is redis-py's ``Sentinel.master_for``: every new connection asks the
  Sentinels where the primary is, and a connection to a primary that was demoted (``READONLY``) is dropped
  and counts as a lost connection. Lost connections are retried a bounded number of times with
  ``worker.retry.REDIS`` (the intake: ``REDIS_INTAKE``), so a failover costs a pause, not a restart.
- ``async_redis_client(settings)``: the same for asyncio code (the intake).
- ``celery_broker(settings)``: Celery's broker URL, transport options and TLS options (kombu's
  ``sentinel://`` transport with ``master_name`` for Sentinel).
- ``limits_storage(settings, key_prefix=...)``: the ``limits`` storage of the shared rate limits (Twenty2's
  budget, the intake's flood guard) on a pool of this module's.
- ``RetrySafeLock``: the class of every Redis lock of the product (``client.lock(..., lock_class=...)``).
- ``NoReplicasError``: how every Redis client in the process reads ``NOREPLICAS`` (a lost connection).

Secrets (Redis and Sentinel passwords) are only ever passed to the clients, never logged or shown.
"""

from __future__ import annotations

import ssl
from typing import Any, cast
from urllib.parse import quote

import redis
import redis.asyncio
from limits.storage import RedisStorage
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.lock import Lock
from redis.retry import Retry
from redis.sentinel import Sentinel

from worker import retry
from worker.settings import Settings


class NoReplicasError(RedisConnectionError):
    """Redis' ``NOREPLICAS``: the primary takes no writes while fewer replicas than ``min-replicas-to-write``
    follow it, which is how a primary answers for the seconds after a failover until Sentinel has turned a
    replica towards it. A passing state of the server, like ``LOADING`` (which redis-py itself reads as a
    ``ConnectionError``, ``BusyLoadingError``), so it is read the same way: retried by every client of the
    product, sorted as ``RedisUnavailable`` (retryable) by ``worker.errors``, and reconnected by kombu
    instead of ending the Celery worker ("Unrecoverable error: ResponseError", seen in the CI failover run:
    the worker reconnected to the new primary before its replica did, and exited)."""


def _read_noreplicas_as_lost_connection() -> None:
    """Teach redis-py's reply parsers (every client in the process, kombu's included) ``NOREPLICAS``.
    redis-py maps error prefixes to classes in one table and has no other way to add one."""
    from redis._parsers.base import BaseParser

    BaseParser.EXCEPTION_CLASSES.setdefault("NOREPLICAS", NoReplicasError)


_read_noreplicas_as_lost_connection()

#: Errors a failover (or a restart) causes, retried by every client (``NoReplicasError`` is a
#: ``RedisConnectionError``).
RETRIED = (RedisConnectionError, RedisTimeoutError, ReadOnlyError)


def settings_for(redis: Settings | str) -> Settings:
    """``Settings``, or a plain Redis URL (tests, tools) made into settings naming only that Redis."""
    if isinstance(redis, Settings):
        return redis
    return Settings(_env_file=None, redis_url=redis, redis_sentinels="")


def uses_sentinel(settings: Settings) -> bool:
    return bool(settings.sentinels)


def redis_client(
    settings: Settings,
    *,
    purpose: str = "app",
    socket_timeout: float = 3.0,
    policy: retry.Backoff | None = None,
    **options: Any,
) -> redis.Redis:
    """A Redis client following failovers; ``purpose`` names it in Redis' CLIENT LIST (``crm-sync:{purpose}``).
    ``policy``: its retries (default ``worker.retry.REDIS``)."""
    kwargs: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": min(socket_timeout, 2.0),
        "health_check_interval": 10,
        "retry": Retry(retry.RedisBackoff(policy or retry.REDIS), (policy or retry.REDIS).attempts - 1, RETRIED),
        "retry_on_error": list(RETRIED),
        "client_name": f"crm-sync:{purpose}",
        **options,
    }
    if not uses_sentinel(settings):
        return redis.Redis.from_url(settings.redis_url, **kwargs)
    return sentinel(settings).master_for(
        settings.redis_sentinel_master, redis_class=redis.Redis, **_node_options(settings), **kwargs
    )


def async_redis_client(
    settings: Settings,
    *,
    purpose: str = "intake",
    socket_timeout: float = 3.0,
    policy: retry.Backoff | None = None,
    **options: Any,
) -> redis.asyncio.Redis:
    """``redis_client`` for asyncio code (the same topology, retries and names)."""
    chosen = policy or retry.REDIS_INTAKE
    kwargs: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": min(socket_timeout, 2.0),
        "health_check_interval": 10,
        "retry": AsyncRetry(retry.RedisBackoff(chosen), chosen.attempts - 1, RETRIED),
        "retry_on_error": list(RETRIED),
        "client_name": f"crm-sync:{purpose}",
        **options,
    }
    if not uses_sentinel(settings):
        return redis.asyncio.Redis.from_url(settings.redis_url, **kwargs)
    watchers = AsyncSentinel(
        settings.sentinels,
        sentinel_kwargs={"socket_timeout": 1.0, "socket_connect_timeout": 1.0, **_sentinel_options(settings)},
    )
    return watchers.master_for(
        settings.redis_sentinel_master, redis_class=redis.asyncio.Redis, **_node_options(settings), **kwargs
    )


def sentinel(settings: Settings) -> Sentinel:
    """The Sentinel client itself (``discover_master`` / ``discover_slaves``)."""
    return Sentinel(
        settings.sentinels,
        sentinel_kwargs={"socket_timeout": 1.0, "socket_connect_timeout": 1.0, **_sentinel_options(settings)},
        socket_timeout=3.0,
        socket_connect_timeout=2.0,
    )


def _tls_options(settings: Settings) -> dict[str, Any]:
    if not settings.redis_tls:
        return {}
    options: dict[str, Any] = {"ssl": True, "ssl_cert_reqs": "required"}
    if settings.redis_tls_ca_file:
        options["ssl_ca_certs"] = settings.redis_tls_ca_file
    return options


def _node_options(settings: Settings) -> dict[str, Any]:
    """What the data nodes need (password, user, database, TLS): Sentinel only tells where they are."""
    options: dict[str, Any] = {"db": settings.redis_db, **_tls_options(settings)}
    if settings.redis_password.get_secret_value():
        options["password"] = settings.redis_password.get_secret_value()
    if settings.redis_username:
        options["username"] = settings.redis_username
    return options


def _sentinel_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = dict(_tls_options(settings))
    if settings.redis_sentinel_password.get_secret_value():
        options["password"] = settings.redis_sentinel_password.get_secret_value()
    return options


def celery_broker(settings: Settings) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """(broker_url, broker_transport_options, broker_use_ssl) for Celery."""
    transport: dict[str, Any] = {
        "visibility_timeout": settings.celery_visibility_timeout,
        "socket_timeout": 5,
        "socket_connect_timeout": 3,
        "retry_on_timeout": True,
        "health_check_interval": 10,
    }
    if not uses_sentinel(settings):
        use_ssl = _broker_ssl(settings) if settings.redis_url.startswith("rediss://") else None
        return settings.redis_url, transport, use_ssl
    # kombu's sentinel transport: one sentinel:// URL per Sentinel, ';'-joined; the credentials and
    # database in the URL are the data nodes' (kombu passes them to master_for); the Sentinels' own
    # password and TLS go in sentinel_kwargs.
    auth = ""
    password = settings.redis_password.get_secret_value()
    if password or settings.redis_username:
        auth = f"{quote(settings.redis_username, safe='')}:{quote(password, safe='')}@"
    url = ";".join(
        f"sentinel://{auth}{f'[{h}]' if ':' in h else h}:{p}/{settings.redis_db}" for h, p in settings.sentinels
    )
    transport["master_name"] = settings.redis_sentinel_master
    transport["sentinel_kwargs"] = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0, **_sentinel_options(settings)}
    return url, transport, _broker_ssl(settings) if settings.redis_tls else None


def _broker_ssl(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    if settings.redis_tls_ca_file:
        options["ssl_ca_certs"] = settings.redis_tls_ca_file
    return options


def limits_storage(
    settings: Settings, *, key_prefix: str, socket_timeout: float = 3.0, policy: retry.Backoff | None = None
) -> RedisStorage:
    """A ``limits`` Redis storage on a pool of ``redis_client`` (so it follows a failover too)."""
    client = redis_client(settings, purpose=f"limits:{key_prefix}", socket_timeout=socket_timeout, policy=policy)
    return RedisStorage("redis://", connection_pool=client.connection_pool, key_prefix=key_prefix)


def has_replicas(client: redis.Redis) -> bool:
    """Whether the primary ``client`` talks to has connected replicas (INFO replication)."""
    info = cast(dict[str, Any], client.info("replication"))
    return int(info.get("connected_slaves", 0)) > 0


def wait_for_replica(client: redis.Redis, timeout_ms: int) -> int:
    """``WAIT 1 timeout_ms`` on ``client``'s connection: how many replicas acknowledged this connection's
    writes so far (0 when none did within the timeout). Must run on the connection that wrote: see
    ``worker.intake.durable``."""
    return int(client.execute_command("WAIT", 1, timeout_ms))


class RetrySafeLock(Lock):
    """redis-py's lock, whose acquisition survives its own retry. The clients retry a command whose
    connection was lost (a Redis restart, a failover); when the lost ``SET NX`` had landed, the retry finds
    the key taken, by this very token, and the plain lock would report it held by someone else (seen in the
    chaos run: a worker took its own call for busy and dropped it). The token is unique per acquisition, so
    finding it means the key is ours."""

    def do_acquire(self, token: str | bytes) -> bool:
        if super().do_acquire(token):  # type: ignore[arg-type]
            return True
        held = self.redis.get(self.name)
        mine = token.encode() if isinstance(token, str) else token
        return (held.encode() if isinstance(held, str) else held) == mine
