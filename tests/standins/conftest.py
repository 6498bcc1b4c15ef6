"""Self-tests of the stand-ins: each served over real HTTPS (trustme CA, verification on)."""

from __future__ import annotations

from support.salesforce_org import sf_client, sf_org, sf_server
from support.stack import boxes, sandboxes
from support.twenty2_server import t2_fixture, t2_server_fixture

__all__ = ["boxes", "sandboxes", "sf_client", "sf_org", "sf_server", "t2_fixture", "t2_server_fixture"]
