"""Accuracy of the callback-time reader on a JSONL reference file.

Usage: python bench/callback_accuracy.py [PATH]
PATH defaults to tests/fixtures/reference/callback-phrases-dev.jsonl (a copy of the development reference set). Prints
accuracy, the wrong-guess count, counts per status and per language, and lists every miss and wrong
guess. Exit status 1 when any guess is wrong (a confident time that matches nothing acceptable).
The judging lives in worker.callbacks.evaluate (shared with the tests).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATH = REPO_ROOT / "tests" / "fixtures" / "reference" / "callback-phrases-dev.jsonl"

if str(REPO_ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO_ROOT))

from worker.callbacks.evaluate import CaseResult, load_cases, run_cases  # noqa: E402


def report(results: list[CaseResult]) -> str:
    """The printed report of a run."""
    total = len(results)
    verdicts = Counter(r.verdict for r in results)
    accepted, wrong, missed = verdicts["accepted"], verdicts["wrong"], verdicts["missed"]
    exact = sum(r.exact for r in results)
    lines = [
        f"phrases: {total}",
        f"accuracy: {accepted}/{total} = {accepted / total:.1%}" if total else "accuracy: n/a",
        f"wrong guesses: {wrong}",
        f"missed (no time given): {missed}",
        f"primary reading = main expectation: {exact}/{total}",
        "per status: " + ", ".join(f"{s}={n}" for s, n in sorted(Counter(r.reading.status for r in results).items())),
        "per lang (accepted/total):",
    ]
    for lang in sorted({str(r.case.get("lang", "?")) for r in results}):
        of_lang = [r for r in results if str(r.case.get("lang", "?")) == lang]
        ok = sum(r.verdict == "accepted" for r in of_lang)
        lines.append(f"  {lang}: {ok}/{len(of_lang)}")
    misses = [r for r in results if r.verdict != "accepted"]
    lines.append(f"misses and wrong guesses: {len(misses)}")
    for r in misses:
        reading = r.reading
        alts = "; ".join(a.describe() for a in reading.alternatives)
        lines.append(
            f"  [{r.verdict}] {r.case['text']!r} -> {reading.status}: {reading.describe()}"
            + (f" (alts: {alts})" if alts else "")
            + f" | expected {r.case['accept']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH, help="JSONL reference file")
    args = parser.parse_args(argv)
    results = list(run_cases(load_cases(args.path)))
    print(report(results))
    return 1 if any(r.verdict == "wrong" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
