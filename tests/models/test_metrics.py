"""Metrics, calibration, splits, grades and expected loss on small known inputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.calibration import Calibrator, level_shift, select, shifted
from models.metrics import (
    assign_grades,
    classification_metrics,
    expected_calibration_error,
    expected_loss,
    grade_table,
    ks_statistic,
    rank_breaks,
    rates_rise,
    top_decile_capture,
)
from models.scorecard import WoEScorecard
from models.split import SplitError, out_of_time_split, random_split


def test_ks_and_capture_on_a_perfect_ranking():
    y = np.array([0] * 90 + [1] * 10)
    p = np.linspace(0, 1, 100)
    assert ks_statistic(y, p) == pytest.approx(1.0)
    assert top_decile_capture(y, p) == 1.0
    assert classification_metrics(y, p)["gini"] == pytest.approx(1.0)


def test_ece_is_zero_when_calibrated_and_large_when_not():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.3, 200_000)
    y = (rng.random(len(p)) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.005
    assert expected_calibration_error(y, np.clip(p * 2, 0, 1)) > 0.1


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibrators_fix_a_distorted_score_and_survive_json(method):
    rng = np.random.default_rng(1)
    true = rng.uniform(0, 0.4, 50_000)
    y = (rng.random(len(true)) < true).astype(int)
    raw = true**0.5  # overconfident and monotone
    cal = Calibrator(method).fit(raw, y)
    again = Calibrator.from_dict(cal.to_dict())
    np.testing.assert_allclose(again.transform(raw), cal.transform(raw))
    assert (
        expected_calibration_error(y, cal.transform(raw)) < expected_calibration_error(y, raw) / 5
    )
    assert roc_auc_score(y, cal.transform(raw)) == pytest.approx(roc_auc_score(y, raw), abs=0.005)


def test_out_of_time_split_leaves_a_gap_of_the_horizon():
    dates = pd.Series(pd.date_range("2023-12-31", "2025-10-31", freq="ME").repeat(2))
    roles = out_of_time_split(dates, 3, 3, 3)
    by_date = pd.Series(roles.to_numpy(), index=dates).groupby(level=0).first()
    assert list(by_date[by_date == "test"].index.strftime("%Y-%m")) == [
        "2025-08",
        "2025-09",
        "2025-10",
    ]
    assert list(by_date[by_date == "valid"].index.strftime("%Y-%m")) == [
        "2025-03",
        "2025-04",
        "2025-05",
    ]
    assert by_date[by_date == "train"].index.max() == pd.Timestamp("2024-12-31")
    assert set(by_date[by_date == "gap"].index.strftime("%Y-%m")) == {
        "2025-01",
        "2025-02",
        "2025-06",
        "2025-07",
    }


def test_out_of_time_split_needs_snapshots():
    with pytest.raises(SplitError, match="split.kind: random"):
        out_of_time_split(pd.Series(pd.to_datetime(["2024-01-31"] * 5)), 3, 3, 3)


def test_random_split_is_stratified_and_seeded():
    y = np.array([0] * 900 + [1] * 100)
    a, b = random_split(1000, 0.2, 7, y), random_split(1000, 0.2, 7, y)
    assert a.equals(b)
    assert (a[y == 1] == "test").sum() == 20 and (a == "test").sum() == 200
    assert set(random_split(1000, 0.0, 7, y)) == {"train"}  # nothing held out


def test_selection_leaves_a_calibrated_score_as_it_is():
    """A score that is already calibrated: a map's held-out gain is noise (Platt's is
    1.5e-5 in log-loss here, yet it would move the riskiest PDs by 1.5 points), so none is
    shipped."""
    rng = np.random.default_rng(5)
    p = rng.beta(1, 12, 20_000)
    y = (rng.random(len(p)) < p).astype(int)
    cal, report = select(p, y, seed=0)
    assert report["candidates"]["platt"]["log_loss"] < report["candidates"]["identity"]["log_loss"]
    assert report["candidates"]["platt"]["gain_z"] < 2
    assert report["chosen"] == "identity"
    np.testing.assert_array_equal(cal.transform(p), p)


def test_identity_is_shipped_when_every_map_worsens_the_held_out_figures():
    """Outcomes independent of a calibrated-looking score on few rows: the maps fitted on
    other folds only add noise on the held-out one, so nothing is shipped but the score."""
    rng = np.random.default_rng(2)
    p = np.full(400, 0.1) + rng.normal(0, 1e-4, 400)
    y = (rng.random(400) < 0.1).astype(int)
    cal, report = select(p, y, methods=("isotonic",), seed=0)
    assert (
        report["candidates"]["isotonic"]["log_loss"] > report["candidates"]["identity"]["log_loss"]
    )
    assert report["chosen"] == "identity" and cal.method == "identity"
    np.testing.assert_array_equal(cal.transform(p), p)


def test_selection_fixes_a_distorted_score_and_never_worsens_held_out_figures():
    rng = np.random.default_rng(6)
    true = rng.beta(1, 12, 20_000)
    y = (rng.random(len(true)) < true).astype(int)
    raw = np.clip(true * 2.5, 0, 0.99)  # overconfident
    cal, report = select(raw, y, seed=0)
    assert report["chosen"] in {"platt", "isotonic"}
    chosen = report["candidates"][report["chosen"]]
    base = report["candidates"]["identity"]
    assert chosen["log_loss"] <= base["log_loss"] and chosen["ece"] <= base["ece"]
    assert chosen["gain_z"] >= 2
    assert report["ece_after"] < report["ece_before"] / 3
    # the cross-fitted probabilities are held out: each fold's map never saw its rows
    assert len(report["pd_cv"]) == len(y)
    assert Calibrator.from_dict(cal.to_dict()).transform(raw) == pytest.approx(cal.transform(raw))


def test_a_named_method_is_shipped_and_reported_even_where_it_does_not_help():
    rng = np.random.default_rng(5)
    p = rng.beta(1, 12, 5_000)
    y = (rng.random(len(p)) < p).astype(int)
    cal, report = select(p, y, force="isotonic")
    assert cal.method == "isotonic" and report["chosen"] == "isotonic"
    assert set(report["candidates"]) == {"identity", "platt", "isotonic"}


def test_grades_master_scale_and_table():
    names, upper = ["AAA", "A", "C"], [0.01, 0.05, 1.0]
    pd_ = np.array([0.001, 0.01, 0.011, 0.2, 0.9])
    assert assign_grades(pd_, names, upper).tolist() == ["AAA", "AAA", "A", "C", "C"]
    table = grade_table(np.array([0, 0, 0, 1, 1]), pd_, assign_grades(pd_, names, upper), names)
    assert table["customers"].tolist() == [2, 1, 2]
    assert rates_rise(table)
    table.loc[0, "realised_rate"] = 0.5
    assert not rates_rise(table)


def test_a_rank_break_is_a_fall_the_sample_cannot_explain():
    table = pd.DataFrame(
        {
            "grade": ["A", "BBB", "BB", "C"],
            "customers": [1554, 579, 0, 2000],
            "bads": [24, 4, 0, 20],  # A 1.5 %, BBB 0.7 %: a fall, but 4 bads prove little
            "realised_rate": [24 / 1554, 4 / 579, np.nan, 0.01],
        }
    )
    assert not rates_rise(table)
    assert rank_breaks(table) == []  # Fisher p = 0.087
    table.loc[3, ["bads", "realised_rate"]] = [1, 1 / 2000]  # BBB 0.7 % then C 0.05 %: real
    (only,) = rank_breaks(table)
    assert (only["better"], only["worse"]) == ("BBB", "C") and only["p"] < 0.05


def test_expected_loss():
    exposure, el = expected_loss(
        np.array([0.1, 0.5]), np.array([-50.0, 200.0]), np.array([100.0, np.nan]), 3, 0.4
    )
    assert exposure.tolist() == [300.0, 200.0]  # a credit does not reduce the coming bills
    assert el.tolist() == pytest.approx([0.1 * 300 * 0.4, 0.5 * 200 * 0.4])


def test_scorecard_learns_a_monotone_risk_and_handles_unseen_levels():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, 20_000)
    cat = rng.choice(["a", "b"], len(x))
    true = 0.02 + 0.2 * x + 0.1 * (cat == "b")
    y = (rng.random(len(x)) < true).astype(int)
    X = pd.DataFrame({"x": x, "cat": cat})
    card = WoEScorecard().fit(X, y, ["cat"])
    assert roc_auc_score(y, card.predict_proba(X)) > roc_auc_score(y, true) - 0.01
    new = pd.DataFrame({"x": [0.1, 0.9, np.nan], "cat": ["a", "b", "zzz"]})
    p = card.predict_proba(new)
    assert p[1] > p[0] and np.isfinite(p).all()


def test_jeffreys_test_of_a_grade_pd():
    from scipy.stats import beta

    y = np.r_[np.ones(30), np.zeros(970)].astype(int)  # 3 % realised
    grades = np.array(["A"] * 1000, dtype=object)
    low = grade_table(y, np.full(1000, 0.01), grades, ["A"])  # a PD far below 3 %: rejected
    fair = grade_table(y, np.full(1000, 0.03), grades, ["A"])
    assert low.loc[0, "jeffreys_p"] == pytest.approx(beta.cdf(0.01, 30.5, 970.5))
    assert low.loc[0, "jeffreys_p"] < 0.001 < 0.3 < fair.loc[0, "jeffreys_p"] < 0.7


def test_level_shift_brings_the_mean_pd_to_the_target_and_keeps_the_ranking():
    rng = np.random.default_rng(3)
    p = np.concatenate([rng.beta(1, 20, 20_000), [0.0, 1.0]])  # 0 and 1 cannot move
    for target in (0.01, p.mean(), 0.2):
        shift = level_shift(p, target)
        q = shifted(p, shift)
        assert q.mean() == pytest.approx(target, rel=1e-9)
        assert (np.argsort(q, kind="stable") == np.argsort(p, kind="stable")).all()
        assert q[-2:].tolist() == [0.0, 1.0]
    assert level_shift(p, p.mean()) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="no log-odds shift"):
        level_shift(np.array([0.0, 1.0]), 0.3)
    with pytest.raises(ValueError, match="no log-odds shift"):
        level_shift(p, 1.0)


@pytest.mark.parametrize("method", ["identity", "isotonic", "platt"])
def test_a_shifted_calibrator_survives_json_and_an_old_file_reads_as_unshifted(method):
    rng = np.random.default_rng(4)
    raw = rng.uniform(0.001, 0.5, 5_000)
    y = (rng.random(len(raw)) < raw).astype(int)
    cal = Calibrator(method).fit(raw, y)
    plain = cal.transform(raw)
    cal.shift = -0.3
    again = Calibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    np.testing.assert_allclose(again.transform(raw), shifted(plain, -0.3), rtol=1e-12)
    old = {k: v for k, v in cal.to_dict().items() if k != "shift"}  # a calibrator.json of before
    np.testing.assert_allclose(Calibrator.from_dict(old).transform(raw), plain, rtol=1e-12)
