"""The ``features`` stage: point-in-time features and labels for every snapshot, in one pass.

Streams the validated tables in customer order, a chunk of customers at a time, so memory
stays bounded whatever the size of the base. Inputs not in customer order are first sorted
out of core by DuckDB (memory limit and threads from params). Writes:

- ``features.parquet``: one row per active customer and snapshot (``docs/features.md``);
- ``labels.parquet``: ``customer_id``, ``as_of``, ``in_arrears`` (empty when the horizon
  runs past the data), for training and evaluation only;
- a JSON summary (rows and label rate per snapshot).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pandera.pandas as pa_schema
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from features.catalog import COMPUTED, FEATURES, STATIC
from features.engine import Snapshots, features_of, labels_of, prepare
from pipelines.config import FeatureParams, LabelParams, Tariffs
from pipelines.io import write_json

log = logging.getLogger(__name__)

_ARROW_KIND = {"numeric": pa.float64(), "bool": pa.bool_(), "categorical": pa.string()}
FEATURE_SCHEMA = pa.schema(
    [("customer_id", pa.string()), ("as_of", pa.date32())]
    + [(f.name, _ARROW_KIND[f.kind]) for f in FEATURES if f.name in COMPUTED]
    + [(f.name, _ARROW_KIND[f.kind]) for f in FEATURES if f.name in STATIC]
)
LABEL_SCHEMA = pa.schema(
    [("customer_id", pa.string()), ("as_of", pa.date32()), ("in_arrears", pa.int8())]
)

#: The feature table as it leaves the stage (and enters training and scoring).
FEATURE_TABLE = pa_schema.DataFrameSchema(
    {
        "customer_id": pa_schema.Column("str", nullable=False),
        "as_of": pa_schema.Column("datetime64[us]", nullable=False),
        "months_of_history": pa_schema.Column(float, pa_schema.Check.ge(0)),
        "dpd": pa_schema.Column(float, pa_schema.Check.ge(0)),
        "overdue_arrears": pa_schema.Column(float, pa_schema.Check.ge(0)),
        **{
            n: pa_schema.Column(float, nullable=True)
            for n in COMPUTED
            if n not in ("months_of_history", "dpd", "overdue_arrears")
        },
        "tariff_class": pa_schema.Column("str", nullable=False),
    },
    unique=["customer_id", "as_of"],
    strict=False,
    name="feature table",
)

_COLUMNS = {
    "customers": None,
    "bills": ["customer_id", "period", "kwh", "amount", "issued_on", "due_date"],
    "payments": ["customer_id", "paid_on", "amount"],
}


def _connect(params: FeatureParams, workdir: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{params.memory_limit}'")
    con.execute(f"SET threads = {params.threads}")
    con.execute(f"SET temp_directory = '{workdir}'")
    con.execute("SET preserve_insertion_order = false")
    return con


class _NotInOrder(Exception):
    """An input file turned out not to be in customer order while streaming it."""


def _sort(con, path: Path, workdir: Path) -> Path:
    """A copy of the file in customer order, sorted out of core by DuckDB."""
    out = workdir / path.name
    log.info("%s is not in customer order: sorting it out of core with DuckDB", path)
    # Ties broken by the row's place in the file: a stable sort, so reruns give the same bytes.
    query = (
        f"SELECT * EXCLUDE (file_row_number) FROM read_parquet('{path}', file_row_number = true) "
        "ORDER BY customer_id, file_row_number"
    )
    con.execute(f"COPY ({query}) TO '{out}' (FORMAT parquet)")
    return out


class _Stream:
    """Reads a Parquet file in customer order, handing out the rows up to a customer id."""

    def __init__(self, path: Path, columns: list[str] | None):
        self._schema = pq.read_schema(path)
        # pre_buffer off: with it, pyarrow keeps what it read ahead, and memory grows with the file
        self._batches = pq.ParquetFile(path, pre_buffer=False).iter_batches(
            batch_size=500_000, columns=columns
        )
        self._columns = columns
        self._buffer: pa.Table | None = None
        self._last: str | None = None
        self._path = path

    def _checked(self, table: pa.Table) -> pa.Table:
        """The batch, after checking it continues the file's customer order."""
        ids = table["customer_id"]
        n = len(ids)
        if n == 0:
            return table
        in_order = n < 2 or pc.all(pc.less_equal(ids.slice(0, n - 1), ids.slice(1))).as_py()
        if not in_order or (self._last is not None and ids[0].as_py() < self._last):
            raise _NotInOrder(str(self._path))
        self._last = ids[n - 1].as_py()
        return table

    def until(self, last_id: str) -> pa.Table:
        parts: list[pa.Table] = []
        while True:
            if self._buffer is None:
                batch = next(self._batches, None)
                if batch is None:
                    break
                self._buffer = self._checked(pa.Table.from_batches([batch]))
            n = pc.sum(pc.less_equal(self._buffer["customer_id"], last_id)).as_py() or 0
            if n < self._buffer.num_rows:
                parts.append(self._buffer.slice(0, n))
                self._buffer = self._buffer.slice(n)
                break
            parts.append(self._buffer)
            self._buffer = None
        if not parts:
            names = self._columns or self._schema.names
            return pa.schema([self._schema.field(n) for n in names]).empty_table()
        return pa.concat_tables(parts)


