"""``crm-sync`` commands as ops run them, against the sandboxes and a private Redis."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from standins.stack.sandboxes import SEED_CALL, Sandboxes
from worker.cli import main


def run(boxes: Sandboxes, redis_url: str, *args: str) -> tuple[int, str]:
    env = {**boxes.env, "REDIS_URL": redis_url, "TWENTY2_RATE_LIMIT_PER_MINUTE": "0"}
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout  # logs go to stderr


def test_sync_then_status_and_limits(boxes: Sandboxes, redis_url: str) -> None:
    code, _ = run(boxes, redis_url, "sync", SEED_CALL)
    assert code == 0
    code, output = run(boxes, redis_url, "status", SEED_CALL, "--json")
    assert code == 0 and json.loads(output)["state"] == "synced"
    code, output = run(boxes, redis_url, "status", "--limits", "--json")
    usage = json.loads(output)
    assert code == 0 and usage["max"] == 100_000 and usage["used"] > 0 and usage["holding"] is False


def test_limits_live_asks_salesforce(boxes: Sandboxes, redis_url: str) -> None:
    boxes.salesforce.set_usage(used=95_000, maximum=100_000)
    code, output = run(boxes, redis_url, "status", "--limits", "--live", "--json")
    usage = json.loads(output)
    assert code == 0 and usage["remaining_share"] < 0.06 and usage["holding"] is True


def test_dry_run_writes_nothing(boxes: Sandboxes, redis_url: str) -> None:
    before = len(boxes.salesforce.records("Task"))
    code, output = run(boxes, redis_url, "sync", SEED_CALL, "--dry-run", "--json")
    plan = json.loads(output)
    assert code == 0 and [w["ref"] for w in plan["writes"]] == ["lead", "callTask", "followUp"]
    assert plan["field_changes"][0]["new"] == "Working - Contacted"
    assert len(boxes.salesforce.records("Task")) == before


def test_mapping_check_names_the_line_of_a_bad_key(boxes: Sandboxes, redis_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "mapping.toml"
    bad.write_text(
        'sobject = "Lead"\n\n[params.interested]\nkind = "yes_no"\n[params.interested.fields.Status]\n'
        'mode = "sometimes"\nvalues = { yes = "Working - Contacted" }\n'
    )
    code, output = run(boxes, redis_url, "mapping", "check", "--file", str(bad))
    assert code == 1 and "mapping.toml:6" in output and "sometimes" in output
    code, output = run(boxes, redis_url, "mapping", "check")
    assert code == 0 and "OK" in output
