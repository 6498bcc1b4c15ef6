"""A private Redis Sentinel deployment on loopback for the failover chaos run and its tests: one primary,
two replicas and three Sentinels, all ``redis-server`` processes on free ports (AOF on), with passwords on
the data nodes and on the Sentinels, as a production deployment would have.

``SentinelTopology(directory).start()`` returns once the Sentinels see the primary, both replicas and each
other, and the deployment is quiet: no node loading or forked, a write acknowledged by every replica.
``kill_primary()`` SIGKILLs the current primary (as a machine loss would); ``restart_as_replica`` starts it
again on its port and directory, replicating from whoever is primary now. ``env()`` is what the product's
processes need (``REDIS_SENTINELS`` and friends).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis

from standins.stack.ports import free_port

MASTER = "crm-sync-primary"
NODE_PASSWORD = "failover-node-secret-8c2e"  # noqa: S105 - a private test deployment's password
SENTINEL_PASSWORD = "failover-sentinel-secret-5d1a"  # noqa: S105
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
SETTLED_KEY = "standins:sentinel-settled"
SETTLED_ACK_MS = 200
QUIET_FIELDS = ("loading", "rdb_bgsave_in_progress", "aof_rewrite_in_progress", "async_loading")


@dataclass
class Node:
    name: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class SentinelTopology:
    """A primary, ``replicas`` replicas and ``sentinels`` Sentinels (quorum 2) under ``directory``."""

    directory: Path
    replicas: int = 2
    sentinels: int = 3
    nodes: list[Node] = field(default_factory=list)
    watchers: list[Node] = field(default_factory=list)

    def start(self, timeout: float = 30.0) -> SentinelTopology:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.nodes = [Node(f"redis-{i}", free_port(), self.directory / f"redis-{i}") for i in range(1 + self.replicas)]
        primary = self.nodes[0]
        self._start_node(primary, replica_of=None)
        for node in self.nodes[1:]:
            self._start_node(node, replica_of=primary.port)
        self.watchers = [
            Node(f"sentinel-{i}", free_port(), self.directory / f"sentinel-{i}") for i in range(self.sentinels)
        ]
        for watcher in self.watchers:
            self._start_sentinel(watcher, primary.port)
        self._wait_settled(timeout)
        return self

    # --- processes -----------------------------------------------------------------------------------------

    def _start_node(self, node: Node, replica_of: int | None) -> None:
        node.directory.mkdir(parents=True, exist_ok=True)
        args = [
            "--port", str(node.port), "--bind", "127.0.0.1", "--dir", str(node.directory),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--maxmemory-policy", "noeviction", "--logfile", str(node.directory / "redis.log"),
            "--requirepass", NODE_PASSWORD, "--masterauth", NODE_PASSWORD,
            # A primary cut off from its replicas stops taking writes (what a split brain would lose).
            "--min-replicas-to-write", "1", "--min-replicas-max-lag", "10",
        ]  # fmt: skip
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        node.process = subprocess.Popen(  # noqa: S603 - fixed binary and arguments
            [shutil.which("redis-server") or "redis-server", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = self.node_client(node)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or not node.alive:
                    raise RuntimeError(f"{node.name} on port {node.port} did not start") from None
                time.sleep(0.05)

    def _start_sentinel(self, watcher: Node, primary_port: int) -> None:
        watcher.directory.mkdir(parents=True, exist_ok=True)
        conf = watcher.directory / "sentinel.conf"
        conf.write_text(
            "\n".join(
                [
                    f"port {watcher.port}",
                    "bind 127.0.0.1",
                    f"dir {watcher.directory}",
                    f"logfile {watcher.directory / 'sentinel.log'}",
                    f"requirepass {SENTINEL_PASSWORD}",
                    f"sentinel sentinel-pass {SENTINEL_PASSWORD}",
                    f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2",
                    f"sentinel auth-pass {MASTER} {NODE_PASSWORD}",
                    f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}",
                    f"sentinel parallel-syncs {MASTER} 1",
                    "",
                ]
            )
        )
        watcher.process = subprocess.Popen(  # noqa: S603 - fixed binary and arguments
            [shutil.which("redis-server") or "redis-server", str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _wait_settled(self, timeout: float) -> None:
        """Until every Sentinel knows the primary, all live replicas and the other Sentinels, and the data
        nodes are ready (``_nodes_settled``)."""
        deadline = time.monotonic() + timeout
        want_replicas = sum(1 for n in self.nodes if n.alive) - 1
        while True:
            try:
                sentinels = all(self._sentinel_settled(w, want_replicas) for w in self.watchers)
                if sentinels and self._nodes_settled(want_replicas):
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Sentinels not settled within {timeout:.0f}s (logs in {self.directory})")
            time.sleep(0.2)

    def _sentinel_settled(self, watcher: Node, want_replicas: int) -> bool:
        """``watcher`` sees ``want_replicas`` healthy replicas and every other Sentinel."""
        client = self.sentinel_client(watcher)
        replicas = [r for r in client.sentinel_slaves(MASTER) if not r.get("is_odown") and not r.get("is_sdown")]
        others = client.sentinel_sentinels(MASTER)
        return len(replicas) >= want_replicas and len(others) >= len(self.watchers) - 1

    def _nodes_settled(self, want_replicas: int) -> bool:
        """Every live replica has finished its first sync, no node is loading or forked, and the primary
        counts every replica (a write acknowledged by all of them within ``SETTLED_ACK_MS``)."""
        primary = self.primary_port()
        for node in self.nodes:
            if node.alive and node.port != primary:
                info = cast(dict[str, Any], self.node_client(node).info("replication"))
                if info.get("master_link_status") != "up":
                    return False
        # Quiet: no node still loading or forked (the primary's sync snapshots, each replica's AOF
        # rewrite after its sync) - a child competing for the 2 cores makes acknowledgements slow.
        for node in self.nodes:
            if node.alive:
                persistence = cast(dict[str, Any], self.node_client(node).info("persistence"))
                if any(int(persistence.get(f, 0)) for f in QUIET_FIELDS):
                    return False
        # A replica reports its link up a moment before the primary puts it online (on its first
        # REPLCONF ACK), and WAIT counts only online replicas: a write every live replica acknowledges
        # within SETTLED_ACK_MS is what the tests' own WAITs will see.
        pipe = self.node_client(self.node_on(primary)).pipeline(transaction=False)
        pipe.set(SETTLED_KEY, repr(time.time()))
        pipe.execute_command("WAIT", want_replicas, SETTLED_ACK_MS)
        return int(pipe.execute()[1]) >= want_replicas

    # --- clients and facts -----------------------------------------------------------------------------

    def node_client(self, node: Node) -> redis.Redis:
        return redis.Redis(port=node.port, password=NODE_PASSWORD, socket_connect_timeout=0.5, socket_timeout=2)

    def sentinel_client(self, watcher: Node) -> redis.Redis:
        return redis.Redis(port=watcher.port, password=SENTINEL_PASSWORD, socket_connect_timeout=0.5, socket_timeout=2)

    def primary_port(self) -> int:
        """The primary as the Sentinels see it now (the first Sentinel that answers)."""
        for watcher in self.watchers:
            try:
                _host, port = self.sentinel_client(watcher).sentinel_get_master_addr_by_name(MASTER)
                return int(port)
            except (redis.RedisError, TypeError):
                continue
        raise RuntimeError("no Sentinel answers")

    def node_on(self, port: int) -> Node:
        return next(n for n in self.nodes if n.port == port)

    def env(self) -> dict[str, str]:
        """The product's settings for this deployment (the Procfile processes' environment)."""
        return {
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{w.port}" for w in self.watchers),
            "REDIS_SENTINEL_MASTER": MASTER,
            "REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
            "REDIS_PASSWORD": NODE_PASSWORD,
            "REDIS_URL": "redis://127.0.0.1:1/0",  # never used with REDIS_SENTINELS: a port nothing listens on
        }

    # --- faults --------------------------------------------------------------------------------------------

    def kill_primary(self) -> Node:
        """SIGKILL the current primary (no shutdown, no last AOF flush); returns it."""
        node = self.node_on(self.primary_port())
        assert node.process is not None
        node.process.send_signal(signal.SIGKILL)
        node.process.wait(timeout=10)
        return node

    def wait_new_primary(self, old: Node, timeout: float = 30.0) -> Node:
        """Until another node has been promoted (answers as a master; the Sentinels' own view of the
        switch reaches each of them a little later)."""
        deadline = time.monotonic() + timeout
        while True:
            for node in self.nodes:
                if node is old or not node.alive:
                    continue
                try:
                    info = cast(dict[str, Any], self.node_client(node).info("replication"))
                except redis.RedisError:
                    continue
                if info["role"] == "master":
                    return node
            if time.monotonic() > deadline:
                raise RuntimeError(f"no new primary within {timeout:.0f}s")
            time.sleep(0.1)

    def wait_sentinels_agree(self, node: Node, timeout: float = 30.0) -> None:
        """Until every Sentinel names ``node`` as the primary (after a promotion, each learns it in turn)."""
        deadline = time.monotonic() + timeout
        while True:
            ports = set()
            for watcher in self.watchers:
                try:
                    _host, port = self.sentinel_client(watcher).sentinel_get_master_addr_by_name(MASTER)
                    ports.add(int(port))
                except (redis.RedisError, TypeError):
                    ports.add(-1)
            if ports == {node.port}:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"Sentinels do not agree on port {node.port} within {timeout:.0f}s: {ports}")
            time.sleep(0.1)

    def restart_as_replica(self, node: Node, timeout: float = 30.0) -> None:
        """Start ``node`` again (its port, directory and AOF) as a replica of the current primary; returns
        once it has synced and the Sentinels see it."""
        self._start_node(node, replica_of=self.primary_port())
        self._wait_settled(timeout)

    def stop(self) -> None:
        for proc_node in [*self.watchers, *self.nodes]:
            if proc_node.alive and proc_node.process is not None:
                proc_node.process.send_signal(signal.SIGTERM)
        for proc_node in [*self.watchers, *self.nodes]:
            if proc_node.process is not None:
                try:
                    proc_node.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc_node.process.kill()
                proc_node.process = None
