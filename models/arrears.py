"""The arrears model: LightGBM with monotone constraints, then calibration on held-out scores.

Two ways to fit: :meth:`ArrearsModel.fit` (an out-of-time split: early stopping and
calibration on the validation set) and :meth:`ArrearsModel.fit_cv` (one snapshot: K-fold
cross-validation picks the number of rounds and gives out-of-fold scores for the calibrator,
then the booster is refitted on every row). The calibrator is chosen by cross-validation on
those held-out scores (``models.calibration.select``) unless a method is named.

Saved in LightGBM's own text format (``model.txt``) with its calibrator and feature list
as JSON; nothing is pickled.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.errors import GridscoreError
from models.calibration import (
    LEVELS,
    METHODS,
    Calibrator,
    fold_splits,
    level_shift,
    select,
    shifted,
)

KEYS = ("customer_id", "as_of")


class FeatureMismatchError(GridscoreError):
    """The table given to a model lacks features it was trained on, or has the wrong kind."""


@dataclass(frozen=True)
class FeatureSpec:
    """The model's inputs: numeric and categorical columns, categorical levels, constraints."""

    numeric: list[str]
    categorical: list[str]
    levels: dict[str, list[str]] = field(default_factory=dict)
    monotone: dict[str, int] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def constraints(self) -> list[int]:
        return [self.monotone.get(c, 0) if c in self.numeric else 0 for c in self.columns]


def infer_spec(
    table: pd.DataFrame,
    target: str,
    exclude: list[str],
    numeric: list[str] | None = None,
    categorical: list[str] | None = None,
    directions: dict[str, int] | None = None,
) -> FeatureSpec:
    """Numeric and categorical feature columns of a table (overridable), with their levels.

    Numbers and booleans are numeric; strings and categories are categorical. Keys, the
    target and ``exclude`` are never features.
    """
    skip = {*KEYS, target, *exclude}
    cols = [c for c in table.columns if c not in skip]
    if categorical is None:
        categorical = [
            c
            for c in cols
            if not (pd.api.types.is_numeric_dtype(table[c]) or pd.api.types.is_bool_dtype(table[c]))
        ]
    if numeric is None:
        numeric = [c for c in cols if c not in categorical]
    levels = {c: sorted(as_text(table[c]).dropna().unique().tolist()) for c in categorical}
    directions = directions or {}
    monotone = {c: int(directions[c]) for c in numeric if directions.get(c, 0)}
    return FeatureSpec(list(numeric), list(categorical), levels, monotone)


