"""Schemathesis against the intake's own OpenAPI schema, in-process (ASGI): no 5xx, answers as documented.

Every generated case (valid and schema-violating data, hostile headers and path tokens) is sent twice
to the webhook operations: as generated (mostly a 401), and again with the right secret so the body
reaches the JSON parser and the payload model. Checks: ``not_a_server_error`` and schema conformance
of status code, content type, headers and body. A module-level tally counts the requests per status;
its summary is printed at the end of the module (shown in the terminal report, and with ``-s``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from worker.intake.app import create_app
from worker.runtime import Runtime
from worker.settings import Settings

SECRET = "s3cret-intake-token-1"
MAX_EXAMPLES = 200

CHECKS: list[Any] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

TALLY: Counter[int] = Counter()
CASES: Counter[str] = Counter()


def make_app(redis_url: str) -> Any:
    # A generous flood limit: the limiter runs on every request without turning the fuzzing into 429s.
    settings = Settings(redis_url=redis_url, twenty2_webhook_secret=SECRET, crm_sync_intake_rate_limit_per_minute=10**6)
    return create_app(Runtime(settings))


@pytest.fixture
def intake_app(redis_url: str) -> Any:
    """The app the cases are sent to: bound to the test's own Redis."""
    return make_app(redis_url)


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest) -> Iterator[Counter[int]]:
    """Requests by status over the module; at the end prints the summary, and fails on any 5xx."""
    yield TALLY
    cases, requests = sum(CASES.values()), sum(TALLY.values())
    server_errors = sum(n for status, n in TALLY.items() if status >= 500)
    line = (
        f"schemathesis {schemathesis.__version__}: {cases} cases {dict(CASES)}, {requests} requests,"
        f" by status {dict(sorted(TALLY.items()))}, 5xx: {server_errors}"
    )
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and reporter is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("\n" + line)
    else:
        print(line)
    assert cases >= MAX_EXAMPLES, "schemathesis ran fewer cases than expected"
    assert server_errors == 0


# Loaded at import for parametrization; rendering the schema opens no connection (the Redis URL is unused).
schema = schemathesis.openapi.from_asgi("/openapi.json", make_app("redis://127.0.0.1:9/0"))


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_intake_answers_as_documented(case: Any, intake_app: Any, tally: Counter[int]) -> None:
    CASES[case.operation.label] += 1
    response = case.call_and_validate(checks=CHECKS, app=intake_app)
    tally[response.status_code] += 1
    if case.method != "POST":
        return
    if "token" in (case.path_parameters or {}):
        case.path_parameters["token"] = SECRET
        authenticated = case.call(app=intake_app)
    else:
        authenticated = case.call(headers={"Authorization": f"Bearer {SECRET}"}, app=intake_app)
    tally[authenticated.status_code] += 1
    case.validate_response(authenticated, checks=CHECKS)
