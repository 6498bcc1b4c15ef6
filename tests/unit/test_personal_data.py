"""Keyed digests and sealed values of personal data (``worker.personal``): no server needed."""

from __future__ import annotations

import hashlib
import time

import pytest
from pydantic import ValidationError

from worker.personal import PersonalData
from worker.settings import Settings

NUMBER = "+919812377441"
OLD, NEW = b"old-data-key-0123456789abcdef", b"new-data-key-0123456789abcdef"


def test_digest_is_keyed_and_stable() -> None:
    one, same, other = PersonalData((OLD,)), PersonalData((OLD,)), PersonalData((NEW,))
    assert one.digest(NUMBER) == same.digest(NUMBER) != other.digest(NUMBER)
    assert one.digest(NUMBER) not in hashlib.sha256(NUMBER.encode()).hexdigest()  # not a plain hash
    assert len(one.digest(NUMBER)) == 32 and "9812377441" not in one.digest(NUMBER)


def test_sealed_value_reads_back_and_shows_nothing() -> None:
    data = PersonalData((OLD,))
    token = data.seal({"phone": "9812377441", "lead_id": None})
    assert "9812377441" not in token and "phone" not in token
    assert data.unseal(token) == {"phone": "9812377441", "lead_id": None}


def test_rotation_reads_old_tokens_and_seals_with_the_new_key() -> None:
    old, rotated, new_only = PersonalData((OLD,)), PersonalData((NEW, OLD)), PersonalData((NEW,))
    token = old.seal("9812377441")
    assert rotated.unseal(token) == "9812377441"
    assert new_only.unseal(token) is None  # the old key removed: unreadable, never an exception
    assert new_only.unseal(rotated.seal("x")) == "x" and rotated.digest(NUMBER) == new_only.digest(NUMBER)


def test_token_older_than_max_age_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    data = PersonalData((OLD,))
    token = data.seal("9812377441")
    assert data.unseal(token, max_age=3600) == "9812377441"
    later = time.time() + 3700
    monkeypatch.setattr(time, "time", lambda: later)
    assert data.unseal(token, max_age=3600) is None
    assert data.unseal("not a token") is None


def test_keys_come_from_the_setting_newest_first() -> None:
    settings = Settings(_env_file=None, crm_sync_data_key=f"{NEW.decode()}, {OLD.decode()}")
    data = PersonalData.from_settings(settings)
    assert data.secrets == (NEW, OLD) and not data.derived
    assert data.unseal(PersonalData((OLD,)).seal(1)) == 1


def test_unset_key_is_derived_from_the_deployments_credentials() -> None:
    first = PersonalData.from_settings(Settings(_env_file=None, twenty2_api_secret="secret-a", twenty2_api_key="k"))
    again = PersonalData.from_settings(Settings(_env_file=None, twenty2_api_secret="secret-a", twenty2_api_key="k"))
    other = PersonalData.from_settings(Settings(_env_file=None, twenty2_api_secret="secret-b", twenty2_api_key="k"))
    assert first.derived and first.digest(NUMBER) == again.digest(NUMBER) != other.digest(NUMBER)
    assert b"secret-a" not in first.secrets[0]


def test_short_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(_env_file=None, crm_sync_data_key="short")