def _frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(date_as_object=False)


def _customer_chunks(path: Path, size: int) -> Iterator[pa.Table]:
    """The customers table, ``size`` rows at a time (the last fewer), checked to be in strict
    customer order as it is read: the table is never held whole."""
    buffer: list[pa.Table] = []
    held = 0
    last: str | None = None
    for batch in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=min(size, 65_536)):
        ids = batch.column("customer_id")
        n = len(ids)
        if n == 0:
            continue
        ordered = n < 2 or pc.all(pc.less(ids.slice(0, n - 1), ids.slice(1))).as_py()
        if not ordered or (last is not None and ids[0].as_py() <= last):
            raise _NotInOrder(str(path))
        last = ids[n - 1].as_py()
        buffer.append(pa.Table.from_batches([batch]))
        held += n
        while held >= size:
            whole = pa.concat_tables(buffer)
            yield whole.slice(0, size)
            buffer, held = [whole.slice(size)], held - size
    if held:
        yield pa.concat_tables(buffer)


def _chunks(inputs: dict[str, Path], size: int) -> Iterator[tuple]:
    """(customers, bills, payments) frames of ``size`` customers at a time, in customer order.

    Raises:
        _NotInOrder: An input turned out not to be in customer order (sort it and retry).
    """
    streams = {n: _Stream(inputs[n], _COLUMNS[n]) for n in ("bills", "payments")}
    for chunk in _customer_chunks(inputs["customers"], size):
        last = chunk["customer_id"][-1].as_py()
        yield (
            _frame(chunk),
            _frame(streams["bills"].until(last)),
            _frame(streams["payments"].until(last)),
        )


def engine_settings(params: FeatureParams, tariffs: Tariffs) -> tuple[dict[str, float], int]:
    """What the feature engine takes from params: supply cost per tariff class, grace days."""
    costs = {c: t.supply_cost_per_kwh for c, t in tariffs.by_class().items()}
    return costs, int(round(params.disconnected_grace_months * 30.4375))


def customer_count(path: Path) -> int:
    return pq.read_metadata(path).num_rows


def data_end(con, inputs: dict[str, Path]) -> pd.Timestamp:
    """The latest day with a bill issued or a payment made."""
    row = con.execute(
        f"SELECT greatest((SELECT max(issued_on) FROM read_parquet('{inputs['bills']}')),"
        f" (SELECT max(paid_on) FROM read_parquet('{inputs['payments']}')))"
    ).fetchone()
    if row[0] is None:
        raise ValueError("no bills or payments: the data has no end date")
    return pd.Timestamp(row[0])


