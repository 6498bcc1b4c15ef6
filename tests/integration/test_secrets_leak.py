"""No secret, credential or full phone number in anything the service prints or keeps.

The sandboxes are given distinctive secrets (Twenty2 key and secret, Salesforce client secret, webhook and
signing secrets, the personal-data key) and the calls distinctive numbers. Syncs then succeed and fail at
each stage: Twenty2 401, 404, 500 and a 400 whose message names the number; a Salesforce session that
expires (refreshed, then one that stays invalid), a validation rule whose message names the number, a login
refused for a wrong client secret; an unknown number created, another skipped. What is scanned:

- every log line, rendered by the handlers ``configure_logging`` installs (console and JSON), the stderr
  they write to, and pytest's own capture of the records;
- every key of the test Redis: ledger records, histories, state sets, and anything else there;
- the output of the CLI commands that show state (``status``, ``failures list/show``, ``settings``,
  ``sync --dry-run``), run with the environment pointing at the sandboxes.

Nothing scanned may hold a secret, an ``Authorization`` credential (Basic / Bearer / a Salesforce session
id) or ten consecutive digits of a configured number in any spelling; masked numbers (``••••7441``) are fine.
That holds for the Lead lookup cache too (``crm-sync:lead…`` keys): it keeps digests and sealed values only.
What Redis leaves on disk (AOF, RDB) is scanned after the end-to-end and chaos runs (``redis_at_rest``).

Also here: the Celery app accepts JSON only (a pickle payload on the broker is never deserialised).
"""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote_plus

import pytest
import redis
from click.testing import CliRunner, Result

from standins.salesforce import ORG_ID, OAuthConfig, ValidationRule
from standins.stack.sandboxes import Sandboxes
from worker import celery_app
from worker.celery_app import make_celery
from worker.cli import main
from worker.logs import configure_logging
from worker.retry import TWENTY2
from worker.runtime import Runtime
from worker.settings import Settings
from worker.sync.services import Services
from worker.sync.stream import sync_and_record
from worker.twenty2.client import Twenty2Client

T2_KEY = "t2key-CANARY-k9f3a7c1"
T2_SECRET = "t2secret-CANARY-s8b1e4d2"
T2_WRONG_SECRET = "t2wrong-CANARY-x1y2z3w4"
SF_CLIENT_SECRET = "sfsecret-CANARY-c0ffee55"
SF_WRONG_SECRET = "sfwrong-CANARY-q4r5t6u7"
WEBHOOK_SECRET = "whsecret-CANARY-w1h2k3m4"
SIGNING_SECRET = "signsecret-CANARY-g5h6j7k8"
DATA_KEY = "datakey-CANARY-d4t4k3y9z8"
SECRETS = (
    T2_KEY,
    T2_SECRET,
    T2_WRONG_SECRET,
    SF_CLIENT_SECRET,
    SF_WRONG_SECRET,
    WEBHOOK_SECRET,
    SIGNING_SECRET,
    DATA_KEY,
)
#: The Basic credentials the Twenty2 client sends (right and wrong secret), as they would appear in a header.
BASIC_TOKENS = tuple(base64.b64encode(f"{T2_KEY}:{s}".encode()).decode() for s in (T2_SECRET, T2_WRONG_SECRET))
#: Every access token the Salesforce sandbox issues starts with this (the org id's first 15 characters, "!").
SF_SESSION_PREFIX = ORG_ID[:15] + "!"
CREDENTIAL = re.compile(r"\b(?:Basic|Bearer|OAuth)\s+[A-Za-z0-9+/=._!~-]{8,}")

