"""Breadth of the callback-time reader: accepted / wrong / abstained per fixture file, language and category.

Usage: python bench/callback_corpus.py [--heldout] [--list] [PATH ...]
Without PATH it reads the development set and the callback fixtures in the repository
(tests/fixtures/reference/callback-phrases-dev.jsonl, tests/fixtures/callbacks/corpus.jsonl and
duckling_en.jsonl); `--heldout` adds tests/fixtures/callbacks/heldout.jsonl, the part kept aside and run
only at the end. "accepted" = a confident (ok/ambiguous) reading whose primary matches an accepted
reading, or vague for a vague phrase; "wrong" = a confident time that matches nothing acceptable (or any
time for a vague phrase); "abstained" = vague/unparsed where a time was expected (a human reads the
phrase). `--list` prints every wrong and abstained phrase. Exit status 1 when any reading is wrong.
The judging lives in worker.callbacks.evaluate (shared with the tests).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"
DEFAULT_PATHS = (
    FIXTURES / "reference" / "callback-phrases-dev.jsonl",
    FIXTURES / "callbacks" / "corpus.jsonl",
    FIXTURES / "callbacks" / "duckling_en.jsonl",
)
HELDOUT = FIXTURES / "callbacks" / "heldout.jsonl"

if str(REPO_ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO_ROOT))

from worker.callbacks.evaluate import CaseResult, parse_cases, run_cases  # noqa: E402

_LABEL = {"accepted": "accepted", "wrong": "wrong", "missed": "abstained"}


def _row(name: str, results: list[CaseResult]) -> str:
    counts = Counter(_LABEL[r.verdict] for r in results)
    total = len(results)
    share = counts["accepted"] / total if total else 0.0
    return (
        f"  {name:<22} {total:>4}  accepted {counts['accepted']:>4} ({share:6.1%})"
        f"  wrong {counts['wrong']:>3}  abstained {counts['abstained']:>3}"
    )


def report(name: str, results: list[CaseResult], *, listing: bool) -> list[str]:
    """The lines printed for one file: totals, per language, per category, and optionally each miss."""
    lines = [f"{name}", _row("all", results)]
    for key in ("lang", "cat"):
        groups: dict[str, list[CaseResult]] = defaultdict(list)
        for r in results:
            groups[str(r.case.get(key, "-"))].append(r)
        lines.append(f" per {'language' if key == 'lang' else 'category'}:")
        lines += [_row(group, groups[group]) for group in sorted(groups)]
    if listing:
        for r in results:
            if r.verdict != "accepted":
                reading = r.reading
                lines.append(
                    f"  [{_LABEL[r.verdict]}] {r.case['text']!r} @ {r.case['ref'][:16]} -> {reading.status}: "
                    f"{reading.describe()} | expected {r.case['accept']}"
                )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="JSONL fixture files (default: dev, corpus, Duckling)")
    parser.add_argument("--heldout", action="store_true", help="also run the held-out file")
    parser.add_argument("--list", action="store_true", help="print every wrong and abstained phrase")
    args = parser.parse_args(argv)
    paths = list(args.paths or DEFAULT_PATHS) + ([HELDOUT] if args.heldout else [])
    wrong = 0
    for path in paths:
        results = list(run_cases(parse_cases(path.read_text(encoding="utf-8"))))
        wrong += sum(r.verdict == "wrong" for r in results)
        print("\n".join(report(path.name, results, listing=args.list)))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
