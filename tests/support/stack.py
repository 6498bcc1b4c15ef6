"""Fixtures of the local stack: a private Redis per test session (never a Redis we did not start) and both
stand-ins over HTTPS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from standins.stack.redis_server import RedisServer
from standins.stack.sandboxes import Sandboxes


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A clean database on our own Redis server (flushing it is ours to do)."""
    redis.Redis.from_url(redis_server.url).flushdb()
    return redis_server.url


@pytest.fixture(scope="session")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandboxes]:
    """Both sandboxes over HTTPS for the whole session (one trustme CA)."""
    with Sandboxes(tmp_path_factory.mktemp("tls")) as boxes:
        yield boxes


@pytest.fixture
def boxes(sandboxes: Sandboxes) -> Sandboxes:
    """The sandboxes reset: the demo org in Salesforce, the docs' calls in Twenty2, no faults."""
    sandboxes.salesforce.reset(demo=True)
    sandboxes.twenty2.reset()
    return sandboxes
