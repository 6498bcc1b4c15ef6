"""A harness for automatic-callback tests: both stand-ins, a private Redis, a runtime whose mapping switches
automatic callbacks on, the stand-in's clock set to a fixed morning (IST) and moved by the tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from standins.stack.sandboxes import Sandboxes
from worker.autocall.runner import Runner
from worker.autocall.store import Callback, CallbackStore
from worker.autocall.tasks import runner_for
from worker.runtime import Runtime
from worker.sync.services import Services
from worker.sync.stream import sync_and_record
from worker.twenty2.client import Twenty2Client

REPO = Path(__file__).resolve().parents[2]
AGENT = "69de483c68b23495c853b43a"  # the stand-in's published example agent
#: 10:00 IST on a Thursday, well inside the calling window.
MORNING = datetime(2030, 1, 10, 4, 30, tzinfo=UTC)


def mapping_file(directory: Path, **auto: Any) -> Path:
    """config/mapping.toml with ``[auto_callback] enabled = true`` and ``auto`` keys changed."""
    text = (REPO / "config" / "mapping.toml").read_text()
    values = {"enabled": "true", **{k: _toml(v) for k, v in auto.items()}}
    for key, value in values.items():
        text, n = re.subn(rf"(?m)^{key} = [^#\n]*", f"{key} = {value} ", text, count=1)
        assert n == 1, key
    path = directory / "mapping.toml"
    path.write_text(text)
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


@dataclass
class Harness:
    boxes: Sandboxes
    runtime: Runtime
    runner: Runner

    @property
    def store(self) -> CallbackStore:
        return self.runtime.callbacks

    @property
    def clock(self) -> Any:
        return self.boxes.twenty2.dialer.clock

    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, **delta: float) -> None:
        self.clock.advance(timedelta(**delta).total_seconds())
        self.boxes.twenty2.dialer.tick()

    def new_lead(self, phone: str, **fields: Any) -> str:
        values = {"LastName": f"Lead {phone[-4:]}", "Company": "Acme", "Phone": phone, **fields}
        return self.runtime.services.salesforce.create("Lead", values)

    def promise(self, phone: str, lead_id: str, when: str = "today 5pm", **fields: Any) -> str:
        """A completed call to ``phone`` in which the caller asked to be called back ``when``; synced."""
        ended = self.now().replace(microsecond=0)
        call_id = self.boxes.twenty2.add_call(
            callee_phone=phone,
            agent_id=AGENT,
            ended_at=ended,
            input_parameters={"salesforce_id": lead_id, "customerName": "Test"},
            output_parameters={"interested": "yes", "callback_requested": "yes", "callback_time": when},
            **fields,
        )
        assert sync_and_record(self.runtime, call_id) == "synced"
        return call_id

    def callback(self, source_call_id: str) -> Callback:
        cb = self.store.get(f"cb_{source_call_id}", unseal=True)
        assert cb is not None, f"no callback for {source_call_id}"
        return cb

    def followup(self, source_call_id: str) -> dict[str, Any]:
        [task] = [
            t
            for t in self.boxes.salesforce.records("Task")
            if t.get("Twenty2_Call_Id__c") == source_call_id + "-callback"
        ]
        return task

    def placed(self) -> list[Any]:
        return list(self.boxes.twenty2.dialer.placed.values())


def harness(boxes: Sandboxes, redis_url: str, tmp_path: Path, *, start: datetime = MORNING, **auto: Any) -> Harness:
    settings_overrides = {k: auto.pop(k) for k in list(auto) if k.startswith("crm_sync_")}
    settings = boxes.settings(
        redis_url=redis_url,
        twenty2_rate_limit_per_minute=0,
        crm_sync_mapping_file=mapping_file(tmp_path, **auto),
        crm_sync_data_key="autocall-test-data-key-0123",
        **settings_overrides,
    )
    services = Services.from_settings(settings, twenty2=Twenty2Client(settings))
    clock = boxes.twenty2.dialer.clock
    clock.set(start)
    runtime = Runtime(settings, _services=services, now=clock.now)
    return Harness(boxes, runtime, runner_for(runtime))
