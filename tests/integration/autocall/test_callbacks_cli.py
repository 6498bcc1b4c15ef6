"""``crm-sync callbacks`` as ops run it: list, show, cancel, dry-run (sandboxes, a private Redis)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from support.autocall import harness, mapping_file

from standins.stack.sandboxes import Sandboxes
from worker.autocall.store import CbState
from worker.cli import main

PHONE = "9811122233"


def run(boxes: Sandboxes, redis_url: str, tmp_path: Path, *args: str) -> tuple[int, str]:
    env = {
        **boxes.env,
        "REDIS_URL": redis_url,
        "TWENTY2_RATE_LIMIT_PER_MINUTE": "0",
        "CRM_SYNC_MAPPING_FILE": str(mapping_file(tmp_path)),
        "CRM_SYNC_DATA_KEY": "autocall-test-data-key-0123",
    }
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout


def test_list_show_cancel(boxes: Sandboxes, redis_url: str, tmp_path: Path) -> None:
    h = harness(boxes, redis_url, tmp_path)
    source = h.promise(PHONE, h.new_lead(PHONE), "kal shaam 5 baje")
    code, out = run(boxes, redis_url, tmp_path, "callbacks", "list", "--state", "scheduled", "--json")
    [listed] = json.loads(out)
    assert code == 0 and listed["id"] == f"cb_{source}" and listed["phone"] == "••••2233" and PHONE not in out
    code, out = run(boxes, redis_url, tmp_path, "callbacks", "show", source, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["callback"]["state"] == "scheduled" and shown["history"][0]["event"] == "scheduled"
    code, out = run(boxes, redis_url, tmp_path, "callbacks", "cancel", f"cb_{source}")
    assert code == 0 and "cancelled" in out
    cb = h.callback(source)
    assert cb.state is CbState.CANCELLED and cb.reason == "ops_cancelled"
    assert "cancelled" in (h.runtime.ledger.get(source).callback or "")  # type: ignore[union-attr]
    code, out = run(boxes, redis_url, tmp_path, "callbacks", "cancel", f"cb_{source}")
    assert code == 1 and "not cancelled" in out


def test_list_due_within_horizon(boxes: Sandboxes, redis_url: str, tmp_path: Path) -> None:
    h = harness(boxes, redis_url, tmp_path)
    h.promise(PHONE, h.new_lead(PHONE), "kal shaam 5 baje")  # due in 2030: beyond 24 h of real time
    code, out = run(boxes, redis_url, tmp_path, "callbacks", "list", "--due", "24h", "--json")
    assert code == 0 and json.loads(out) == []
    code, out = run(boxes, redis_url, tmp_path, "callbacks", "list", "--due", "2000d", "--json")
    assert code == 0 and len(json.loads(out)) == 1


def test_dry_run_explains_schedule_and_rules(boxes: Sandboxes, redis_url: str, tmp_path: Path) -> None:
    h = harness(boxes, redis_url, tmp_path)
    lead = h.new_lead(PHONE, DoNotCall=True)
    call_id = boxes.twenty2.add_call(
        callee_phone=PHONE,
        ended_at=h.now(),
        input_parameters={"salesforce_id": lead},
        output_parameters={"callback_requested": "yes", "callback_time": "today 5pm"},
    )
    code, out = run(boxes, redis_url, tmp_path, "callbacks", "dry-run", call_id, "--json")
    report = json.loads(out)
    assert code == 0 and report["proposal"].startswith("scheduled for 2030-01-10 11:30")
    assert report["at its due time, with the Lead as it is now"].startswith("cancel: the Lead opted out")
    assert h.store.get(f"cb_{call_id}") is None and not h.placed()


def test_dry_run_of_vague_time_says_why_not(boxes: Sandboxes, redis_url: str, tmp_path: Path) -> None:
    h = harness(boxes, redis_url, tmp_path)
    lead = h.new_lead(PHONE)
    call_id = boxes.twenty2.add_call(
        callee_phone=PHONE,
        ended_at=h.now(),
        input_parameters={"salesforce_id": lead},
        output_parameters={"callback_requested": "yes", "callback_time": "baad mein"},
    )
    code, out = run(boxes, redis_url, tmp_path, "callbacks", "dry-run", call_id, "--json")
    assert code == 0 and "not a confident reading" in json.loads(out)["proposal"]
