"""The console's pages under ``/ops`` (server-rendered Jinja2; ``static/ops.js`` refreshes marked fragments).

GET pages need a session (else: the sign-in page); every POST also needs the session's CSRF token. Nothing
rendered carries a secret or a full phone number: numbers are shown as the ledger keeps them (masked) and
plan values go through the plan printer's masking (``worker.plan_report.plan_as_dict``).
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from worker.intake.flood import FloodGuard, parse_networks
from worker.ledger import State
from worker.ops import auth, jobs, queries, stats
from worker.ops.chart import bars
from worker.reconcile import status as reconcile_status
from worker.runtime import Runtime
from worker.settings import Settings

log = structlog.get_logger(__name__)

HERE = Path(__file__).parent
SIGN_IN_ATTEMPTS_PER_MINUTE = 10
LOGIN_COOKIE = "crm_sync_ops_login"
STATIC = {"ops.js": "text/javascript", "ops.css": "text/css"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _when(ts: float | None) -> str:
    return "" if not ts else datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%S")


def _ago(ts: float | None, now: float | None = None) -> str:
    if not ts:
        return ""
    seconds = max(0, int((now or time.time()) - float(ts)))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def templates() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    env.filters |= {"when": _when, "ago": _ago, "seconds": _seconds, "tojson_pretty": _pretty}
    return env


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=1, ensure_ascii=False, default=str)


def _parse_time(value: str | None) -> float | None:
    """A form's time: epoch seconds, an ISO date/time (UTC when no zone), or a duration back (2h, 30m, 7d)."""
    if not value:
        return None
    value = value.strip()
    units = {"m": 60, "h": 3600, "d": 86400}
    if value[:-1].isdigit() and value[-1:] in units:
        return time.time() - int(value[:-1]) * units[value[-1]]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def call_filter(params: Any) -> queries.CallFilter:
    """The calls table's filter from query or form parameters (unknown values are ignored)."""
    known = {s.value for s in State}
    raw_states = ",".join(params.getlist("state")) if hasattr(params, "getlist") else str(params.get("state", ""))
    states = tuple(State(s) for s in raw_states.split(",") if s in known)
    try:
        page = max(1, int(params.get("page") or 1))
    except ValueError:
        page = 1
    try:
        per_page = int(params.get("per_page") or 50)
    except ValueError:
        per_page = 50
    return queries.CallFilter(
        states=states,
        code=str(params.get("code") or "").strip()[:80],
        stage=str(params.get("stage") or "").strip()[:20],
        source=str(params.get("source") or "").strip()[:40],
        since=_parse_time(params.get("since")),
        until=_parse_time(params.get("until")),
        q=str(params.get("q") or "").strip()[:80],
        newest_first=params.get("order") != "old",
        page=page,
        per_page=per_page if per_page in queries.PAGE_SIZES else 50,
    )


