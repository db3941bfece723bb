"""The ``train`` stage: fit the arrears model and its scorecard baseline on an out-of-time split.

Reads a feature table (``features.parquet``; with ``labels.parquet`` joined on customer_id
and as_of, or with the target inside: the feature-table contract of docs/arrears_model.md),
writes to ``artifacts/arrears/``: ``model.txt`` (LightGBM text), ``calibrator.json``,
``features.json``, ``baseline.json`` (the scorecard), ``split.json`` and ``train.json``;
logs the run to MLflow and registers the model (alias ``candidate``); the run is noted beside
the folder (``artifacts/arrears.mlflow.json``) for the evaluate stage.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from features.catalog import BY_NAME
from features.errors import GridscoreError, InputMissing
from models.arrears import KEYS, ArrearsModel, BoosterParams, FeatureSpec, infer_spec, to_matrix
from models.metrics import classification_metrics
from models.scorecard import WoEScorecard
from models.split import out_of_time_split, random_split
from pipelines.config import LabelParams, Params, TrainParams
from pipelines.io import staged_folder, write_parquet
from pipelines.stage import guarded
from pipelines.tracking import Tracker, model_requirements

log = logging.getLogger(__name__)
MODEL_NAME = "gridscore-arrears"
#: The labels' column counting a snapshot's quarantined rows (pipelines/features.py).
INCOMPLETE = "quarantined_rows"


class TrainError(GridscoreError):
    """The table cannot be trained on (no target, no labelled rows, a split with one class)."""


@dataclass(frozen=True)
class Paths:
    features: Path
    out: Path  # the model's folder
    labels: Path | None = None  # None: the target is a column of the feature table


def run(params: Params, paths: Paths) -> dict:
    """Run the stage: fit, write the model's folder, log and register it. Returns the
    summary. One run at a time holds ``paths.out`` (``pipelines.stage.guarded``)."""
    return guarded(params, paths.out, [paths.features, paths.labels], lambda: _stage(params, paths))


def _stage(params: Params, paths: Paths) -> dict:
    summary, model, example = train_model(
        paths.features, paths.labels, paths.out, params.train, params.label
    )
    tracker = Tracker.of(params)
    if tracker is not None:
        _log(
            tracker,
            params.train,
            summary,
            paths.out,
            model,
            example,
            [paths.features, paths.labels],
        )
    return summary


def _log(
    tracker: Tracker,
    params: TrainParams,
    summary: dict,
    out: Path,
    model,
    example,
    inputs: list[Path | None] = (),
) -> None:
    """The training run with the model as a pyfunc (``pipelines.serving.ArrearsPyfunc``: the
    LightGBM text model, calibrator and feature list), its signature and input example."""
    import mlflow

    from pipelines.serving import ArrearsPyfunc, signature

    registered = MODEL_NAME if params.register_model else None
    read = [p for p in inputs if p is not None]
    with tracker.stage_run("train", flat_params(params), flat_metrics(summary), read):
        mlflow.log_artifacts(str(out), artifact_path="arrears")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ArrearsPyfunc(),
            artifacts={"model_dir": str(out)},
            signature=signature(model),
            input_example=example,
            registered_model_name=registered,
            pip_requirements=model_requirements(),
        )
    tracker.note(out, tracker.register_candidate(info, registered))


def load_table(features: Path, labels: Path | None, target: str) -> pd.DataFrame:
    """The labelled feature table: features joined to labels; rows without a label dropped,
    and rows whose ledger misses quarantined rows up to the label horizon left out (their
    features or label would rest on records that are not there). ``table.attrs`` says how
    many were left out (``incomplete_ledger``)."""
    if not Path(features).exists():
        raise InputMissing(f"{features}: no feature table (run the features stage)")
    table = pq.read_table(features).to_pandas(date_as_object=False)
    for key in KEYS:
        if key not in table.columns:
            raise TrainError(f"{features}: the feature table needs a {key} column")
    if labels is not None:
        lab = pq.read_table(labels).to_pandas(date_as_object=False)
        extra = [c for c in (INCOMPLETE,) if c in lab.columns]
        table = table.merge(
            lab[[*KEYS, target, *extra]], on=list(KEYS), how="left", validate="one_to_one"
        )
    if target not in table.columns:
        raise TrainError(f"{features}: no target column {target!r} (give --labels or add it)")
    table = table[table[target].notna()].reset_index(drop=True)
    left_out = 0
    if INCOMPLETE in table.columns:
        incomplete = table[INCOMPLETE].fillna(0).to_numpy() > 0
        left_out = int(incomplete.sum())
        table = table[~incomplete].drop(columns=INCOMPLETE).reset_index(drop=True)
    table[target] = table[target].astype(int)
    if table.empty:
        raise TrainError(f"{features}: no labelled rows to train on")
    table.attrs["incomplete_ledger"] = left_out
    return table


def split_roles(table: pd.DataFrame, params: TrainParams, horizon: int) -> pd.Series:
    s = params.split
    if s.kind == "random":
        return random_split(len(table), s.test_share, params.seed, table[params.target].to_numpy())
    return out_of_time_split(table["as_of"], horizon, s.valid_snapshots, s.test_snapshots)


def booster_params(params: TrainParams) -> BoosterParams:
    return BoosterParams(**{k: getattr(params, k) for k in BoosterParams.__dataclass_fields__})


def feature_spec(table: pd.DataFrame, params: TrainParams) -> FeatureSpec:
    """The model's features: inferred from the table, as params.yaml overrides, with the
    catalog's risk directions."""
    return infer_spec(
        table,
        params.target,
        list(params.exclude),
        None if params.numeric is None else list(params.numeric),
        None if params.categorical is None else list(params.categorical),
        {n: f.risk_direction for n, f in BY_NAME.items()},
    )


