"""Check: is the Sentinel stand-in ready when ``SentinelTopology.start()`` returns, on a loaded machine?

Usage: ``.venv/bin/python bench/sentinel_settle.py [--starts 25] [--load 2] [--wait-ms 300]
[--baseline REF] [--rounds 1]``

Starts ``--load`` busy processes (one per core: the CI's test run keeps both cores busy), then, per tree
(this checkout, and ``--baseline REF`` checked out under ``var/`` when given, alternating for ``--rounds``),
``--starts`` fresh deployments one after another (``standins/stack/sentinels.py``: a primary, two replicas,
three Sentinels), and on each, at once, what the tests do first: a write on the primary and
``WAIT 1 <--wait-ms>``. Printed per tree and round: how many starts answered ``ok`` (a replica
acknowledged), ``wait0`` (no replica counted in time) and ``noreplicas`` (the write refused: the nodes run
``min-replicas-to-write 1``). Target: every start ``ok``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTCOMES = ("ok", "wait0", "noreplicas")


def first_writes(starts: int, wait_ms: int) -> Counter[str]:
    """``starts`` deployments of the stand-in on ``sys.path`` (the tree being measured), each met at once by a
    write and a ``WAIT``: the outcomes counted."""
    import redis

    from standins.stack.sentinels import SentinelTopology

    outcomes: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="sentinel-settle-") as directory:
        for n in range(starts):
            topology = SentinelTopology(Path(directory) / f"start-{n}").start()
            primary = topology.node_client(topology.node_on(topology.primary_port()))
            try:
                primary.set("bench:first-write", "1")
                acked = int(primary.execute_command("WAIT", 1, wait_ms))
                outcomes["ok" if acked >= 1 else "wait0"] += 1
            except redis.ResponseError as exc:
                if "NOREPLICAS" not in str(exc):
                    raise
                outcomes["noreplicas"] += 1
            finally:
                topology.stop()
    return outcomes


def measure(tree: Path, starts: int, wait_ms: int) -> Counter[str]:
    """``first_writes`` in a child process that imports the stand-ins of ``tree``."""
    out = subprocess.run(
        [sys.executable, __file__, "--tree", str(tree), "--starts", str(starts), "--wait-ms", str(wait_ms)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return Counter(json.loads(out.splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=25, help="deployments started per tree and round")
    parser.add_argument("--load", type=int, default=2, help="busy processes running meanwhile (0: none)")
    parser.add_argument("--wait-ms", type=int, default=300, help="the WAIT timeout (the CI test's is 300)")
    parser.add_argument("--baseline", help="also measure this git ref's stand-in, alternating with this tree")
    parser.add_argument("--rounds", type=int, default=1, help="rounds per tree")
    parser.add_argument("--tree", type=Path, help=argparse.SUPPRESS)  # the child: measure this tree, print JSON
    args = parser.parse_args()

    if args.tree is not None:
        sys.path.insert(0, str(args.tree))
        print(json.dumps(first_writes(args.starts, args.wait_ms)))
        return

    sys.path.insert(0, str(REPO_ROOT))
    from bench.intakebench.service import checkout

    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    try:
        work = REPO_ROOT / "var"
        work.mkdir(exist_ok=True)
        trees = [("this", REPO_ROOT)]
        with contextlib.ExitStack() as stack:
            if args.baseline:
                trees.insert(0, (f"baseline {args.baseline}", stack.enter_context(checkout(args.baseline, work))))
            print(f"{args.starts} starts per tree and round, {args.load} busy processes, WAIT {args.wait_ms} ms")
            print(f"| tree | round | {' | '.join(OUTCOMES)} |")
            print(f"| --- | --- | {' | '.join('---:' for _ in OUTCOMES)} |")
            missed = False
            for round_no in range(1, args.rounds + 1):
                for name, tree in trees:
                    counts = measure(tree, args.starts, args.wait_ms)
                    missed |= name == "this" and counts["ok"] != args.starts
                    print(f"| {name} | {round_no} | {' | '.join(str(counts[o]) for o in OUTCOMES)} |", flush=True)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    print(f"this tree, every start ok: {'MISSED' if missed else 'met'}")


if __name__ == "__main__":
    main()