# Ten-digit national numbers, one per case (none is in the demo org).
KNOWN = "9812377441"  # a Lead's number: synced, refreshed session, dry runs
NEW = "8765409123"  # no Lead: one is created
SKIPPED = "7012398765"  # no Lead, skip policy
RULE = "6398712054"  # blocked by a validation rule whose message names the number
T2_400 = "9090871234"  # Twenty2's error message names the number
EXPIRED = "9345601278"  # the Salesforce session stays invalid
DRY_NEW = "7765409321"  # no Lead, only planned (dry run): the plan creates one
PHONES = (KNOWN, NEW, SKIPPED, RULE, T2_400, EXPIRED, DRY_NEW)
# Digit runs, possibly spelled with spaces, dashes, dots, slashes, brackets, "+" (and URL-encoded).
NUMBERISH = re.compile(r"\d[\d\s().+/\-]*\d")

#: Lead lookup cache: Lead snapshots, number digests → Lead id, sealed hints (all expire).
LEAD_CACHE_KEY = re.compile(r"^crm-sync:lead")


def leaks(text: str) -> list[str]:
    """What in ``text`` is a secret, a credential or a full configured number (empty: nothing)."""
    found = [f"secret {s}" for s in SECRETS if s in text]
    found += [f"Basic credential {t[:12]}…" for t in BASIC_TOKENS if t in text]
    found += ["Salesforce session id"] * (SF_SESSION_PREFIX in text)
    found += [f"credential {m.group()[:16]}…" for m in CREDENTIAL.finditer(text)]
    for spelled in {text, unquote_plus(text)}:
        for run in NUMBERISH.finditer(spelled):
            digits = re.sub(r"\D", "", run.group())
            found += [f"phone {p} as {run.group()!r}" for p in PHONES if p in digits]
    return sorted(set(found))


# --- the run ------------------------------------------------------------------------------------------------


@dataclass
class Run:
    """What one run of every case left: the sandboxes, Redis, log text, and the calls by case."""

    boxes: Sandboxes
    redis_url: str
    calls: dict[str, str]
    states: dict[str, str]
    tmp: Path
    logs: dict[str, str] = field(default_factory=dict, repr=False)


def runtime(boxes: Sandboxes, redis_url: str, **overrides: Any) -> Runtime:
    """A runtime against the sandboxes, as the worker builds it (retries without waiting)."""
    settings = boxes.settings(
        redis_url=redis_url,
        twenty2_rate_limit_per_minute=0,
        twenty2_webhook_secret=WEBHOOK_SECRET,
        crm_sync_intake_signing_secret=SIGNING_SECRET,
        crm_sync_data_key=DATA_KEY,
        **overrides,
    )
    services = Services.from_settings(settings, twenty2=Twenty2Client(settings))
    return Runtime(settings, _services=services)


def add_call(boxes: Sandboxes, call_id: str, phone: str, **fields: Any) -> str:
    fields.setdefault("output_parameters", {"interested": "yes", "callback_requested": "yes", "callback_time": "kal"})
    return boxes.twenty2.add_call(call_id=call_id, callee_phone=phone, **fields)


