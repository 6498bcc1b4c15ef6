"""The README documents every setting exactly as the code defines it."""

from __future__ import annotations

from worker.settings import REPO_ROOT, settings_markdown


def test_readme_settings_table_matches_the_settings() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert settings_markdown() in readme, "README settings table is stale: paste settings_markdown() output"