def main(
    validated: Path,
    out: Path,
    summary_path: Path,
    params: FeatureParams,
    label: LabelParams,
    tariffs: Tariffs,
) -> dict:
    """Run the stage; see the module docstring."""
    started = time.perf_counter()
    snaps = Snapshots(tuple(pd.Timestamp(d) for d in params.snapshots.as_of()))
    costs, grace = engine_settings(params, tariffs)
    workdir = Path(tempfile.mkdtemp(prefix="gridscore-features-"))
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        con = _connect(params, workdir)
        inputs = {n: validated / f"{n}.parquet" for n in _COLUMNS}
        end = pd.Timestamp(label.data_end) if label.data_end else data_end(con, inputs)
        n = customer_count(inputs["customers"])
        size = max(100, min(params.chunk_customers, params.chunk_rows // len(snaps.as_of)))
        try:  # most inputs are in customer order already: find out while streaming them
            counts = _run(n, inputs, size, snaps, costs, grace, label, end, staging)
        except _NotInOrder:
            inputs.update({t: _sort(con, inputs[t], workdir) for t in _COLUMNS})
            counts = _run(n, inputs, size, snaps, costs, grace, label, end, staging)
        con.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)
    summary = _summary(counts, snaps, end, label)
    write_json(summary, summary_path)
    seconds = time.perf_counter() - started
    log.info(
        "features: %d rows for %d snapshots in %.1f s", summary["rows"], len(snaps.as_of), seconds
    )
    return summary


def _run(n_customers, inputs, size, snaps, costs, grace, label, end, staging) -> pd.DataFrame:
    """Stream the chunks through the engine into the two Parquet files; counts per snapshot."""
    text = [f.name for f in FEATURE_SCHEMA if pa.types.is_string(f.type)]
    counts = []
    n_chunks = -(-n_customers // size)
    chunks = tqdm(
        _chunks(inputs, size),
        total=n_chunks,
        desc="features",
        unit="chunk",
        disable=None,
    )
    with (
        pq.ParquetWriter(
            staging / "features.parquet", FEATURE_SCHEMA, compression="snappy", use_dictionary=text
        ) as fw,
        pq.ParquetWriter(staging / "labels.parquet", LABEL_SCHEMA, compression="zstd") as lw,
    ):
        for cust, bills, pays in chunks:
            chunk = prepare(cust, bills, pays)
            feats = FEATURE_TABLE.validate(features_of(chunk, snaps, costs, grace))
            labels = labels_of(
                chunk,
                snaps,
                label.horizon_months,
                label.dpd_threshold,
                label.min_amount,
                end,
                keys=feats,
            )
            fw.write_table(pa.Table.from_pandas(feats, schema=FEATURE_SCHEMA, preserve_index=False))
            lw.write_table(pa.Table.from_pandas(labels, schema=LABEL_SCHEMA, preserve_index=False))
            counts.append(labels.groupby("as_of")["in_arrears"].agg(["size", "count", "sum"]))
    if not counts:
        raise ValueError("no customers in the validated customers table")
    return pd.concat(counts).groupby(level=0).sum()


def _summary(counts: pd.DataFrame, snaps: Snapshots, end: pd.Timestamp, label: LabelParams) -> dict:
    per = {}
    for as_of in snaps.as_of:
        rows, labelled, positive = counts.loc[as_of] if as_of in counts.index else (0, 0, 0)
        per[str(as_of.date())] = {
            "rows": int(rows),
            "labelled": int(labelled),
            "arrears_rate": round(float(positive) / labelled, 6) if labelled else None,
        }
    return {
        "rows": int(counts["size"].sum()),
        "snapshots": per,
        "data_end": str(end.date()),
        "label": label.model_dump(mode="json"),
    }
