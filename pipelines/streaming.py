"""Reading the validated tables in customer order, a chunk of customers at a time.

The features and score stages (and the pyfunc's input example) stream the three validated
tables side by side: each chunk holds some customers with all their bills and payments, so
memory is bounded by the chunk, not by the base. Order is checked while reading; an input
found out of order is sorted out of core by DuckDB and the pass is run again
(:func:`in_customer_order`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features import completeness
from features.catalog import DAYS_PER_MONTH
from features.errors import GridscoreError, InputMissing
from pipelines.config import FeatureParams, Params

log = logging.getLogger(__name__)

TABLES = ("customers", "bills", "payments")
#: The columns each table is read with (None: all of them).
COLUMNS: dict[str, list[str] | None] = {
    "customers": None,
    "bills": ["customer_id", "period", "kwh", "amount", "issued_on", "due_date"],
    "payments": ["customer_id", "paid_on", "amount"],
}
_BATCH_ROWS = 500_000
T = TypeVar("T")


class NotInOrder(Exception):
    """An input file turned out not to be in customer order while streaming it (internal:
    :func:`in_customer_order` catches it, sorts the inputs and reads them again)."""


def inputs(validated: Path) -> dict[str, Path]:
    """The three validated tables of a folder.

    Raises:
        InputMissing: One is not there.
    """
    found = {t: Path(validated) / f"{t}.parquet" for t in TABLES}
    for path in found.values():
        if not path.exists():
            raise InputMissing(f"{path}: missing (run the validate stage first)")
    return found


def engine_settings(params: Params) -> tuple[dict[str, float], int]:
    """What the feature engine takes from params: supply cost per kWh by tariff class, and
    the grace period after disconnection in days."""
    costs = {c: t.supply_cost_per_kwh for c, t in params.tariffs.by_class().items()}
    return costs, int(round(params.features.disconnected_grace_months * DAYS_PER_MONTH))


def connect(params: FeatureParams, workdir: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the memory limit, threads and spill folder of params."""
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{params.memory_limit}'")
    con.execute(f"SET threads = {params.threads}")
    con.execute(f"SET temp_directory = '{workdir}'")
    con.execute("SET preserve_insertion_order = false")
    return con


def sort_by_customer(con: duckdb.DuckDBPyConnection, path: Path, workdir: Path) -> Path:
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


def in_customer_order(
    con: duckdb.DuckDBPyConnection,
    paths: dict[str, Path],
    workdir: Path,
    run: Callable[[dict[str, Path]], T],
    before_retry: Callable[[], None] | None = None,
) -> T:
    """``run(paths)``; if an input turns out not to be in customer order, sort them all and
    run again (after ``before_retry``, which discards what the first pass wrote)."""
    try:  # most inputs are in customer order already: find out while streaming them
        return run(paths)
    except NotInOrder:
        if before_retry is not None:
            before_retry()
        return run({t: sort_by_customer(con, p, workdir) for t, p in paths.items()})