@dataclass
class Fitted:
    """What :func:`fit` returns: the model, the baseline, each row's role, the metrics and,
    for a random split, every training row's out-of-fold scores (``cv``)."""

    model: ArrearsModel
    baseline: WoEScorecard
    roles: pd.Series
    metrics: dict
    cv: pd.DataFrame | None = None


def _single_class(y, part: dict) -> None:
    for r, m in part.items():
        if m.any() and (y[m].sum() == 0 or y[m].sum() == m.sum()):
            raise TrainError(f"the {r} set has a single class; check the split and the labels")


def fit(table: pd.DataFrame, params: TrainParams, label: LabelParams) -> Fitted:
    """Split, fit the model and the baseline; return them with the roles and the metrics:
    on the test set, or (a random split with ``test_share: 0``) cross-validated."""
    roles = split_roles(table, params, label.horizon_months)
    spec = feature_spec(table, params)
    X = to_matrix(table, spec)
    y = table[params.target].to_numpy()
    part = {r: (roles == r).to_numpy() for r in ("train", "valid", "test")}
    _single_class(y, part)
    model = ArrearsModel(
        booster_params(params),
        params.calibration,
        params.monotone,
        params.split.folds,
        params.calibration_level,
    )
    train, test = part["train"], part["test"]
    feats = table.loc[:, spec.columns]
    cv = None
    if params.split.kind == "random":
        model.fit_cv(X[train], y[train], spec, params.split.folds)
        cv = table.loc[train, list(KEYS)].assign(
            **{params.target: y[train]}, raw=model.cv_["raw"], pd=model.cv_["pd"]
        )
    else:
        model.fit(X[train], y[train], X[part["valid"]], y[part["valid"]], spec)
    baseline = WoEScorecard().fit(feats[train], y[train], spec.categorical)
    if test.any():
        metrics = {
            "evaluated_on": "test",
            "model": classification_metrics(y[test], model.predict_proba(X[test])),
            "model_uncalibrated": classification_metrics(y[test], model.predict_raw(X[test])),
            "baseline": classification_metrics(y[test], baseline.predict_proba(feats[test])),
        }
    else:  # nothing held out: the out-of-fold scores of the fold models, cross-fitted PDs
        yt = y[train]
        base_cv = _baseline_cv(feats[train], yt, spec.categorical, params)
        metrics = {
            "evaluated_on": f"cross_validation ({params.split.folds} folds, out of fold)",
            "model": classification_metrics(yt, model.cv_["pd"]),
            "model_uncalibrated": classification_metrics(yt, model.cv_["raw"]),
            "baseline": classification_metrics(yt, base_cv),
        }
    return Fitted(model, baseline, roles, metrics, cv)


