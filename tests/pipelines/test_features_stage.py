"""The features stage on a small generated base: outputs, schema, labels, unsorted input."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.catalog import COMPUTED, STATIC
from pipelines.config import load_params
from pipelines.features import FEATURE_SCHEMA, LABEL_SCHEMA, Paths, run
from tests.conftest import PARAMS


@pytest.fixture(scope="module")
def stage_params():
    p = load_params(PARAMS)
    snaps = p.features.snapshots.model_copy(
        update={
            "first": None,
            "last": None,
            "dates": (
                pd.Timestamp("2023-12-31").date(),
                pd.Timestamp("2024-06-30").date(),
                pd.Timestamp("2024-12-31").date(),
            ),
        }
    )
    return p.model_copy(
        update={
            "features": p.features.model_copy(update={"snapshots": snaps, "chunk_customers": 700})
        }
    )


def _run(validated, tmp_path, p):
    summary = run(p, Paths(validated, tmp_path / "features", tmp_path / "features.json"))
    f = pq.read_table(tmp_path / "features" / "features.parquet")
    labels = pq.read_table(tmp_path / "features" / "labels.parquet")
    return summary, f, labels


def test_stage_writes_features_labels_and_summary(small_base, tmp_path, stage_params):
    summary, f, labels = _run(small_base / "raw", tmp_path, stage_params)
    assert f.schema.equals(FEATURE_SCHEMA) and labels.schema.equals(LABEL_SCHEMA)
    assert f.column_names == ["customer_id", "as_of", *COMPUTED, *STATIC]
    frame = f.to_pandas()
    assert not frame.duplicated(["customer_id", "as_of"]).any()
    assert f.num_rows == labels.num_rows == summary["rows"]
    saved = json.loads((tmp_path / "features.json").read_text())
    assert (
        saved["data_end"] == "2025-01-31"
    )  # 24 months from 2023-01, payments to the next month end
    per = saved["snapshots"]
    assert per["2023-12-31"]["labelled"] == per["2023-12-31"]["rows"] > 2500
    assert 0.01 < per["2023-12-31"]["arrears_rate"] < 0.2
    assert per["2024-12-31"]["labelled"] == 0  # horizon past the data: scored, never trained on
    lab = labels.to_pandas()
    assert lab.loc[lab["as_of"] == pd.Timestamp("2024-12-31").date(), "in_arrears"].isna().all()


def test_chunks_and_sorting_do_not_change_the_result(small_base, tmp_path, stage_params):
    _, f_sorted, l_sorted = _run(small_base / "raw", tmp_path / "a", stage_params)
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    for name in ("customers", "bills", "payments"):
        t = pq.read_table(small_base / "raw" / f"{name}.parquet").to_pandas()
        t.sample(frac=1.0, random_state=1).to_parquet(shuffled / f"{name}.parquet", index=False)
    _, f_shuffled, l_shuffled = _run(
        shuffled, tmp_path / "b", stage_params.override("features", chunk_customers=311)
    )
    pd.testing.assert_frame_equal(f_sorted.to_pandas(), f_shuffled.to_pandas())
    pd.testing.assert_frame_equal(l_sorted.to_pandas(), l_shuffled.to_pandas())


def test_truth_risk_shows_in_labels(small_base, tmp_path, stage_params):
    _, _, labels = _run(small_base / "raw", tmp_path, stage_params)
    truth = pd.read_parquet(small_base / "truth" / "customers.parquet")
    lab = labels.to_pandas().dropna().merge(truth, on="customer_id")
    by_risk = lab.groupby(pd.qcut(lab["latent_risk"], 4, labels=False))["in_arrears"].mean()
    assert by_risk.is_monotonic_increasing and by_risk.iloc[-1] > 4 * by_risk.iloc[0]
