"""The promote stage without tracking: the gate's verdict on the default base, no alias."""

from __future__ import annotations

import json

import pytest

from pipelines import promote
from pipelines.io import rounded
from tests.conftest import default_params


def test_without_tracking_the_verdict_is_written_and_no_alias_moves(default_run, tmp_path):
    root, _, metrics = default_run
    f = root / "features"
    out = tmp_path / "promotion.json"
    verdict = promote.run(
        default_params(),
        promote.Paths(f / "features.parquet", f / "labels.parquet", root / "model", out),
    )
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(rounded(verdict)))
    assert written["passed"] and not written["promoted"] and written["reasons"] == []
    assert "tracking is off" in written["message"]
    assert "未启用跟踪" in written["message_zh"]  # the report's Chinese page says it so
    assert written["champion_version"] is None and "champion" not in written
    # The evaluate stage's test rows and figure, and a model that beats its baseline.
    assert written["rows"] == metrics["test"]["rows"]
    assert written["candidate"]["auc"] == pytest.approx(metrics["model"]["auc"], rel=1e-6)
    assert written["baseline_auc"] < written["candidate"]["auc"]
    assert written["window"]["first"] == metrics["test"]["first"]


def test_a_run_missing_from_the_store_is_one_clear_error(tmp_path, monkeypatch):
    """A model folder whose noted run is not in the store (mlflow.db replaced): the stage
    that logs to that run says so, naming the fix, instead of an MLflow traceback."""
    from pipelines.tracking import Tracker, TrackingError

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with pytest.raises(TrackingError, match=r"is not in the tracking store .*repro --force train"):
        Tracker("gridscore-test").add_to_run("0" * 32, {"auc": 0.5}, [], "evaluation")
