"""The ``monitor`` stage: the last monthly runs side by side, their stability, a back-test of
the PDs whose horizon has passed, and fairness by group.

A *run* is the decision at one month end, made by the one decision path
(``models.decision``) on that month's point-in-time features (the features stage's table,
with the ledger's quarantined rows, as the score stage decides): the last ``monitor.runs``
month ends of the table. For each run (``models.stability``, ``models.monitoring``):

- **stability**: PSI of the PD, the grade and the tier against the model's training rows
  (the reference) and against the previous run; CSI of every model feature, the same two
  ways; PSI of the PD within each tier and each level of ``groups`` (tariff class, region);
  ``stable`` / ``warn`` / ``alert`` at ``psi_warn`` and ``psi_alert``;
- **performance before labels**: the expected bad rate and AUC of the calibrated PDs (CBPE);
- **back-test**, for the runs whose label horizon has passed: realised AUC, KS and ECE, and
  per grade the realised rate against the mean PD with the Jeffreys test (``jeffreys_p``
  below 0.05 or above 0.95: the PD is off); the rows an incomplete ledger leaves unlabelled
  are out, as in training;
- **fairness**, by each of ``groups``: the share asked for a deposit or guarantee, and with
  outcomes the false- and true-positive rates and the calibration ratio, each against the
  rest of the base with a bootstrap interval; flagged past ``fairness_tolerance``.

Writes ``reports/monitor/`` (``runs.csv``, ``stability.csv``, ``backtest.csv``,
``fairness.csv``; and the latest run's work lists, :func:`worklists`, in ``worklists/`` as
Parquet and as CSV with English and Chinese headers) and a compact ``metrics/monitor.json``
(per run the headline figures and the count of alerts), logged to MLflow as a ``monitor``
run.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import InputMissing
from models.arrears import to_matrix
from models.metrics import assign_grades, classification_metrics, grade_table
from models.monitoring import expected_performance, group_rates
from models.policy import ADVERSE
from models.stability import csi, level, psi
from pipelines.config import Params
from pipelines.explain import decision_model, read_features, with_ledger
from pipelines.io import rounded, staged_folder, write_json, write_parquet
from pipelines.stage import guarded
from pipelines.tracking import Tracker
from pipelines.train import load_table, split_roles

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Paths:
    features: Path  # the features stage's features.parquet
    labels: Path  # ... labels.parquet
    ledger: Path  # ... ledger.parquet (quarantined rows per customer and as_of)
    model: Path  # artifacts/arrears
    segments: Path  # artifacts/segments (tiers.parquet: every snapshot's tier)
    reports: Path  # reports/monitor
    metrics: Path  # metrics/monitor.json


def run(params: Params, paths: Paths) -> dict:
    """Run the stage; returns the compact summary written to ``paths.metrics``."""
    inputs = [paths.features, paths.labels, paths.ledger]
    return guarded(params, paths.reports, inputs, lambda: _stage(params, paths))


def _stage(params: Params, paths: Paths) -> dict:
    m = params.monitor
    table = read_features(paths.features)
    days = sorted(table["as_of"].unique())[-m.runs :]
    if len(days) < 2:
        raise InputMissing(f"{paths.features}: {len(days)} month end(s); monitoring needs 2")
    with tempfile.TemporaryDirectory(prefix=f"gridscore-models-{os.getpid()}-") as workdir:
        model = decision_model(params, paths.model, paths.segments, Path(workdir))
    spec = model.arrears.spec_
    labelled = load_table(paths.features, paths.labels, params.train.target)
    roles = split_roles(labelled, params.train, params.label.horizon_months)
    reference = labelled[(roles == "train").to_numpy()]
    role_of = dict(zip(labelled["as_of"], roles, strict=False))
    ref_pd = model.arrears.predict_proba(to_matrix(reference, spec))
    g = params.grades
    ref_grade = assign_grades(ref_pd, g.names, g.upper_pd)
    tiers = _tiers(paths.segments)
    ref_tier = _tier_at(tiers, reference)
    outcome = labelled.set_index(["customer_id", "as_of"])[params.train.target]

    runs, stability, backtest, fairness = [], [], [], []
    prev = prev_tier = first_pd = None
    for day in days:
        rows = with_ledger(table[table["as_of"] == day].reset_index(drop=True), paths.ledger)
        decided = model.decide(rows)
        cur = {
            "rows": rows,
            "decided": decided,
            "pd": decided["pd"].to_numpy(float),
            "grade": decided["grade"].astype(str).to_numpy(),
            "tier": _tier_at(tiers, rows),
            "adverse": decided["credit_action"].isin(ADVERSE).to_numpy(),
        }
        key = pd.MultiIndex.from_frame(rows[["customer_id", "as_of"]])
        y = outcome.reindex(key).to_numpy()
        has_y = ~pd.isna(y)
        when = str(pd.Timestamp(day).date())
        stab = _stability(cur, prev, reference, ref_pd, ref_grade, ref_tier, spec, params)
        stability += [{"as_of": when, **r} for r in stab]
        info = {
            "as_of": when,
            "rows": len(rows),
            "role": str(role_of.get(day, "unlabelled")),
            "mean_pd": float(cur["pd"].mean()),
            "asked_for_security": int(cur["adverse"].sum()),
            **expected_performance(cur["pd"]),
            "psi_pd_vs_reference": _pick(stab, "pd", "reference"),
            "psi_pd_vs_previous": _pick(stab, "pd", "previous"),
            "psi_grade_vs_previous": _pick(stab, "grade", "previous"),
            "psi_tier_vs_previous": _pick(stab, "tier", "previous"),
            "alerts": sum(r["level"] == "alert" for r in stab),
            "warnings": sum(r["level"] == "warn" for r in stab),
        }
        if has_y.sum() and len(np.unique(y[has_y])) == 2:
            yy = y[has_y].astype(int)
            perf = classification_metrics(yy, cur["pd"][has_y])
            gt = grade_table(yy, cur["pd"][has_y], cur["grade"][has_y], g.names)
            off = gt[(gt["jeffreys_p"] < 0.05) | (gt["jeffreys_p"] > 0.95)]["grade"].tolist()
            info |= {
                "labelled": int(has_y.sum()),
                "realised_rate": perf["bad_rate"],
                "auc": perf["auc"],
                "ks": perf["ks"],
                "ece": perf["ece"],
                "grades_off": off,
            }
            backtest += [{"as_of": when, **r} for r in gt.to_dict("records")]
        fairness += _fairness(cur, y, has_y, when, params)
        info["fairness_flags"] = sum(1 for r in fairness if r["as_of"] == when and r["flagged"])
        runs.append(info)
        if prev is None:
            first_pd = pd.Series(cur["pd"], index=rows["customer_id"].astype(str))
        prev_tier = (
            None
            if prev is None
            else pd.Series(prev["tier"], index=prev["rows"]["customer_id"].astype(str))
        )
        prev = cur
    summary = rounded({"runs": runs, "thresholds": _thresholds(params)})
    lists = worklists(prev, first_pd, prev_tier, params)
    summary["worklists"] = {name: len(frame) for name, frame in lists.items()}
    with staged_folder(paths.reports) as out:
        for name, frame in lists.items():
            write_parquet(frame, out / "worklists" / f"{name}.parquet")
            frame.rename(columns=bilingual).to_csv(
                out / "worklists" / f"{name}.csv", index=False, encoding="utf-8-sig"
            )
        pd.DataFrame(runs).to_csv(out / "runs.csv", index=False)
        pd.DataFrame(stability).to_csv(out / "stability.csv", index=False)
        pd.DataFrame(backtest).to_csv(out / "backtest.csv", index=False)
        pd.DataFrame(fairness).to_csv(out / "fairness.csv", index=False)
    write_json(_compact(summary), paths.metrics)
    _track(params, summary, paths)
    last = runs[-1]
    log.info(
        "monitor: %d runs to %s; latest PSI of the PD %.3f against the reference, %d alerts, "
        "%d fairness flags",
        len(runs),
        last["as_of"],
        last["psi_pd_vs_reference"],
        last["alerts"],
        last["fairness_flags"],
    )
    return summary


def _tiers(segments: Path) -> pd.DataFrame | None:
    path = segments / "tiers.parquet"
    if not path.exists():
        return None
    t = pd.read_parquet(path, columns=["customer_id", "as_of", "tier"])
    t["as_of"] = pd.to_datetime(t["as_of"]).astype("datetime64[us]")
    return t.set_index(["customer_id", "as_of"])["tier"]


def _tier_at(tiers: pd.Series | None, rows: pd.DataFrame) -> np.ndarray:
    """The segment stage's tier (with hysteresis) of each row; None where it has none."""
    if tiers is None:
        return np.full(len(rows), None, dtype=object)
    key = pd.MultiIndex.from_arrays(
        [rows["customer_id"].astype(str), pd.to_datetime(rows["as_of"]).astype("datetime64[us]")]
    )
    return tiers.reindex(key).to_numpy(dtype=object)


