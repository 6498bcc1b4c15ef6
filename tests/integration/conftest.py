"""Integration tests: real Redis (a private redis-server), the stand-ins over HTTPS, the Procfile's processes."""

from __future__ import annotations

from support.salesforce_org import sf_client, sf_org, sf_server
from support.stack import boxes, redis_server, redis_url, sandboxes
from support.twenty2_server import t2_fixture, t2_server_fixture

__all__ = [
    "boxes",
    "redis_server",
    "redis_url",
    "sandboxes",
    "sf_client",
    "sf_org",
    "sf_server",
    "t2_fixture",
    "t2_server_fixture",
]
