"""The gridscore CLI end to end on small data, with real MLflow tracking."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from tests.conftest import PARAMS, PROJECT

runner = CliRunner()


@pytest.fixture
def tracking(tmp_path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def _validate_args(raw: Path, root: Path) -> list[str]:
    return [
        "validate",
        "--raw",
        str(raw),
        "--out",
        str(root / "validated"),
        "--quarantine",
        str(root / "quarantine"),
        "--summary",
        str(root / "validation.json"),
        "--params",
        str(PARAMS),
    ]


def test_generate_then_validate_logs_to_mlflow(tmp_path, tracking):
    gen = runner.invoke(
        app,
        [
            "generate",
            "--out",
            str(tmp_path / "raw"),
            "--customers",
            "500",
            "--months",
            "13",
            "--seed",
            "11",
            "--params",
            str(PARAMS),
        ],
    )
    assert gen.exit_code == 0, gen.output
    assert (tmp_path / "truth" / "monthly.parquet").exists()  # default: beside OUT
    assert len(pd.read_parquet(tmp_path / "raw" / "customers.parquet")) == 500

    res = runner.invoke(app, _validate_args(tmp_path / "raw", tmp_path))
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "validation.json").read_text())
    assert summary["passed"] and summary["tables"]["customers"]["rows_passed"] == 500

    client = mlflow.MlflowClient(tracking)
    exp = client.get_experiment_by_name("gridscore")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["gridscore.stage"] == "validate"
    assert run.data.metrics["customers_rows_in"] == 500
    assert run.data.metrics["bills_rows_in"] == summary["tables"]["bills"]["rows_in"]
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["validation.json"]


def test_bad_file_exits_2_naming_file_and_column(tiny_raw, tmp_path, tracking):
    bills = pd.read_csv(tiny_raw / "bills.csv").drop(columns="kwh")
    bills.to_csv(tiny_raw / "bills.csv", index=False)
    res = runner.invoke(app, _validate_args(tiny_raw, tmp_path))
    assert res.exit_code == 2
    assert "bills.csv: required column(s) kwh absent" in res.output


def test_too_much_quarantine_exits_2_and_keeps_the_quarantine(tiny_raw, tmp_path, tracking):
    bills = pd.read_csv(tiny_raw / "bills.csv")
    bills.loc[0, "kwh"] = -3
    bills.to_csv(tiny_raw / "bills.csv", index=False)
    res = runner.invoke(app, _validate_args(tiny_raw, tmp_path))
    assert res.exit_code == 2
    assert "too many rows quarantined (bills: 1 of 8 rows" in res.output
    q = pd.read_parquet(tmp_path / "quarantine" / "bills.parquet")
    assert q[["source_row", "reason", "column"]].values.tolist() == [[1, "negative_value", "kwh"]]


def test_bad_params_exit_2(tmp_path):
    import yaml

    raw = yaml.safe_load((PROJECT / "params.yaml").read_text())
    raw["generate"]["customers"] = -1
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(raw))
    res = runner.invoke(app, ["generate", "--out", str(tmp_path / "raw"), "--params", str(bad)])
    assert res.exit_code == 2
    assert "generate.customers" in res.output
    assert not (tmp_path / "raw").exists()


def test_a_user_error_is_one_line_and_a_bug_is_a_traceback(tmp_path, monkeypatch):
    from pipelines import features

    args = ["features", "--validated", str(tmp_path / "nowhere"), "--out", str(tmp_path / "f")]
    args += ["--summary", str(tmp_path / "f.json"), "--params", str(PARAMS)]
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert lines == [f"error: {tmp_path / 'nowhere' / 'customers.parquet'}: missing "
                     "(run the validate stage first)"]  # fmt: skip

    def broken(params, paths):
        raise ValueError("a bug: an internal invariant broke")

    monkeypatch.setattr(features, "run", broken)
    res = runner.invoke(app, args)
    assert res.exit_code == 1  # not dressed up as the user's mistake
    assert isinstance(res.exception, ValueError) and "error:" not in res.output


def test_bad_override_exit_2(tmp_path):
    res = runner.invoke(
        app,
        [
            "generate",
            "--out",
            str(tmp_path / "raw"),
            "--months",
            "0",
            "--params",
            str(PARAMS),
        ],
    )
    assert res.exit_code == 2
    assert "months" in res.output


def test_the_font_subsetter_s_glyph_lists_wait_for_debug():
    """At INFO the report stage's log is the run's, not fontTools' list of every glyph it
    keeps (a hundred long lines in `dvc repro`); --log-level DEBUG shows them."""
    import logging

    from pipelines.cli import _configure

    fonts, subset = logging.getLogger("fontTools"), logging.getLogger("fontTools.subset")
    before = fonts.level
    try:
        fonts.setLevel(logging.NOTSET)
        _configure("INFO")
        assert not subset.isEnabledFor(logging.INFO) and subset.isEnabledFor(logging.WARNING)
        _configure("DEBUG")
        assert subset.isEnabledFor(logging.DEBUG)
    finally:
        fonts.setLevel(before)  # setLevel, not an attribute put back: it clears the cache


def test_help_lists_one_subcommand_per_stage():
    import yaml

    res = runner.invoke(app, ["--help"])
    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    for stage, spec in stages.items():
        assert stage in res.output
        assert spec["cmd"].startswith(f"gridscore {stage} ")


def test_the_default_store_is_the_project_s_own(tiny_raw, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # the project folder, as dvc repro runs the stages
    res = runner.invoke(app, _validate_args(tiny_raw, tmp_path))
    assert res.exit_code == 0, res.output
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("gridscore")
    assert exp.artifact_location == (tmp_path / "mlartifacts").resolve().as_uri()
    (run,) = client.search_runs([exp.experiment_id])
    assert (tmp_path / "mlartifacts" / run.info.run_id / "artifacts" / "validation.json").exists()


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_an_empty_or_truncated_parquet_input_is_one_line_naming_the_file(
    tiny_raw, tmp_path, damage
):
    """A validated table cut short (a copy interrupted, a full disk at the writer): the next
    stage stops before any work, naming the file; nothing is written."""
    ok = runner.invoke(app, _validate_args(tiny_raw, tmp_path))
    assert ok.exit_code == 0, ok.output
    bills = tmp_path / "validated" / "bills.parquet"
    data = bills.read_bytes()
    bills.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    out = runner.invoke(
        app,
        ["features", "--validated", str(tmp_path / "validated"), "--out", str(tmp_path / "f"),
         "--summary", str(tmp_path / "f.json"), "--params", str(PARAMS)],
    )  # fmt: skip
    assert out.exit_code == 2
    lines = [line for line in out.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and f"{bills}: not a readable Parquet file" in lines[0]
    assert "Traceback" not in out.output and not (tmp_path / "f").exists()


def test_a_full_disk_is_one_line_and_exit_2(capsys):
    """A real ENOSPC from the kernel (/dev/full) through the CLI's guard."""
    import typer

    from pipelines.cli import _guard

    def write() -> None:
        with open("/dev/full", "w") as fh:
            fh.write("x" * 100_000)

    with pytest.raises(typer.Exit) as stopped:
        _guard(write)
    assert stopped.value.exit_code == 2
    said = capsys.readouterr().err.strip().splitlines()
    assert said == ["error: No space left on device; no output was marked as done"]
    with pytest.raises(ZeroDivisionError):  # a bug is not turned into a user error
        _guard(lambda: 1 / 0)


def test_a_read_only_output_is_one_line_naming_the_file_and_exit_2(tmp_path):
    """A real EROFS from the kernel: ``gridscore generate`` into a folder bind-mounted
    read-only in a mount namespace of its own (``unshare -m``; root, as on this project's
    machines and CI). Nothing is written, one line names the file, no traceback."""
    import subprocess
    import sys

    folder = tmp_path / "ro"
    folder.mkdir()
    exe = Path(sys.executable).parent / "gridscore"
    script = (
        f"mount --bind {folder} {folder} && mount -o remount,ro,bind {folder} && "
        f"{exe} generate --out {folder}/raw --truth {folder}/truth --customers 50 --months 13 "
        f"--params {PARAMS}"
    )
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
    assert "mount:" not in done.stderr, f"needs root to mount a read-only folder: {done.stderr}"
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(folder) in lines[0], done.stderr
    assert "Read-only file system; no output was marked as done" in lines[0]
    assert "Traceback" not in done.stderr and not any(folder.iterdir())
