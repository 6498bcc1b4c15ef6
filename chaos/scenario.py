"""The calls of a chaos run and what Salesforce must look like afterwards (``build_scenario``).

Seeds one Lead per call in the Salesforce sandbox, adds the calls to the Twenty2 sandbox (the unknown ones
to a second, unserved Twenty2 state), plants the validation rule, and computes each Lead's expected end
state with the product's own mapping rules. Nothing here talks to the Procfile processes."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from chaos.options import ChaosOptions
from standins.salesforce import ValidationRule
from standins.stack.sandboxes import Sandboxes
from standins.twenty2 import SandboxCall, Twenty2State
from worker.mapping import load_mapping, plan_lead_fields
from worker.settings import Settings
from worker.twenty2.models import CONNECTED_STATUSES

#: Lead Status / Rating the generated Leads start at (cycled), so both rank rules and both yes/no get hit.
START_VALUES: tuple[tuple[str, str | None], ...] = (
    ("Open - Not Contacted", None),
    ("Open - Not Contacted", "Warm"),
    ("Working - Contacted", "Cold"),
    ("Working - Contacted", "Hot"),
    ("Closed - Not Converted", "Cold"),
)
#: Planted permanent failures: kind → the failure code the ledger must show for them.
PLANTED_CODES = {"unknown call": "CALL_NOT_FOUND", "validation rule": "FIELD_CUSTOM_VALIDATION_EXCEPTION"}


@dataclass
class Scenario:
    """The calls to post and what Salesforce must look like afterwards."""

    order: list[str]  # call ids in posting order
    payloads: dict[str, dict[str, Any]]
    lead_of: dict[str, str]  # call id → its Lead
    initial: dict[str, dict[str, Any]]  # call id → the Lead's mapped fields before the run
    expected: dict[str, dict[str, Any]]  # call id → the Lead's mapped fields once the call is synced
    callback: dict[str, bool]  # call id → a callback Task is due once synced
    planted: dict[str, str]  # call id → planted kind (a key of PLANTED_CODES)
    missing_calls: list[SandboxCall]  # the unknown calls, added to Twenty2 before the replay
    rules: list[ValidationRule]
    leads_before: int = 0
    numbers: list[str] = field(default_factory=list)  # the Leads' (and so the calls') phone numbers


def _unique_phones(rng: random.Random, count: int) -> list[str]:
    phones: set[str] = set()
    while len(phones) < count:
        phones.add(rng.choice("78") + "".join(rng.choices("0123456789", k=9)))
    return sorted(phones, key=lambda _: rng.random())


def build_scenario(boxes: Sandboxes, options: ChaosOptions, rng: random.Random) -> Scenario:
    """Seed one Lead per call, add the calls to the Twenty2 sandbox (the unknown ones elsewhere), plant
    the validation rule, and compute each Lead's expected end state with the product's mapping rules."""
    sf, t2 = boxes.salesforce, boxes.twenty2
    mapping = load_mapping(Settings(_env_file=None).crm_sync_mapping_file)
    fields = sorted(mapping.lead_fields())
    n_bad = max(2, round(options.events * 0.005))  # per planted kind
    n_known = options.events - n_bad
    if n_known < n_bad + 2:
        raise ValueError(f"--events must be at least {3 * n_bad + 2}")
    leads_before = len(sf.records("Lead"))
    phones = _unique_phones(rng, options.events)
    owners = [sf.users["asha"], sf.users["vikram"]]
    lead_ids = []
    for i, phone in enumerate(phones):
        status, rating = START_VALUES[i % len(START_VALUES)]
        values = {
            "FirstName": "Chaos",
            "LastName": f"Lead {i:05d}",
            "Company": "Chaos Run Ltd",
            "Phone": phone,
            "Status": status,
            "OwnerId": rng.choice(owners),
        }
        if rating:
            values["Rating"] = rating
        lead_ids.append(sf.insert_raw("Lead", values))
    # Half the calls name their Lead (salesforce_id), half are found by phone number.
    half = n_known // 2
    known = t2.add_generated_calls(half, seed=options.seed * 1000 + 1, lead_ids=lead_ids[:half], phones=phones[:half])
    known += t2.add_generated_calls(n_known - half, seed=options.seed * 1000 + 2, phones=phones[half:n_known])
    # Calls the Twenty2 sandbox does not have (404 CALL_NOT_FOUND) until the replay: rendered elsewhere.
    elsewhere = Twenty2State(base_url=boxes.twenty2_url)
    unknown = elsewhere.add_generated_calls(
        n_bad, seed=options.seed * 1000 + 3, lead_ids=lead_ids[n_known:], phones=phones[n_known:]
    )
    blocked = rng.sample(known, n_bad)
    rules = [
        ValidationRule("Task", "CallObject", call_id, message="Chaos run: this call is blocked by a validation rule")
        for call_id in blocked
    ]
    sf.set_faults(validation_rules=rules)

    calls = {cid: t2.get_call(cid) for cid in known} | {cid: elsewhere.get_call(cid) for cid in unknown}
    payloads = {cid: t2.webhook_payload(cid) for cid in known}
    payloads |= {cid: elsewhere.webhook_payload(cid) for cid in unknown}
    lead_of = dict(zip([*known, *unknown], lead_ids, strict=True))
    initial, expected, callback = {}, {}, {}
    for call_id, call in calls.items():
        lead = sf.get(lead_of[call_id]) or {}
        current = {f: lead.get(f) for f in fields}
        initial[call_id] = current
        if call.status in CONNECTED_STATUSES:
            plan = plan_lead_fields(
                mapping, agent_id=call.agent_id, output_parameters=call.output_parameters, current=current
            )
            expected[call_id] = {**current, **plan.updates}
            callback[call_id] = plan.callback_requested
        else:
            expected[call_id], callback[call_id] = dict(current), False
    order = [*known, *unknown]
    rng.shuffle(order)
    return Scenario(
        order=order,
        payloads=payloads,
        lead_of=lead_of,
        initial=initial,
        expected=expected,
        callback=callback,
        planted={**dict.fromkeys(unknown, "unknown call"), **dict.fromkeys(blocked, "validation rule")},
        numbers=phones,
        missing_calls=[elsewhere.get_call(cid) for cid in unknown],
        rules=rules,
        leads_before=leads_before,
    )