class TableStream:
    """Reads a Parquet file in customer order, handing out the rows up to a customer id."""

    def __init__(self, path: Path, columns: list[str] | None):
        self._schema = pq.read_schema(path)
        # pre_buffer off: with it, pyarrow keeps what it read ahead, and memory grows with the file
        self._batches = pq.ParquetFile(path, pre_buffer=False).iter_batches(
            batch_size=_BATCH_ROWS, columns=columns
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
            raise NotInOrder(str(self._path))
        self._last = ids[n - 1].as_py()
        return table

    def until(self, last_id: str) -> pa.Table:
        """The rows of the customers up to and including ``last_id`` not handed out yet."""
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


def to_frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as pandas, dates as datetime64 (not Python objects)."""
    return table.to_pandas(date_as_object=False)


def customer_chunks(path: Path, size: int) -> Iterator[pa.Table]:
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
            raise NotInOrder(str(path))
        last = ids[n - 1].as_py()
        buffer.append(pa.Table.from_batches([batch]))
        held += n
        while held >= size:
            whole = pa.concat_tables(buffer)
            yield whole.slice(0, size)
            buffer, held = [whole.slice(size)], held - size
    if held:
        yield pa.concat_tables(buffer)


def chunks(paths: dict[str, Path], size: int) -> Iterator[tuple[pd.DataFrame, pa.Table, pa.Table]]:
    """(customers, bills, payments) of ``size`` customers at a time, in customer order: the
    customers as a frame, the bills and payments as Arrow tables (``features.engine.prepare``
    takes them as they are: tens of millions of rows never become pandas).

    Raises:
        NotInOrder: An input turned out not to be in customer order (sort it and retry).
    """
    streams = {n: TableStream(paths[n], COLUMNS[n]) for n in ("bills", "payments")}
    for chunk in customer_chunks(paths["customers"], size):
        last = chunk["customer_id"][-1].as_py()
        yield to_frame(chunk), streams["bills"].until(last), streams["payments"].until(last)


def first_customers(paths: dict[str, Path], customers: int) -> tuple[pd.DataFrame, ...]:
    """(customers, bills, payments) frames of the first ``customers`` rows of the customers
    table.

    Tables in customer order (the validate stage writes them so) are streamed, so only their
    first row groups are read and memory does not grow with the base; otherwise the events
    are read filtered on those customers' ids (every row group scanned)."""
    try:
        cust, bills, pays = next(chunks(paths, customers))
        return cust, to_frame(bills), to_frame(pays)
    except (NotInOrder, StopIteration):
        pass
    first = pq.ParquetFile(paths["customers"]).iter_batches(batch_size=customers)
    cust = to_frame(pa.Table.from_batches([next(first)])).sort_values("customer_id")
    ids = cust["customer_id"].tolist()
    events = [
        to_frame(pq.read_table(paths[t], columns=COLUMNS[t], filters=[("customer_id", "in", ids)]))
        for t in ("bills", "payments")
    ]
    return (cust, *events)


def last_month_end(end: pd.Timestamp) -> pd.Timestamp:
    """The last month end on or before ``end``: the as_of a run decides at by default."""
    month_end = end + pd.offsets.MonthEnd(0)
    return month_end if month_end == end.normalize() else end - pd.offsets.MonthEnd(1)


def read_quarantine(folder: Path | None) -> dict[str, pd.DataFrame]:
    """The validate stage's quarantine tables (none when no folder is given).

    Raises:
        InputMissing: A folder is given but is not there: a mistyped path must not make every
            ledger look complete.
    """
    if folder is None:
        return {}
    if not Path(folder).is_dir():
        raise InputMissing(f"{folder}: no quarantine folder (the validate stage writes it)")
    return {p.stem: pq.read_table(p).to_pandas() for p in sorted(Path(folder).glob("*.parquet"))}


def ledger_gaps(validated: dict[str, Path], quarantine: Path | None) -> pd.DataFrame:
    """The quarantined rows that leave a validated customer's ledger incomplete
    (``features.completeness.ledger_gaps``). The customer ids are read only when a bill or
    payment is in quarantine, and as Arrow strings, not one Python object per customer
    (10,000,000 of those are about 0.7 GB)."""
    held = read_quarantine(quarantine)
    if all(held.get(t) is None or held[t].empty for t in ("bills", "payments")):
        return completeness.ledger_gaps(held, pd.Index([], dtype=str))
    ids = pq.read_table(validated["customers"], columns=["customer_id"])["customer_id"]
    text = pd.StringDtype("pyarrow")
    return completeness.ledger_gaps(
        held, pd.Index(ids.to_pandas(types_mapper={pa.string(): text}.get))
    )


def customer_count(path: Path) -> int:
    """Rows of a Parquet file, from its footer."""
    return pq.read_metadata(path).num_rows


def data_start(con: duckdb.DuckDBPyConnection, paths: dict[str, Path]) -> pd.Timestamp:
    """The first day of the earliest billing period (the first month the data covers)."""
    row = con.execute(f"SELECT min(period) FROM read_parquet('{paths['bills']}')").fetchone()
    if row[0] is None:
        raise GridscoreError(f"{paths['bills']}: no bills, so the data has no start")
    return pd.Timestamp(f"{row[0]}-01")


def check_as_of(day: pd.Timestamp, start: pd.Timestamp, end: pd.Timestamp, ahead: bool) -> None:
    """Refuse an as_of the data cannot decide at: after its last month end (unless
    ``ahead``: a forecast), or before the end of its first month (no bill to decide on; a
    customer with a short history is scored and flagged ``insufficient_history``).

    Raises:
        GridscoreError: naming the data's range and the as_of it allows.
    """
    last = last_month_end(end)
    first = start + pd.offsets.MonthEnd(1)
    span = f"the data runs from {start:%Y-%m} to {end.date()} (the latest bill or payment)"
    if day > last and not ahead:
        raise GridscoreError(
            f"as_of {day.date()} is after the data's last month end {last.date()}: {span}; "
            "a later as_of would decide on the ledger as it stood then as if it stood now "
            "(score.allow_ahead: true, or --allow-ahead, scores ahead on purpose)"
        )
    if day < first:
        raise GridscoreError(
            f"as_of {day.date()} is before the data's first month end {first.date()}: {span}"
        )


def data_end(con: duckdb.DuckDBPyConnection, paths: dict[str, Path]) -> pd.Timestamp:
    """The latest day with a bill issued or a payment made.

    Raises:
        GridscoreError: There is no bill and no payment.
    """
    row = con.execute(
        f"SELECT greatest((SELECT max(issued_on) FROM read_parquet('{paths['bills']}')),"
        f" (SELECT max(paid_on) FROM read_parquet('{paths['payments']}')))"
    ).fetchone()
    if row[0] is None:
        raise GridscoreError(
            f"{paths['bills']}, {paths['payments']}: no bills or payments, so the data has no end"
        )
    return pd.Timestamp(row[0])
