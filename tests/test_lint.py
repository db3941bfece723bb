"""The code base stays ruff-clean (lint and format), so style drift fails CI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT

PATHS = ["features", "models", "pipelines", "tests", "benchmarks", "examples"]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    ruff = Path(sys.executable).parent / "ruff"
    return subprocess.run([str(ruff), *args, *PATHS], cwd=PROJECT, capture_output=True, text=True)


def test_ruff_check():
    res = _ruff("check")
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff_format():
    res = _ruff("format", "--check")
    assert res.returncode == 0, res.stdout + res.stderr
