"""The arrears model on a small generated base: deterministic, monotone, safe with bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.catalog import BY_NAME
from features.engine import build_features, build_labels, month_ends
from models.arrears import ArrearsModel, BoosterParams, FeatureMismatchError, infer_spec, to_matrix
from models.split import random_split
from tests.conftest import COSTS, PARAMS, THREADS

# One worker for the module: its tests share the fitted model of the module fixture `fitted`.
pytestmark = pytest.mark.xdist_group("arrears_model")


@pytest.fixture(scope="module")
def table(small_base):
    def read(name):
        return pq.read_table(small_base / "raw" / f"{name}.parquet").to_pandas(date_as_object=False)

    c, b, p = read("customers"), read("bills"), read("payments")
    snaps = month_ends("2023-12-31", "2024-09-30")
    f = build_features(c, b, p, snaps, COSTS, 91)
    lab = build_labels(c, b, p, snaps, 3, 30, 10.0, pd.Timestamp("2025-01-31"), keys=f)
    return f.assign(in_arrears=lab["in_arrears"].astype(int).to_numpy())


def _fit(table, seed=1, monotone=True, trees=300):
    directions = {n: f.risk_direction for n, f in BY_NAME.items()}
    spec = infer_spec(table, "in_arrears", [], directions=directions)
    roles = random_split(len(table), 0.2, 0, table["in_arrears"].to_numpy())
    X, y = to_matrix(table, spec), table["in_arrears"].to_numpy()
    tr, va = (roles == "train").to_numpy(), (roles == "test").to_numpy()
    params = BoosterParams(
        num_leaves=15,
        n_estimators=trees,
        early_stopping_rounds=30,
        min_child_samples=50,
        seed=seed,
        threads=THREADS,
    )
    return ArrearsModel(params, "isotonic", monotone).fit(X[tr], y[tr], X[va], y[va], spec), X


@pytest.fixture(scope="module")
def fitted(table):
    """One model fitted with seed 1, shared by the tests that only read it."""
    return _fit(table)


def test_same_seed_and_data_give_the_same_model(table, tmp_path):
    # 40 trees prove it as well as 300 (the same trees, bagging and feature sampling), in
    # a fraction of the time
    a, X = _fit(table, trees=40)
    b, _ = _fit(table, trees=40)
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    for name in ("model.txt", "calibrator.json", "features.json"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    c, _ = _fit(table, seed=2, trees=40)
    assert not np.array_equal(a.predict_raw(X), c.predict_raw(X))


def test_every_constrained_feature_is_monotone(table, fitted):
    model, X = fitted
    sample = X.sample(200, random_state=0)
    assert len(model.spec_.monotone) > 20
    for name, direction in model.spec_.monotone.items():
        values = X[name].dropna()
        grid = np.unique(np.quantile(values, np.linspace(0, 1, 15))) if len(values) else []
        if len(grid) < 2:
            continue
        # every grid value for the same 200 rows, predicted at once: (grid point, row)
        stacked = pd.concat([sample.assign(**{name: v}) for v in grid], ignore_index=True)
        for scores in (model.predict_margin(stacked), model.predict_proba(stacked)):
            steps = np.diff(scores.reshape(len(grid), len(sample)), axis=0)
            assert (direction * steps >= -1e-12).all(), name


def test_saved_model_predicts_the_same_after_loading(table, fitted, tmp_path):
    model, X = fitted
    model.save(tmp_path / "m")
    again = ArrearsModel.load(tmp_path / "m")
    np.testing.assert_allclose(again.predict_proba(X), model.predict_proba(X))
    assert (tmp_path / "m" / "model.txt").read_text().startswith("tree")


def test_one_pass_scores_equal_the_two_predictions_bit_for_bit(fitted, tmp_path, monkeypatch):
    model, X = fitted
    model.save(tmp_path / "m")
    for m in (model, ArrearsModel.load(tmp_path / "m")):  # fitted, and as a stage loads it
        want = (m.predict_margin(X), m.predict_proba(X))

        def twice(_):
            raise AssertionError("predict_scores predicted the probability a second time")

        monkeypatch.setattr(m, "predict_raw", twice)
        margin, pd_ = m.predict_scores(X)
        np.testing.assert_array_equal(margin, want[0])
        np.testing.assert_array_equal(pd_, want[1])
        monkeypatch.undo()


def test_missing_feature_and_wrong_type_are_errors_and_new_categories_are_missing(table, fitted):
    model, X = fitted
    with pytest.raises(FeatureMismatchError, match="lacks the model's feature.*dpd"):
        to_matrix(table.drop(columns="dpd"), model.spec_)
    with pytest.raises(FeatureMismatchError, match="balance must be numeric"):
        to_matrix(table.assign(balance="lots"), model.spec_)
    odd = to_matrix(table.head(3).assign(tariff_class="space_station"), model.spec_)
    assert odd["tariff_class"].isna().all()
    assert np.isfinite(model.predict_proba(odd)).all()


def test_bring_your_own_feature_table(table, tmp_path):
    """A table with the target inside and a feature of the utility's own trains as it is."""
    from pipelines.config import load_params
    from pipelines.train import train_model

    own = table.assign(tamper_alarms=(table["dpd"] > 0).astype(int) * 2, meter_brand="acme")
    own.to_parquet(tmp_path / "mine.parquet", index=False)
    p = load_params(PARAMS)
    params = p.train.model_copy(
        update={
            # two folds choose the calibrator as five do (the path, not the choice, is tested)
            "split": p.train.split.model_copy(update={"kind": "random", "folds": 2}),
            "exclude": ("meter_brand",),
            "learning_rate": 0.15,  # the same path, in fewer trees
            "early_stopping_rounds": 30,
        }
    )
    summary, model, example = train_model(
        tmp_path / "mine.parquet", None, tmp_path / "model", params, p.label
    )
    assert "tamper_alarms" in model.spec_.numeric
    assert "meter_brand" not in model.spec_.columns
    assert "tamper_alarms" not in model.spec_.monotone  # not in the catalog: unconstrained
    assert summary["test"]["model"]["auc"] > 0.7
    assert list(example.columns) == model.spec_.columns


