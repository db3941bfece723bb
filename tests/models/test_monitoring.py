"""Fairness rates by group: the block-at-a-time bootstrap against the per-resample loop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import monitoring
from models.monitoring import _rates, group_rates


def _loop_differences(a, b, adverse, y, pd_, metrics, resamples, rng):
    """The reference: one resample of each side at a time, with ``rng.choice``."""
    draws = {m: np.empty(resamples) for m in metrics}
    for r in range(resamples):
        ia, ib = rng.choice(a, len(a)), rng.choice(b, len(b))
        ra = _rates(adverse[ia], None if y is None else y[ia], pd_[ia])
        rb = _rates(adverse[ib], None if y is None else y[ib], pd_[ib])
        for m in metrics:
            draws[m][r] = ra[m] - rb[m]
    return draws


def _base(n: int, seed: int, with_y: bool):
    rng = np.random.default_rng(seed)
    groups = pd.Series(rng.choice(["north", "south", "east", "west", None], n))
    pd_ = rng.random(n) * 0.3
    adverse = rng.random(n) < pd_
    y = (rng.random(n) < pd_).astype(int) if with_y else None
    return groups, adverse, pd_, y


@pytest.mark.parametrize("block", [4_000_000, 1_000, 1])  # whole, a few resamples, one
@pytest.mark.parametrize("with_y", [True, False])
def test_the_bootstrap_gives_the_loop_s_intervals_bit_for_bit(monkeypatch, block, with_y):
    groups, adverse, pd_, y = _base(700, 3, with_y)
    got = group_rates(groups, adverse, pd_, y, 0.05, resamples=50, seed=11)
    monkeypatch.setattr(monitoring, "_DRAWN_AT_ONCE", block)
    assert group_rates(groups, adverse, pd_, y, 0.05, resamples=50, seed=11).equals(got)
    monkeypatch.setattr(monitoring, "_bootstrap_differences", _loop_differences)
    want = group_rates(groups, adverse, pd_, y, 0.05, resamples=50, seed=11)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert got.filter(like="_diff_lo").notna().all().all()


def test_a_group_with_no_bad_outcomes_has_no_true_positive_rate_and_is_not_flagged_on_it():
    groups = pd.Series(["a"] * 40 + ["b"] * 400)
    y = np.r_[np.zeros(40, int), np.tile([0, 1], 200)]
    adverse = np.r_[np.ones(40, bool), np.tile([False, True], 200)]
    pd_ = np.full(440, 0.2)
    table = group_rates(groups, adverse, pd_, y, 0.05, resamples=30).set_index("group")
    assert np.isnan(table.loc["a", "true_positive_rate"])
    assert np.isnan(table.loc["a", "true_positive_rate_diff_lo"])
    # every "a" is asked and none defaults: its false-positive rate stands out
    assert table.loc["a", "false_positive_rate"] == 1.0
    assert "false_positive_rate" in table.loc["a", "flagged"].split(";")
    assert "true_positive_rate" not in table.loc["a", "flagged"]


def test_a_shifted_group_is_flagged_and_a_small_or_equal_one_is_not():
    rng = np.random.default_rng(5)
    groups = pd.Series(["big"] * 2000 + ["same"] * 2000 + ["tiny"] * 20)
    adverse = np.r_[rng.random(2000) < 0.30, rng.random(2000) < 0.10, np.ones(20, bool)]
    table = group_rates(groups, adverse, np.full(4020, 0.1), None, 0.05, resamples=100)
    flagged = table.set_index("group")["flagged"]
    assert flagged["big"] == "adverse_rate"
    assert flagged["tiny"] == ""  # under min_rows: reported, never flagged
    assert table.set_index("group").loc["tiny", "adverse_rate"] == 1.0
