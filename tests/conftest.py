"""Shared fixtures: a private Redis per test session (never a Redis we did not start), settings builders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from worker import retry
from worker.devstack import RedisServer
from worker.logs import configure_logging
from worker.sandbox.local import Sandboxes

configure_logging("console")


@pytest.fixture(scope="session", autouse=True)
def retries_do_not_wait() -> Iterator[None]:
    """The one switch: in-process retry loops keep their attempt counts but skip their sleeps (a test that
    measures a wait turns them back on with ``retry.testing(wait=True)``)."""
    with retry.testing(wait=False):
        yield


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


@pytest.fixture
def tmp_dir(tmp_path: Path) -> Path:
    return tmp_path


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