def to_matrix(table: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """The model's input matrix; a category never seen in training becomes missing.

    Raises:
        FeatureMismatchError: A feature of the model is absent from the table, or a numeric
            feature is not numeric.
    """
    missing = [c for c in spec.columns if c not in table.columns]
    if missing:
        raise FeatureMismatchError(f"the table lacks the model's feature(s): {', '.join(missing)}")
    out = {}
    for c in spec.numeric:
        col = table[c]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            raise FeatureMismatchError(f"feature {c} must be numeric, found {col.dtype}")
        out[c] = col.astype("float64").to_numpy()
    for c in spec.categorical:
        text = as_text(table[c])
        known = text.where(text.isin(spec.levels[c]))  # a level never seen in training: missing
        out[c] = pd.Categorical(known, categories=spec.levels[c])
    return pd.DataFrame(out, index=table.index)


def as_text(col: pd.Series) -> pd.Series:
    """A categorical column as text, missing kept missing. Codes that a CSV reader turned
    into numbers read as they were written: 2, 2.0 and "2" are the same level "2"."""
    present = col.notna()
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        num = col.astype("float64")
        whole = present & (num == np.floor(num)) & np.isfinite(num)
        text = num.astype(str).astype("object")
        text[whole] = num[whole].astype("int64").astype(str)
        return text.where(present)
    return col.astype("object").where(present).astype(str).where(present)


@dataclass(frozen=True)
class BoosterParams:
    """LightGBM settings (the ``train`` section of params.yaml)."""

    num_leaves: int = 31
    learning_rate: float = 0.05
    n_estimators: int = 2000
    early_stopping_rounds: int = 100
    min_child_samples: int = 200
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 1.0
    seed: int = 42
    threads: int = 2


class ArrearsModel:
    """Gradient-boosted probability of arrears with monotone constraints and calibration.

    Classes are not re-weighted (``is_unbalance`` or ``scale_pos_weight`` would inflate the
    probabilities); the model minimises log-loss on the natural base rate, stops early on
    the validation set, and is then calibrated on that set.
    """

    def __init__(
        self,
        params: BoosterParams,
        calibration: str = "auto",
        monotone: bool = True,
        calibration_folds: int = 5,
        calibration_level: str = "long_run",
    ) -> None:
        self.params = params
        self.calibration = calibration  # auto: chosen by cross-validation (models.calibration)
        self.monotone = monotone
        self.calibration_folds = calibration_folds
        if calibration_level not in LEVELS:
            raise ValueError(f"calibration_level: one of {LEVELS}, not {calibration_level!r}")
        self.calibration_level = calibration_level

    def _lgb_params(self, spec: FeatureSpec) -> dict:
        p = self.params
        params = {
            "objective": "binary",
            "metric": ["binary_logloss", "auc"],
            "num_leaves": p.num_leaves,
            "learning_rate": p.learning_rate,
            "min_child_samples": p.min_child_samples,
            "feature_fraction": p.feature_fraction,
            "bagging_fraction": p.bagging_fraction,
            "bagging_freq": p.bagging_freq,
            "lambda_l2": p.lambda_l2,
            "seed": p.seed,
            "deterministic": True,
            "force_col_wise": True,
            "num_threads": p.threads,
            "verbose": -1,
        }
        if self.monotone and any(spec.constraints()):
            params["monotone_constraints"] = spec.constraints()
            params["monotone_constraints_method"] = "intermediate"
        return params

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        X_valid: pd.DataFrame,
        y_valid: np.ndarray,
        spec: FeatureSpec,
    ) -> ArrearsModel:
        """Fit on the training set, stop early and calibrate on the validation set."""
        self.spec_ = spec
        train = lgb.Dataset(X, label=y, categorical_feature=spec.categorical, free_raw_data=False)
        valid = lgb.Dataset(
            X_valid, label=y_valid, reference=train, categorical_feature=spec.categorical
        )
        self.evals_: dict = {}
        self.booster_ = lgb.train(
            self._lgb_params(spec),
            train,
            num_boost_round=self.params.n_estimators,
            valid_sets=[valid],
            valid_names=["valid"],
            callbacks=[
                lgb.early_stopping(
                    self.params.early_stopping_rounds, first_metric_only=True, verbose=False
                ),
                lgb.record_evaluation(self.evals_),
            ],
        )
        self.best_iteration_ = int(
            self.booster_.best_iteration or self.booster_.current_iteration()
        )
        long_run = float(np.concatenate([np.asarray(y), np.asarray(y_valid)]).mean())
        self._calibrate(self.predict_raw(X_valid), y_valid, long_run)
        return self

    def fit_cv(
        self, X: pd.DataFrame, y: np.ndarray, spec: FeatureSpec, folds: int = 5
    ) -> ArrearsModel:
        """Fit on every row: K-fold cross-validation (stratified, seeded) picks the number of
        rounds (the lowest mean held-out log-loss, ``lightgbm.cv``) and gives each row an
        out-of-fold score from the fold model that never saw it; the calibrator is fitted on
        those scores; the booster is then refitted on all rows with that number of rounds.

        ``cv_`` keeps the rounds, each fold's size and the out-of-fold ``raw`` scores and
        cross-fitted ``pd`` (for honest metrics when no test set is held out).
        """
        self.spec_ = spec
        y = np.asarray(y)
        splits = fold_splits(y, folds, self.params.seed)
        data = lgb.Dataset(X, label=y, categorical_feature=spec.categorical, free_raw_data=False)
        result = lgb.cv(
            self._lgb_params(spec),
            data,
            num_boost_round=self.params.n_estimators,
            folds=splits,
            callbacks=[
                lgb.early_stopping(
                    self.params.early_stopping_rounds, first_metric_only=True, verbose=False
                )
            ],
            return_cvbooster=True,
        )
        cvb = result["cvbooster"]
        rounds = int(cvb.best_iteration)
        oof = np.empty(len(y))
        for (_, held), booster in zip(splits, cvb.boosters, strict=True):
            oof[held] = booster.predict(X.iloc[held], num_iteration=rounds)
        self.evals_ = {"cv": {k: list(v) for k, v in result.items() if k != "cvbooster"}}
        full = lgb.Dataset(X, label=y, categorical_feature=spec.categorical, free_raw_data=False)
        self.booster_ = lgb.train(self._lgb_params(spec), full, num_boost_round=rounds)
        self.best_iteration_ = rounds
        report = self._calibrate(oof, y, float(y.mean()))  # one snapshot: no cycle to average
        self.cv_ = {"folds": folds, "rounds": rounds, "raw": oof, "pd": report["pd_cv"]}
        return self

    def _calibrate(self, raw: np.ndarray, y: np.ndarray, long_run: float) -> dict:
        """Fit the calibrator on held-out scores: the named method, or (``auto``) the one
        cross-validation chooses; then, with ``calibration_level: long_run``, shift its
        log-odds so the held-out rows' mean PD is ``long_run``, the arrears rate over every
        development row (``models.calibration.level_shift``). ``calibration_`` reports every
        candidate's held-out log-loss and ECE, the chosen map, the rates and the shift."""
        force = None if self.calibration == "auto" else self.calibration  # as asked, reported
        self.calibrator_, report = select(
            raw, y, METHODS, self.calibration_folds, self.params.seed, force
        )
        mapped = self.calibrator_.transform(raw)
        if self.calibration_level == "long_run":
            self.calibrator_.shift = level_shift(mapped, long_run)
            report["pd_cv"] = shifted(report["pd_cv"], self.calibrator_.shift)
        self.calibration_ = {k: v for k, v in report.items() if k != "pd_cv"}
        self.calibration_["level"] = {
            "anchor": self.calibration_level,
            "held_out_rate": float(np.mean(y)),
            "long_run_rate": long_run,
            "held_out_mean_pd_before": float(mapped.mean()),
            "held_out_mean_pd_after": float(self.calibrator_.transform(raw).mean()),
            "shift": self.calibrator_.shift,
        }
        return report

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        """Uncalibrated probability from the booster."""
        return self.booster_.predict(X, num_iteration=self.best_iteration_)

    def predict_margin(self, X: pd.DataFrame) -> np.ndarray:
        """Raw score (log-odds) of the booster."""
        return self.booster_.predict(X, num_iteration=self.best_iteration_, raw_score=True)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of arrears."""
        return self.calibrator_.transform(self.predict_raw(X))

    def predict_scores(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Raw score (log-odds) and calibrated probability from one pass of the booster,
        equal bit for bit to :meth:`predict_margin` and :meth:`predict_proba`.

        LightGBM's probability for the binary objective is ``1 / (1 + exp(-sigmoid * raw))``
        with the C library's ``exp``; ``math.exp`` is that function (NumPy's vectorised
        ``exp`` differs in the last bit on about 3 % of rows), so the logistic is taken row
        by row from the raw score instead of predicting twice. A booster of another
        objective or sigmoid is predicted twice.
        """
        margin = self.predict_margin(X)
        params = self.booster_.params
        if params.get("objective", "binary") != "binary" or float(params.get("sigmoid", 1.0)) != 1:
            return margin, self.predict_proba(X)
        raw = np.fromiter((1.0 / (1.0 + math.exp(-m)) for m in margin.tolist()), float, len(margin))
        return margin, self.calibrator_.transform(raw)

    def save(self, folder: Path) -> None:
        """``model.txt`` (LightGBM text), ``calibrator.json``, ``features.json``."""
        folder.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(folder / "model.txt"), num_iteration=self.best_iteration_)
        (folder / "calibrator.json").write_text(json.dumps(self.calibrator_.to_dict()))
        meta = {
            "spec": asdict(self.spec_),
            "best_iteration": self.best_iteration_,
            "params": asdict(self.params),
            "calibration": self.calibration,
            "calibration_chosen": self.calibrator_.method,
            "calibration_level": self.calibration_level,
            "monotone": self.monotone,
        }
        (folder / "features.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: Path) -> ArrearsModel:
        meta = json.loads((folder / "features.json").read_text())
        model = cls(
            BoosterParams(**meta["params"]),
            meta["calibration"],
            meta["monotone"],
            calibration_level=meta.get("calibration_level", "held_out"),  # before 2026-12-03
        )
        model.spec_ = FeatureSpec(**meta["spec"])
        model.booster_ = lgb.Booster(model_file=str(folder / "model.txt"))
        model.best_iteration_ = model.booster_.current_iteration()
        model.calibrator_ = Calibrator.from_dict(
            json.loads((folder / "calibrator.json").read_text())
        )
        return model
