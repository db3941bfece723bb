"""``gridscore tune``: search the arrears model's settings by held-out log-loss in a budget.

Reads the labelled feature table as the train stage does, splits it the same way and
searches ``models.tuning.SPACE`` (leaves, minimum child samples, learning rate, L2,
feature fraction): on a random split by ``split.folds``-fold cross-validation of the
training rows, out of time on the validation snapshots (the test set is never looked at).
Writes the result (JSON: the best settings, the current ones, every trial) before it logs
anything, then logs to MLflow one ``tune`` run with a nested run per trial. Not a DVC stage:
the settings it finds go into params.yaml, or into an experiment
(``dvc exp run -S train.num_leaves=...``), which the train stage then judges on the test set.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from models.arrears import to_matrix
from models.calibration import fold_splits
from models.tuning import Result, search
from pipelines.config import Params
from pipelines.io import write_json
from pipelines.tracking import Tracker
from pipelines.train import booster_params, feature_spec, load_table, split_roles

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Paths:
    features: Path
    out: Path  # the result, JSON
    labels: Path | None = None


def splits_of(roles, y: np.ndarray, kind: str, folds: int, seed: int):
    """The rows searched on and the held-out splits over them (indices into those rows)."""
    if kind == "random":
        rows = np.flatnonzero(roles == "train")
        return rows, fold_splits(y[rows], folds, seed)
    rows = np.flatnonzero(np.isin(roles, ["train", "valid"]))
    valid = roles[rows] == "valid"
    return rows, [(np.flatnonzero(~valid), np.flatnonzero(valid))]


def run(params: Params, paths: Paths, trials: int, timeout: float | None) -> dict:
    """Run the search, write and log the result; returns it (as written)."""
    tracker = Tracker.of(params)  # a dead tracking server stops the search before it starts
    t = params.train
    table = load_table(paths.features, paths.labels, t.target)
    roles = split_roles(table, t, params.label.horizon_months).to_numpy()
    spec = feature_spec(table, t)
    y = table[t.target].to_numpy()
    rows, splits = splits_of(roles, y, t.split.kind, t.split.folds, t.seed)
    X = to_matrix(table.iloc[rows].reset_index(drop=True), spec)
    held_out = "cross-validation" if t.split.kind == "random" else "validation snapshots"
    log.info("tuning on %d rows (%s), %d trials at most", len(rows), held_out, trials)
    result = search(X, y[rows], spec, splits, booster_params(t), trials, timeout, t.monotone)
    summary = _summary(result, held_out, len(rows))
    write_json(summary, paths.out)
    log.info(
        "best held-out log-loss %.5f against %.5f now (%d trials, stopped by %s): %s",
        result.best.log_loss,
        result.current.log_loss,
        len(result.trials),
        result.stopped_by,
        summary["dvc_exp_run"],
    )
    if tracker is not None:
        _log(tracker, result)
    return summary


def _summary(result: Result, held_out: str, rows: int) -> dict:
    best = result.best.params
    sets = " ".join(f"-S train.{k}={_short(v)}" for k, v in best.items())
    return {
        "held_out": held_out,
        "rows": rows,
        "trials": len(result.trials),
        "stopped_by": result.stopped_by,
        "current": asdict(result.current),
        "best": asdict(result.best),
        "log_loss_gain": result.gain,
        "dvc_exp_run": f"dvc exp run {sets} -n tuned",
        "all": [asdict(t) for t in result.trials],
    }


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _log(tracker: Tracker, result: Result) -> None:
    import mlflow

    metrics = {
        "best_log_loss": result.best.log_loss,
        "current_log_loss": result.current.log_loss,
        "log_loss_gain": result.gain,
        "trials": len(result.trials),
    }
    best = {f"best.{k}": v for k, v in result.best.params.items()}
    with tracker.stage_run("tune", best, metrics) as parent:
        for t in result.trials:
            with mlflow.start_run(
                run_name=f"trial {t.number}",
                nested=True,
                experiment_id=parent.info.experiment_id,
                tags={"gridscore.stage": "tune.trial"},
            ):
                mlflow.log_params(t.params)
                mlflow.log_metrics(
                    {"log_loss": t.log_loss, "rounds": t.rounds, "seconds": t.seconds}
                )
