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


#: Encodings a CSV that is not UTF-8 is tried in, to name the one to set (validate.encoding).
_LIKELY_ENCODINGS = ("gb18030", "big5", "cp1252")


def read_raw_table(folder: Path, name: str, encoding: str = "utf-8") -> RawRead:
    """Read one raw table with its 1-based source row numbers.

    CSV is read as text (every value is parsed later, so a bad value is quarantined rather
    than failing the read); only an empty cell is missing (text such as ``NA`` or ``n/a``
    stays text and is judged by the column's type); a UTF-8 byte-order mark (Excel's "CSV
    UTF-8") is dropped; lines with the wrong number of fields are returned as malformed.
    ``encoding`` is the CSV's (``validate.encoding``: e.g. ``gb18030`` for Chinese Excel).
    """
    path = find_raw_file(Path(folder), name)
    if path.stat().st_size == 0:
        raise ContractError(f"{path}: the file is empty")
    if path.suffix == ".csv":
        return _read_csv(path, encoding)
    return _read_parquet(path)


def _check_encoding(path: Path, encoding: str) -> None:
    """Decode the whole file in blocks; a file that is not in ``encoding`` stops with the
    byte where it fails and, when another common encoding reads it, that encoding's name."""
    import codecs

    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                at = offset + exc.start
                hint = _likely_encoding(path)
                raise ContractError(
                    f"{path}: not {encoding} text (byte {at}: {exc.reason})"
                    + (
                        f"; it reads as {hint}: save it as CSV UTF-8, or set "
                        f"validate.encoding: {hint}"
                        if hint
                        else "; save it as CSV UTF-8 or set validate.encoding"
                    )
                ) from exc
            offset += len(block)


def _likely_encoding(path: Path) -> str | None:
    data = path.read_bytes()[: 1 << 22]
    for name in _LIKELY_ENCODINGS:
        try:
            data.decode(name)
        except UnicodeDecodeError:
            continue
        return name
    return None


def _csv_header(path: Path, encoding: str = "utf-8") -> list[str]:
    codec = "utf-8-sig" if encoding.replace("_", "-").lower() in ("utf-8", "utf8") else encoding
    try:
        with path.open(newline="", encoding=codec) as fh:
            header = next(csv.reader(fh), [])
    except LookupError as exc:
        raise ContractError(f"validate.encoding {encoding!r}: no such encoding") from exc
    except UnicodeDecodeError:
        _check_encoding(path, encoding)
        raise
    header = [h.strip() for h in header]
    if not any(header):
        raise ContractError(f"{path}: no header line (the first line names the columns)")
    return header


def _read_csv(path: Path, encoding: str = "utf-8") -> RawRead:
    header = _csv_header(path, encoding)
    seen: set[str] = set()
    for h in header:
        if h in seen:
            raise ContractError(f"{path}: column {h!r} appears more than once in the header")
        seen.add(h)
    table, invalid = _arrow_csv(path, header, use_threads=True, encoding=encoding)
    if any(r.number is None for r in invalid):
        table, invalid = _arrow_csv(path, header, use_threads=False, encoding=encoding)
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


def _arrow_csv(path: Path, header: list[str], use_threads: bool, encoding: str = "utf-8"):
    invalid: list = []

    def handler(row):
        invalid.append(row)
        return "skip"

    try:
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(
                column_names=header, skip_rows=1, use_threads=use_threads, encoding=encoding
            ),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=handler),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                strings_can_be_null=True,
                null_values=[""],  # only an empty cell is missing; "NA" is text
            ),
        )
    except UnicodeDecodeError:
        _check_encoding(path, encoding)
        raise
    except pa.ArrowInvalid as exc:
        if "invalid UTF8" in str(exc) or "UTF-8" in str(exc):
            _check_encoding(path, encoding)
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
