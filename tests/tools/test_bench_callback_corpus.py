"""Smoke test of bench/callback_corpus.py: it runs on a fixture, prints the per-language and per-category
rows, and exits 0 when no reading is wrong."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench() -> object:
    spec = importlib.util.spec_from_file_location("callback_corpus_bench", ROOT / "bench" / "callback_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_bench_prints_figures_per_file_language_and_category(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _bench()
    status = bench.main([str(ROOT / "tests" / "fixtures" / "callbacks" / "corpus.jsonl"), "--list"])  # type: ignore[attr-defined]
    out = capsys.readouterr().out
    assert status == 0
    assert out.startswith("corpus.jsonl\n  all ")
    assert " per language:" in out and " per category:" in out
    for row in ("  hinglish ", "  hi ", "  en ", "  window ", "  machine "):
        assert row in out
    assert "wrong   0" in out.splitlines()[1]
