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
from dvc.repo import Repo

from tests.conftest import PROJECT, THREADS
from tests.test_dependencies import closure


def _project_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    files = [
        f for f in out if (PROJECT / f).is_file() and not f.startswith(("metrics/", "dvc.lock"))
    ]
    # numba's cache of the feature kernel (conftest compiles it first): the copy's stages load
    # it as this checkout's do (it keys on kernel.py's time and size, which copy2 keeps)
    cache = sorted((PROJECT / "features" / "__pycache__").glob("kernel.*.nb[ic]"))
    return files + [str(p.relative_to(PROJECT)) for p in cache]


def _run(cmd: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}"
    return res


def _plots_show_offline(work: Path, env: dict, tmp_path: Path) -> None:
    """`dvc plots show` with the template `make install` builds: every plot, Vega inlined,
    nothing fetched, rendered by a real headless Chromium with no console message."""
    template = PROJECT / ".dvc" / "plots" / "offline.html"
    assert template.exists(), "no offline plots template: `make install` builds it (npm)"
    out = tmp_path / "plots"
    _run(["dvc", "plots", "show", "--html-template", str(template), "-o", str(out)], work, env)
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "<script src" not in page and "cdn.jsdelivr" not in page
    for title in (
        "ROC_of_the_arrears_model",
        "Reliability_of_the_calibrated_PD",
        "Cumulative_gains",
    ):
        assert f'id = "{title}' in page, title
    assert '"chance"' in page and '"perfect"' in page and '"random"' in page  # the diagonals
    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed: `make test` installs it (Makefile, browser)"
    cmd = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--proxy-server=127.0.0.1:9",  # offline
        "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
        f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", (out / "index.html").as_uri(),
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    # Only what DVC's own CDN page logs too, per plot: Vega-Embed's note that the spec says
    # "v5" and it is v5.2.0, and the empty extent of DVC's hover layer before any hover.
    # Anything else (an error, a script that failed to load) fails the test.
    console = [ln for ln in res.stderr.splitlines() if "CONSOLE" in ln]
    known = (
        "but the current version of Vega-Lite is",
        "but current version is",
        "WARN Infinite extent",
    )
    assert [ln for ln in console if not any(k in ln for k in known)] == [], console
    assert res.stdout.count("<canvas") >= 5 or res.stdout.count("<svg") >= 5  # drawn by Vega


