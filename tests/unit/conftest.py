"""Unit tests: pure code, no servers, fast (``pytest tests/unit`` runs in seconds).

No fixture that starts a server is visible here (they live in ``tests/support``, imported by the
``integration`` and ``standins`` conftests), and a unit test that tries to start one anyway fails."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest


def _refuse(*_: Any, **__: Any) -> None:
    raise AssertionError("a unit test starts no server or process: move it to tests/integration")


@pytest.fixture(autouse=True)
def _no_servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(socket.socket, "listen", _refuse)
    monkeypatch.setattr(subprocess, "Popen", _refuse)
    yield