def _row(variable, against, value, params, group=None) -> dict:
    m = params.monitor
    return {
        "variable": variable,
        "against": against,
        "group": group,
        "psi": value,
        "level": level(value, m.psi_warn, m.psi_alert),
    }


def _stability(cur, prev, reference, ref_pd, ref_grade, ref_tier, spec, params) -> list[dict]:
    rows = cur["rows"]
    out = [
        _row("pd", "reference", psi(ref_pd, cur["pd"]), params),
        _row("grade", "reference", psi(pd.Series(ref_grade), pd.Series(cur["grade"])), params),
    ]
    if pd.notna(ref_tier).any():
        out.append(
            _row("tier", "reference", psi(pd.Series(ref_tier), pd.Series(cur["tier"])), params)
        )
    for name, value in csi(reference, rows, spec.columns).items():
        out.append(_row(name, "reference", value, params))
    if prev is not None:
        out += [
            _row("pd", "previous", psi(prev["pd"], cur["pd"]), params),
            _row(
                "grade", "previous", psi(pd.Series(prev["grade"]), pd.Series(cur["grade"])), params
            ),
        ]
        if pd.notna(prev["tier"]).any():
            out.append(
                _row(
                    "tier", "previous", psi(pd.Series(prev["tier"]), pd.Series(cur["tier"])), params
                )
            )
        for name, value in csi(prev["rows"], rows, spec.columns).items():
            out.append(_row(name, "previous", value, params))
    for col in params.monitor.groups:
        if col not in rows or col not in reference:
            continue
        ref_g = reference[col].astype("string").fillna("<missing>").to_numpy(dtype=object)
        cur_g = rows[col].astype("string").fillna("<missing>").to_numpy(dtype=object)
        for level_ in sorted(set(cur_g)):
            a, b = ref_pd[ref_g == level_], cur["pd"][cur_g == level_]
            if len(a) and len(b):
                out.append(_row("pd", "reference", psi(a, b), params, f"{col}={level_}"))
    # within each value tier (the segment stage's, with hysteresis) as well
    ref_t = pd.Series(ref_tier, dtype="string").fillna("<none>").to_numpy(dtype=object)
    cur_t = pd.Series(cur["tier"], dtype="string").fillna("<none>").to_numpy(dtype=object)
    for tier in sorted(set(cur_t) - {"<none>"}):
        a, b = ref_pd[ref_t == tier], cur["pd"][cur_t == tier]
        if len(a) and len(b):
            out.append(_row("pd", "reference", psi(a, b), params, f"tier={tier}"))
    return out


