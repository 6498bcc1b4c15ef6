"""The naive reference sync, written the straightforward way: what the product is measured against.

Kept in the benchmark folder, not in the product. Per call, one plain ``requests`` call per step:

1. ``GET /call/detail`` from Twenty2 (Basic auth + ``x-workspace-id``, as the product sends them);
2. a SOQL query for the Lead with the call's number as typed (``Phone = … OR MobilePhone = …``);
3. ``PATCH`` the Lead's Status and Rating from ``interested`` (or ``POST`` a Lead when none has the number);
4. ``POST`` the call Task;
5. ``POST`` the follow-up Task when a callback was asked for.

Same sandboxes, same credentials (Salesforce client-credentials token, fetched once), TLS verified with the
sandbox CA. No retries, no lock, no ledger, no transcript: it is the cost floor of the obvious design, not
a correct sync.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from simple_salesforce import format_soql

#: ``interested`` answers the naive sync understands, and what it writes for them.
ANSWERS = {
    "yes": {"Status": "Working - Contacted", "Rating": "Hot"},
    "haan": {"Status": "Working - Contacted", "Rating": "Hot"},
    "no": {"Status": "Closed - Not Converted", "Rating": "Cold"},
    "nahi": {"Status": "Closed - Not Converted", "Rating": "Cold"},
}


@dataclass(frozen=True)
class NaiveConfig:
    """Where the sandboxes are and how to log in (the product's sandbox environment variables)."""

    twenty2_base_url: str
    twenty2_workspace_id: str
    twenty2_api_key: str
    twenty2_api_secret: str
    salesforce_login_url: str
    salesforce_client_id: str
    salesforce_client_secret: str
    salesforce_api_version: str
    ca_bundle: str
    task_external_id_field: str = "Twenty2_Call_Id__c"

    @classmethod
    def from_env(cls, env: dict[str, str]) -> NaiveConfig:
        return cls(
            twenty2_base_url=env["TWENTY2_BASE_URL"],
            twenty2_workspace_id=env["TWENTY2_WORKSPACE_ID"],
            twenty2_api_key=env["TWENTY2_API_KEY"],
            twenty2_api_secret=env["TWENTY2_API_SECRET"],
            salesforce_login_url=env["SALESFORCE_LOGIN_URL"],
            salesforce_client_id=env["SALESFORCE_CLIENT_ID"],
            salesforce_client_secret=env["SALESFORCE_CLIENT_SECRET"],
            salesforce_api_version=env["SALESFORCE_API_VERSION"],
            ca_bundle=env["CRM_SYNC_CA_BUNDLE"],
        )


class NaiveSync:
    """``sync(call_id)`` raises ``requests.HTTPError`` on any refusal. Thread-safe: a session per thread."""

    def __init__(self, config: NaiveConfig) -> None:
        self.config = config
        self._local = threading.local()
        token = requests.post(
            f"{config.salesforce_login_url}/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": config.salesforce_client_id,
                "client_secret": config.salesforce_client_secret,
            },
            timeout=30,
            verify=config.ca_bundle,
        )
        token.raise_for_status()
        login = token.json()
        self.instance = f"{login['instance_url']}/services/data/v{config.salesforce_api_version}"
        self.salesforce_headers = {"Authorization": f"Bearer {login['access_token']}"}

    @property
    def http(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # REQUESTS_CA_BUNDLE must not override the sandbox CA
            session.verify = self.config.ca_bundle
            self._local.session = session
        return session

    def sync(self, call_id: str) -> None:
        detail = self._get_detail(call_id)
        call = detail["call"]
        outputs: dict[str, Any] = detail.get("output_parameters") or {}
        phone = call["caller_phone"] if call.get("direction") == "inbound" else call["callee_phone"]
        values = ANSWERS.get(str(outputs.get("interested", "")).strip().lower(), {})
        lead_id = self._find_lead(phone)
        if lead_id is None:
            lead_id = self._post(
                "sobjects/Lead", {"LastName": "Caller", "Company": "Unknown", "Phone": phone, **values}
            )
        elif values:
            self._patch(f"sobjects/Lead/{lead_id}", values)
        self._post(
            "sobjects/Task",
            {
                "Subject": f"AI call: {call.get('status')}",
                "WhoId": lead_id,
                "TaskSubtype": "Call",
                "Status": "Completed",
                "CallDurationInSeconds": call.get("duration_seconds") or 0,
                "CallObject": call_id,
                "Description": "\n".join(f"{k}: {v}" for k, v in outputs.items()),
                self.config.task_external_id_field: call_id,
            },
        )
        if str(outputs.get("callback_requested", "")).strip().lower() in ("yes", "haan"):
            self._post(
                "sobjects/Task",
                {
                    "Subject": f"Callback: {outputs.get('callback_time') or 'asap'}",
                    "WhoId": lead_id,
                    "Status": "Not Started",
                    "Priority": "High",
                    "ActivityDate": (datetime.now(UTC) + timedelta(days=1)).date().isoformat(),
                    self.config.task_external_id_field: f"{call_id}-callback",
                },
            )

    def _get_detail(self, call_id: str) -> dict[str, Any]:
        c = self.config
        response = self.http.get(
            f"{c.twenty2_base_url}/call/detail",
            params={"call_id": call_id},
            auth=(c.twenty2_api_key, c.twenty2_api_secret),
            headers={"x-workspace-id": c.twenty2_workspace_id},
            timeout=30,
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def _find_lead(self, phone: str) -> str | None:
        soql = format_soql("SELECT Id FROM Lead WHERE Phone = {} OR MobilePhone = {} LIMIT 1", phone, phone)
        response = self.http.get(
            f"{self.instance}/query", params={"q": soql}, headers=self.salesforce_headers, timeout=30
        )
        response.raise_for_status()
        records = response.json().get("records") or []
        return str(records[0]["Id"]) if records else None

    def _post(self, path: str, body: dict[str, Any]) -> str:
        response = self.http.post(f"{self.instance}/{path}", json=body, headers=self.salesforce_headers, timeout=30)
        response.raise_for_status()
        return str(response.json()["id"])

    def _patch(self, path: str, body: dict[str, Any]) -> None:
        response = self.http.patch(f"{self.instance}/{path}", json=body, headers=self.salesforce_headers, timeout=30)
        response.raise_for_status()
