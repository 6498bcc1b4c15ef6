"""What a test Redis left on disk: its AOF (every write since the last rewrite, deleted values included) and
an RDB of what it holds now, scanned for secrets and full phone numbers.

``scan_redis_dir(directory, secrets=..., numbers=..., expect=...)``: the directory a test's own
``redis-server`` (AOF on) writes to. The AOF files are read as the run left them; then a ``redis-server``
on that directory (the one still running, or one started on it and stopped again) writes an uncompressed
RDB (``rdbcompression no``: LZF would hide a number as well as a key) with ``SAVE``, and every value it
holds is read back too (a listpack stores a bare number as an integer, not as its digits). ``expect``:
strings that must be found in the AOF and the RDB (call ids): proof that the scan reads the data at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from standins.stack.redis_server import RedisServer

# Digit runs, possibly spelled with spaces, dashes, dots, slashes, brackets or "+".
NUMBERISH = re.compile(rb"\d[\d\s().+/\-]*\d")


def national(number: str) -> str:
    """The last ten digits of a number (an Indian national number), whatever its spelling."""
    return re.sub(r"\D", "", number)[-10:]


def stand_in_numbers(twenty2: object, salesforce: object) -> set[str]:
    """Every number the stand-ins hold: the calls' callee and caller numbers, the records' phone fields."""
    numbers = set()
    for call_id in twenty2.call_ids():  # type: ignore[attr-defined]
        call = twenty2.get_call(call_id)  # type: ignore[attr-defined]
        numbers |= {call.callee_phone, call.caller_phone}
    for sobject in ("Lead", "Contact"):
        for record in salesforce.records(sobject):  # type: ignore[attr-defined]
            numbers |= {str(record.get(f) or "") for f in ("Phone", "MobilePhone")}
    return {national(n) for n in numbers if len(national(n)) == 10}


def leaks(data: bytes, *, secrets: Iterable[str], numbers: Iterable[str]) -> list[str]:
    """What in ``data`` is a secret or a full number (ten digits in a row, in any spelling)."""
    found = [f"secret {s[:6]}…" for s in secrets if s and s.encode() in data]
    wanted = set(numbers)
    for run in NUMBERISH.finditer(data):
        digits = re.sub(rb"\D", b"", run.group()).decode()
        found += [f"number ••••{n[-4:]}" for n in wanted if n in digits]
    return sorted(set(found))


@dataclass
class Scan:
    files: dict[str, int] = field(default_factory=dict)  # file (relative) → bytes
    leaks: dict[str, list[str]] = field(default_factory=dict)  # file or "dataset" → what leaked
    missing: dict[str, list[str]] = field(default_factory=dict)  # AOF / RDB → expected strings not found
    keys: int = 0


def _dataset(client: redis.Redis) -> bytes:
    """Every key of every database with its whole value, as one text (integers rendered as digits)."""
    parts: list[bytes] = []
    for db in range(16):
        client.execute_command("SELECT", db)
        for key in client.scan_iter(count=1000):
            kind = client.type(key).decode()
            value = {
                "string": lambda k: client.get(k),
                "hash": lambda k: client.hgetall(k),
                "list": lambda k: client.lrange(k, 0, -1),
                "set": lambda k: client.smembers(k),
                "zset": lambda k: client.zrange(k, 0, -1, withscores=True),
                "stream": lambda k: client.xrange(k),
            }[kind](key)
            parts.append(key + b" " + repr(value).encode())
    client.execute_command("SELECT", 0)
    return b"\n".join(parts)


def scan_redis_dir(
    directory: Path,
    *,
    secrets: Iterable[str],
    numbers: Iterable[str],
    expect: Iterable[str] = (),
    url: str | None = None,
) -> Scan:
    """Scan the AOF files under ``directory`` as they are, then an RDB ``SAVE``-d now and the dataset.
    ``url``: the server still running on ``directory`` (else one is started on it for the RDB)."""
    secrets, numbers, expect = list(secrets), list(numbers), list(expect)
    scan = Scan()
    aof = b""
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and ".aof" in p.name):
        data = path.read_bytes()
        aof += data
        scan.files[str(path.relative_to(directory))] = len(data)
        if found := leaks(data, secrets=secrets, numbers=numbers):
            scan.leaks[str(path.relative_to(directory))] = found
    scan.missing["AOF"] = [e for e in expect if e.encode() not in aof]
    server = None
    if url is None:
        server = RedisServer(directory).start()
        url = server.url
    try:
        client = redis.Redis.from_url(url)
        client.config_set("rdbcompression", "no")
        client.save()
        dataset = _dataset(client)
        scan.keys = len(dataset.splitlines())
    finally:
        if server is not None:
            server.stop()
    rdb = (directory / "dump.rdb").read_bytes()
    scan.files["dump.rdb"] = len(rdb)
    scan.missing["RDB"] = [e for e in expect if e.encode() not in rdb]
    for name, data in (("dump.rdb", rdb), ("dataset", dataset)):
        if found := leaks(data, secrets=secrets, numbers=numbers):
            scan.leaks[name] = found
    return scan
