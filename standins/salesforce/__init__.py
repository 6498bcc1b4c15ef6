"""A local stand-in for a Salesforce org: OAuth token endpoint + REST API subset + fault switches.

Behaviour follows the real API as described in the project's Salesforce facts (``salesforce-facts.md``; upsert
201/200/204/300/404, JSON error lists, ``Sforce-Limit-Info``, composite and collections all-or-none,
converted leads, TaskSubtype create-only) — not what this project's code expects. Modules: ``schema`` (metadata),
``values`` (value checks), ``soql`` / ``sosl`` (the query languages), ``org`` (state, record primitives), ``oauth``,
``writes``, ``composite`` (composite and collections), ``tooling`` (Tooling API ``CustomField`` create,
field-level security), ``rest`` (routing, usage, faults), ``faults``,
``state`` (``SalesforceState``), ``app``.

``SalesforceState`` is the org (records, users, tokens, API usage, faults, stats; one re-entrant lock makes
it thread-safe). ``create_app(state)`` serves it:

- ``POST /services/oauth2/token`` (form): grant types ``password`` (password + security token),
  ``client_credentials``, ``urn:ietf:params:oauth:grant-type:jwt-bearer`` (RS256, iss = client id,
  sub = username, aud = ``OAuthConfig.jwt_audiences`` or, when empty, the sandbox's own base URL; exp in the
  future)
  and ``refresh_token``. Errors: 400 ``{"error", "error_description"}``.
- ``GET /services/data/`` (versions, no auth) and ``/services/data/vXX.X/...`` for 42.0 <= XX.X <= 66.0:
  ``limits``, ``sobjects[/Obj[/describe]]``, record CRUD, upsert by external id, ``query`` / ``queryAll``
  (with ``nextRecordsUrl`` paging), ``search``, ``composite``, ``composite/sobjects[...]``,
  ``tooling/sobjects/CustomField`` (POST).
  Every REST response carries ``Sforce-Limit-Info: api-usage=USED/MAX``; a composite or collections
  request counts once.
- ``/_sandbox/...`` (no auth; for tests, the benchmark and the chaos run): ``POST reset``,
  ``GET|POST records/{Obj}``, ``GET|PUT faults``, ``GET|PUT usage``, ``GET stats``, ``POST convert/{leadId}``,
  ``POST fields/{Obj}``, ``PUT fields/{Obj}/{field}/access`` (field-level security), ``PUT permissions``
  (``customizeApplication``), ``GET health``.

Faults (``state.faults`` or ``PUT /_sandbox/faults``): ``latency_ms`` per REST request; ``fail_next`` N
requests or a ``fail_rate`` fraction (seeded RNG: ``seed``), restricted by ``fail_scope`` (request kinds
such as ``query``/``composite``/``collections``/``sobject``, or ``read``/``write``; empty = all) with
``fail_kind``:

- ``server_unavailable``: 503 SERVER_UNAVAILABLE;  ``server_error``: 500 UNKNOWN_EXCEPTION;
- ``lock``: UNABLE_TO_LOCK_ROW on the request's first record write (inside a composite or collection it is
  that subrequest / record that fails, the HTTP status stays 200). Status ``lock_status``, default 500: a
  production client (bebraven/platform, ``lib/salesforce_api.rb``) rescues it as HTTP 500 on PATCH; others
  report 400. Classify by errorCode, never by status.
- ``limit``: 403 REQUEST_LIMIT_EXCEEDED "TotalRequests Limit exceeded." (or ``PUT /_sandbox/usage
  {"used": max}`` for the real thing: every request, ``/limits`` included, is refused so until ``PUT
  /_sandbox/usage {"used": 0}`` (``set_usage(used=0)``) gives the allowance back);
- ``concurrent``: 403 REQUEST_LIMIT_EXCEEDED "ConcurrentPerOrgLongTxn Limit exceeded." (too many long-running
  requests at once; gone a moment later; the status is the daily limit's, unconfirmed for this one);
- ``expire_sessions``: every issued token becomes invalid, the request gets 401 INVALID_SESSION_ID;
- ``drop_after_commit``: the request is applied, then the connection is aborted with no response.

Also ``validation_rules`` (``{"sobject", "field", "equals", "message"}``: writes whose resulting record has
that value fail with FIELD_CUSTOM_VALIDATION_EXCEPTION), ``search_index_lag_ms`` (new records reach SOSL
late, as in the real search index) and ``upsert_race_ms`` (a single upsert that finds no match waits that
long before inserting, without the lock: two concurrent upserts of a new non-unique external id both
insert, as the facts file warns).

Conditional requests (REST API Developer Guide, "Conditional Request Headers"; HTTP 1.1 rules otherwise):
on sObject Rows (``GET`` / ``PATCH sobjects/{Obj}/{id}``, also as composite subrequests through their
``httpHeaders``) ``If-Unmodified-Since`` answers **412** and writes nothing when the record's
``LastModifiedDate`` is LATER than the given HTTP-date (equal: the request proceeds);
``If-Modified-Since`` on ``GET`` answers **304** (no body) when it is not later. ``LastModifiedDate``,
``CreatedDate`` and ``SystemModstamp`` have whole seconds (``2024-12-25T10:01:34.000+0000``), so a value read
back and sent as an HTTP-date round-trips exactly, and two writes in the same second are not told apart
(weak validation, as documented). An invalid HTTP-date in ``If-Unmodified-Since`` on ``PATCH`` / ``POST`` is
**400** (documented); on ``GET`` it is ignored (HTTP 1.1). ``DELETE`` ignores the headers (documented as not
supported); upsert by external id and ``POST sobjects/{Obj}`` only check the header's format (unconfirmed
whether the real API compares dates there). ETag / If-Match / If-None-Match (Account only) are not served.
The 412 body is an error list (unconfirmed: the docs give only the status): ``ENTITY_FAILED_IFLASTMODIFIED_
ON_UPDATE`` (a documented API StatusCode for exactly this check) on writes, ``PRECONDITION_FAILED`` on reads;
the 400 code ``INVALID_HEADER`` is the sandbox's own. Classify by HTTP status 412, not by code.

Composite (REST API Developer Guide, "Composite", "Composite Request Body", "allOrNone Parameters in
Composite and Collections Requests"): at most 25 subrequests, of which "up to 5 ... can be sObject
Collections or query operations, including Query and QueryAll requests" (QueryMore counts too). More is
refused whole: HTTP 400 (unconfirmed; the body was seen in production logs):
``{"compositeResponse": [{"body": [{"errorCode": "LIMIT_EXCEEDED", "message": "The request can’t contain
more than 25 operations."}], "httpHeaders": {}, "httpStatusCode": 400, "referenceId": null}]}``; the
5-operation limit answers the same shape with the sandbox's own message. A subrequest's ``httpHeaders``
may not set Accept, Authorization or Content-Type: the whole request is 400 (documented; body unconfirmed).
An sObject Collections subrequest reports per record following its OWN ``allOrNone`` (documented example:
outer true, inner false shows ``"success": true`` for a record that was then rolled back); when the outer
``allOrNone`` is true, any failed record fails the composite and everything is rolled back. With the outer
flag false a collection subresponse (HTTP 200) is not a failure: later subrequests may reference it
(unconfirmed). A 304 subresponse is not a failure either (unconfirmed).

Wording of a few messages is the sandbox's own where no primary source shows the real one: the upsert
"Id / external id in body" error, the composite 5-operation and httpHeaders errors, precondition errors
and OAuth JWT failure descriptions.
"""

from standins.salesforce.app import create_app
from standins.salesforce.faults import ValidationRule
from standins.salesforce.org import DEMO_PHONES, ORG_ID, OAuthConfig
from standins.salesforce.state import SalesforceState

__all__ = ["DEMO_PHONES", "ORG_ID", "OAuthConfig", "SalesforceState", "ValidationRule", "create_app"]
