"""The segment stage on the default generated base: profit not kWh, a pyramid, migration."""

from __future__ import annotations

import json

import pandas as pd
import skops.io as sio


def test_energy_intensive_preferential_customers_are_not_vip_for_their_kwh(default_segments):
    _, metrics, table, _ = default_segments
    latest = table[table["as_of"] == table["as_of"].max()]
    thin = latest["energy_intensive"] & latest["preferential_tariff"]
    top = latest.nlargest(2 * int(thin.sum()), "kwh_sum_12m")
    top_thin = thin[top.index]
    in_a = top["tier"] == "A"
    assert top_thin.sum() > 20 and (~top_thin).sum() > 20
    # Among the biggest buyers, thin-margin plants reach A far less often than the others.
    assert in_a[top_thin].mean() < 0.5 * in_a[~top_thin].mean()
    # What separates the thin-margin plants that do reach A is profit, not kWh.
    in_a_thin = latest[thin & (latest["tier"] == "A")]
    rest_thin = latest[thin & (latest["tier"] != "A")]
    assert in_a_thin["profit_12m"].median() > 2 * rest_thin["profit_12m"].median()


def test_tiers_form_a_pyramid_by_profit(default_segments):
    out, metrics, _, _ = default_segments
    prof = pd.read_csv(out / "reports" / "profiles.csv", index_col=0)
    assert list(prof.index) == ["A", "B", "C", "D"]
    assert prof.loc["A", "customers"] < prof.loc["C", "customers"] < prof.loc["D", "customers"]
    assert prof.loc["B", "customers"] < prof.loc["C", "customers"]
    assert prof.loc["A", "share_of_profit"] > 0.5
    assert prof["median_profit_12m"].is_monotonic_decreasing
    assert (out / "reports" / "pyramid.png").stat().st_size > 5000


def test_quality_stability_and_truth_metrics(default_segments):
    out, metrics, _, p = default_segments
    lo, hi = p.segment.k_range
    assert lo <= metrics["k"] <= hi
    assert sorted(int(k) for k in metrics["k_scores"]) == list(range(lo, hi + 1))
    assert (
        0 < metrics["silhouette"] <= 1
        and metrics["davies_bouldin"] > 0
        and metrics["calinski_harabasz"] > 0
    )
    assert (
        len(metrics["stability_ari"]) == p.segment.bootstrap and metrics["stability_ari_mean"] > 0.5
    )
    assert -1 <= metrics["ari_latent_segment"] <= 1 and metrics["ari_true_tier"] > 0.1
    saved = json.loads((out / "segments.json").read_text())
    assert saved["customers"] == metrics["customers"]


def test_every_snapshot_is_tiered_by_the_same_fitted_pipeline(default_segments):
    out, _, table, p = default_segments
    trusted = sio.get_untrusted_types(file=out / "model" / "pipeline.skops")
    pipe = sio.load(out / "model" / "pipeline.skops", trusted=trusted)
    sample = table.sample(500, random_state=0)
    clusters = pipe.predict(sample[list(p.segment.features)].to_numpy(float))
    assert (clusters == sample["cluster"].to_numpy()).all()
    assert table.groupby("as_of")["tier"].nunique().min() == 4


def test_migration_tables_add_up(default_segments):
    out, metrics, table, _ = default_segments
    counts = pd.read_csv(out / "reports" / "migration_counts.csv", index_col=0)
    last = counts[counts["after_as_of"] == counts["after_as_of"].max()]
    dates = sorted(table["as_of"].unique())
    before = set(table.loc[table["as_of"] == dates[-2], "customer_id"])
    after = set(table.loc[table["as_of"] == dates[-1], "customer_id"])
    assert last[["A", "B", "C", "D"]].to_numpy().sum() == len(before & after)
    movers = pd.read_parquet(out / "reports" / "movers.parquet")
    latest_moves = movers[movers["as_of"] == movers["as_of"].max()]
    summary = metrics["migration"][str(pd.Timestamp(dates[-1]).date())]
    assert summary["up"] + summary["down"] == len(latest_moves)
    assert set(latest_moves["direction"]) <= {"up", "down"}
