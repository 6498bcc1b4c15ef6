"""What every test folder shares: console logging, and retries that do not wait. Fixtures that start
servers live in ``tests/support`` and are imported by the conftest of the folders that use them
(``integration``, ``standins``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from worker import retry
from worker.logs import configure_logging

configure_logging("console")


@pytest.fixture(scope="session", autouse=True)
def retries_do_not_wait() -> Iterator[None]:
    """The one switch: in-process retry loops keep their attempt counts but skip their sleeps (a test that
    measures a wait turns them back on with ``retry.testing(wait=True)``)."""
    with retry.testing(wait=False):
        yield
