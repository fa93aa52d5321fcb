"""The code keeps the style configured in pyproject.toml: ruff's lint rules and its format."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PATHS = ["fmlib", "tests", "benchmarks", "conftest.py"]


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, *PATHS],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def test_lint_is_clean():
    result = ruff("check", "--output-format", "concise")
    assert result.returncode == 0, result.stdout[-4000:]


def test_format_is_applied():
    result = ruff("format", "--check")
    assert result.returncode == 0, result.stdout[-4000:]
