"""``crm-sync doctor``: every check passes against the stand-ins as they come, and each fails for its real
reason when the org (or Redis) is set up wrong: the field missing, not an External ID, not writable for the
integration user, a mapped picklist value missing, Task fields read-only, wrong credentials, Redis without
AOF or with eviction, a Redis refusing CONFIG."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from click.testing import CliRunner

from standins.salesforce.schema import FieldSpec
from standins.stack.sandboxes import Sandboxes
from worker.cli import main
from worker.doctor import Check, run_checks
from worker.settings import Settings


def checks(boxes: Sandboxes, redis_url: str, **overrides: Any) -> dict[str, Check]:
    return {c.name: c for c in run_checks(boxes.settings(redis_url=redis_url, **overrides))}


def only_problems(found: dict[str, Check]) -> dict[str, Check]:
    return {name: c for name, c in found.items() if c.status == "problem"}


def test_a_healthy_setup_passes_every_check(boxes: Sandboxes, redis_url: str) -> None:
    found = checks(boxes, redis_url)
    assert only_problems(found) == {}
    assert found["Twenty2 credentials"].status == "ok"
    assert found["Salesforce login (client_credentials)"].detail.startswith("logged in to https://127.0.0.1:")
    assert found["Task external-id field Twenty2_Call_Id__c"].status == "ok"
    assert found["Redis AOF"].status == found["Redis eviction"].status == "ok"
    assert (
        found["clocks"].status == "ok"
        and "Salesforce" in found["clocks"].detail
        and "Twenty2" in found["clocks"].detail
    )


def test_external_id_field_missing(boxes: Sandboxes, redis_url: str) -> None:
    problems = only_problems(checks(boxes, redis_url, salesforce_task_external_id_field="Call_Ref__c"))
    [problem] = problems.values()
    assert "Task.Call_Ref__c does not exist" in problem.detail
    assert "crm-sync setup-org" in problem.fix and 'tick "External ID"' in problem.fix


def test_field_is_not_an_external_id(boxes: Sandboxes, redis_url: str) -> None:
    boxes.salesforce.add_field("Task", FieldSpec("Call_Ref__c", "string", 255, "Call Ref", custom=True))
    [problem] = only_problems(checks(boxes, redis_url, salesforce_task_external_id_field="Call_Ref__c")).values()
    assert "is not an External ID" in problem.detail and 'tick "External ID"' in problem.fix


def test_field_not_writable_by_the_integration_user(boxes: Sandboxes, redis_url: str) -> None:
    # Field-level security read-only for the integration user's profile.
    boxes.salesforce.set_field_access("Task", "Twenty2_Call_Id__c", editable=False)
    [problem] = only_problems(checks(boxes, redis_url)).values()
    assert "is not createable / updateable for the integration user" in problem.detail
    assert "Field-Level Security" in problem.fix


def test_field_the_integration_user_cannot_see(boxes: Sandboxes, redis_url: str) -> None:
    boxes.salesforce.set_field_access("Task", "Twenty2_Call_Id__c", visible=False)
    [problem] = only_problems(checks(boxes, redis_url)).values()
    assert "does not exist (or the integration user cannot see it)" in problem.detail


def test_mapped_picklist_value_missing(boxes: Sandboxes, redis_url: str) -> None:
    boxes.salesforce.schema.set_picklist("Lead", "Rating", ["Warm", "Cold"])
    [problem] = only_problems(checks(boxes, redis_url)).values()
    assert problem.name == "mapped fields and picklist values"
    assert "Hot" in problem.detail and "Rating" in problem.detail


def test_task_call_fields_read_only(boxes: Sandboxes, redis_url: str) -> None:
    boxes.salesforce.set_field_access("Task", "CallType", editable=False)
    [problem] = only_problems(checks(boxes, redis_url)).values()
    assert (
        problem.name == "Task TaskSubtype / CallType" and "CallType is not createable and updateable" in problem.detail
    )


def test_wrong_credentials(boxes: Sandboxes, redis_url: str) -> None:
    problems = only_problems(
        checks(boxes, redis_url, twenty2_api_secret="wrong-secret", salesforce_client_secret="wrong")
    )
    assert "HTTP 401" in problems["Twenty2 credentials"].detail
    assert "refused" in problems["Salesforce login (client_credentials)"].detail


def test_redis_without_aof_or_with_eviction(boxes: Sandboxes, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.config_set("appendonly", "no")
    client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        problems = only_problems(checks(boxes, redis_url))
    finally:
        client.config_set("appendonly", "yes")
        client.config_set("maxmemory-policy", "noeviction")
    assert set(problems) == {"Redis AOF", "Redis eviction"}
    assert "appendonly no" in problems["Redis AOF"].detail and "allkeys-lru" in problems["Redis eviction"].detail


def test_managed_redis_refusing_config_is_reported_not_failed(boxes: Sandboxes, redis_url: str) -> None:
    admin = redis.Redis.from_url(redis_url)
    admin.acl_setuser("app", enabled=True, passwords=["+app-password-1"], keys=["*"], commands=["+@all", "-config"])
    try:
        limited = redis_url.replace("redis://", "redis://app:app-password-1@")
        found = {c.name: c for c in run_checks(boxes.settings(redis_url=limited))}
    finally:
        admin.acl_deluser("app")
    assert found["Redis persistence"].status == "unknown" and "CONFIG GET refused" in found["Redis persistence"].detail
    assert only_problems(found) == {}


@pytest.fixture
def env(boxes: Sandboxes, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir("/")  # no .env file of the developer's
    for key, value in {**boxes.env, "REDIS_URL": redis_url}.items():
        monkeypatch.setenv(key, value)
    return Settings()


def test_doctor_command_exit_status(env: Settings, boxes: Sandboxes, monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "all checks passed" in result.output
    boxes.salesforce.schema.set_picklist("Lead", "Rating", ["Warm", "Cold"])
    result = CliRunner().invoke(main, ["doctor", "--json"])
    assert result.exit_code == 1
    assert '"status": "problem"' in result.output and "Hot" in result.output
