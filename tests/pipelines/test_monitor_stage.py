"""The monitor stage on the default run: runs side by side, stability, back-test, fairness."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipelines import monitor
from tests.conftest import default_params, shared


def _paths(root, segments, tmp_path, features=None):
    f = root / "features"
    return monitor.Paths(
        features or f / "features.parquet",
        f / "labels.parquet",
        f / "ledger.parquet",
        root / "model",
        segments,
        tmp_path / "reports",
        tmp_path / "monitor.json",
    )


@pytest.fixture(scope="session")
def monitored(default_run, segmented, tmp_path_factory):
    """The monitor on the default run, built once for every worker (``shared``)."""
    root, _, _ = default_run
    p = default_params().override("monitor", runs=4, bootstrap=20)
    out, summary = shared(
        tmp_path_factory,
        "monitored",
        lambda out: monitor.run(p, _paths(root, segmented[0] / "model", out)),
    )
    return out, summary, p


def test_the_last_runs_side_by_side_with_a_back_test_where_the_horizon_has_passed(
    monitored, default_run
):
    out, summary, p = monitored
    runs = pd.read_csv(out / "reports" / "runs.csv")
    feats = pd.read_parquet(default_run[0] / "features" / "features.parquet", columns=["as_of"])
    last4 = sorted(pd.to_datetime(feats["as_of"]).unique())[-4:]
    assert runs["as_of"].tolist() == [str(pd.Timestamp(d).date()) for d in last4]
    # The last 3 month ends have no outcome yet (a 3-month horizon): no back-test for them.
    labelled = runs[runs["labelled"].notna()]
    assert labelled["as_of"].tolist() == runs["as_of"].tolist()[:1]
    backtest = pd.read_csv(out / "reports" / "backtest.csv")
    assert set(backtest["as_of"]) == set(labelled["as_of"])
    assert backtest["customers"].sum() == labelled["labelled"].iloc[0]
    assert 0.6 < labelled["auc"].iloc[0] <= 1.0
    # Performance before labels: the expected AUC is close to the realised one.
    assert abs(labelled["expected_auc"].iloc[0] - labelled["auc"].iloc[0]) < 0.05
    assert runs["psi_pd_vs_previous"].isna().tolist() == [True, False, False, False]
    compact = json.loads((out / "monitor.json").read_text())
    assert list(compact) == runs["as_of"].tolist()
    assert len(json.dumps(compact)) < 2000  # headline figures, not every table


def test_stability_covers_the_pd_grade_tier_and_every_feature_both_ways(monitored, default_run):
    out, _, p = monitored
    stab = pd.read_csv(out / "reports" / "stability.csv")
    latest = stab[stab["as_of"] == stab["as_of"].max()]
    whole = latest[latest["group"].isna()]
    for against in ("reference", "previous"):
        names = set(whole.loc[whole["against"] == against, "variable"])
        assert {"pd", "grade", "tier"} <= names
        assert len(names) >= 3 + 60  # every model feature's CSI
    within = latest[latest["group"].notna()]["group"]
    assert within.str.startswith("region=").any() and within.str.startswith("tariff_class=").any()
    assert set(within[within.str.startswith("tier=")]) == {"tier=A", "tier=B", "tier=C", "tier=D"}
    assert set(stab["level"]) <= {"stable", "warn", "alert"}
    assert ((stab["psi"] >= p.monitor.psi_alert) == (stab["level"] == "alert")).all()


def test_fairness_by_region_and_tariff_class_with_intervals(monitored):
    out, _, _ = monitored
    fair = pd.read_csv(out / "reports" / "fairness.csv")
    assert set(fair["attribute"]) == {"region", "tariff_class"}
    labelled = fair[fair["labelled"]]
    assert labelled["false_positive_rate"].between(0, 1).all()
    assert (labelled["adverse_rate_diff_lo"] <= labelled["adverse_rate_diff_hi"]).all()
    # Before the labels only the request rate can be judged.
    assert fair.loc[~fair["labelled"], "false_positive_rate"].isna().all()


def test_the_same_month_twice_is_stable_and_a_shifted_feature_is_an_alert(
    default_run, segmented, tmp_path
):
    root, _, _ = default_run
    feats = pd.read_parquet(root / "features" / "features.parquet")
    feats["as_of"] = pd.to_datetime(feats["as_of"])
    some = sorted(feats["customer_id"].unique())[:2000]  # a quarter of the base shows it too
    feats = feats[feats["customer_id"].isin(some)].reset_index(drop=True)
    days = sorted(feats["as_of"].unique())
    last, before = days[-1], days[-2]
    same = feats[feats["as_of"] == before].assign(as_of=last)
    copy = pd.concat([feats[feats["as_of"] != last], same], ignore_index=True)
    path = tmp_path / "same.parquet"
    copy.to_parquet(path)
    p = default_params().override("monitor", runs=2, bootstrap=10)
    monitor.run(p, _paths(root, segmented[0] / "model", tmp_path / "a", path))
    stab = pd.read_csv(tmp_path / "a" / "reports" / "stability.csv")
    prev = stab[(stab["as_of"] == str(pd.Timestamp(last).date())) & (stab["against"] == "previous")]
    features = prev[~prev["variable"].isin(["pd", "grade", "tier"])]
    assert len(features) > 60 and (features["psi"] == 0).all()  # the same rows: CSI 0
    assert (prev.loc[prev["variable"].isin(["pd", "grade"]), "psi"] == 0).all()

    shifted = copy.copy()
    at = shifted["as_of"] == last
    shifted.loc[at, "kwh_mean_12m"] = shifted.loc[at, "kwh_mean_12m"] * 3
    shifted.to_parquet(path)
    monitor.run(p, _paths(root, segmented[0] / "model", tmp_path / "b", path))
    stab = pd.read_csv(tmp_path / "b" / "reports" / "stability.csv")
    row = stab[
        (stab["as_of"] == str(pd.Timestamp(last).date()))
        & (stab["against"] == "previous")
        & (stab["variable"] == "kwh_mean_12m")
    ]
    assert row["level"].tolist() == ["alert"] and row["psi"].iloc[0] > 1.0
    others = stab[(stab["against"] == "previous") & (stab["variable"] == "dpd")]
    assert (others["psi"] == 0).all() and np.isfinite(row["psi"]).all()


def test_work_lists_for_account_managers_fee_recovery_and_energy_intensive_watch(
    monitored, default_run, segmented
):
    out, summary, p = monitored
    lists = out / "reports" / "worklists"
    managers = pd.read_parquet(lists / "account_managers.parquet")
    tiers = segmented[2]
    latest = tiers[tiers["as_of"] == tiers["as_of"].max()]
    assert len(managers) == latest["tier"].isin(["A", "B"]).sum() > 0
    assert set(managers["tier_movement"]) <= {"up", "down", "same", "new"}
    moved = managers[managers["tier_movement"] == "up"]
    assert (moved["tier"] < moved["tier_before"]).all()  # A < B: up the pyramid
    recovery = pd.read_parquet(lists / "fee_recovery.parquet")
    assert recovery["expected_loss"].is_monotonic_decreasing
    assert ((recovery["overdue_arrears"] > 0) | (recovery["credit_action"] != "none")).all()
    assert {"reason_1_en", "reason_1_zh"} <= set(recovery.columns)
    watch = pd.read_parquet(lists / "energy_intensive_watch.parquet")
    feats = pd.read_parquet(
        default_run[0] / "features" / "features.parquet",
        columns=["customer_id", "as_of", "energy_intensive"],
    )
    last = feats[pd.to_datetime(feats["as_of"]) == pd.to_datetime(feats["as_of"]).max()]
    assert set(watch["customer_id"]) == set(last.loc[last["energy_intensive"], "customer_id"])
    big = watch["kwh_yoy_change"].abs() > p.monitor.watch_kwh_change
    assert watch.loc[big, "watch_reasons"].str.contains("on a year before").all()
    assert not watch.loc[~big, "watch_reasons"].str.contains("on a year before").any()
    csv = (lists / "fee_recovery.csv").read_text(encoding="utf-8-sig").splitlines()[0]
    assert csv.startswith("customer_id / 客户编号,") and "expected_loss / 预期损失" in csv
    assert summary["worklists"]["account_managers"] == len(managers)


def test_the_monitor_s_runs_decide_as_the_score_stage_s_history(
    monitored, default_run, segmented, tmp_path
):
    """One decision path: the monitor decides its runs from the feature table, the score
    stage streams the validated tables month end by month end; the same month gives the same
    customers and the same requests for security."""
    from pipelines import score

    out, _, p = monitored
    root, _, _ = default_run
    q = p.override(
        "score",
        runs=2,
        arrears_model=str(root / "model"),
        segments_model=str(segmented[0] / "model"),
    )
    history = tmp_path / "history"
    score.run(
        q,
        score.Paths(tmp_path / "scores", root / "validated", quarantine=root / "quarantine",
                    history=history),
    )  # fmt: skip
    runs = pd.read_csv(out / "reports" / "runs.csv").set_index("as_of")
    kept = json.loads((history / score.HISTORY).read_text())["runs"]
    assert len(kept) == 2
    for r in kept:
        assert runs.loc[r["as_of"], "rows"] == r["scored"], r["as_of"]
        assert runs.loc[r["as_of"], "asked_for_security"] == r["asked_for_security"] > 0