def sync_every_case(boxes: Sandboxes, redis_url: str) -> tuple[dict[str, str], dict[str, str]]:
    """Sync one call per case; returns (call id by case, ledger state the sync left by case)."""
    org, t2 = boxes.salesforce, boxes.twenty2
    org.insert_raw("Lead", {"LastName": "Kapoor", "Company": "Kapoor Mills", "Phone": "+91 98123 77441"})
    calls = {
        "synced": add_call(
            boxes,
            "call_leak_synced",
            KNOWN,
            output_parameters={
                "interested": "yes",
                "alternate_number": "+91 98123 77441",  # what a caller says is data: it is written to the Task
                "callback_time": "kal subah, isi number pe 98123 77441",
            },
        ),
        "new_lead": add_call(boxes, "call_leak_new_lead", NEW, input_parameters={"customerName": "Ira Sen"}),
        "skipped": add_call(boxes, "call_leak_skipped", SKIPPED),
        "t2_401": add_call(boxes, "call_leak_t2_401", KNOWN),
        "t2_404": "call_leak_t2_404",
        "t2_500": add_call(boxes, "call_leak_t2_500", KNOWN),
        "t2_400": add_call(boxes, "call_leak_t2_400", T2_400),
        "session_refreshed": add_call(boxes, "call_leak_session_refreshed", KNOWN),
        "session_invalid": add_call(boxes, "call_leak_session_invalid", EXPIRED),
        "validation_rule": add_call(boxes, "call_leak_validation_rule", RULE),
        "sf_login_refused": add_call(boxes, "call_leak_sf_login_refused", KNOWN),
        "dry_run_only": add_call(boxes, "call_leak_dry_run_only", DRY_NEW),
    }
    t2.set_raw_detail(
        calls["t2_400"],
        {"success": False, "error": {"code": "INVALID_NUMBER", "message": f"callee_phone +91-{T2_400} is invalid"}},
        status_code=400,
    )
    runtimes = {
        "main": runtime(boxes, redis_url),
        "skip": runtime(boxes, redis_url, crm_sync_unknown_number="skip"),
        "wrong_t2": runtime(boxes, redis_url, twenty2_api_secret=T2_WRONG_SECRET),
        "wrong_sf": runtime(boxes, redis_url, salesforce_client_secret=SF_WRONG_SECRET),
    }
    main_rt = runtimes["main"]
    try:
        states = {case: sync_and_record(main_rt, calls[case]) for case in ("synced", "new_lead", "t2_404")}
        states["skipped"] = sync_and_record(runtimes["skip"], calls["skipped"])
        states["t2_401"] = sync_and_record(runtimes["wrong_t2"], calls["t2_401"])
        t2.fail_next(TWENTY2.attempts, 500)
        states["t2_500"] = sync_and_record(main_rt, calls["t2_500"])
        states["t2_400"] = sync_and_record(main_rt, calls["t2_400"])
        org.expire_sessions()
        states["session_refreshed"] = sync_and_record(main_rt, calls["session_refreshed"])
        org.oauth.token_ttl_seconds = 1e-6  # every session issued from now on is already expired
        org.expire_sessions()
        states["session_invalid"] = sync_and_record(main_rt, calls["session_invalid"])
        org.oauth.token_ttl_seconds = None
        message = f"Do not call +91 {RULE[:5]} {RULE[5:]}: the number is on the do-not-call list"
        org.set_faults(validation_rules=[ValidationRule("Task", "CallObject", calls["validation_rule"], message)])
        states["validation_rule"] = sync_and_record(main_rt, calls["validation_rule"])
        org.set_faults(validation_rules=[])
        states["sf_login_refused"] = sync_and_record(runtimes["wrong_sf"], calls["sf_login_refused"])
    finally:
        for each in runtimes.values():
            each.services.twenty2.close()
            each.services.salesforce.http.close()
    return calls, states


EXPECTED_STATES = {
    "synced": "synced",
    "new_lead": "synced",
    "skipped": "skipped",
    "t2_401": "failed",
    "t2_404": "failed",
    "t2_500": "queued",
    "t2_400": "failed",
    "session_refreshed": "synced",
    "session_invalid": "queued",
    "validation_rule": "failed",
    "sf_login_refused": "failed",
}


@pytest.fixture
def canary_boxes(boxes: Sandboxes) -> Iterator[Sandboxes]:
    """The sandboxes answering only to the distinctive credentials (restored afterwards: they are shared)."""
    saved = (boxes.twenty2.api_key, boxes.twenty2.api_secret, boxes.salesforce.oauth)
    boxes.twenty2.api_key, boxes.twenty2.api_secret = T2_KEY, T2_SECRET
    boxes.salesforce.oauth = OAuthConfig(client_secret=SF_CLIENT_SECRET)
    boxes.twenty2.rate_limit_per_minute = None
    yield boxes
    boxes.twenty2.api_key, boxes.twenty2.api_secret, boxes.salesforce.oauth = saved
    boxes.twenty2.reset()


