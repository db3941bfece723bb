"""The synthetic utility: deterministic, valid under the contract, and shaped like a real base."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.calibration import household_figures
from features.synthetic.archetypes import LONDON_FIGURES, SEASONALITY
from features.synthetic.generator import generate_blocks, true_value_tiers
from pipelines.generate import tariff_prices, write_base
from pipelines.validate import validate_folder


def _read(path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas(date_as_object=False)


@pytest.fixture(scope="module")
def base(small_base):
    raw, truth = small_base / "raw", small_base / "truth"
    customers = _read(raw / "customers.parquet")
    return {
        "customers": customers,
        "bills": _read(raw / "bills.parquet").merge(customers, on="customer_id"),
        "payments": _read(raw / "payments.parquet"),
        "truth": _read(truth / "customers.parquet"),
        "monthly": _read(truth / "monthly.parquet"),
    }


def _frames(n, seed, params):
    blocks = list(generate_blocks(n, 6, "2024-01", seed, tariff_prices(params.tariffs)))
    return [b.bills.to_pandas() for b in blocks], [b.payments.to_pandas() for b in blocks]


def test_same_seed_same_data_other_seed_other_data(params):
    a_bills, a_pay = _frames(300, 1, params)
    b_bills, b_pay = _frames(300, 1, params)
    c_bills, _ = _frames(300, 2, params)
    pd.testing.assert_frame_equal(a_bills[0], b_bills[0])
    pd.testing.assert_frame_equal(a_pay[0], b_pay[0])
    assert not a_bills[0]["kwh"].equals(c_bills[0]["kwh"])


def test_written_files_are_identical_for_a_seed(tmp_path, params):
    for run in ("a", "b"):
        write_base(
            400, 6, "2024-01", 3, params.tariffs, tmp_path / run / "raw", tmp_path / run / "truth"
        )
    for rel in (
        "raw/customers.parquet",
        "raw/bills.parquet",
        "raw/payments.parquet",
        "truth/monthly.parquet",
    ):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "a" / rel), pd.read_parquet(tmp_path / "b" / rel)
        )


def test_generated_base_passes_validation_untouched(small_base):
    results = validate_folder(small_base / "raw")
    for r in results.values():
        assert r.rows_quarantined == 0, r.by_reason
        assert len(r.valid) == r.rows_in


def test_truth_is_kept_apart_from_the_raw_tables(small_base):
    assert sorted(p.name for p in (small_base / "raw").iterdir()) == [
        "bills.parquet",
        "customers.parquet",
        "payments.parquet",
    ]
    assert sorted(p.name for p in (small_base / "truth").iterdir()) == [
        "customers.parquet",
        "defects.parquet",
        "monthly.parquet",
    ]


def test_tariff_mix_is_residential_but_kwh_is_industrial(base):
    share = base["customers"]["tariff_class"].value_counts(normalize=True)
    assert share["residential"] > 0.8
    assert share["large_industrial"] < 0.01
    kwh = base["bills"].groupby("tariff_class")["kwh"].sum()
    assert kwh["large_industrial"] / kwh.sum() > 0.3  # well under 1 % of customers
    assert kwh["residential"] / kwh.sum() < 0.15


def test_consumption_is_heavy_tailed(base):
    annual = base["bills"].groupby("customer_id")["kwh"].sum()
    assert annual.mean() > 3 * annual.median()
    top1 = annual.nlargest(max(1, len(annual) // 100)).sum() / annual.sum()
    assert top1 > 0.4


def test_energy_intensive_on_preferential_tariff_buy_much_and_earn_little(base, params):
    bills = base["bills"]
    cost = bills["tariff_class"].map(
        {c: t.supply_cost_per_kwh for c, t in params.tariffs.by_class().items()}
    )
    bills = bills.assign(margin=bills["amount"] - bills["kwh"] * cost)
    ei = bills["energy_intensive"] & bills["preferential_tariff"]
    per_kwh = bills.groupby(ei)[["margin", "kwh"]].sum()
    rate = per_kwh["margin"] / per_kwh["kwh"]
    assert rate[True] < rate[False] / 4
    mean_kwh = bills.groupby([ei, "customer_id"])["kwh"].sum().groupby(level=0).mean()
    assert mean_kwh[True] > 100 * mean_kwh[False]


def test_connections_disconnections_and_missing_months(base):
    customers, bills = base["customers"], base["bills"]
    start = pd.Timestamp("2023-01-01")
    assert 0.04 < (customers["connected_on"] >= start).mean() < 0.15
    assert 0.03 < customers["disconnected_on"].notna().mean() < 0.15
    assert customers["connected_on"].isna().any()  # some legacy records lack the date
    months = bills.groupby("customer_id")["period"].agg(["min", "max", "count"])
    span = (
        np.array(
            [
                d.n
                for d in pd.PeriodIndex(months["max"], freq="M")
                - pd.PeriodIndex(months["min"], freq="M")
            ]
        )
        + 1
    )
    gaps = (span - months["count"].to_numpy()).sum() / span.sum()
    assert 0.001 < gaps < 0.02


def test_payment_behaviour_has_late_partial_and_reversed_payments(base):
    pay, truth = base["payments"], base["truth"]
    assert set(truth["behaviour"]) == {"on_time", "habitual_late", "partial_payer"}
    assert (pay["amount"] < 0).sum() > 0
    assert pay["payment_id"].is_unique
    # Money is conserved: nobody pays more than was billed.
    billed = base["bills"].groupby("customer_id")["amount"].sum()
    paid = pay.groupby("customer_id")["amount"].sum().reindex(billed.index, fill_value=0)
    assert (paid <= billed + 0.05).all()
    assert (billed - paid).sum() > 0  # arrears exist


def test_riskier_customers_fall_into_distress_more_often(base):
    monthly = base["monthly"].merge(base["truth"], on="customer_id")
    by_decile = monthly.groupby(pd.qcut(monthly["latent_risk"], 5, labels=False))[
        "in_distress"
    ].mean()
    assert by_decile.is_monotonic_increasing
    assert by_decile.iloc[-1] > 5 * by_decile.iloc[0]
    # The stated probability is the realised rate.
    assert abs(monthly["p_distress"].mean() - monthly["in_distress"].mean()) < 0.005


def test_consumption_falls_before_business_distress(base):
    truth = base["truth"]
    shocked = truth[truth["shock_period"].notna() & (truth["latent_segment"] != "household")]
    monthly = base["monthly"].merge(shocked[["customer_id", "shock_period"]], on="customer_id")
    lag = (
        pd.PeriodIndex(monthly["period"], freq="M")
        - pd.PeriodIndex(monthly["shock_period"], freq="M")
    ).map(lambda d: d.n)
    after = monthly[(lag >= 1) & (lag <= 4)]["in_distress"].mean()
    before = monthly[lag < 0]["in_distress"].mean()
    assert after > 3 * before


def test_household_consumption_matches_london(base):
    bills = base["bills"]
    figures = household_figures(bills[bills["tariff_class"] == "residential"], 2024)
    assert figures["households"] > 2000
    for key in ("annual_kwh_median", "annual_kwh_p80", "annual_kwh_p95"):
        assert figures[key] == pytest.approx(LONDON_FIGURES[key], rel=0.07), key
    assert figures["top20_kwh_share"] == pytest.approx(LONDON_FIGURES["top20_kwh_share"], abs=0.02)
    assert figures["monthly_noise_robust_sd"] == pytest.approx(
        LONDON_FIGURES["monthly_noise_robust_sd"], abs=0.03
    )
    season = np.array([figures[f"season_{m}"] for m in range(1, 13)])
    assert np.abs(season - SEASONALITY["london_household"]).max() < 0.05


def test_true_tiers_follow_profit_shares():
    profit = pd.Series([100.0, 50.0, 20.0, 10.0, 5.0, 5.0, 5.0, 5.0], index=list("abcdefgh"))
    tiers = true_value_tiers(profit)
    # A is the smallest top group holding 50 % of the profit; B closes at 80 %, C at 95 %.
    assert tiers.to_dict() == {
        "a": "A",
        "b": "B",
        "c": "B",
        "d": "C",
        "e": "C",
        "f": "C",
        "g": "D",
        "h": "D",
    }


def test_truth_tiers_cover_a_pyramid(base):
    counts = base["truth"]["true_value_tier"].value_counts()
    assert counts["A"] < counts["B"] < counts["C"] < counts["D"]
    profit = base["truth"].groupby("true_value_tier")["expected_monthly_profit"].sum()
    assert profit["A"] / profit.sum() == pytest.approx(0.5, abs=0.1)


def test_risk_adjusted_truth_charges_the_expected_unpaid_money(base):
    from features.synthetic.generator import expected_monthly_loss

    truth = base["truth"]
    assert (truth["expected_monthly_loss"] >= 0).all()
    value = 12 * (truth["expected_monthly_profit"] - truth["expected_monthly_loss"])
    assert np.allclose(truth["true_risk_adjusted_value"], value)
    # a riskier customer loses more of the same bill; the loss is a small part of the bill
    bill = np.array([100.0, 100.0])
    low, high = expected_monthly_loss(bill, np.array([0.002, 0.05]))
    assert 0 < low < high < 5.0
    # customers who were cut off for non-payment were, by their latent process, worth less
    cut = truth["disconnected_for_nonpayment"]
    share = truth["expected_monthly_loss"] / truth["expected_monthly_profit"].clip(lower=1e-9)
    assert share[cut].median() > 1.5 * share[~cut].median()  # about twice, on this base
    counts = truth["true_risk_adjusted_tier"].value_counts()
    assert counts["A"] < counts["B"] < counts["C"] < counts["D"]


def test_injected_defects_are_exactly_what_validation_quarantines(tmp_path, params):
    write_base(
        2000,
        12,
        "2024-01",
        5,
        params.tariffs,
        tmp_path / "raw",
        tmp_path / "truth",
        defect_rate=0.003,
    )
    expected = pd.read_parquet(tmp_path / "truth" / "defects.parquet")
    assert set(expected["reason"]) >= {
        "negative_value",
        "due_before_issue",
        "unknown_customer",
        "duplicate_row",
        "duplicate_key",
        "zero_amount",
        "customer_quarantined",
        "non_positive_value",
        "disconnected_before_connected",
    }
    results = validate_folder(tmp_path / "raw")
    for table, r in results.items():
        got = r.quarantine[["source_row", "reason"]].sort_values("source_row").values.tolist()
        want = expected[expected["table"] == table][["source_row", "reason"]].sort_values(
            "source_row"
        )
        assert got == want.values.tolist(), table
        assert r.rows_in == len(r.valid) + r.rows_quarantined
