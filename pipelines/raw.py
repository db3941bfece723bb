"""Reading a raw-data folder: find each table's file and read it as text, with row numbers."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from features.contract import ContractError
from features.validation import MalformedRow

log = logging.getLogger(__name__)


@dataclass
class RawRead:
    """A raw table as read from disk, before any parsing."""

    frame: pd.DataFrame
    source_rows: np.ndarray
    source_file: str
    malformed: list[MalformedRow] = field(default_factory=list)


def find_raw_file(folder: Path, name: str) -> Path:
    """The one ``NAME.csv`` or ``NAME.parquet`` file of a raw table in ``folder``."""
    if not folder.is_dir():
        raise ContractError(f"raw-data folder {folder} does not exist")
    found = [
        folder / f"{name}.{ext}"
        for ext in ("csv", "parquet")
        if (folder / f"{name}.{ext}").exists()
    ]
    if not found:
        raise ContractError(
            f"{folder}: table {name!r} missing (expected {name}.csv or {name}.parquet)"
        )
    if len(found) > 1:
        raise ContractError(
            f"{folder}: both {name}.csv and {name}.parquet exist; "
            "keep one so the input is unambiguous"
        )
    return found[0]


def read_raw_table(folder: Path, name: str) -> RawRead:
    """Read one raw table with its 1-based source row numbers.

    CSV is read as text (every value is parsed later, so a bad value is quarantined rather
    than failing the read); lines with the wrong number of fields are returned as malformed.
    """
    path = find_raw_file(Path(folder), name)
    if path.stat().st_size == 0:
        raise ContractError(f"{path}: the file is empty")
    if path.suffix == ".csv":
        return _read_csv(path)
    return _read_parquet(path)


def _csv_header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), [])
    except UnicodeDecodeError as exc:
        raise ContractError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    header = [h.strip() for h in header]
    if not any(header):
        raise ContractError(f"{path}: no header line (the first line names the columns)")
    return header


def _read_csv(path: Path) -> RawRead:
    header = _csv_header(path)
    seen: set[str] = set()
    for h in header:
        if h in seen:
            raise ContractError(f"{path}: column {h!r} appears more than once in the header")
        seen.add(h)
    table, invalid = _arrow_csv(path, header, use_threads=True)
    if any(r.number is None for r in invalid):
        table, invalid = _arrow_csv(path, header, use_threads=False)
    bad_rows = sorted((r.number - 1, r) for r in invalid)
    malformed = [
        MalformedRow(
            n, f"expected {r.expected_columns} fields, found {r.actual_columns}: {r.text[:200]!r}"
        )
        for n, r in bad_rows
    ]
    n_total = table.num_rows + len(malformed)
    keep = np.ones(n_total + 1, dtype=bool)
    keep[0] = False
    keep[[n for n, _ in bad_rows]] = False
    source_rows = np.flatnonzero(keep)
    frame = table.to_pandas()
    return RawRead(frame, source_rows, path.name, malformed)


def _arrow_csv(path: Path, header: list[str], use_threads: bool):
    invalid: list = []

    def handler(row):
        invalid.append(row)
        return "skip"

    try:
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(
                column_names=header, skip_rows=1, use_threads=use_threads, encoding="utf8"
            ),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=handler),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=True
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise ContractError(f"{path}: cannot be read as CSV: {exc}") from exc
    return table, invalid


def _read_parquet(path: Path) -> RawRead:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ContractError(f"{path}: cannot be read as Parquet: {exc}") from exc
    names = table.column_names
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ContractError(f"{path}: column {dup!r} appears more than once")
    frame = table.to_pandas(date_as_object=False)
    return RawRead(frame, np.arange(1, len(frame) + 1), path.name)
