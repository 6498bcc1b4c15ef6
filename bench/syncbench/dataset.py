"""The data set every path syncs: the same Leads (with the same ids) and the same calls, reset before each."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from syncbench.sandboxes import SandboxProcess

#: How Leads store their numbers: reps type them every which way.
SPELLINGS: tuple[Callable[[str], str], ...] = (
    lambda d: d,
    lambda d: f"+91 {d[:5]} {d[5:]}",
    lambda d: f"0{d[:5]}-{d[5:]}",
    lambda d: f"+91{d}",
)


@dataclass
class Dataset:
    call_ids: list[str]
    leads: list[dict[str, Any]]

    @classmethod
    def build(cls, box: SandboxProcess, n: int, seed: int, unknown_share: float = 0.2) -> Dataset:
        """``n`` calls: 35/80 of the known ones name their Lead's id, the rest are found by phone, and
        ``unknown_share`` of all are to numbers no Lead has (a Lead is created for each)."""
        rng = random.Random(seed)
        known = n - round(unknown_share * n)
        by_id = round(known * 35 / 80)
        by_phone = known - by_id
        numbers = list(dict.fromkeys(rng.choice("789") + f"{rng.randrange(10**9):09d}" for _ in range(3 * n)))
        numbers = numbers[: by_id + by_phone]
        rows = []
        for i, number in enumerate(numbers):
            field_name = "MobilePhone" if i % 5 == 4 else "Phone"
            rows.append(
                {
                    "FirstName": "Bench",
                    "LastName": f"Lead {i}",
                    "Company": "Bench Co",
                    "Status": "Open - Not Contacted",
                    field_name: SPELLINGS[i % len(SPELLINGS)](number),
                }
            )
        box.sf("POST", "reset", {"demo": False})
        ids = box.sf("POST", "records/Lead", rows)["ids"]
        leads = [{"Id": lead_id, **row} for lead_id, row in zip(ids, rows, strict=True)]
        call_ids: list[str] = []
        groups = [
            {"generate": by_id, "seed": seed + 1, "lead_ids": ids[:by_id], "phones": numbers[:by_id]},
            {"generate": by_phone, "seed": seed + 2, "phones": numbers[by_id:]},
            {"generate": n - by_id - by_phone, "seed": seed + 3},
        ]
        for group in groups:
            if group["generate"]:
                call_ids += box.t2("POST", "calls", group)["call_ids"]
        rng.shuffle(call_ids)
        return cls(call_ids, leads)

    def reset(
        self, box: SandboxProcess, *, twenty2_latency_ms: float, salesforce_latency_ms: float, limit: int | None
    ) -> None:
        """The org back to its start (same Leads, same ids), Twenty2's counters cleared, latency and limit set."""
        box.sf("POST", "reset", {"demo": False})
        for start in range(0, len(self.leads), 1000):
            box.sf("POST", "records/Lead", self.leads[start : start + 1000])
        box.sf("PUT", "faults", {"latency_ms": salesforce_latency_ms})
        box.t2("POST", "reset", params={"keep_calls": "true"})
        config: dict[str, Any] = {"latency_ms": twenty2_latency_ms}
        config.update({"lift_rate_limit": True} if limit is None else {"rate_limit_per_minute": limit})
        box.t2("POST", "config", config)
