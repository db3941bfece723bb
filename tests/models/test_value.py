"""Customer value: risk-adjusted, tiers on the value axis, a pyramid check, hysteresis."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.value import (
    boundaries,
    expected_credit_loss,
    expected_margin,
    flip_flops,
    moves,
    oot_validation,
    pyramid_check,
    tier_of,
    value,
    with_hysteresis,
)

BOUNDS = np.array([100.0, 50.0, 10.0])


def test_margin_is_annualised_and_a_bad_payer_is_worth_less():
    feats = pd.DataFrame(
        {
            "profit_12m": [1200.0, 300.0, 0.0, 21.3],
            "months_of_history": [30, 3, 0, 1],
            "tenure_months": [30.0, 2.6, np.nan, 16.9],
        }
    )
    margin = expected_margin(feats)
    # connected 3 months ago at 100 a month: 1,200 a year; a one-off buyer of 16 months
    # ago is not annualised (its one bill is the whole year's profit)
    assert margin.tolist() == [1200.0, 1200.0, 0.0, 21.3]
    # the same high-margin customer with a high PD is worth less than with a low PD
    loss = expected_credit_loss(np.array([0.01, 0.6]), np.array([5000.0, 5000.0]), 0.45)
    worth = value(np.array([1200.0, 1200.0]), loss)
    assert worth[0] > worth[1] and worth[1] == pytest.approx(1200 - 0.6 * 5000 * 0.45)
    assert value(np.array([1200.0]), np.array([500.0]), "profit")[0] == 1200.0
    with pytest.raises(ValueError, match="risk_adjusted or profit"):
        value(margin, margin, "kwh")


def test_value_share_and_head_count_rules_and_non_positive_value_is_d():
    rng = np.random.default_rng(0)
    v = np.r_[rng.pareto(1.5, 10_000) * 100, [-50.0, 0.0]]
    tiers = tier_of(v, boundaries(v, "value_share", [0.5, 0.8, 0.95]))
    top = np.sort(v)[::-1]
    a = (tiers == "A").sum()
    assert top[:a].sum() / v[v > 0].sum() == pytest.approx(0.5, abs=0.02)  # A holds 50 %
    assert tiers[-1] == "D" and tiers[-2] == "D"  # no positive value: D
    assert pyramid_check(tiers, v)["pyramid"]
    u = rng.uniform(0, 100, 10_000)  # no skew: value shares cannot make a pyramid
    flat = pyramid_check(tier_of(u, boundaries(u, "value_share", [0.5, 0.8, 0.95])), u)
    assert not flat["pyramid"] and "tier A has" in flat["problem"]
    counted = tier_of(u, boundaries(u, "head_count", [0.05, 0.2, 0.5]))
    assert pd.Series(counted).value_counts().to_dict() == {
        "D": 5000,
        "C": 3000,
        "B": 1500,
        "A": 500,
    }
    assert pyramid_check(counted, u)["pyramid"]


def test_hysteresis_holds_inside_the_band_and_moves_when_confirmed():
    oscillating = np.array([[95, 104, 97, 105, 96, 103]], float)
    assert "".join(tier_of(oscillating[0], BOUNDS)) == "BABABA"
    assert "".join(with_hysteresis(oscillating, BOUNDS, 0.1, 3)[0]) == "BBBBBB"  # never flips
    stays = np.array([[95, 104, 105, 106, 107, 108]], float)  # crosses and stays
    assert "".join(with_hysteresis(stays, BOUNDS, 0.1, 3)[0]) == "BBBAAA"  # after 3 snapshots
    jumps = np.array([[95, 120, 121, 40, 41, 42]], float)  # well past the margin: at once
    assert "".join(with_hysteresis(jumps, BOUNDS, 0.1, 3)[0]) == "BAACCC"
    gone = np.array([[95, np.nan, 120, 120]], float)  # not a row: no tier, starts afresh
    assert with_hysteresis(gone, BOUNDS, 0.1, 3)[0].tolist() == ["B", "", "A", "A"]


def test_flip_flops_and_moves_are_counted():
    t = np.array([list("BABABB"), ["C", "C", "B", "", "B", "C"]], dtype=object)
    assert moves(t) == 6  # 5 in the first row; the gap in the second breaks a pair
    assert flip_flops(t[:1]) == 3  # B>A reversed, A>B reversed, B>A reversed


def test_out_of_time_validation_of_a_score():
    realised = np.array([100.0, 50.0, 10.0, 0.0, -5.0])
    perfect = oot_validation(realised, realised, np.array(list("ABCDD")))
    assert perfect["spearman"] == pytest.approx(1.0)
    # net shares: the customer that cost 5 counts against the base (total 155)
    assert perfect["share_a"] == pytest.approx(100 / 155)
    assert perfect["share_ab"] == pytest.approx(150 / 155)
    assert perfect["share_ab_positive"] == pytest.approx(150 / 160)
    assert perfect["share_ab_same_count"] == perfect["share_ab"]
    assert perfect["lift"]["A"] == pytest.approx(100 / np.mean(realised))
    # a score that puts the loss-maker second: under its own rule it holds B alone, so A + B
    # hold less; at the perfect tiers' head counts (1, 2) the comparison is like for like
    wrong = np.array([100.0, 10.0, 5.0, 1.0, 60.0])
    r = oot_validation(wrong, realised, np.array(list("ACCDB")), counts=(1, 2))
    assert r["share_ab"] == pytest.approx(95 / 155)
    assert r["share_a_same_count"] == pytest.approx(100 / 155)
    assert r["share_ab_same_count"] == pytest.approx(95 / 155)
    assert r["share_ab_same_count"] < perfect["share_ab_same_count"]
    assert r["spearman"] < perfect["spearman"]
