"""The segment stage on the default pipeline's base: tiers on risk-adjusted value, a pyramid,
validated out of time, stable with hysteresis; behaviour segments within it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import skops.io as sio

from models.decision import Segmenter


def _latest(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["as_of"] == table["as_of"].max()]


def test_energy_intensive_preferential_customers_are_not_vip_for_their_kwh(segmented):
    _, _, table, _ = segmented
    latest = _latest(table)
    thin = latest["energy_intensive"] & latest["preferential_tariff"]
    top = latest.nlargest(2 * int(thin.sum()), "kwh_sum_12m")
    top_thin = thin[top.index]
    ab = top["tier"].isin(["A", "B"])
    assert top_thin.sum() > 20 and (~top_thin).sum() > 20
    # Among the biggest buyers, thin-margin plants reach A or B far less often than the others
    assert ab[top_thin].mean() < 0.5 * ab[~top_thin].mean()
    # and their value is a smaller share of what they buy
    per_kwh = latest["value"] / latest["kwh_sum_12m"].clip(lower=1)
    assert per_kwh[thin].median() < 0.5 * per_kwh[~thin].median()


def test_tiers_are_a_pyramid_on_the_value_axis(segmented):
    out, metrics, table, _ = segmented
    assert metrics["pyramid"] and metrics["pyramid_problem"] is None
    prof = pd.read_csv(out / "reports" / "profiles.csv", index_col=0)
    assert list(prof.index) == ["A", "B", "C", "D"]
    assert prof["customers"].is_monotonic_increasing  # A the fewest, D the most
    assert prof["median_value"].is_monotonic_decreasing
    latest = _latest(table)
    assert (latest.loc[latest["value"] <= 0, "tier_plain"] == "D").all()
    # risk-adjusted: a tier A/B customer's expected loss is a small part of its margin
    top = latest[latest["tier"].isin(["A", "B"])]
    assert (top["expected_loss"] < top["expected_margin"]).mean() > 0.95
    assert (out / "reports" / "pyramid.png").stat().st_size > 5000


def test_value_beats_the_profit_ranking_out_of_time_and_against_the_truth(segmented):
    out, metrics, _, _ = segmented
    oot = metrics["out_of_time"]
    assert oot["snapshots"] >= 6
    value, base = oot["value"], oot["profit_12m"]
    assert oot["value_beats_baseline"] and all(oot["value_beats_baseline_on"].values())
    assert value["spearman"] > base["spearman"] and value["share_ab"] > base["share_ab"]
    assert value["share_ab_same_count"] > base["share_ab_same_count"]
    assert value["lift_D"] < base["lift_D"]  # the risk adjustment finds the loss-makers
    table = pd.read_csv(out / "reports" / "out_of_time.csv")
    assert set(table["score"]) == {"value", "profit_12m"} and len(table) == 2 * oot["snapshots"]
    # like for like: at each snapshot the baseline is also measured at the value's head counts
    v, b = (table[table["score"] == k].set_index("as_of") for k in ("value", "profit_12m"))
    np.testing.assert_allclose(v["share_ab_same_count"], v["share_ab"], rtol=1e-12)
    assert ((b["share_ab_same_count"] - b["share_ab"]).abs() > 0).any()
    # against the generator's risk-adjusted truth (evaluation only)
    assert metrics["ari_true_risk_adjusted_tier"] >= 0.80
    assert (
        metrics["ari_true_risk_adjusted_tier"]
        > metrics["ari_true_risk_adjusted_tier_profit_baseline"]
    )


def test_hysteresis_cuts_flip_flops_fivefold_and_keeps_the_tiers(segmented):
    out, metrics, table, p = segmented
    d = metrics["dynamics"]
    assert d["flip_flops"] * 5 <= d["flip_flops_plain"] and d["moves"] < d["moves_plain"]
    assert d["same_tier_as_plain"] >= 0.95
    movers = pd.read_parquet(out / "reports" / "movers.parquet")
    assert set(movers["driver"]) <= {"margin", "expected_loss"} and len(movers) == d["moves"]
    per = metrics["migration"].values()
    assert sum(m["up"] + m["down"] for m in per) == d["moves"]
    assert sum(m["moved_without_hysteresis"] for m in per) == d["moves_plain"]
    assert len(metrics["migration"]) == table["as_of"].nunique() - 1


def test_behaviour_segments_quality_stability_and_names(segmented):
    out, metrics, table, p = segmented
    lo, hi = p.segment.k_range
    assert lo <= metrics["k"] <= hi
    assert sorted(int(k) for k in metrics["k_scores"]) == list(range(lo, hi + 1))
    assert 0 < metrics["silhouette"] <= 1 and metrics["davies_bouldin"] > 0
    assert len(metrics["stability_ari"]) == p.segment.bootstrap
    assert metrics["stability_ari_mean"] > 0.5
    names = metrics["segments"]
    assert len(names) == metrics["k"] and len(set(names.values())) == metrics["k"]
    segs = pd.read_csv(out / "reports" / "behaviour_segments.csv", index_col=0)
    assert segs["customers"].sum() == metrics["customers"]
    saved = json.loads((out / "segments.json").read_text())
    assert saved["customers"] == metrics["customers"]


def test_every_snapshot_uses_the_same_fit_and_the_decision_reads_the_same_tier(segmented):
    out, _, table, p = segmented
    trusted = sio.get_untrusted_types(file=out / "model" / "pipeline.skops")
    pipe = sio.load(out / "model" / "pipeline.skops", trusted=trusted)
    sample = table.sample(500, random_state=0)
    clusters = pipe.predict(sample[list(p.segment.features)].to_numpy(float))
    assert (clusters == sample["cluster"].to_numpy()).all()
    latest = _latest(table).head(400).reset_index(drop=True)
    seg = Segmenter.load(out / "model")
    loss = latest["expected_loss"].to_numpy()
    cluster, tier = seg.assign(latest, loss)
    assert (tier == latest["tier"].to_numpy()).all() and (cluster == latest["cluster"]).all()
    earlier = latest.assign(as_of=latest["as_of"] - pd.offsets.MonthEnd(1))  # not stored
    _, plain = seg.assign(earlier, loss)
    assert (plain == latest["tier_plain"].to_numpy()).all()  # the value rule itself


def test_migration_tables_add_up(segmented):
    out, metrics, table, _ = segmented
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
    assert np.isfinite(latest_moves["margin_change"]).all()


def test_tenure_does_not_split_the_behaviour_segments(segmented):
    _, _, table, _ = segmented
    latest = _latest(table)
    tenure = latest["tenure_months"]
    by = tenure.groupby(latest["cluster"])
    between = ((by.mean() - tenure.mean()) ** 2 * by.size()).sum()
    eta2 = between / ((tenure - tenure.mean()) ** 2).sum()
    assert eta2 < 0.1  # the share of tenure's variance the segments explain (0.03 by default)
