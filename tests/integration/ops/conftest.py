"""The ops console's tests: fixtures from ``support.ops_console``."""

from __future__ import annotations

from support.ops_console import browser_context, console, receiver

__all__ = ["browser_context", "console", "receiver"]
