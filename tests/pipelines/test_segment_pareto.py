"""The value pyramid on a retailer-like base: a strong Pareto skew and many one-off buyers
(no default pipeline needed: runs on either pytest-xdist worker)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def _pareto_purchases(path, customers: int = 3000, snapshots: int = 14, seed: int = 3):
    """A feature table like a retailer's: profit with a strong Pareto skew, half the customers
    one-off buyers whose only bill falls out of the 12-month window, no payment problems."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2024-12-31", periods=snapshots, freq="ME")
    level = rng.pareto(1.2, customers) * 50 + 5
    one_off = rng.random(customers) < 0.5
    rows = []
    for j, day in enumerate(dates):
        noise = rng.lognormal(0, 0.15, customers)
        profit = np.where(one_off, np.where(j < 2, level, 0.0), level * 12 * noise)
        rows.append(
            pd.DataFrame(
                {
                    "customer_id": [f"R{i:05d}" for i in range(customers)],
                    "as_of": day,
                    "profit_12m": profit,
                    "revenue_12m": profit / 0.3,
                    "kwh_sum_12m": profit / 0.3 / 0.8,
                    "kwh_mean_12m": np.where(profit > 0, profit / 0.3 / 0.8 / 12, np.nan),
                    "kwh_trend_12m": rng.normal(0, 0.01, customers),
                    "seasonality_ratio_12m": rng.uniform(1.0, 1.6, customers),
                    "on_time_share_12m": np.where(profit > 0, 1.0, np.nan),  # no bill due
                    "margin_rate_12m": 0.3,
                    "months_of_history": np.where(one_off, 1, 20 + j),
                    "tenure_months": 20.0 + j,
                    "overdue_arrears": 0.0,
                    "tariff_class": "commercial",
                    "industry": "retail",
                    "energy_intensive": False,
                    "preferential_tariff": False,
                }
            )
        )
    pd.concat(rows, ignore_index=True).to_parquet(path)
    return one_off, level


@pytest.mark.parametrize("rule", ["value_share", "head_count"])
def test_a_pareto_base_with_one_off_buyers_gives_a_pyramid(tmp_path, rule):
    from pipelines import segment
    from tests.conftest import default_params

    one_off, level = _pareto_purchases(tmp_path / "features.parquet")
    shares = (0.5, 0.8, 0.95) if rule == "value_share" else (0.05, 0.2, 0.5)
    p = default_params().override("segment", value="profit", tier_rule=rule,
                                  tier_shares=shares, k_range=(4, 5), bootstrap=1)  # fmt: skip
    paths = segment.Paths(tmp_path / "features.parquet", tmp_path / "out", tmp_path / "rep",
                          tmp_path / "m.json")  # fmt: skip
    metrics = segment.run(p, paths)
    assert metrics["pyramid"], metrics["pyramid_problem"]
    tiers = pd.read_parquet(tmp_path / "out" / "latest_tiers.parquet")["tier"].to_numpy()
    assert (tiers[one_off] == "D").all()  # nothing bought in the window: no value
    best = np.argsort(-np.where(one_off, 0, level))[:10]
    assert (tiers[best] == "A").all()  # the most profitable are the VIPs
    d = metrics["dynamics"]
    assert d["flip_flops"] < d["flip_flops_plain"]


def test_risk_adjusted_value_without_an_arrears_model_is_a_clear_error(tmp_path):
    from pipelines import segment
    from tests.conftest import default_params

    _pareto_purchases(tmp_path / "features.parquet", customers=200, snapshots=2)
    paths = segment.Paths(tmp_path / "features.parquet", tmp_path / "out", tmp_path / "rep",
                          tmp_path / "m.json", model=tmp_path / "nowhere")  # fmt: skip
    with pytest.raises(segment.SegmentError, match="give --model.*or set segment.value: profit"):
        segment.run(default_params(), paths)
    assert not (tmp_path / "out").exists()  # nothing half-written