def _pick(stab: list[dict], variable: str, against: str) -> float | None:
    for r in stab:
        if r["variable"] == variable and r["against"] == against and r["group"] is None:
            return r["psi"]
    return None


def _fairness(cur, y, has_y, when: str, params: Params) -> list[dict]:
    m = params.monitor
    out = []
    rows = cur["rows"]
    for col in m.groups:
        if col not in rows:
            continue
        sel = has_y if has_y.any() else np.ones(len(rows), bool)
        outcome = y[sel].astype(int) if has_y.any() else None
        table = group_rates(
            rows.loc[sel, col],
            cur["adverse"][sel],
            cur["pd"][sel],
            outcome,
            m.fairness_tolerance,
            m.calibration_tolerance,
            m.bootstrap,
            m.seed,
        )
        for r in table.to_dict("records"):
            out.append({"as_of": when, "attribute": col, "labelled": outcome is not None, **r})
    return out


def _thresholds(params: Params) -> dict:
    m = params.monitor
    return {
        "psi_warn": m.psi_warn,
        "psi_alert": m.psi_alert,
        "fairness_tolerance": m.fairness_tolerance,
        "calibration_tolerance": m.calibration_tolerance,
    }


def _compact(summary: dict) -> dict:
    """One screen for ``dvc metrics show``: per run the headline figures."""
    keep = (
        "mean_pd",
        "expected_auc",
        "asked_for_security",
        "psi_pd_vs_reference",
        "psi_pd_vs_previous",
        "psi_grade_vs_previous",
        "alerts",
        "fairness_flags",
        "realised_rate",
        "auc",
        "ece",
    )
    return {r["as_of"]: {k: r[k] for k in keep if k in r} for r in summary["runs"]}


