"""Search the few LightGBM settings that matter, by held-out log-loss, within a time budget.

The objective is the one the model is trained on: the mean held-out log-loss at the
early-stopped number of rounds (``lightgbm.cv`` over the given splits: the K folds of a
random split, or the one train/validation pair of an out-of-time split), with the model's
monotone constraints. The sampler is Optuna's TPE, seeded; the first trial is always the
current settings, so the search reports what it gains over them. Pure: arrays in, a
result out; the edge (``pipelines/tune.py``) reads, writes and logs.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.arrears import ArrearsModel, BoosterParams, FeatureSpec

#: The settings searched and their ranges (all on a log scale but the fraction).
SPACE = {
    "num_leaves": (4, 64),
    "min_child_samples": (10, 1000),
    "learning_rate": (0.01, 0.2),
    "lambda_l2": (1e-3, 100.0),
    "feature_fraction": (0.5, 1.0),
}


@dataclass(frozen=True)
class Trial:
    number: int
    params: dict
    log_loss: float
    rounds: int
    seconds: float


@dataclass(frozen=True)
class Result:
    best: Trial
    current: Trial  # trial 0: the settings the search started from
    trials: list[Trial]
    stopped_by: str  # "trials" or "timeout"

    @property
    def gain(self) -> float:
        """How much the best settings lower the held-out log-loss against the current ones."""
        return self.current.log_loss - self.best.log_loss


def held_out_log_loss(
    params: BoosterParams,
    X: pd.DataFrame,
    y: np.ndarray,
    spec: FeatureSpec,
    splits: list[tuple[np.ndarray, np.ndarray]],
    monotone: bool = True,
) -> tuple[float, int]:
    """Mean held-out log-loss over ``splits`` at the early-stopped round, and that round."""
    data = lgb.Dataset(X, label=y, categorical_feature=spec.categorical, free_raw_data=False)
    result = lgb.cv(
        ArrearsModel(params, monotone=monotone)._lgb_params(spec),
        data,
        num_boost_round=params.n_estimators,
        folds=splits,
        callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)],
    )
    losses = result["valid binary_logloss-mean"]
    best = int(np.argmin(losses))
    return float(losses[best]), best + 1


def search(
    X: pd.DataFrame,
    y: np.ndarray,
    spec: FeatureSpec,
    splits: list[tuple[np.ndarray, np.ndarray]],
    current: BoosterParams,
    trials: int,
    timeout: float | None,
    monotone: bool = True,
) -> Result:
    """Run the search: at most ``trials`` trials, stopping after ``timeout`` seconds (a trial
    under way finishes). Seeded by ``current.seed``; with a timeout the number of trials, and
    so the result, depends on the machine's speed."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    done: list[Trial] = []

    def objective(trial: optuna.Trial) -> float:
        chosen = {
            "num_leaves": trial.suggest_int("num_leaves", *SPACE["num_leaves"], log=True),
            "min_child_samples": trial.suggest_int(
                "min_child_samples", *SPACE["min_child_samples"], log=True
            ),
            "learning_rate": trial.suggest_float(
                "learning_rate", *SPACE["learning_rate"], log=True
            ),
            "lambda_l2": trial.suggest_float("lambda_l2", *SPACE["lambda_l2"], log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", *SPACE["feature_fraction"]),
        }
        start = time.perf_counter()
        loss, rounds = held_out_log_loss(replace(current, **chosen), X, y, spec, splits, monotone)
        done.append(Trial(trial.number, chosen, loss, rounds, time.perf_counter() - start))
        return loss

    study = optuna.create_study(
        direction="minimize", sampler=optuna.samplers.TPESampler(seed=current.seed)
    )
    start_from = {k: _clip(k, v) for k, v in asdict(current).items() if k in SPACE}
    study.enqueue_trial(start_from)
    study.optimize(objective, n_trials=trials, timeout=timeout)
    best = min(done, key=lambda t: t.log_loss)
    stopped = "trials" if len(done) >= trials else "timeout"
    return Result(best, done[0], done, stopped)


def _clip(name: str, value: float) -> float:
    lo, hi = SPACE[name]
    return type(value)(min(max(value, lo), hi))
