"""The Twenty2 and Salesforce stand-ins for a benchmark run, each in a child process of its own."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from standins import SERVICES
from standins.stack.processes import child_env

REPO_ROOT = Path(__file__).resolve().parents[2]


class SandboxProcess:
    """The Twenty2 and Salesforce sandboxes, each in its own child process (``crm-sync sandbox --only``), as
    the real services are separate hosts: one sandbox's load does not hold up the other's answers. Driven
    over their admin endpoints; ``env`` holds both's settings and a CA bundle trusting both."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.processes: list[subprocess.Popen[bytes]] = []
        self.env: dict[str, str] = {}
        self.http = requests.Session()
        self.http.trust_env = False

    def __enter__(self) -> SandboxProcess:
        try:
            bundle = []
            for service in SERVICES:
                directory = self.directory / service
                self.env |= self._start(service, directory)
                bundle.append((directory / "ca.pem").read_text())
            ca_bundle = self.directory / "ca-bundle.pem"
            ca_bundle.write_text("".join(bundle))
            self.env["CRM_SYNC_CA_BUNDLE"] = str(ca_bundle)
            self.http.verify = str(ca_bundle)
            self.sf("GET", "health")
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self, service: str, directory: Path) -> dict[str, str]:
        """Start ``crm-sync sandbox --only service`` in ``directory``; its settings once it serves."""
        directory.mkdir(parents=True, exist_ok=True)
        env_file = directory / "sandbox.env"
        env_file.unlink(missing_ok=True)
        log = (directory / "sandbox.log").open("ab")
        command = ["sandbox", "--dir", str(directory), "--only", service]
        process = subprocess.Popen(
            [sys.executable, "-c", "from worker.cli import main; main()", *command],
            cwd=REPO_ROOT,
            env=child_env({}),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        deadline = time.monotonic() + 60
        while not env_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {service} sandbox did not start; see {directory / 'sandbox.log'}")
            time.sleep(0.1)
        time.sleep(0.1)  # the file is written in one go; let the writer close it
        env = {}
        for line in env_file.read_text().splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = shlex.split(value)[0] if value else ""
        return env

    def __exit__(self, *exc: object) -> None:
        self.http.close()
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()

    @property
    def twenty2_root(self) -> str:
        return self.env["TWENTY2_BASE_URL"].removesuffix("/api")

    def sf(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(
            method, f"{self.env['SALESFORCE_LOGIN_URL']}/_sandbox/{path}", json=body, timeout=60
        )
        response.raise_for_status()
        return response.json()

    def t2(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
        response = self.http.request(
            method, f"{self.twenty2_root}/_sandbox/{path}", json=body, params=params, timeout=60
        )
        response.raise_for_status()
        return response.json()
