"""The ``[auto_callback]`` tables of the mapping file: defaults, per-agent overrides, file:line errors."""

from __future__ import annotations

import pytest

from worker.errors import MappingError
from worker.mapping import parse_mapping

BASE = 'sobject = "Lead"\n'


def test_off_unless_switched_on() -> None:
    rule = parse_mapping(BASE).auto_callback_rule("any-agent")
    assert rule.enabled is False


def test_agent_table_changes_only_its_keys() -> None:
    text = BASE + (
        '[auto_callback]\nenabled = false\ncaller_phone = "9999999999"\nattempts = 3\n'
        '[agents."a1".auto_callback]\nenabled = true\nagent_id = "a2"\n'
    )
    mapping = parse_mapping(text)
    agent, default = mapping.auto_callback_rule("a1"), mapping.auto_callback_rule("other")
    assert (agent.enabled, agent.attempts, agent.placing_agent("a1"), agent.caller_phone) == (
        True,
        3,
        "a2",
        "9999999999",
    )
    assert (default.enabled, default.placing_agent("other")) == (False, "other")


def test_bad_values_name_file_line_and_key() -> None:
    text = BASE + '[auto_callback]\nenabled = "yes"\ncaller_phone = "+91 99999"\nattempts = 0\ncolour = 1\n'
    with pytest.raises(MappingError) as caught:
        parse_mapping(text, source="m.toml")
    message = str(caught.value)
    assert "m.toml:3: auto_callback.enabled: 'yes' is not true or false" in message
    assert "m.toml:4: auto_callback.caller_phone:" in message and "10-digit" in message
    assert "m.toml:5: auto_callback.attempts: 0 is not a whole number >= 1" in message
    assert "m.toml:6: auto_callback.colour: unknown key" in message


def test_enabled_needs_a_caller_number() -> None:
    with pytest.raises(MappingError) as caught:
        parse_mapping(BASE + "[auto_callback]\nenabled = true\n", source="m.toml")
    assert "auto_callback.caller_phone: is required when enabled" in str(caught.value)


def test_shipped_mapping_file_loads_with_auto_callback_off() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "config" / "mapping.toml").read_text()
    rule = parse_mapping(text).auto_callback_rule(None)
    assert rule.enabled is False and rule.caller_phone == "9999999999" and rule.daily_cost_ceiling_inr == 2000.0