@pytest.mark.slow
def test_dvc_repro_runs_every_stage(tmp_path):
    work = tmp_path / "project"
    for rel in _project_files():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT / rel, work / rel)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["generate"].update(customers=600, months=24)
    params["train"]["split"].update(valid_snapshots=2, test_snapshots=2)
    params["segment"].update(k_range=[6, 7], bootstrap=1)  # the pipeline, not the k search
    params["explain"].update(dependence_plots=1)  # one plot to draw (the count: test_explain_stage)
    # The stages' own work, not their resampling or their history: both are tested in process
    # (tests/pipelines: the run history, the gate's and the monitor's intervals).
    params["score"]["runs"] = 1
    params["monitor"].update(runs=3, bootstrap=50)
    params["promote"]["bootstrap"] = 50
    # MLflow logging of every stage is tested in process (tests/pipelines); here it would only
    # add a store connection to each of the eight stage processes.
    params["tracking"]["enabled"] = False
    params["features"]["threads"] = params["train"]["threads"] = THREADS  # the worker's cores
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
    assert summary["tables"]["customers"]["rows_in"] == 600
    assert not (work / "mlflow.db").exists()  # tracking off: nothing logged anywhere

    # `dvc metrics show`: the headline only, one screenful (every stage's details in its file).
    # What DVC itself answers, in process where the command line adds only its start (1 to
    # 3 s a command): the metrics, the status, a second repro.
    with Repo(str(work)) as repo:
        files = next(iter(repo.metrics.show().values()))["data"]
    assert list(files) == ["metrics/headline.json"]
    table = _run(["dvc", "metrics", "show"], work, env).stdout
    assert max(len(line) for line in table.splitlines()) < 1200, table

    _plots_show_offline(work, env, tmp_path)

    lock_before = (work / "dvc.lock").read_text()
    with Repo(str(work)) as repo:
        assert repo.status() == {}  # `dvc status`: up to date
    with Repo(str(work)) as repo:  # a Repo of its own, as each command has
        # nothing reruns, and the lock is byte for byte the same (the target named: DVC reads
        # a relative one against the working directory, which is this checkout)
        again = repo.reproduce(str(work / "dvc.yaml"))
    assert again == [] and (work / "dvc.lock").read_text() == lock_before
    # The last stage run again from scratch gives the same bytes in its output (its
    # reconciliation kept the run's time): the lock, and git, see no change. The segment
    # model and the beeswarm, the other outputs that changed run to run, are checked by
    # tests/pipelines/test_stable_outputs.py; every stage forced on the default base gives
    # the same lock (README, "Reproducible").
    _run([*git, "add", "-A"], work, env)
    _run([*git, "commit", "-qm", "first run"], work, env)
    forced = _run(["dvc", "repro", "--force", "--single-item", "score"], work, env)
    assert (
        "Running stage 'score'" in forced.stdout and "Running stage 'explain'" not in forced.stdout
    )
    assert (work / "dvc.lock").read_text() == lock_before
    assert _run(["git", "status", "--porcelain"], work, env).stdout == ""
    outputs = ["data/", "artifacts/", "reports/", "mlflow.db", "mlartifacts/"]
    ignored = _run(["git", "check-ignore", *outputs], work, env).stdout.split()
    assert ignored == outputs  # DVC outputs and the tracking store stay out of git
    assert (work / "artifacts" / "arrears" / "model.txt").exists()
    metrics = json.loads((work / "metrics" / "arrears.json").read_text())
    assert 0.5 < metrics["model"]["auc"] <= 1.0

    # Editing a module reruns exactly the stages whose code imports it (their closure): one
    # module at least of every stage's. That every stage's deps equal its closure is
    # tests/test_dependencies.py's check; this proves DVC acts on them.
    for module in (
        "features/synthetic/generator.py",  # generate
        "features/validation.py",  # validate, score
        "features/kernel.py",  # features, score
        "models/scorecard.py",  # train, evaluate
        "models/plots.py",  # evaluate, segment, explain
        "models/reasons.py",  # explain, score
    ):
        path = work / module
        original = path.read_text()
        path.write_text(original + "\n# touched by the test\n")
        with Repo(str(work)) as repo:  # `dvc status`, in process: the same answer, faster
            changed = {name.split(":")[-1] for name in repo.status()}
        path.write_text(original)
        users = {s for s in stages if module in closure(work / "pipelines" / f"{s}.py", work)}
        users.add("report")  # it names all the code that made the run
        assert changed == users and users, (module, changed, users)
    with Repo(str(work)) as repo:
        assert repo.status() == {}

    # An experiment with one parameter changed, as a data scientist runs it: only the stage
    # that reads the parameter reruns (and the report, which names every param), and the
    # decision it makes moves: a calibration bar below the candidate's ECE fails the gate.
    _run([*git, "add", "-A"], work, env)
    _run([*git, "commit", "-qm", "baseline run", "--allow-empty"], work, env)
    before = json.loads((work / "metrics" / "promotion.json").read_text())
    assert before["passed"] and before["candidate"]["ece"] > 0.001, before
    exp = _run(["dvc", "exp", "run", "-S", "promote.max_ece=0.001", "-n", "strict"], work, env)
    ran = {line.split("'")[1] for line in exp.stdout.splitlines() if "Running stage" in line}
    assert ran == {"promote", "report"}, exp.stdout
    after = json.loads((work / "metrics" / "promotion.json").read_text())
    assert not after["passed"] and after["rules"]["max_ece"] == 0.001
    assert any("ECE" in reason for reason in after["reasons"]), after["reasons"]
    shown = json.loads(_run(["dvc", "exp", "show", "--json"], work, env).stdout)
    text = json.dumps(shown)
    assert "strict" in text and '"max_ece": 0.001' in text
