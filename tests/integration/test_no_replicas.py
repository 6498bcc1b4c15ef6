"""``NOREPLICAS`` (a primary with ``min-replicas-to-write`` and no replica yet, as every new primary is for
a moment after a failover) is a lost connection for every Redis client in the process
(``worker.redis_clients.NoReplicasError``): retried by the product's clients, sorted retryable, and
reconnected by kombu rather than ending the Celery worker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kombu import Connection

from standins.stack.ports import free_port
from standins.stack.processes import Stack, service_env
from standins.stack.sandboxes import Sandboxes
from worker import retry
from worker.errors import RedisUnavailable, Stage, redis_errors
from worker.redis_clients import NoReplicasError, redis_client, settings_for


@pytest.fixture
def no_replicas(redis_url: str) -> Iterator[redis.Redis]:
    """Our Redis refusing every write, as a primary without its replica does."""
    client = redis.Redis.from_url(redis_url)
    client.config_set("min-replicas-to-write", 1)
    try:
        yield client
    finally:
        client.config_set("min-replicas-to-write", 0)


def test_a_write_refused_for_want_of_a_replica_is_a_lost_connection(no_replicas: redis.Redis, redis_url: str) -> None:
    with pytest.raises(NoReplicasError) as raised:
        redis.Redis.from_url(redis_url).set("crm-sync:test:k", 1)
    assert isinstance(raised.value, redis.exceptions.ConnectionError)
    with pytest.raises(RedisUnavailable), redis_errors(Stage.RECORD):  # retryable, not an internal error
        redis_client(settings_for(redis_url)).set("crm-sync:test:k", 1)


def test_the_product_client_waits_for_a_replica_to_come(no_replicas: redis.Redis, redis_url: str) -> None:
    client = redis_client(settings_for(redis_url))
    replica_attached = threading.Timer(0.6, no_replicas.config_set, ("min-replicas-to-write", 0))
    with retry.testing(wait=True):  # the real backoff: 0.25 s, 0.5 s, ...
        replica_attached.start()
        assert client.set("crm-sync:test:k", 1)
    assert no_replicas.get("crm-sync:test:k") == b"1"


def test_kombu_reconnects_instead_of_ending_the_worker(no_replicas: redis.Redis, redis_url: str) -> None:
    # What ended the worker in the CI failover run: restoring unacked messages when it (re)connects takes
    # a lock, whose SET was refused. A channel error ends a Celery worker; a connection error reconnects.
    with Connection(redis_url) as connection:
        channel = connection.default_channel
        with pytest.raises(Exception) as raised:
            channel.qos.restore_visible()
        assert isinstance(raised.value, connection.connection_errors)
        assert not isinstance(raised.value, connection.channel_errors)


def test_a_worker_started_against_a_primary_without_its_replica_waits_and_starts(
    no_replicas: redis.Redis, redis_url: str, boxes: Sandboxes, tmp_path: Path
) -> None:
    # The Procfile's worker, as it (re)connects to a new primary that no replica follows yet.
    env = service_env(boxes.env, redis_url=redis_url, secret="no-replicas-test-secret", work=tmp_path, port=free_port())
    stack = Stack(env=env, log_dir=tmp_path / "log")
    log = tmp_path / "log" / "worker.log"
    try:
        worker = stack.start("worker")
        deadline = time.monotonic() + 60
        while "Not enough good replicas" not in (log.read_text(errors="replace") if log.exists() else ""):
            assert worker.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "the worker never met the refused write"
            time.sleep(0.2)
        time.sleep(5)  # a few reconnection attempts
        assert worker.poll() is None, log.read_text(errors="replace")[-3000:]  # still up, not "Unrecoverable"
        no_replicas.config_set("min-replicas-to-write", 0)  # the replica follows the new primary
        deadline = time.monotonic() + 60
        while " ready." not in log.read_text(errors="replace"):
            assert worker.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        assert "Unrecoverable" not in log.read_text(errors="replace")
    finally:
        stack.stop()
