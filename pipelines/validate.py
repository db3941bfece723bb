"""The ``validate`` stage: check a raw-data folder against the contract, quarantine bad rows.

Writes ``out/<table>.parquet`` (valid rows, canonical types), ``quarantine/<table>.parquet``
(rejected rows with source row number and reason) and a JSON summary in which, for every
table, rows_in == rows_passed + rows_quarantined; logs the counts to MLflow.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.contract import TABLE_NAMES, TABLES, arrow_schema, validated_schema
from features.errors import GridscoreError
from features.validation import QUARANTINE_COLUMNS, TableResult, validate_table
from pipelines.config import Params, ValidateParams
from pipelines.io import replace_folder, write_json, write_parquet
from pipelines.raw import read_raw_table
from pipelines.stage import guarded
from pipelines.tracking import Tracker

log = logging.getLogger(__name__)


class QuarantineLimitError(GridscoreError):
    """Too large a share of a table was quarantined for the run to go on."""


@dataclass(frozen=True)
class Paths:
    raw: Path
    out: Path
    quarantine: Path
    summary: Path


def run(params: Params, paths: Paths) -> dict:
    """Run the stage; see the module docstring. Returns the summary. One run at a time
    holds ``paths.out`` (``pipelines.stage.guarded``)."""
    return guarded(params, paths.out, [paths.raw], lambda: _stage(params, paths))


def _stage(params: Params, paths: Paths) -> dict:
    summary = validate_raw(paths.raw, paths.out, paths.quarantine, paths.summary, params)
    tracker = Tracker.of(params)
    if tracker is not None:
        run_params = {
            "raw": str(paths.raw),
            "max_quarantine_share": params.validate_.max_quarantine_share,
        }
        with tracker.stage_run("validate", run_params, metrics(summary), [paths.raw]):
            tracker.log_files([paths.summary])
    return summary


def validate_folder(raw: Path, params: ValidateParams | None = None) -> dict[str, TableResult]:
    """Validate the three raw tables of a folder; customers first, as the others refer to it
    (and bounds the kWh of their bills by their contract capacity)."""
    v = params or ValidateParams(max_quarantine_share=1.0)
    results: dict[str, TableResult] = {}
    customers_valid = customers_seen = capacity = None
    for name in TABLE_NAMES:
        read = read_raw_table(raw, name, v.encoding)
        log.info(
            "%s: %d rows read from %s",
            name,
            len(read.frame) + len(read.malformed),
            read.source_file,
        )
        result = validate_table(
            TABLES[name],
            read.frame,
            read.source_rows,
            read.source_file,
            customers_valid=customers_valid,
            customers_seen=customers_seen,
            malformed=read.malformed,
            capacity_kva=capacity if name == "bills" else None,
            max_kwh=v.max_kwh_per_bill if name == "bills" else None,
        )
        if name == "customers":
            customers_valid = pd.Index(result.valid["customer_id"])
            customers_seen = pd.Index(read.frame["customer_id"].astype("str").str.strip())
            capacity = result.valid.set_index("customer_id")["contract_capacity_kva"]
        results[name] = result
        log.info(
            "%s: %d passed, %d quarantined %s",
            name,
            len(result.valid),
            result.rows_quarantined,
            result.by_reason or "",
        )
    return results


def summarise(results: dict[str, TableResult], max_share: float) -> dict:
    """The JSON summary of a validation run."""
    tables = {name: r.summary() for name, r in results.items()}
    over = sorted(n for n, r in results.items() if r.quarantine_share > max_share)
    return {
        "tables": tables,
        "max_quarantine_share": max_share,
        "passed": not over,
        "over_limit": over,
    }


def validate_raw(
    raw: Path, out: Path, quarantine: Path, summary_path: Path, params: Params
) -> dict:
    """Validate a raw folder into ``out`` and ``quarantine``; the summary is returned too.

    Raises:
        ContractError: A file cannot be used at all.
        QuarantineLimitError: A table's quarantined share is above ``max_share``; the
            quarantine tables and the summary are written first, the valid tables are not.
    """
    max_share = params.validate_.max_quarantine_share
    results = validate_folder(raw, params.validate_)
    for name, result in results.items():
        write_parquet(_quarantine_frame(result), quarantine / f"{name}.parquet")
    summary = summarise(results, max_share)
    write_json(summary, summary_path)
    if not summary["passed"]:
        details = ", ".join(
            f"{n}: {results[n].rows_quarantined} of {results[n].rows_in} rows "
            f"({results[n].quarantine_share:.1%})"
            for n in summary["over_limit"]
        )
        raise QuarantineLimitError(
            f"too many rows quarantined ({details}; limit {max_share:.1%} from "
            f"validate.max_quarantine_share); see {quarantine} and {summary_path}"
        )
    checked = {}
    for name, result in results.items():  # every table checked before any is written
        present = [c for c in result.valid.columns if c in TABLES[name].column_names]
        checked[name] = (validated_schema(name, present).validate(result.valid), present)
    staged = out.with_name(f".{out.name}.staged-{os.getpid()}")
    shutil.rmtree(staged, ignore_errors=True)
    try:
        for name, (frame, present) in checked.items():
            write_parquet(frame, staged / f"{name}.parquet", arrow_schema(name, present))
        replace_folder(staged, out)  # all three tables or, on failure, the previous ones
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return summary


def _quarantine_frame(result: TableResult) -> pd.DataFrame:
    if len(result.quarantine):
        return result.quarantine
    return pd.DataFrame(
        {c: pd.Series(dtype="int64" if c == "source_row" else "str") for c in QUARANTINE_COLUMNS}
    )


def metrics(summary: dict) -> dict[str, float]:
    """Flat metrics for MLflow from the summary."""
    flat: dict[str, float] = {}
    for name, t in summary["tables"].items():
        for key in ("rows_in", "rows_passed", "rows_quarantined", "quarantine_share"):
            flat[f"{name}_{key}"] = float(t[key])
    return flat
