"""Stability (PSI, CSI) and the champion/challenger gate on known inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.gate import GateRules, judge
from models.stability import csi, edges, level, psi

SCALE = np.array([0.007, 0.01, 0.015, 0.02, 0.03, 0.05, 0.08, 0.16, 0.32, 1.0])


def _scores(n=40_000, seed=0):
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=n)
    p = 1 / (1 + np.exp(-(-3.3 + 1.2 * risk)))
    y = (rng.random(n) < p).astype(int)
    return y, p, risk


def test_psi_of_a_sample_against_itself_is_zero_and_a_shift_passes_the_alert():
    rng = np.random.default_rng(1)
    x = rng.lognormal(size=20_000)
    assert psi(x, x) == 0.0
    assert psi(x, rng.permutation(x)) == 0.0
    assert psi(x, rng.lognormal(size=20_000)) < 0.01  # another draw of the same law
    assert 0.01 < psi(x, x * 1.15) < 0.10  # a 15 % rise: seen, below the warning
    assert psi(x, x * 2.0) > 0.25  # a doubled feature is an alert
    with_gaps = np.where(rng.random(len(x)) < 0.3, np.nan, x)
    assert psi(x, with_gaps) > 0.25  # 30 % missing where none were: its own bin


def test_psi_bins_a_feature_with_few_values_by_its_values_and_categories_by_level():
    few = np.repeat([0.0, 1.0, 2.0], 100)
    assert edges(few).tolist() == [0.0, 1.0, 2.0]  # repeated deciles merged: not 9 cuts
    assert psi(few, np.repeat([0.0, 1.0, 2.0], [200, 50, 50])) == pytest.approx(
        (2 / 3 - 1 / 3) * np.log(2) + 2 * (1 / 6 - 1 / 3) * np.log(1 / 2)
    )  # one bin per value
    ref = pd.Series(["A"] * 50 + ["B"] * 30 + ["C"] * 20)
    assert psi(ref, ref.sample(frac=1, random_state=0)) == 0.0
    moved = pd.Series(["A"] * 20 + ["B"] * 30 + ["C"] * 50)
    e, a = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.3, 0.5])
    assert psi(ref, moved) == pytest.approx(float(np.sum((a - e) * np.log(a / e))))
    new_level = pd.Series(["A"] * 90 + ["D"] * 10)  # a level the reference never had
    assert np.isfinite(psi(ref, new_level)) and psi(ref, new_level) > 0.25
    with pytest.raises(ValueError, match="non-empty"):
        psi([], [1.0])


def test_csi_sees_the_one_shifted_feature():
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"kwh": rng.gamma(2, 100, 10_000), "dpd": rng.poisson(3, 10_000)})
    cur = ref.assign(kwh=ref["kwh"] * 0.6)  # a fall in consumption
    got = csi(ref, cur, ["kwh", "dpd"])
    assert got["dpd"] == 0.0
    assert level(got["kwh"], 0.10, 0.25) == "alert"
    assert [level(v, 0.1, 0.25) for v in (0.05, 0.1, 0.2, 0.25)] == [
        "stable", "warn", "warn", "alert",
    ]  # fmt: skip


def test_a_first_model_passes_on_its_own_bars_and_fails_with_reasons():
    y, p, _ = _scores()
    ok = judge(y, p, None, baseline_auc=0.6, rules=GateRules())
    assert ok["passed"] and ok["reasons"] == [] and "champion" not in ok
    bad = judge(y, np.clip(p * 3, 0, 1), None, baseline_auc=0.99, rules=GateRules())
    assert not bad["passed"]
    assert any("ECE" in r for r in bad["reasons"])
    assert any("does not beat the scorecard baseline" in r for r in bad["reasons"])
    assert len(bad["reasons_zh"]) == len(bad["reasons"]) and "评分卡基准" in bad["reasons_zh"][1]


def test_a_better_candidate_passes_and_an_equal_or_shifted_one_does_not():
    y, p, risk = _scores(n=10_000)  # 4 verdicts of 50 paired resamples: a quarter the rows
    rng = np.random.default_rng(3)
    noisy = 1 / (1 + np.exp(-(-3.3 + 1.2 * (risk + rng.normal(0, 0.8, len(risk))))))
    rules = GateRules(bootstrap=50)
    better = judge(y, p, noisy, 0.5, rules)  # the candidate knows the risk, the champion less
    assert better["passed"], better["reasons"]
    lo, hi = better["auc_gain_90"]
    assert 0 < lo <= better["auc_gain"] <= hi
    same = judge(y, p, p, 0.5, rules)
    assert not same["passed"] and same["psi_grades"] == 0.0
    assert same["reasons"] == ["its PDs equal the champion's on every row: the same model"]
    assert same["reasons_zh"] == ["其违约概率在每一行都与冠军模型相同：是同一个模型"]
    tiny = judge(y, p * 1.0001, p, 0.5, rules)  # another model, no better
    assert any("short of the 0.0005 required" in r for r in tiny["reasons"])
    # The same ranking at twice the odds: no AUC gain, ECE up, every grade moves.
    odds = p / (1 - p) * 2.5
    shifted = judge(y, odds / (1 + odds), noisy, 0.5, rules, scale=SCALE)
    assert not shifted["passed"]
    assert any("ECE rises" in r for r in shifted["reasons"])
    for verdict in (same, tiny, shifted):  # every reason said in both languages, in order
        assert len(verdict["reasons_zh"]) == len(verdict["reasons"]) > 0
    assert any("PSI" in r for r in shifted["reasons"])


def test_the_gate_needs_both_outcomes():
    with pytest.raises(ValueError, match="both outcomes"):
        judge(np.zeros(10), np.full(10, 0.1), None, 0.5, GateRules())
