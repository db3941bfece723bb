"""The explain stage on the default generated base: additive, schema-checked, readable reasons."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from models.reasons import CAUSES
from pipelines.config import load_params
from pipelines.explain import main
from tests.conftest import PROJECT


def test_explanations_of_the_latest_snapshot(default_run, tmp_path):
    root, _, _ = default_run
    p = load_params(PROJECT / "params.yaml")
    summary = main(
        root / "features" / "features.parquet",
        root / "model",
        tmp_path / "out",
        tmp_path / "x.json",
        p.grades,
    )
    contrib = pd.read_parquet(tmp_path / "out" / "contributions.parquet")
    causes = pd.read_parquet(tmp_path / "out" / "causes.parquet")
    reasons = pd.read_parquet(tmp_path / "out" / "reasons.parquet")
    feature_cols = [
        c
        for c in contrib.columns
        if c not in ("customer_id", "as_of", "base_value", "raw_score", "pd", "grade")
    ]
    # additivity, in log-odds: base value + contributions = the model's raw score
    np.testing.assert_allclose(
        contrib["base_value"] + contrib[feature_cols].sum(axis=1), contrib["raw_score"], atol=1e-9
    )
    assert summary["max_additivity_gap"] < 1e-9
    cause_cols = [c.code for c in CAUSES]
    np.testing.assert_allclose(
        causes[cause_cols].sum(axis=1), contrib[feature_cols].sum(axis=1), atol=1e-9
    )
    # reasons: only risk-raising causes, at most 3, both languages, no "0 bills" sentences
    assert (reasons["contribution"] >= 0.05).all() and reasons.groupby("customer_id")[
        "rank"
    ].max().max() <= 3
    assert reasons["text_en"].str.len().min() > 5 and reasons["text_zh"].str.len().min() > 2
    assert (
        not reasons["text_en"].str.match(r"^0 ").any()
        and not reasons["text_zh"].str.contains("有0张").any()
    )
    # the riskiest always get a reason; a grade-C customer's first is mostly a payment cause
    worst = contrib.nlargest(200, "pd")["customer_id"]
    assert worst.isin(reasons["customer_id"]).all()
    first = reasons[
        (reasons["rank"] == 1)
        & reasons["customer_id"].isin(contrib.loc[contrib["grade"] == "C", "customer_id"])
    ]
    assert first["code"].isin(["R01", "R02", "R03", "R04", "R05"]).mean() > 0.8
    assert json.loads((tmp_path / "x.json").read_text())["rows"] == len(contrib)
