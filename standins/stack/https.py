"""Serve an ASGI app over HTTPS on loopback, with a trustme CA, in a background thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme
import uvicorn

from standins.stack.ports import free_port


@dataclass(frozen=True)
class TLSFiles:
    """A CA (whose PEM clients trust) and a server certificate for 127.0.0.1 / localhost signed by it."""

    ca_pem: Path
    cert_pem: Path
    key_pem: Path


def make_tls_files(directory: Path) -> TLSFiles:
    """Create (or reuse, when present) a CA and a loopback server certificate under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    files = TLSFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    if all(p.exists() for p in (files.ca_pem, files.cert_pem, files.key_pem)):
        return files
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
    ca.cert_pem.write_to_path(str(files.ca_pem))
    cert.private_key_pem.write_to_path(str(files.key_pem))
    cert.cert_chain_pems[0].write_to_path(str(files.cert_pem))
    for extra in cert.cert_chain_pems[1:]:
        with files.cert_pem.open("ab") as handle:
            handle.write(extra.bytes())
    files.key_pem.chmod(0o600)
    return files


def _config(app: object, tls: TLSFiles, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        ssl_certfile=str(tls.cert_pem),
        ssl_keyfile=str(tls.key_pem),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
    )


@contextmanager
def serve_in_thread(app: object, tls: TLSFiles, port: int | None = None) -> Iterator[str]:
    """Run ``app`` on https://127.0.0.1:PORT in a daemon thread; yields the base URL; stops on exit."""
    port = port or free_port()
    server = uvicorn.Server(_config(app, tls, port))
    thread = threading.Thread(target=server.run, name=f"sandbox-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"sandbox server on port {port} did not start")
        time.sleep(0.02)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        server.force_exit = True  # do not wait for idle keep-alive connections of clients still alive
        thread.join(timeout=10)
