"""The explain stage and `gridscore explain --customer` on the default generated base."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.errors import GridscoreError
from models.decision import KEY_COLUMNS as DECISION_KEYS
from models.policy import ACTION_TEXT, recommend
from models.reasons import CATALOG_VERSION, CAUSES
from models.segments import traits
from pipelines import decision
from pipelines.cli import app
from pipelines.explain import NotFound, explain_customer, render
from tests.conftest import PARAMS

KEY_COLUMNS = (*DECISION_KEYS, "flags", "base_value")


def test_explanations_of_the_latest_snapshot(explained):
    out, summary, p, _ = explained
    contrib = pd.read_parquet(out / "data" / "contributions.parquet")
    causes = pd.read_parquet(out / "data" / "causes.parquet")
    reasons = pd.read_parquet(out / "data" / "reasons.parquet")
    feature_cols = [c for c in contrib.columns if c not in KEY_COLUMNS]
    assert len(feature_cols) > 50
    # additivity, in log-odds: base value + contributions = the model's raw score
    np.testing.assert_allclose(
        contrib["base_value"] + contrib[feature_cols].sum(axis=1), contrib["raw_score"], atol=1e-9
    )
    assert summary["max_additivity_gap"] < 1e-9
    cause_cols = [c.code for c in CAUSES]
    np.testing.assert_allclose(
        causes[cause_cols].sum(axis=1), contrib[feature_cols].sum(axis=1), atol=1e-9
    )
    # reasons: only risk-raising causes, at most 3, both languages, no "0 bills" sentences
    assert (reasons["contribution"] >= 0.05).all() and reasons.groupby("customer_id")[
        "rank"
    ].max().max() <= p.explain.top_n
    assert reasons["text_en"].str.len().min() > 5 and reasons["text_zh"].str.len().min() > 2
    assert (
        not reasons["text_en"].str.match(r"^0 ").any()
        and not reasons["text_zh"].str.contains("有0张").any()
    )
    # the riskiest always get a reason; a grade-C customer's first is mostly a payment cause
    worst = contrib.nlargest(200, "pd")["customer_id"]
    assert worst.isin(reasons["customer_id"]).all()
    first = reasons[
        (reasons["rank"] == 1)
        & reasons["customer_id"].isin(contrib.loc[contrib["grade"] == "C", "customer_id"])
    ]
    assert first["code"].isin(["R01", "R02", "R03", "R04", "R05"]).mean() > 0.8
    assert json.loads((out / "explanations.json").read_text())["rows"] == len(contrib)


LAPSE = ["late_bills_12m", "max_dpd_12m"]  # what says a reminder comes before security


def test_decision_keys_join_tier_policy_and_expected_loss(explained, segmented):
    out, summary, p, paths = explained
    _, _, tiers, _ = segmented
    keys = pd.read_parquet(out / "data" / "contributions.parquet", columns=list(KEY_COLUMNS))
    assert keys["customer_id"].is_unique and keys["tier"].notna().all()
    latest = tiers[tiers["as_of"] == tiers["as_of"].max()].set_index("customer_id")
    assert (keys["tier"].to_numpy() == latest.loc[keys["customer_id"], "tier"].to_numpy()).all()
    # the tier's service, then what the behaviour segment's traits add (policy.segment_service)
    names = json.loads((paths["segments"] / "tiers.json").read_text())["segments"]
    segment = keys["cluster"].astype(str).map(names)
    late = segment.map(lambda n: "pays late" in traits(n))
    reminder = p.policy.segment_service["pays late"].en
    assert late.any() and (~late).any()
    assert keys.loc[late, "service_level"].str.contains(reminder, regex=False).all()
    assert not keys.loc[~late, "service_level"].str.contains(reminder, regex=False).any()
    tier_service = keys["tier"].map(p.policy.service)
    assert all(a.startswith(b) for a, b in zip(keys["service_level"], tier_service, strict=True))
    feats = pd.read_parquet(paths["features"], columns=["customer_id", "as_of", *LAPSE])
    day = pd.Timestamp(keys["as_of"].iloc[0])
    feats = feats[pd.to_datetime(feats["as_of"]) == day].set_index("customer_id")
    feats = feats.loc[keys["customer_id"]]
    policy = decision.config(p).policy()
    first = policy.security.reminder_first(*(feats[c].to_numpy() for c in LAPSE))
    wanted = recommend(keys["tier"], keys["grade"], policy, None, keys["quarantined_rows"], first)[
        "credit_action"
    ]
    sized = keys["credit_action"].isin(["deposit", "bank_guarantee"])  # by the bill: see below
    assert (keys.loc[~sized, "credit_action"] == wanted[~sized]).all()
    assert (wanted[sized].isin(["deposit", "bank_guarantee"])).all()
    assert (keys.loc[sized, "security_amount"] >= p.policy.security.minimum).all()
    # no adverse action on an incomplete ledger: a review, with the rows behind it
    incomplete = keys["quarantined_rows"] > 0
    assert (
        incomplete.any()
        and not keys.loc[incomplete, "credit_action"].isin(["deposit", "bank_guarantee"]).any()
    )
    assert keys.loc[incomplete, "quarantine_refs"].str.contains(r"\.parquet:\d+ ").all()
    assert keys.loc[incomplete, "flags"].str.contains("incomplete_ledger").all()
    np.testing.assert_allclose(keys["expected_loss"], keys["pd"] * keys["exposure"] * p.grades.lgd)
    assert summary["credit_actions"] == keys["credit_action"].value_counts().to_dict()


def test_global_reports(explained):
    out, summary, p, _ = explained
    reports = out / "reports"
    pngs = {f.name for f in reports.glob("*.png")}
    assert {"beeswarm.png", "importance_features.png", "importance_causes.png"} <= pngs
    assert {"by_tier.png", "by_grade.png"} <= pngs
    assert len([n for n in pngs if n.startswith("dependence_")]) == p.explain.dependence_plots
    features = pd.read_csv(reports / "importance_features.csv")
    top = features["feature"].head(p.explain.dependence_plots)
    assert {f"dependence_{f}.png" for f in top} <= pngs
    assert features["mean_abs_shap"].is_monotonic_decreasing
    causes = pd.read_csv(reports / "importance_causes.csv").set_index("code")
    for code, value in summary["mean_abs_by_cause"].items():
        assert causes.loc[code, "mean_abs_shap"] == pytest.approx(value, abs=1e-6)
    by_tier = pd.read_csv(reports / "by_tier.csv", index_col=0)
    assert list(by_tier.index) == ["A", "B", "C", "D"]
    assert by_tier["customers"].sum() == summary["rows"]
    by_grade = pd.read_csv(reports / "by_grade.csv", index_col=0)
    assert set(by_grade.index) <= set(p.grades.names)
    # payment causes push grade C up and the best grade held down, on average
    late = "R03 recent_late_payments"
    best = by_grade.index[0]  # the grades in master-scale order, the best populated first
    assert list(by_grade.index) == [g for g in p.grades.names if g in by_grade.index]
    assert by_grade.loc["C", late] > 0 > by_grade.loc[best, late]
    for png in pngs:
        assert (reports / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_customer_explained_as_in_the_stage(explained, tmp_path):
    out, _, p, paths = explained
    keys = pd.read_parquet(out / "data" / "contributions.parquet")
    reasons = pd.read_parquet(out / "data" / "reasons.parquet")
    who = keys.loc[keys["grade"] == "C"].iloc[0]
    d = explain_customer(
        paths["features"], paths["model"], paths["segments"], who["customer_id"], p,
        ledger=paths["ledger"],
    )  # fmt: skip
    assert d["as_of"] == who["as_of"] and d["grade"] == "C" and d["tier"] == who["tier"]
    assert d["pd"] == pytest.approx(who["pd"]) and d["expected_loss"] == pytest.approx(
        who["expected_loss"]
    )
    mine = reasons[reasons["customer_id"] == who["customer_id"]]
    assert d["reasons"]["code"].tolist() == mine["code"].tolist()
    zh = render(d, "zh")
    assert "信用等级: C" in zh and mine["text_zh"].iloc[0] in zh
    assert d["segment"] and f"{d['cluster']}: {d['segment']}" in zh
    tier_zh = p.policy.service_zh[d["tier"]]
    assert d["service_level_zh"].startswith(tier_zh) and d["service_level_zh"] in zh
    added = [
        p.policy.segment_service[t].zh
        for t in traits(d["segment"])
        if t in p.policy.segment_service
    ]
    assert d["service_level_zh"] == "; ".join([tier_zh, *added])
    assert d["service_level"] == who["service_level"]
    en = render(d, "en")
    assert "Credit grade: C" in en and mine["text_en"].iloc[0] in en
    assert ACTION_TEXT[who["credit_action"]][0] in en and ACTION_TEXT[who["credit_action"]][1] in zh
    assert d["credit_action"] == who["credit_action"]
    with pytest.raises(GridscoreError, match="--lang"):
        render(d, "fr")


def test_unknown_customer_or_date_is_a_clear_message(explained):
    out, _, p, paths = explained
    someone = pd.read_parquet(out / "data" / "contributions.parquet")["customer_id"].iloc[0]
    with pytest.raises(NotFound, match="'NOBODY' is not in .*features.parquet"):
        explain_customer(paths["features"], paths["model"], paths["segments"], "NOBODY", p)
    typed = f" {someone.lower()} "  # as a person types it: case and spaces off
    with pytest.raises(NotFound, match=f"did you mean '{someone}'"):
        explain_customer(paths["features"], paths["model"], paths["segments"], typed, p)
    with pytest.raises(NotFound, match=r"no snapshot at 2031-01-31; it has \d+ month ends from"):
        explain_customer(
            paths["features"], paths["model"], paths["segments"], someone, p, "2031-01-31"
        )
    with pytest.raises(NotFound, match="not a date"):
        explain_customer(
            paths["features"], paths["model"], paths["segments"], someone, p, "last tuesday"
        )


def test_cli_prints_the_decision_writes_a_waterfall_and_fails_clearly(explained, tmp_path):
    out, _, p, paths = explained
    keys = pd.read_parquet(out / "data" / "contributions.parquet", columns=["customer_id", "as_of"])
    who = keys["customer_id"].iloc[10]
    earlier = str((keys["as_of"].iloc[0] - pd.offsets.MonthEnd(6)).date())
    common = [
        "explain",
        "--features",
        str(paths["features"]),
        "--model",
        str(paths["model"]),
        "--segments",
        str(paths["segments"]),
        "--params",
        str(PARAMS),
    ]
    chart = tmp_path / "w.png"
    runner = CliRunner()
    result = runner.invoke(
        app, [*common, "--customer", who, "--as-of", earlier, "--lang", "zh", "--chart", str(chart)]
    )
    assert result.exit_code == 0, result.output
    assert (
        f"客户 {who}" in result.output and earlier in result.output and "欠费概率" in result.output
    )
    assert chart.read_bytes()[:4] == b"\x89PNG"
    bad = runner.invoke(app, [*common, "--customer", "NOBODY"])
    assert bad.exit_code == 2 and "'NOBODY' is not in" in bad.output
    neither = runner.invoke(app, common)
    assert neither.exit_code == 2 and "--customer ID, or --out" in neither.output


def test_stage_logs_global_explanations_to_mlflow(explained, tmp_path, monkeypatch):
    from pipelines import explain
    from pipelines.tracking import Tracker

    out, summary, p, paths = explained
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    stage = explain.Paths(
        paths["features"], paths["model"], paths["segments"], tmp_path / "out",
        out / "reports", out / "explanations.json",
    )  # fmt: skip
    explain._log(Tracker(), p, stage, summary)  # what run() does after writing, tracking on
    run_id = json.loads((tmp_path / "out.mlflow.json").read_text())["run_id"]
    client = mlflow.MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.data.tags["gridscore.stage"] == "explain"
    assert run.data.metrics["max_additivity_gap"] < 1e-9 and run.data.metrics["rows"] > 5000
    assert run.data.params["catalog_version"] == CATALOG_VERSION
    assert run.data.params["top_n"] == str(p.explain.top_n)
    logged = {a.path for a in client.list_artifacts(run_id)}
    assert {"beeswarm.png", "by_tier.csv", "by_grade.png", "importance_causes.csv"} <= logged
