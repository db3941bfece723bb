"""The ``evaluate`` stage: the arrears model on the test snapshots, in every credit-risk metric.

Writes ``metrics/arrears.json`` (model, before calibration, scorecard baseline, grades,
expected loss and, on generated data, the oracle AUC), the curves as DVC plots
(``reports/arrears_plots/*.csv``) and figures (``*.png``), the grade table and every test
customer's PD, grade, exposure and expected loss; and adds them to the training run in
MLflow.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import InputMissing
from models import plots
from models.arrears import ArrearsModel, infer_spec, to_matrix
from models.metrics import (
    assign_grades,
    classification_metrics,
    curves,
    expected_loss,
    grade_table,
    rank_breaks,
    rates_rise,
)
from pipelines.config import GradeParams, LabelParams, Params, TrainParams
from pipelines.io import model_version, rounded, staged_folder, write_json, write_parquet
from pipelines.stage import guarded
from pipelines.tracking import Tracker
from pipelines.train import load_table, split_roles

log = logging.getLogger(__name__)
#: The columns expected loss needs: exposure = positive balance + mean bill x horizon.
EXPOSURE_COLUMNS = ("balance", "amount_mean_3m")


@dataclass(frozen=True)
class Paths:
    features: Path
    model: Path  # the train stage's folder
    reports: Path  # figures, grades and test scores
    plots: Path  # the curves as CSV (DVC plots)
    metrics: Path
    labels: Path | None = None
    truth: Path | None = None  # the generator's truth, for the oracle AUC only


def run(params: Params, paths: Paths) -> dict:
    """Run the stage; the metrics and figures are added to the training run in MLflow.
    One run at a time holds ``paths.reports`` (``pipelines.stage.guarded``)."""
    return guarded(
        params, paths.reports, [paths.features, paths.labels], lambda: _stage(params, paths)
    )


def _stage(params: Params, paths: Paths) -> dict:
    metrics = evaluate_model(
        paths.features,
        paths.labels,
        paths.model,
        paths.reports,
        paths.plots,
        paths.metrics,
        params.train,
        params.label,
        params.grades,
        paths.truth,
    )
    tracker = Tracker.of(params)
    trained = tracker.read_note(paths.model) if tracker is not None else None
    if trained is not None:
        files = [paths.metrics, *sorted(paths.reports.glob("*.png")), paths.reports / "grades.csv"]
        tracker.add_to_run(trained["run_id"], flat_metrics(metrics), files, "evaluation")
    return metrics


def evaluate_model(
    features: Path,
    labels: Path | None,
    model_dir: Path,
    reports: Path,
    plots_dir: Path,
    metrics_path: Path,
    params: TrainParams,
    label: LabelParams,
    grades: GradeParams,
    truth: Path | None = None,
) -> dict:
    """Score the test snapshots and write every report; see the module docstring. Returns
    the metrics written."""
    table = load_table(features, labels, params.target)
    roles = split_roles(table, params, label.horizon_months)
    model = ArrearsModel.load(model_dir)
    test, y, pd_, raw, evaluated_on = _scored(table, roles, model, model_dir, params)
    grade = assign_grades(pd_, grades.names, grades.upper_pd)
    gtable = grade_table(y, pd_, grade, grades.names)
    exposure = el = None
    missing = [c for c in EXPOSURE_COLUMNS if c not in test.columns]
    if missing:
        log.warning(
            "expected loss skipped: the table has no %s (exposure = positive balance + mean "
            "bill of 3 months x horizon)",
            " or ".join(missing),
        )
    else:
        exposure, el = expected_loss(
            pd_,
            test["balance"].to_numpy(),
            test["amount_mean_3m"].to_numpy(),
            label.horizon_months,
            grades.lgd,
        )
    trained = json.loads((model_dir / "train.json").read_text())
    metrics = {
        "model": classification_metrics(y, pd_),
        "model_uncalibrated": classification_metrics(y, raw),
        "baseline": trained["test"]["baseline"],
        "calibration": trained.get("calibration"),
        "grades": gtable.replace({np.nan: None}).to_dict("records"),
        "grades_rates_rise": rates_rise(gtable),
        "grades_rank_breaks": rank_breaks(gtable),
        "expected_loss": (
            {"skipped": f"no {' or '.join(missing)} column in the feature table"}
            if el is None
            else {
                "total": float(el.sum()),
                "exposure": float(exposure.sum()),
                "lgd": grades.lgd,
                "mean_pd": float(pd_.mean()),
            }
        ),
        "evaluated_on": evaluated_on,
        "test": {
            "first": str(test["as_of"].min().date()),
            "last": str(test["as_of"].max().date()),
            "rows": len(test),
        },
        # labelled snapshots left out of train, valid and test: their ledger misses rows
        "left_out_incomplete_ledger": table.attrs.get("incomplete_ledger", 0),
    }
    if truth is not None and (truth / "monthly.parquet").exists() and evaluated_on == "test":
        metrics["oracle"] = _oracle(truth, table, roles, params, label.horizon_months)
        metrics["oracle"]["auc_gap"] = metrics["oracle"]["auc"] - metrics["model"]["auc"]
    scored = test[["customer_id", "as_of", params.target]].assign(pd=pd_, grade=grade.astype(str))
    if el is not None:
        scored = scored.assign(exposure=exposure, expected_loss=el)
    # one evaluation's figures, curves and scores, never a mix with the previous one's
    with staged_folder(reports) as rep, staged_folder(plots_dir) as curves_dir:
        stamp = (
            f"{evaluated_on} {metrics['test']['first']} to {metrics['test']['last']} · "
            f"model {model_version(model_dir)}"
        )
        _write_reports(rep, curves_dir, y, pd_, raw, metrics, gtable, stamp)
        write_parquet(scored, rep / "test_scores.parquet")
    metrics = rounded(metrics)  # what the metric means, not the CPU's last bits
    write_json(metrics, metrics_path)
    log.info(
        "test AUC %.4f, ECE %.4f, grades rise: %s",
        metrics["model"]["auc"],
        metrics["model"]["ece"],
        metrics["grades_rates_rise"],
    )
    return metrics


def _scored(table, roles, model: ArrearsModel, model_dir: Path, params: TrainParams):
    """The rows judged, their outcomes, calibrated and raw probabilities, and what they are:
    the test set, or (a random split with nothing held out) every training row's
    out-of-fold scores from the train stage (``cv_scores.parquet``)."""
    test = table[(roles == "test").to_numpy()].reset_index(drop=True)
    if len(test):
        X = to_matrix(test, model.spec_)
        y = test[params.target].to_numpy()
        return test, y, model.predict_proba(X), model.predict_raw(X), "test"
    path = model_dir / "cv_scores.parquet"
    if not path.exists():
        raise InputMissing(f"{path}: no test set and no cross-validated scores (rerun train)")
    cv = pd.read_parquet(path)
    rows = cv[["customer_id", "as_of"]].merge(table, on=["customer_id", "as_of"], how="left")
    on = f"cross_validation ({params.split.folds} folds, out of fold)"
    return rows, cv[params.target].to_numpy(), cv["pd"].to_numpy(), cv["raw"].to_numpy(), on


def _oracle(
    truth: Path, table: pd.DataFrame, roles: pd.Series, params: TrainParams, horizon: int
) -> dict:
    """The oracle: the same booster given, on top of the features, what only the generator knows.

    The generator's state before the as_of month (latent risk, payment behaviour, segment,
    distress, shocks) and its true probabilities after it (``features.synthetic.oracle``).
    Fitted on the same train / valid split and scored on the same test rows, its AUC is the
    best the generated data allows; ``chain_auc`` is the AUC of the chain's probability alone.
    """
    from sklearn.metrics import roc_auc_score

    from features.synthetic.oracle import oracle_features
    from pipelines.train import booster_params

    monthly = pd.read_parquet(truth / "monthly.parquet")
    customers = pd.read_parquet(truth / "customers.parquet")
    extra = oracle_features(monthly, customers, table[["customer_id", "as_of"]], horizon)
    full = pd.concat([table, extra], axis=1)
    spec = infer_spec(full, params.target, list(params.exclude))
    X, y = to_matrix(full, spec), full[params.target].to_numpy()
    part = {r: (roles == r).to_numpy() for r in ("train", "valid", "test")}
    oracle = ArrearsModel(booster_params(params), "isotonic", monotone=False)
    oracle.fit(X[part["train"]], y[part["train"]], X[part["valid"]], y[part["valid"]], spec)
    test = part["test"]
    return {
        "auc": float(roc_auc_score(y[test], oracle.predict_raw(X[test]))),
        "chain_auc": float(roc_auc_score(y[test], extra.loc[test, "truth_p_horizon"])),
    }


def _write_reports(
    reports: Path, folder: Path, y, pd_, raw, metrics: dict, gtable: pd.DataFrame, stamp: str
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    reports.mkdir(parents=True, exist_ok=True)
    after, before = curves(y, pd_), curves(y, raw)
    # the reference line each DVC plot draws beside the curve (dvc.yaml, top-level plots)
    after["roc"] = after["roc"].assign(chance=after["roc"]["fpr"])
    after["calibration"] = after["calibration"].assign(perfect=after["calibration"]["predicted"])
    after["gains"] = after["gains"].assign(random=after["gains"]["population"])
    for name, data in after.items():
        data.to_csv(folder / f"{name}.csv", index=False)
    before["calibration"].to_csv(folder / "calibration_uncalibrated.csv", index=False)
    gtable.to_csv(reports / "grades.csv", index=False)
    m = metrics["model"]
    plots.save(plots.roc(after["roc"], m["auc"]), reports / "roc.png", stamp)
    plots.save(
        plots.precision_recall(after["pr"], m["pr_auc"]), reports / "precision_recall.png", stamp
    )
    plots.save(
        plots.calibration(after["calibration"], before["calibration"]),
        reports / "calibration.png",
        stamp,
    )
    plots.save(plots.ks(after["ks"], m["ks"]), reports / "ks.png", stamp)
    plots.save(plots.gains(after["gains"]), reports / "gains.png", stamp)
    plots.save(plots.grades(gtable), reports / "grades.png", stamp)


def flat_metrics(metrics: dict) -> dict[str, float]:
    """The headline metrics for MLflow."""
    out = {f"test_{k}": v for k, v in metrics["model"].items() if k != "n"}
    out.update(
        {
            f"test_uncalibrated_{k}": metrics["model_uncalibrated"][k]
            for k in ("ece", "brier", "log_loss")
        }
    )
    out.update({f"baseline_{k}": metrics["baseline"][k] for k in ("auc", "ks", "ece")})
    if "oracle" in metrics:
        out["oracle_auc"] = metrics["oracle"]["auc"]
    if "total" in metrics["expected_loss"]:
        out["expected_loss_total"] = metrics["expected_loss"]["total"]
    return out
