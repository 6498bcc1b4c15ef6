"""``Sandboxes(only=...)`` (``crm-sync sandbox --only``): one service per process, its settings alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from standins.stack.sandboxes import Sandboxes


def test_only_salesforce_serves_salesforce_alone(tmp_path: Path) -> None:
    with Sandboxes(tmp_path, only="salesforce") as boxes:
        assert boxes.twenty2_url == "" and boxes.salesforce_url.startswith("https://127.0.0.1:")
        assert {k for k in boxes.env if k.startswith("TWENTY2_")} == set()
        assert boxes.env["SALESFORCE_LOGIN_URL"] == boxes.salesforce_url
        answer = requests.get(f"{boxes.salesforce_url}/_sandbox/health", verify=boxes.env["CRM_SYNC_CA_BUNDLE"])
        assert answer.status_code == 200


def test_only_twenty2_serves_twenty2_and_its_storage_alone(tmp_path: Path) -> None:
    with Sandboxes(tmp_path, only="twenty2") as boxes:
        assert boxes.salesforce_url == "" and boxes.twenty2.storage_base_url.startswith("https://127.0.0.1:")
        assert {k for k in boxes.env if k.startswith("SALESFORCE_")} == set()
        assert boxes.env["TWENTY2_BASE_URL"] == boxes.twenty2_url


def test_only_an_unknown_service_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one of twenty2, salesforce"):
        Sandboxes(tmp_path, only="hubspot")
