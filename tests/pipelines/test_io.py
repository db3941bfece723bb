"""An output folder held by one live process at a time, with real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from pipelines.io import FolderBusy, clear_stale_temp, exclusive, lock_path

_HOLD = """
import sys, time
from pathlib import Path
from pipelines.io import exclusive
with exclusive(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(60)
"""


def _holder(folder):
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_process_is_refused_while_the_first_lives_then_takes_a_dead_ones_lock(tmp_path):
    out = tmp_path / "scores"
    holder = _holder(out)
    try:
        busy = rf"being written by another run \(pid {holder.pid} "
        with pytest.raises(FolderBusy, match=busy), exclusive(out):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)  # killed as by the OOM killer: no cleanup runs
        holder.wait()
    assert lock_path(out).exists()  # the file stays; the kernel's lock went with the process
    with exclusive(out):  # taken over at once
        assert f"pid {os.getpid()} " in lock_path(out).read_text()
        with exclusive(out):  # re-entrant within the process
            pass


def test_temporary_folders_of_dead_processes_are_cleared(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    (tmp_path / f"gridscore-score-{dead}-abc").mkdir()
    (tmp_path / f"gridscore-score-{os.getpid()}-def").mkdir()  # alive: kept
    time.sleep(0.1)
    assert clear_stale_temp("gridscore-score-") == 1
    assert [p.name for p in tmp_path.iterdir()] == [f"gridscore-score-{os.getpid()}-def"]


_KILLED_WHILE_LOGGING = """
import os, signal, sys
from pipelines.tracking import Tracker
with Tracker("gridscore-test").stage_run("train", {"a": 1}, {"m": 0.5}):
    print("logging", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # killed while its run is open
"""


def test_a_run_left_running_by_a_killed_process_is_closed_by_the_next(tmp_path, monkeypatch):
    import mlflow

    from pipelines.tracking import Tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_WHILE_LOGGING], capture_output=True, text=True
    )
    assert killed.returncode == -signal.SIGKILL and "logging" in killed.stdout
    client = mlflow.MlflowClient(uri)
    (left,) = client.search_runs([client.get_experiment_by_name("gridscore-test").experiment_id])
    assert left.info.status == "RUNNING"
    with Tracker("gridscore-test").stage_run("train", {"a": 2}, {"m": 0.6}):
        pass
    assert client.get_run(left.info.run_id).info.status == "KILLED"
    runs = client.search_runs([left.info.experiment_id], "attributes.status = 'FINISHED'")
    assert len(runs) == 1


def test_a_copied_project_s_store_writes_and_reads_its_own_artifacts(tmp_path, monkeypatch):
    import shutil

    import mlflow

    from pipelines.tracking import Tracker

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    (a / "note.txt").write_text("first")
    with Tracker("gridscore", project_dir=a).stage_run("train", {}, {}) as run:
        mlflow.log_artifact(str(a / "note.txt"))
    first = run.info.run_id
    shutil.copytree(a, b)  # the project copied (or moved) elsewhere, store and artifacts
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # mlflow sets it: a new process
    with Tracker("gridscore", project_dir=b).stage_run("train", {}, {}) as run:
        mlflow.log_artifact(str(b / "note.txt"))
    client = mlflow.MlflowClient(f"sqlite:///{b / 'mlflow.db'}")
    for run_id in (first, run.info.run_id):
        uri = client.get_run(run_id).info.artifact_uri
        assert uri.startswith((b / "mlartifacts").as_uri()), uri
    assert (b / "mlartifacts" / run.info.run_id / "artifacts" / "note.txt").exists()
    assert not (a / "mlartifacts" / run.info.run_id).exists()  # the original is untouched
    old = mlflow.MlflowClient(f"sqlite:///{a / 'mlflow.db'}").get_run(first).info.artifact_uri
    assert old.startswith((a / "mlartifacts").as_uri())


def test_metrics_keep_eight_significant_digits_and_nothing_else_changes():
    import math

    from pipelines.io import rounded

    got = rounded({"auc": 0.8563718297127052, "n": 7, "by": {"A": [1e-17 + 0.1, "x"]}})
    assert got == {"auc": 0.85637183, "n": 7, "by": {"A": [0.1, "x"]}}
    # the last bits of a sum on another CPU vanish; a real change of a metric does not
    assert rounded(0.02786747304788272) == rounded(0.027867473047882736)
    assert rounded(0.0278675) != rounded(0.0278674)
    assert math.isnan(rounded(float("nan"))) and rounded(float("inf")) == float("inf")
