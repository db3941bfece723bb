"""Writing at the edge: Parquet and JSON files written atomically (temporary file, rename)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def write_parquet(df: pd.DataFrame, path: Path, schema: pa.Schema | None = None) -> None:
    """Write a frame as Parquet atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(df, preserve_index=False)
    if schema is not None:
        fields = [
            schema.field(n) if n in schema.names else table.schema.field(n)
            for n in table.column_names
        ]
        table = table.cast(pa.schema(fields))
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def write_json(data: dict, path: Path) -> None:
    """Write JSON atomically, pretty-printed and key-sorted for readable diffs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def replace_folder(staged: Path, dest: Path) -> None:
    """Put the complete folder ``staged`` where ``dest`` is, as one step for a reader: the
    old ``dest`` (if any) is moved aside, ``staged`` renamed into place, the old removed. A
    failure before the rename leaves the old ``dest`` as it was."""
    import shutil

    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    if dest.exists():
        os.replace(dest, old)
    try:
        os.replace(staged, dest)
    except OSError:
        if old.exists():
            os.replace(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)