def ops_router(current: Callable[[], Runtime], settings: Settings) -> APIRouter:
    """The console's routes; with no ``CRM_SYNC_OPS_TOKEN`` every ``/ops`` path answers 404."""
    router = APIRouter(prefix="/ops", include_in_schema=False)
    signer = auth.SessionSigner(settings)
    env = templates()
    instance: list[str] = []
    # Sign-in attempts per client address (the intake's flood guard: shared by every web process, honours
    # CRM_SYNC_TRUSTED_PROXIES); a token is long, this stops guessing.
    attempts = FloodGuard(
        settings,
        per_minute=SIGN_IN_ATTEMPTS_PER_MINUTE,
        trusted_proxies=parse_networks(settings.crm_sync_trusted_proxies),
        key_prefix="crm-sync-ops-sign-in",
    )

    def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def gate(request: Request) -> Response | None:
        """404 when the console is off, 403 over plain HTTP to a non-loopback address (not behind TLS)."""
        if not signer.enabled:
            return Response("not found", status_code=404)
        server = request.scope.get("server")
        if not auth.request_allowed(settings, request.url.scheme, server[0] if server else None):
            return Response("the ops console is served over HTTPS only", status_code=403)
        return None

    def session_of(request: Request) -> auth.Session | None:
        return signer.read(request.cookies.get(auth.COOKIE))

    def page(request: Request) -> tuple[Response | None, auth.Session | None]:
        refused = gate(request)
        if refused is not None:
            return refused, None
        session = session_of(request)
        if session is None:
            return RedirectResponse("/ops/login", status_code=303), None
        return None, session

    async def posted(request: Request) -> tuple[Response | None, auth.Session | None, Any]:
        """A state-changing request: gate, session (403), CSRF token (403)."""
        refused = gate(request)
        if refused is not None:
            return refused, None, None
        form = await request.form()
        session = session_of(request)
        if session is None:
            return render("error.html", 403, message="Sign in first."), None, form
        if not auth.csrf_ok(session, str(form.get("csrf") or "")):
            log.warning("ops.csrf_refused", who=session.who)
            return (
                render("error.html", 403, message="The form's CSRF token is missing or wrong: reload the page."),
                None,
                form,
            )
        return None, session, form

    def salesforce_base() -> str:
        """The org's instance URL for record links ('' when Salesforce cannot be reached now)."""
        if not instance:
            try:
                instance.append(current().services.salesforce.instance_url)
            except Exception as exc:
                log.warning("ops.instance_url_unknown", error=type(exc).__name__)
                return ""
        return instance[0]

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC:
            return Response("not found", status_code=404)
        return FileResponse(HERE / "static" / name, media_type=STATIC[name], headers={"Cache-Control": "max-age=300"})

    def login_form(status: int = 200, error: str | None = None) -> Response:
        """The sign-in page with a fresh CSRF nonce, also set as a cookie (double submit: the sign-in POST
        has no session yet, so its token is this pair)."""
        nonce = secrets.token_urlsafe(24)
        response = render("login.html", status, error=error, csrf=nonce)
        response.set_cookie(
            LOGIN_COOKIE, nonce, max_age=900, path="/ops/login", secure=True, httponly=True, samesite="strict"
        )
        return response

    @router.get("/login")
    def login_page(request: Request) -> Response:
        return gate(request) or login_form()

    @router.post("/login")
    async def login(request: Request) -> Response:
        refused = gate(request)
        if refused is not None:
            return refused
        form = await request.form()
        client = attempts.source(
            request.client.host if request.client else None, request.headers.getlist("x-forwarded-for")
        )
        verdict = await run_in_threadpool(attempts.check, client)
        if not verdict.allowed:
            log.warning("ops.sign_in_throttled", client=client)
            return login_form(429, f"Too many sign-in attempts: wait {verdict.retry_after} s.")
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        given = str(form.get("csrf") or "")
        if not nonce or not hmac.compare_digest(nonce.encode(), given.encode()):
            log.warning("ops.sign_in_csrf_refused", client=client)
            return login_form(403, "The sign-in form expired or did not come from this page: try again.")
        signed = signer.sign_in(str(form.get("token") or ""))
        if signed is None:
            log.warning("ops.sign_in_refused", client=client)
            return login_form(401, "That token is not valid.")
        session, value = signed
        jobs.record_action(current(), session.who, "signed in")
        response = RedirectResponse("/ops", status_code=303)
        response.delete_cookie(LOGIN_COOKIE, path="/ops/login", secure=True, httponly=True, samesite="strict")
        response.set_cookie(
            auth.COOKIE,
            value,
            max_age=signer.max_age,
            path="/ops",
            secure=True,
            httponly=True,
            samesite="strict",
        )
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        refused, _session, _form = await posted(request)
        if refused is not None:
            return refused
        response = RedirectResponse("/ops/login", status_code=303)
        response.delete_cookie(auth.COOKIE, path="/ops", secure=True, httponly=True, samesite="strict")
        return response

    # --- overview -------------------------------------------------------------------------------------

    def overview_context() -> dict[str, Any]:
        rt = current()
        data = stats.overview(rt)
        cb = {"counts": rt.callbacks.counts(), "due_24h": len(rt.callbacks.due(rt.now() + timedelta(days=1)))}
        return {
            "o": data,
            "chart": bars(data.hours),
            "actions": jobs.actions(rt, 8),
            "states": list(State),
            "cb": cb,
            "reconcile": reconcile_status.last_run(rt.redis),
            "audit": reconcile_status.last_audit(rt.redis),
        }

    @router.get("")
    def overview(request: Request) -> Response:
        refused, session = page(request)
        if refused is not None:
            return refused
        return render("overview.html", session=session, nav="overview", **overview_context())

    def fragment(request: Request) -> Response | None:
        """Fragments are fetched by ops.js: a lost session is a 401 (the script reloads to the sign-in page)."""
        refused = gate(request)
        if refused is None and session_of(request) is None:
            refused = Response("sign in", status_code=401)
        return refused

    @router.get("/fragments/overview")
    def overview_fragment(request: Request) -> Response:
        return fragment(request) or render("_overview.html", **overview_context())

    # --- calls ----------------------------------------------------------------------------------------

    @router.get("/calls")
    def calls(request: Request) -> Response:
        refused, session = page(request)
        if refused is not None:
            return refused
        f = call_filter(request.query_params)
        result = queries.find_calls(current().ledger, f)
        params = f.as_params()
        return render(
            "calls.html",
            session=session,
            nav="calls",
            result=result,
            f=f,
            form=request.query_params,
            states=list(State),
            page_link=lambda n: "/ops/calls?" + urlencode({**params, "page": n}),
            order_link="/ops/calls?" + urlencode({**params, "order": "old" if f.newest_first else "new"}),
            filter_params=params,
        )

    @router.get("/calls/{call_id}")
    def call(request: Request, call_id: str) -> Response:
        refused, session = page(request)
        if refused is not None:
            return refused
        rt = current()
        record = rt.ledger.get(call_id)
        if record is None:
            return render("error.html", 404, session=session, message=f"{call_id} is not in the ledger.")
        history = list(reversed(rt.ledger.history(call_id)))
        return render(
            "call.html",
            session=session,
            nav="calls",
            r=record,
            history=history,
            base=salesforce_base(),
        )

    @router.get("/calls/{call_id}/preview")
    def preview(request: Request, call_id: str) -> Response:
        refused = fragment(request)
        if refused is not None:
            return refused
        from worker.errors import SyncError
        from worker.plan_report import plan_as_dict
        from worker.sync.stream import plan_call

        try:
            _detail, plan = plan_call(current().services, call_id, fresh=True)
        except SyncError as exc:
            return render("_preview.html", plan=None, error=exc.as_record(), base=salesforce_base())
        except Exception as exc:  # e.g. no credentials configured: say so instead of a bare 500
            log.exception("ops.preview_crashed", call_id=call_id)
            error = {"stage": "plan", "code": "INTERNAL", "message": f"{type(exc).__name__}: {exc}"[:300]}
            return render("_preview.html", plan=None, error=error, base="")
        return render("_preview.html", plan=plan_as_dict(plan), error=None, base=salesforce_base())

    # --- replay ---------------------------------------------------------------------------------------

    @router.post("/replay")
    async def replay(request: Request) -> Response:
        refused, session, form = await posted(request)
        if refused is not None:
            return refused
        assert session is not None
        rt = current()
        mode = str(form.get("mode") or "selected")
        if mode == "matching":
            f = call_filter(form)
            ids = queries.matching_ids(rt.ledger, f)
            shown = {k: v for k, v in f.as_params().items() if k not in ("order", "per_page")}
            what = "replay all matching " + (" ".join(f"{k}={v}" for k, v in shown.items()) or "(no filter)")
        else:
            ids = [str(v) for v in form.getlist("call_id") if rt.ledger.get(str(v)) is not None]
            what = "replay " + (ids[0] if len(ids) == 1 else f"{len(ids)} selected calls")
        if not ids:
            return render("error.html", 400, session=session, message="No calls to replay: select some first.")
        if form.get("confirm") != str(len(ids)):
            # Confirmation first: the count, and (for "all matching") the same filter sent again.
            return render(
                "confirm.html",
                session=session,
                count=len(ids),
                sample=ids[:20],
                mode=mode,
                fields=[(k, v) for k, v in form.multi_items() if k not in {"csrf", "confirm"}],
                expected=len(ids),
            )
        job_id = jobs.start_replay(rt, ids, who=session.who, what=what)
        return RedirectResponse(f"/ops/jobs/{job_id}", status_code=303)

    @router.get("/jobs/{job_id}")
    def job_page(request: Request, job_id: str) -> Response:
        refused, session = page(request)
        if refused is not None:
            return refused
        data = jobs.job(current(), job_id)
        if data is None:
            return render("error.html", 404, session=session, message="No such job.")
        return render("job.html", session=session, nav="calls", job=data, job_id=job_id)

    @router.get("/fragments/jobs/{job_id}")
    def job_fragment(request: Request, job_id: str) -> Response:
        refused = fragment(request)
        if refused is not None:
            return refused
        data = jobs.job(current(), job_id)
        return render("_job.html", job=data, job_id=job_id) if data else Response("no such job", status_code=404)

    @router.post("/purge")
    async def purge(request: Request) -> Response:
        refused, session, form = await posted(request)
        if refused is not None:
            return refused
        assert session is not None
        try:
            days = float(str(form.get("days") or "30"))
        except ValueError:
            days = -1
        if days < 1:
            return render("error.html", 400, session=session, message="Purge: give a number of days (1 or more).")
        rt = current()
        count = jobs.count_purgeable(rt, older_than_days=days)
        if form.get("confirm") != str(count):
            return render("purge.html", session=session, count=count, days=days)
        removed = jobs.purge(rt, older_than_days=days, who=session.who)
        return render("done.html", session=session, message=f"Purged {removed} failed calls older than {days:g} days.")

    # --- automatic callbacks --------------------------------------------------------------------------

    @router.get("/callbacks")
    def callbacks(request: Request) -> Response:
        refused, session = page(request)
        if refused is not None:
            return refused
        from worker.autocall.store import CbState

        store = current().callbacks
        state = request.query_params.get("state", "")
        chosen = CbState(state) if state in {s.value for s in CbState} else None
        ids = store.ids_in(chosen, 200) if chosen else store.due(datetime.fromtimestamp(time.time() + 7 * 86400, UTC))
        rows = [cb for cb in (store.get(i) for i in ids[:200]) if cb is not None]
        kill = current().settings.crm_sync_auto_callback_kill_switch
        return render("callbacks.html", session=session, nav="callbacks", rows=rows, counts=store.counts(),
                      state=chosen, states=list(CbState), kill=kill)  # fmt: skip

    @router.post("/callbacks/cancel")
    async def cancel_callbacks(request: Request) -> Response:
        refused, session, form = await posted(request)
        if refused is not None:
            return refused
        assert session is not None
        rt = current()
        ids = [str(v) for v in form.getlist("callback")]
        done = [i for i in ids if rt.callbacks.cancel(i, now=rt.now(), by=session.who)]
        jobs.record_action(rt, session.who, "cancelled automatic callbacks", callbacks=len(done), call_ids=done)
        skipped = len(ids) - len(done)
        note = f" ({skipped} no longer scheduled: left as they are)" if skipped else ""
        return render("done.html", session=session, message=f"Cancelled {len(done)} automatic callbacks{note}.")

    # --- health ---------------------------------------------------------------------------------------

    @router.get("/health")
    def health(request: Request) -> Response:
        refused, session = page(request)
        if refused is not None:
            return refused
        from worker.doctor import run_checks

        results = run_checks(current().settings, runtime=current())
        return render("health.html", session=session, nav="health", results=results)

    return router
