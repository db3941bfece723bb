"""`dvc repro` end to end with the real DVC, on a copy of the project with a small base."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT


def _project_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return [
        f for f in out if (PROJECT / f).is_file() and not f.startswith(("metrics/", "dvc.lock"))
    ]


def _run(cmd: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}"
    return res


@pytest.mark.slow
def test_dvc_repro_runs_every_stage(tmp_path):
    work = tmp_path / "project"
    for rel in _project_files():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT / rel, work / rel)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["generate"].update(customers=800, months=24)
    params["train"]["split"].update(valid_snapshots=2, test_snapshots=2)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    git = ["git", "-c", "user.email=ci@example.invalid", "-c", "user.name=ci"]
    _run(["git", "init", "-q"], work, env)
    _run([*git, "add", "-A"], work, env)
    _run([*git, "commit", "-qm", "copy"], work, env)

    _run(["dvc", "repro"], work, env)

    stages = yaml.safe_load((work / "dvc.yaml").read_text())["stages"]
    lock = yaml.safe_load((work / "dvc.lock").read_text())["stages"]
    assert set(lock) == set(stages)
    for table in ("customers", "bills", "payments"):
        assert (work / "data" / "validated" / f"{table}.parquet").exists()
        assert (work / "data" / "quarantine" / f"{table}.parquet").exists()
    summary = json.loads((work / "metrics" / "validation.json").read_text())
    assert summary["tables"]["customers"]["rows_in"] == 800
    assert (work / "mlflow.db").exists()  # the default tracking store, in the project

    status = _run(["dvc", "status"], work, env)
    assert "up to date" in status.stdout.lower()
    again = _run(["dvc", "repro"], work, env)
    assert "didn't change" in again.stdout or "Stage 'validate' didn't change" in again.stdout
    ignored = _run(["git", "status", "--porcelain", "--ignored"], work, env).stdout
    for out in ("data/", "artifacts/", "reports/", "mlflow.db", "mlartifacts/"):
        assert f"!! {out}" in ignored, out
    assert (work / "artifacts" / "arrears" / "model.txt").exists()
    metrics = json.loads((work / "metrics" / "arrears.json").read_text())
    assert 0.5 < metrics["model"]["auc"] <= 1.0

    # An experiment with one parameter changed, as a data scientist runs it.
    _run([*git, "add", "-A"], work, env)
    _run([*git, "commit", "-qm", "baseline run"], work, env)
    _run(["dvc", "exp", "run", "-S", "train.num_leaves=7", "-n", "leaves7"], work, env)
    shown = json.loads(_run(["dvc", "exp", "show", "--json"], work, env).stdout)
    text = json.dumps(shown)
    assert "leaves7" in text and '"num_leaves": 7' in text
