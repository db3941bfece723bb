"""Training against a real `mlflow server` on localhost: run, metrics, registry, promotion."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipelines import features
from pipelines.cli import app
from pipelines.config import load_params
from tests.conftest import PARAMS

runner = CliRunner()
# A group of its own: the server waits on its socket, and another worker fills that time.
# Slow: handed out first (conftest), so its half a minute is not the suite's last.
pytestmark = [pytest.mark.xdist_group("mlflow_server"), pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow_server")
    port = _free_port()
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--workers",
        "1",
    ]
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def small_features(small_base, tmp_path_factory):
    p = load_params(PARAMS)
    out = tmp_path_factory.mktemp("server_features")
    features.run(p, features.Paths(small_base / "raw", out / "features", out / "features.json"))
    return out / "features"


def _params(tmp_path: Path, **train) -> Path:
    raw = yaml.safe_load(PARAMS.read_text())
    raw["train"]["split"].update(valid_snapshots=2, test_snapshots=2)
    raw["train"].update(train)
    raw["promote"]["bootstrap"] = 50  # the gain's interval is reported, not a bar of the gate
    raw["tracking"]["experiment"] = "server-test"
    path = tmp_path / f"params_{len(list(tmp_path.glob('params_*')))}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _train(small_features: Path, out: Path, params: Path):
    return runner.invoke(
        app,
        [
            "train",
            "--features",
            str(small_features / "features.parquet"),
            "--labels",
            str(small_features / "labels.parquet"),
            "--out",
            str(out),
            "--params",
            str(params),
        ],
    )


def _promote(small_features: Path, model: Path, tmp_path: Path, *extra: str):
    return runner.invoke(
        app,
        [
            "promote",
            "--features",
            str(small_features / "features.parquet"),
            "--labels",
            str(small_features / "labels.parquet"),
            "--model-dir",
            str(model),
            "--metrics",
            str(tmp_path / "promotion.json"),
            "--params",
            str(sorted(tmp_path.glob("params_*.yaml"))[0]),
            *extra,
        ],
    )


def test_train_logs_registers_and_promotes_against_a_server(
    server, small_features, tmp_path, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    res = _train(small_features, tmp_path / "m1", _params(tmp_path, learning_rate=0.2))
    assert res.exit_code == 0, res.output
    client = mlflow.MlflowClient(server)
    exp = client.get_experiment_by_name("server-test")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert 0.7 < run.data.metrics["test_auc"] <= 1.0
    leaves = str(yaml.safe_load(PARAMS.read_text())["train"]["num_leaves"])
    assert "baseline_auc" in run.data.metrics and run.data.params["num_leaves"] == leaves
    v1 = client.get_model_version_by_alias("gridscore-arrears", "candidate")
    assert v1.version == "1" and v1.run_id == run.info.run_id

    res = _promote(small_features, tmp_path / "m1", tmp_path)
    assert res.exit_code == 0, res.output
    assert "champion is now version 1" in res.output  # no champion yet: its own bars
    assert client.get_model_version_by_alias("gridscore-arrears", "champion").version == "1"
    verdict = json.loads((tmp_path / "promotion.json").read_text())
    assert verdict["passed"] and verdict["promoted"] and verdict["champion_version"] is None
    gate = client.get_run(run.info.run_id).data.metrics
    assert gate["gate_passed"] == 1.0 and gate["gate_auc"] == pytest.approx(
        verdict["candidate"]["auc"]
    )
    res = _promote(small_features, tmp_path / "m1", tmp_path)
    assert res.exit_code == 0 and "version 1 is already the champion" in res.output

    # A worse model becomes the candidate but not the champion: the gate says why.
    res = _train(
        small_features,
        tmp_path / "m2",
        _params(tmp_path, num_leaves=2, n_estimators=1, learning_rate=0.001, monotone=False),
    )
    assert res.exit_code == 0, res.output
    assert client.get_model_version_by_alias("gridscore-arrears", "candidate").version == "2"
    res = _promote(small_features, tmp_path / "m1", tmp_path)  # not the registry's candidate
    assert res.exit_code == 2 and "is not the model in" in res.output
    res = _promote(small_features, tmp_path / "m2", tmp_path)
    assert res.exit_code == 1
    assert "kept champion version 1: candidate version 2 fails the gate" in res.output
    assert "against the champion's" in res.output  # the AUC comparison on the same rows
    assert client.get_model_version_by_alias("gridscore-arrears", "champion").version == "1"
    verdict = json.loads((tmp_path / "promotion.json").read_text())
    assert (
        verdict["champion_version"] == "1" and verdict["auc_gain"] < 0 and not verdict["promoted"]
    )
    assert verdict["champion"]["auc"] > verdict["candidate"]["auc"]
    res = _promote(small_features, tmp_path / "m2", tmp_path, "--refusal-ok")  # as DVC runs it
    assert res.exit_code == 0 and "kept champion version 1" in res.output

    # The champion scores a feature table through the pyfunc, served by the server's registry.
    model = mlflow.pyfunc.load_model("models:/gridscore-arrears@champion")
    table = pd.read_parquet(small_features / "features.parquet").head(50)
    table["as_of"] = pd.to_datetime(table["as_of"])
    pd_ = model.predict(table)["pd"]
    assert len(pd_) == 50 and pd_.between(0, 1).all()
    assert os.environ["MLFLOW_TRACKING_URI"] == server

    # Forced past the gate: the alias moves, and the verdict says it was forced and why.
    res = _promote(small_features, tmp_path / "m2", tmp_path, "--force")
    assert res.exit_code == 0 and "champion is now version 2 (forced past:" in res.output
    assert client.get_model_version_by_alias("gridscore-arrears", "champion").version == "2"
    verdict = json.loads((tmp_path / "promotion.json").read_text())
    assert verdict["forced"] and verdict["promoted"] and not verdict["passed"]
