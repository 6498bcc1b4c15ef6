"""What every test folder shares: console logging. Fixtures that start servers live in ``tests/support``
and are imported by the conftest of the folders that use them (``integration``, ``standins``)."""

from __future__ import annotations

from worker.logs import configure_logging

configure_logging("console")