@pytest.fixture
def run(
    canary_boxes: Sandboxes,
    redis_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Run]:
    """Every case synced with all log output captured: the final lines of both renderers, the stderr the
    configured handler writes to, and pytest's records."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("json")
    json_format = root.handlers[0].formatter
    configure_logging("console")  # its handler writes to this test's (captured) stderr
    buffers = {"json": io.StringIO(), "console": io.StringIO()}
    for name, formatter in (("json", json_format), ("console", root.handlers[0].formatter)):
        handler = logging.StreamHandler(buffers[name])
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.addHandler(caplog.handler)  # configure_logging replaced the handlers pytest had added
    try:
        calls, states = sync_every_case(canary_boxes, redis_url)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    captured = capsys.readouterr()
    logs = {name: buf.getvalue() for name, buf in buffers.items()}
    logs.update(stderr=captured.err, stdout=captured.out, caplog=caplog.text)
    logs["caplog records"] = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    yield Run(canary_boxes, redis_url, calls, states, tmp_path, logs)


# --- what is scanned -----------------------------------------------------------------------------------------


def redis_contents(redis_url: str) -> dict[str, str]:
    """Every key of the test Redis with its whole value (any type) as text."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    readers = {
        "string": client.get,
        "hash": client.hgetall,
        "list": lambda key: client.lrange(key, 0, -1),
        "set": client.smembers,
        "zset": lambda key: client.zrange(key, 0, -1, withscores=True),
        "stream": lambda key: client.xrange(key),
    }
    return {key: f"{key} {readers[str(client.type(key))](key)!r}" for key in client.scan_iter(count=1000)}


def cli(run: Run, *args: str) -> Result:
    """``crm-sync ARGS`` with the environment pointing at the sandboxes; the root logger is put back after
    (the CLI configures logging for itself)."""
    env = {
        **run.boxes.env,
        "REDIS_URL": run.redis_url,
        "TWENTY2_RATE_LIMIT_PER_MINUTE": "0",
        "TWENTY2_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "CRM_SYNC_INTAKE_SIGNING_SECRET": SIGNING_SECRET,
        "CRM_SYNC_DATA_KEY": DATA_KEY,
        "COLUMNS": "400",  # rich tables wide enough not to wrap a value over two lines
    }
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        with contextlib.chdir(run.tmp):  # no stray .env file is read
            result = CliRunner(env=env).invoke(main, list(args), catch_exceptions=False)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    return result


def run_cli(run: Run, commands: list[list[str]]) -> dict[str, Result]:
    results = {" ".join(command): cli(run, *command) for command in commands}
    crashed = {command: r.output for command, r in results.items() if r.exit_code not in (0, 1)}
    assert crashed == {}
    return results


def state_commands(run: Run) -> list[list[str]]:
    """The commands that show the ledger and the settings, for every call and in both formats."""
    commands = [
        ["status"],
        ["status", "--json"],
        ["failures", "list"],
        ["failures", "list", "--json"],
        ["failures", "list", "--json", *[f"--state={s}" for s in ("queued", "syncing", "synced", "skipped", "failed")]],
        ["settings"],
    ]
    for call_id in run.calls.values():
        commands += [
            ["status", call_id],
            ["status", call_id, "--json"],
            ["failures", "show", call_id],
            ["failures", "show", call_id, "--json"],
        ]
    return commands


def dry_run_commands(run: Run) -> list[list[str]]:
    """Dry runs of a call to a known Lead, to a Lead created by an earlier sync, to no Lead yet, and of a
    call Twenty2 refuses, in both formats."""
    cases = ("synced", "new_lead", "dry_run_only", "t2_400")
    return [["sync", run.calls[case], "--dry-run", *extra] for case in cases for extra in ([], ["--json"])]


