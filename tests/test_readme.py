"""The README's set-up commands are the ones CI runs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    [command] = [line for line in ci.splitlines() if line.startswith("python3.11 -m venv")]
    assert f"\n{command}\n" in readme
    assert "-c bundle/app/requirements.txt" in command, "the tests must run on the versions the bundle pins"
    assert "pytest" in command and "ruff check" in command and "ruff format --check" in command and "mypy" in command


def test_readme_shows_how_to_run_the_demo() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "python3.11 -m venv .venv && .venv/bin/pip install -e '.[sandbox]' && .venv/bin/cdpoc demo" in readme
