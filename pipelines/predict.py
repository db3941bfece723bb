"""``gridscore predict``: any feature table scored by the arrears model, with or without MLflow.

Reads a table under the feature-table contract (Parquet or CSV; docs/arrears_model.md),
loads the model from the train stage's folder or the registry (``models:/NAME@ALIAS``,
``models:/NAME/VERSION``; the only step that needs tracking), and writes one row per input
row (``models.predict.predict``: PD, grade, raw score and, on request, reasons) to Parquet
or CSV, atomically. Not a DVC stage: the on-demand path for a table of one's own.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from features.errors import GridscoreError, InputMissing
from models.arrears import ArrearsModel
from models.predict import predict
from pipelines.config import Params
from pipelines.decision import arrears_folder
from pipelines.io import readable, write_parquet
from pipelines.tracking import Tracker

log = logging.getLogger(__name__)


class PredictError(GridscoreError):
    """The table or the output cannot be read or written as asked."""


@dataclass(frozen=True)
class Paths:
    features: Path  # .parquet or .csv
    model: str  # a folder, or models:/NAME@ALIAS
    out: Path  # .parquet or .csv


def read_table(path: Path) -> pd.DataFrame:
    """A feature table from Parquet or CSV (codes read as they are; to_matrix reconciles)."""
    if not path.exists():
        raise InputMissing(f"{path}: no such feature table")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        readable(path)
        return pq.read_table(path).to_pandas(date_as_object=False)
    if suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False, na_values=[""], low_memory=False)
    raise PredictError(f"{path}: give a .parquet or .csv feature table")


def run(params: Params, paths: Paths, reasons: bool = False) -> int:
    """Score the table and write it; returns the number of rows scored."""
    suffix = paths.out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise PredictError(f"{paths.out}: the output must end in .parquet or .csv")
    table = read_table(paths.features)
    tracker = Tracker(params.tracking.experiment) if paths.model.startswith("models:/") else None
    with tempfile.TemporaryDirectory(prefix="gridscore-predict-") as workdir:
        folder, version = arrears_folder(paths.model, Path(workdir), tracker)
        model = ArrearsModel.load(folder)
    scored = predict(
        model,
        table,
        params.grades.names,
        params.grades.upper_pd,
        params.explain.top_n if reasons else 0,
        params.explain.min_contribution,
    ).assign(arrears_model_version=version)
    _write(scored, paths.out)
    log.info("scored %d rows with %s into %s", len(scored), version, paths.out)
    return len(scored)


def _write(frame: pd.DataFrame, path: Path) -> None:
    if path.suffix.lower() == ".parquet":
        write_parquet(frame, path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