def _drifting(n, intercept, seed):
    """Rows whose log-odds of arrears is ``intercept + 1.5 x``: the same risk, another level."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(intercept + 1.5 * x)))).astype(int)
    return pd.DataFrame({"x": x, "in_arrears": y})


@pytest.mark.parametrize("level", ["long_run", "held_out"])
def test_the_pd_level_is_the_long_run_rate_not_the_held_out_months_rate(level):
    """Training months at one level, held-out months at a higher one (a cycle's peak): with
    ``long_run`` the held-out rows' mean PD is the rate over every development row; with
    ``held_out`` it is the held-out rate (the map is fitted there and not moved)."""
    train, valid = _drifting(60_000, -3.4, 5), _drifting(20_000, -2.8, 6)
    spec = infer_spec(train, "in_arrears", [])
    params = BoosterParams(
        num_leaves=7, n_estimators=200, early_stopping_rounds=20, threads=THREADS
    )
    model = ArrearsModel(params, "platt", monotone=False, calibration_level=level).fit(
        to_matrix(train, spec), train["in_arrears"].to_numpy(),
        to_matrix(valid, spec), valid["in_arrears"].to_numpy(), spec,
    )  # fmt: skip
    pd_valid = model.predict_proba(to_matrix(valid, spec)).mean()
    rep = model.calibration_["level"]
    long_run = pd.concat([train, valid])["in_arrears"].mean()
    assert rep["long_run_rate"] == pytest.approx(long_run)
    assert rep["held_out_rate"] == pytest.approx(valid["in_arrears"].mean())
    assert rep["held_out_rate"] > 1.3 * long_run  # the held-out months do run high
    if level == "long_run":
        assert pd_valid == pytest.approx(long_run, rel=1e-6)
        assert rep["shift"] < 0
    else:
        assert pd_valid == pytest.approx(valid["in_arrears"].mean(), rel=0.01)
        assert rep["shift"] == 0.0
    assert rep["held_out_mean_pd_after"] == pytest.approx(pd_valid)
