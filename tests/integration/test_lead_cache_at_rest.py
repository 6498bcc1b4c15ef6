"""The Lead read-ahead cache keeps no number in clear in Redis, and still finds Leads by every spelling."""

from __future__ import annotations

import re

import redis

from worker.personal import PersonalData
from worker.salesforce.lead_cache import HINT_TTL, LeadCache

KEY, OTHER = b"cache-test-key-0123456789", b"cache-other-key-0123456789"
ROW = {
    "attributes": {"type": "Lead"},
    "Id": "00Q000000000001AAA",
    "OwnerId": "005000000000001AAA",
    "IsConverted": False,
    "ConvertedContactId": None,
    "Phone": "+91 98123 77441",
    "MobilePhone": "099999-12345",
    "LastModifiedDate": "2026-12-01T10:00:00.000+0000",
    "Status": "Open - Not Contacted",
    "Rating": "Warm",
}


def cache(redis_url: str, *keys: bytes, kept: frozenset[str] = frozenset()) -> LeadCache:
    return LeadCache(redis.Redis.from_url(redis_url), region="IN", data=PersonalData(keys or (KEY,)), kept_fields=kept)


def everything(redis_url: str) -> str:
    client = redis.Redis.from_url(redis_url)
    parts = []
    for key in client.scan_iter():
        kind = client.type(key).decode()
        value = {"string": client.get, "hash": client.hgetall, "list": lambda k: client.lrange(k, 0, -1)}[kind](key)
        parts.append(f"{key!r} {value!r}")
    return "\n".join(parts)


def digit_runs(text: str) -> set[str]:
    return {re.sub(r"\D", "", m.group()) for m in re.finditer(r"\d[\d\s().+/\-]*\d", text)}


def test_snapshot_is_found_by_every_spelling_and_keeps_no_number(redis_url: str) -> None:
    leads = cache(redis_url)
    leads.put([ROW])
    for spelling in ("9812377441", "+919812377441", "098123-77441", "(+91) 98123 77441", "99999 12345"):
        row = leads.by_phone(spelling)
        assert row is not None and row["Id"] == ROW["Id"], spelling
        assert "Phone" not in row and "MobilePhone" not in row and row["Status"] == "Open - Not Contacted"
    assert leads.by_phone("9812377442") is None
    stored = everything(redis_url)
    assert not any("9812377441" in run or "9999912345" in run for run in digit_runs(stored)), stored
    assert "Open - Not Contacted" not in stored and "Warm" not in stored  # mapped values are sealed
    assert ROW["Id"] in stored  # ids and flags stay readable


def test_a_mapped_phone_field_is_kept_sealed(redis_url: str) -> None:
    leads = cache(redis_url, kept=frozenset({"MobilePhone"}))
    leads.put([ROW])
    row = leads.by_id(str(ROW["Id"]))
    assert row is not None and row["MobilePhone"] == "099999-12345" and "Phone" not in row
    assert not any("9999912345" in run for run in digit_runs(everything(redis_url)))


def test_hints_are_sealed_and_expire(redis_url: str) -> None:
    leads = cache(redis_url)
    leads.hint("call_a", phone="98123 77441", lead_id=None)
    leads.hint("call_b", phone=None, lead_id="00Q000000000002AAA")
    stored = everything(redis_url)
    assert not any("9812377441" in run for run in digit_runs(stored)), stored
    client = redis.Redis.from_url(redis_url)
    assert 0 < client.ttl("crm-sync:lead-hints") <= HINT_TTL and 0 < client.ttl("crm-sync:lead-hint-order") <= HINT_TTL
    assert leads.take_hints(10) == [
        {"call_id": "call_a", "phone": "98123 77441", "lead_id": None},
        {"call_id": "call_b", "phone": None, "lead_id": "00Q000000000002AAA"},
    ]


def test_rotated_key_reads_what_the_old_one_sealed(redis_url: str) -> None:
    cache(redis_url, KEY).hint("call_a", phone="9812377441", lead_id=None)
    cache(redis_url, KEY).put([ROW])
    rotated = cache(redis_url, OTHER, KEY)
    assert rotated.by_id(str(ROW["Id"])) is not None  # sealed with the old key: still readable
    assert rotated.by_phone("9812377441") is None  # the digest changed: a miss, read again from Salesforce
    assert rotated.take_hints(10) == [{"call_id": "call_a", "phone": "9812377441", "lead_id": None}]


def test_a_key_no_longer_configured_reads_nothing_and_fails_nothing(redis_url: str) -> None:
    cache(redis_url, KEY).hint("call_a", phone="9812377441", lead_id=None)
    cache(redis_url, KEY).put([ROW])
    other = cache(redis_url, OTHER)
    assert other.by_id(str(ROW["Id"])) is None and other.by_phone("9812377441") is None
    assert other.take_hints(10) == []
