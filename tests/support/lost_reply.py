"""A TCP proxy in front of a real Redis that can lose one reply: the command reaches Redis and runs, and the
client's connection is closed before the answer gets back, which is what a failover, a restart or a
network cut does to a command in flight. The client then sees a lost connection and (with the product's
retries) sends the same command again.

``proxy.lose_next_reply(b"EVALSHA")``: the next command whose bytes contain the marker and that runs (a
``NOSCRIPT`` answer, to a script Redis does not have yet, passes) is forwarded, its reply read from Redis
and thrown away, and that client connection closed. ``proxy.lost``: how many so far.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit


class LostReplyProxy:
    def __init__(self, redis_url: str) -> None:
        parts = urlsplit(redis_url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._db = parts.path
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._marker: bytes | None = None
        self._lock = threading.Lock()
        self.lost = 0
        self._closed = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self._listener.getsockname()[1]}{self._db}"

    def lose_next_reply(self, marker: bytes) -> None:
        with self._lock:
            self._marker = marker

    def start(self) -> LostReplyProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            threading.Thread(target=self._serve, args=(client, upstream), daemon=True).start()

    def _serve(self, client: socket.socket, upstream: socket.socket) -> None:
        """One client connection, a pump each way. redis-py waits for each answer before its next command
        (a pipeline's commands go in one write), so when the marked command goes up, every earlier answer
        has come down, and the next bytes from Redis are its answer."""
        losing = threading.Event()
        marker = b""

        def down() -> None:
            try:
                while data := upstream.recv(65536):
                    if losing.is_set() and data.startswith(b"-NOSCRIPT"):
                        losing.clear()  # the script did not run (redis-py loads it and sends it again)
                        self.lose_next_reply(marker)
                    elif losing.is_set():
                        self.lost += 1
                        break  # the command ran; its answer never reaches the client
                    client.sendall(data)
            except OSError:
                pass
            finally:
                _close(client, upstream)

        threading.Thread(target=down, daemon=True).start()
        try:
            while data := client.recv(65536):
                with self._lock:
                    if self._marker is not None and self._marker in data:
                        marker, self._marker = self._marker, None
                        losing.set()
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            _close(client, upstream)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


@contextmanager
def lost_reply_proxy(redis_url: str) -> Iterator[LostReplyProxy]:
    proxy = LostReplyProxy(redis_url).start()
    try:
        yield proxy
    finally:
        proxy.close()