def _baseline_cv(feats: pd.DataFrame, y, categorical: list[str], params: TrainParams):
    """The scorecard's out-of-fold probabilities over the same folds as the model."""
    from models.calibration import fold_splits

    out = np.empty(len(y))
    for fit_rows, held in fold_splits(y, params.split.folds, params.seed):
        card = WoEScorecard().fit(feats.iloc[fit_rows], y[fit_rows], categorical)
        out[held] = card.predict_proba(feats.iloc[held])
    return out


def train_model(
    features: Path, labels: Path | None, out: Path, params: TrainParams, label: LabelParams
) -> tuple[dict, ArrearsModel, pd.DataFrame]:
    """Fit and write the model's folder; returns the summary (``train.json``), the model and
    an input example."""
    table = load_table(features, labels, params.target)
    f = fit(table, params, label)
    model, metrics = f.model, f.metrics
    with staged_folder(out) as staged:  # the whole model or the previous one, never a mix
        model.save(staged)
        (staged / "baseline.json").write_text(json.dumps(f.baseline.to_dict()))
        if f.cv is not None:
            write_parquet(f.cv, staged / "cv_scores.parquet")
        dates = table.groupby(f.roles)["as_of"].agg(["min", "max", "size"])
        split = {
            r: {"first": str(d["min"].date()), "last": str(d["max"].date()), "rows": int(d["size"])}
            for r, d in dates.iterrows()
        }
        (staged / "split.json").write_text(
            json.dumps({"kind": params.split.kind, "sets": split}, indent=2)
        )
        summary = {
            "rows": len(table),
            "left_out_incomplete_ledger": table.attrs.get("incomplete_ledger", 0),
            "split": split,
            "best_iteration": model.best_iteration_,
            "features": len(model.spec_.columns),
            "constrained": len(model.spec_.monotone) if params.monotone else 0,
            "calibration": _rounded(model.calibration_),
            "test": metrics,
        }
        (staged / "train.json").write_text(json.dumps(summary, indent=2))
    log.info(
        "arrears model (%s): AUC %.4f (baseline %.4f), %d trees, calibration %s "
        "(held-out ECE %.4f -> %.4f), level %s (held-out rate %.4f, long-run %.4f, "
        "log-odds shift %+.3f)",
        metrics["evaluated_on"],
        metrics["model"]["auc"],
        metrics["baseline"]["auc"],
        model.best_iteration_,
        model.calibration_["chosen"],
        model.calibration_["ece_before"],
        model.calibration_["ece_after"],
        model.calibration_["level"]["anchor"],
        model.calibration_["level"]["held_out_rate"],
        model.calibration_["level"]["long_run_rate"],
        model.calibration_["level"]["shift"],
    )
    return summary, model, input_example(model, table)


def _rounded(report: dict) -> dict:
    """The calibration report with its figures to 6 digits (stable across platforms)."""
    out = dict(report)
    out["candidates"] = {
        m: {k: round(v, 6) for k, v in s.items()} for m, s in report["candidates"].items()
    }
    out["ece_before"], out["ece_after"] = (round(report[k], 6) for k in ("ece_before", "ece_after"))
    out["level"] = {
        k: round(v, 6) if isinstance(v, float) else v for k, v in report["level"].items()
    }
    return out


def flat_metrics(summary: dict) -> dict[str, float]:
    """Test metrics of the model and the baseline, flat, for MLflow."""
    out = {f"test_{k}": v for k, v in summary["test"]["model"].items() if k != "n"}
    out["calibration_ece_before"] = summary["calibration"]["ece_before"]
    out["calibration_ece_after"] = summary["calibration"]["ece_after"]
    out["calibration_level_shift"] = summary["calibration"]["level"]["shift"]
    out.update({f"baseline_{k}": v for k, v in summary["test"]["baseline"].items() if k != "n"})
    out["best_iteration"] = summary["best_iteration"]
    return out


def flat_params(params: TrainParams) -> dict:
    """params as flat MLflow params."""
    data = params.model_dump(mode="json")
    split = data.pop("split")
    return {**data, **{f"split.{k}": v for k, v in split.items()}}


def input_example(model: ArrearsModel, table: pd.DataFrame) -> pd.DataFrame:
    """A few rows of the feature table as the model takes it (categoricals as text)."""
    full = table.dropna(subset=model.spec_.categorical)
    example = (full if len(full) >= 5 else table).head(5)[model.spec_.columns].copy()
    for c in model.spec_.categorical:
        example[c] = example[c].astype("object")
    return example