def _track(params: Params, summary: dict, paths: Paths) -> None:
    tracker = Tracker.of(params)
    if tracker is None:
        return
    last = summary["runs"][-1]
    metrics = {
        f"latest_{k}": float(v)
        for k, v in last.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    files = sorted(paths.reports.glob("*.csv")) + [paths.metrics]
    run_params = {"monitor": params.monitor.model_dump(mode="json"), "grades": params.grades.names}
    inputs = [paths.features, paths.labels]
    with tracker.stage_run("monitor", run_params, metrics, inputs):
        tracker.log_files(files, "monitor")


#: Work-list columns: English name -> Chinese (the CSV headers carry both).
HEADERS = {
    "customer_id": "客户编号",
    "as_of": "评估日",
    "tier": "客户等级",
    "tier_before": "上期等级",
    "tier_movement": "等级变动",
    "service_level": "服务级别",
    "grade": "信用等级",
    "pd": "违约概率",
    "pd_first_run": "首期违约概率",
    "expected_loss": "预期损失",
    "overdue_arrears": "逾期欠费",
    "dpd": "逾期天数",
    "credit_action": "信用措施",
    "security_amount": "担保金额",
    "industry": "行业",
    "kwh_sum_12m": "近12个月用电量",
    "kwh_yoy_change": "用电同比变化",
    "industry_median_yoy_change": "同行业用电同比中位数",
    "yoy_change_vs_industry": "较同行业差异",
    "watch_reasons": "关注原因",
}
for _k in range(1, 5):
    HEADERS[f"reason_{_k}_en"] = f"原因{_k}（英文）"
    HEADERS[f"reason_{_k}_zh"] = f"原因{_k}"
MOVES = {1: "up", -1: "down", 0: "same"}


def bilingual(name: str) -> str:
    """A work-list column's CSV header: English and Chinese."""
    return f"{name} / {HEADERS[name]}" if name in HEADERS else name


def _rank(tier: pd.Series) -> pd.Series:
    return tier.map({"A": 4, "B": 3, "C": 2, "D": 1})


def worklists(latest, first_pd, prev_tier, params: Params) -> dict[str, pd.DataFrame]:
    """The latest run's lists for the people who act on it (docs/monitoring.md):
    ``account_managers`` (the tiers that have one, with the tier before and its movement),
    ``fee_recovery`` (customers owing or under a credit action, by expected loss, with their
    reasons) and ``energy_intensive_watch`` (energy-intensive customers, their consumption
    against their own year and their industry's, their days past due and PD trend, flagged
    past ``monitor.watch_kwh_change`` or ``watch_pd_ratio``)."""
    m = params.monitor
    d = latest["decided"].copy()
    rows = latest["rows"]
    d["customer_id"] = d["customer_id"].astype(str)
    d["tier"] = pd.Series(latest["tier"], dtype="string").to_numpy()
    for col in ("overdue_arrears", "dpd", "industry", "kwh_sum_12m", "kwh_yoy_change"):
        d[col] = rows[col].to_numpy() if col in rows else np.nan
    if "energy_intensive" in rows:
        energy = rows["energy_intensive"].fillna(False).astype(bool).to_numpy()
    else:
        energy = np.zeros(len(d), bool)
    reasons = [c for c in d.columns if c.startswith("reason_") and c[-3:] in ("_en", "_zh")]

    managed = d[d["tier"].isin(params.policy.account_manager_tiers)].copy()
    before = (
        prev_tier.reindex(managed["customer_id"]).astype("string").to_numpy()
        if prev_tier is not None
        else np.full(len(managed), None)
    )
    managed["tier_before"] = pd.array(before, dtype="string")
    step = np.sign(_rank(managed["tier"]) - _rank(managed["tier_before"]))
    managed["tier_movement"] = step.map(MOVES).where(step.notna(), "new").astype("string")
    managed = managed.sort_values(["tier", "customer_id"])[
        ["customer_id", "as_of", "tier", "tier_before", "tier_movement", "service_level",
         "grade", "pd", "credit_action"]
    ]  # fmt: skip

    at_risk = d[(d["overdue_arrears"].fillna(0) > 0) | (d["credit_action"] != "none")].copy()
    at_risk = at_risk.sort_values(["expected_loss", "customer_id"], ascending=[False, True])
    at_risk = at_risk[
        ["customer_id", "as_of", "tier", "grade", "pd", "expected_loss", "overdue_arrears",
         "dpd", "credit_action", "security_amount", *reasons]
    ]  # fmt: skip

    watch = d[energy].copy()
    watch["pd_first_run"] = first_pd.reindex(watch["customer_id"]).to_numpy()
    peer = watch.groupby("industry", dropna=False)["kwh_yoy_change"].transform("median")
    watch["industry_median_yoy_change"] = peer
    watch["yoy_change_vs_industry"] = watch["kwh_yoy_change"] - peer
    why = []
    for r in watch.itertuples():
        out = []
        if abs(r.kwh_yoy_change) > m.watch_kwh_change:
            out.append(f"kWh {r.kwh_yoy_change:+.0%} on a year before")
        if abs(r.yoy_change_vs_industry) > m.watch_kwh_change:
            out.append(f"{r.yoy_change_vs_industry:+.0%} against its industry")
        if r.pd_first_run and r.pd / r.pd_first_run >= m.watch_pd_ratio:
            out.append(f"PD {r.pd_first_run:.1%} -> {r.pd:.1%}")
        if r.dpd >= params.label.dpd_threshold:
            out.append(f"{r.dpd:.0f} days past due")
        why.append("; ".join(out))
    watch["watch_reasons"] = pd.array(why, dtype="string")
    watch["flagged"] = watch["watch_reasons"] != ""
    watch = watch.sort_values(["flagged", "expected_loss"], ascending=[False, False])
    watch = watch[
        ["customer_id", "as_of", "tier", "industry", "kwh_sum_12m", "kwh_yoy_change",
         "industry_median_yoy_change", "yoy_change_vs_industry", "dpd", "pd_first_run", "pd",
         "grade", "credit_action", "watch_reasons"]
    ]  # fmt: skip
    return {
        "account_managers": managed.reset_index(drop=True),
        "fee_recovery": at_risk.reset_index(drop=True),
        "energy_intensive_watch": watch.reset_index(drop=True),
    }