# --- tests ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "+91 98123-77441",
        "(+91) 981 237 7441",
        "q=FIND+%7B9812377441%7D",
        "Phone+IN+%28%27%2B919812377441%27%29",
        "98123%2077441",
        "Authorization: Basic " + BASIC_TOKENS[0],
        "Bearer 00D5g000004SANDB!AQ4AQ1x2y3z",
        "client_secret=" + SF_CLIENT_SECRET,
    ],
)
def test_scanner_sees_each_spelling(text: str) -> None:
    """The scan below is only as good as ``leaks``: every spelling of a leak is caught..."""
    assert leaks(text)


def test_scanner_lets_masked_numbers_and_dates_pass() -> None:
    """...and what is allowed passes: masked numbers, dates, times, Salesforce ids, the word Bearer in help."""
    assert leaks("••••7441 …41 [number …41] 2024-12-25T10:01:34Z 00Q5g000000015nEAA sent as path token or Bearer") == []


def test_every_case_ends_as_expected(run: Run) -> None:
    """The cases really fail (and succeed) where they are meant to: the scans below see every stage."""
    assert {case: run.states.get(case) for case in run.calls} == {**EXPECTED_STATES, "dry_run_only": None}


def test_logs_hold_no_secret_credential_or_phone(run: Run) -> None:
    lines = [line for text in run.logs.values() for line in text.splitlines() if line.strip()]
    assert len(run.logs["json"].splitlines()) >= 15, "the log capture saw too little to prove anything"
    assert "sync.failed" in run.logs["json"] and "sync.retry_scheduled" in run.logs["console"]
    found = {line: leaks(line) for line in lines if leaks(line)}
    print(f"log lines scanned: {len(lines)}")
    assert found == {}


def test_redis_holds_no_secret_credential_or_phone(run: Run) -> None:
    contents = redis_contents(run.redis_url)
    client = redis.Redis.from_url(run.redis_url, decode_responses=True)
    ledger = [key for key in contents if key.startswith("crm-sync:call:")]
    entries = sum(cast(int, client.llen(key)) for key in contents if key.startswith("crm-sync:history:"))
    assert len(ledger) == len(run.states) and entries >= 2 * len(run.states)
    found = {key: leaks(text) for key, text in contents.items() if leaks(text)}
    cached = [key for key in contents if LEAD_CACHE_KEY.match(key)]
    print(f"Redis keys scanned: {len(contents)} ({len(ledger)} ledger records, {entries} history entries)")
    assert found == {} and len(cached) >= 3  # snapshots and number digests of the synced calls among them
    assert [key for key in cached if cast(int, client.ttl(key)) <= 0] == [], "the lookup cache must expire"


def scan_cli(results: dict[str, Result]) -> dict[str, list[str]]:
    outputs = {command: r.output + (r.stderr or "") for command, r in results.items()}
    return {command: leaks(text) for command, text in outputs.items() if leaks(text)}


def test_cli_state_commands_print_no_secret_credential_or_phone(run: Run) -> None:
    results = run_cli(run, state_commands(run))
    assert "(set)" in results["settings"].output and '"failed": 5' in results["status --json"].output
    print(f"CLI outputs scanned: {len(results)}")
    assert scan_cli(results) == {}


def test_cli_dry_runs_print_no_secret_credential_or_phone(run: Run) -> None:
    results = run_cli(run, dry_run_commands(run))
    assert '"method": "create"' in results[f"sync {run.calls['dry_run_only']} --dry-run --json"].output
    print(f"CLI outputs scanned: {len(results)}")
    assert scan_cli(results) == {}


def test_celery_accepts_json_only() -> None:
    """A task message in any other serialisation (pickle, yaml, msgpack) is refused, never deserialised."""
    for conf in (make_celery(Settings(_env_file=None)).conf, celery_app.app.conf):
        assert conf.accept_content == ["json"]
        assert (conf.task_serializer, conf.result_serializer) == ("json", "json")
