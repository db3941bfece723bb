"""Point-in-time features and labels for a chunk of customers: frames in, frames out.

The chunk must hold all bills and payments of its customers (the stage streams the
validated tables in customer order, so it does). Rows are the customers active at each
snapshot ``as_of`` (a month end): connected on or before it (or, with no connection date,
billed by then) and not disconnected more than the grace period before it. Features use
only bills issued and payments made on or before ``as_of``; see ``docs/features.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features import kernel
from features.catalog import COMPUTED, STATIC


@dataclass(frozen=True)
class Snapshots:
    """Snapshot dates (month ends) as days and month indices (months since year 0)."""

    as_of: tuple[pd.Timestamp, ...]

    def __post_init__(self) -> None:
        for d in self.as_of:
            if not d.is_month_end:
                raise ValueError(f"snapshot {d.date()} is not a month end")
        if list(self.as_of) != sorted(set(self.as_of)):
            raise ValueError("snapshots must be distinct and in increasing order")

    @property
    def days(self) -> np.ndarray:
        return np.array([_day(d) for d in self.as_of], dtype=np.int64)

    @property
    def months(self) -> np.ndarray:
        return np.array([d.year * 12 + d.month - 1 for d in self.as_of], dtype=np.int64)


def month_ends(first: str | pd.Timestamp, last: str | pd.Timestamp, step: int = 1) -> Snapshots:
    """Every ``step``-th month end from ``first`` to ``last`` (both month ends)."""
    dates = pd.date_range(pd.Timestamp(first), pd.Timestamp(last), freq=f"{step}ME")
    return Snapshots(tuple(dates))


def _day(ts: pd.Timestamp) -> int:
    return int(np.datetime64(ts.date(), "D").astype(np.int64))


def _days(values: pd.Series | pa.ChunkedArray) -> np.ndarray:
    """Days since 1970-01-01; ``kernel.MISSING`` for missing dates. An Arrow ``date32``
    column (the validated Parquet type) is already days: no datetime is made."""
    if isinstance(values, pa.ChunkedArray | pa.Array):
        if pa.types.is_date32(values.type):
            day = pc.cast(pc.cast(values, pa.int32()), pa.int64())
            return pc.fill_null(day, kernel.MISSING).to_numpy()
        values = pd.Series(values.to_pandas(date_as_object=False))
    arr = values.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
    out = arr.astype(np.int64)
    out[np.isnat(arr)] = kernel.MISSING
    return out


def month_index(period: pd.Series | pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``YYYY-MM`` to months since year 0. Validated periods are 7 ASCII characters each: read
    straight from the Arrow string buffer as digits (no string is made); anything else goes
    through Arrow's string kernels (pandas' parse goes via objects)."""
    if isinstance(period, pa.Array | pa.ChunkedArray):
        text = period.cast(pa.string())
    else:
        text = pa.array(period.astype("str"), pa.string())
    fast = _month_index_of_buffer(text)
    if fast is not None:
        return fast
    year = pc.cast(pc.utf8_slice_codeunits(text, 0, 4), pa.int64()).to_numpy()
    month = pc.cast(pc.utf8_slice_codeunits(text, 5, 7), pa.int64()).to_numpy()
    return year * 12 + month - 1


def _month_index_of_buffer(text: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """:func:`month_index` from the bytes of ``text`` when every value is ``DDDD-DD``
    (digits), else None."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    n = len(text)
    if n == 0 or text.null_count:
        return None if n else np.zeros(0, dtype=np.int64)
    _, offsets, data = text.buffers()
    offs = np.frombuffer(offsets, dtype=np.int32, count=n + 1, offset=4 * text.offset)
    if not (np.diff(offs) == 7).all():
        return None
    raw = np.frombuffer(data, dtype=np.uint8, count=7 * n, offset=int(offs[0])).reshape(n, 7)
    digits = raw - np.uint8(ord("0"))  # uint8: a byte below "0" wraps above 9
    digits[:, 4] = 0  # the dash, checked below
    if not ((raw[:, 4] == ord("-")).all() and (digits <= 9).all()):
        return None
    d = digits.astype(np.int32)
    year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
    return (year * 12 + d[:, 5] * 10 + d[:, 6] - 1).astype(np.int64)


def month_end_table(lo: int, hi: int) -> tuple[np.ndarray, int]:
    """Day of the last day of each month index in ``[lo, hi]``."""
    months = np.arange(lo, hi + 2)
    firsts = (months - 1970 * 12).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    return firsts[1:] - 1, lo


@dataclass(frozen=True)
class Chunk:
    """A chunk's tables as the kernel's arrays: rows grouped by customer, dates as days."""

    customers: pd.DataFrame
    b_start: np.ndarray
    bills: dict[str, np.ndarray]
    p_start: np.ndarray
    payments: dict[str, np.ndarray]


def _floats(values: pd.Series | pa.ChunkedArray) -> np.ndarray:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        return pc.cast(values, pa.float64()).to_numpy()
    return values.to_numpy(np.float64)


def _strings(values: pd.Series | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        return values.cast(pa.string())
    return pa.array(values.astype("str"), pa.string())


def _group(
    ids: pd.Series | pa.ChunkedArray, keys: pa.Array, table: str, *within: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sort order grouping rows by customer (then by the ``within`` keys, first key first),
    None when the rows are in that order already, and each customer's start offset. One
    hash look-up per row turns the customer ids into positions in ``keys``."""
    found = pc.index_in(_strings(ids), value_set=keys)
    if found.null_count:
        first = int(np.flatnonzero(found.is_null().to_numpy(zero_copy_only=False))[0])
        raise ValueError(
            f"{table}: customer_id {_strings(ids)[first].as_py()!r} is not in the chunk's customers"
        )
    pos = found.to_numpy()
    start = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(np.bincount(pos, minlength=len(keys)), out=start[1:])
    return sort_order(pos, *within), start


def sort_order(*keys: np.ndarray) -> np.ndarray | None:
    """``np.lexsort``'s stable order of the rows by ``keys`` (first key first), or None when
    the rows are in it already. An extract in customer and day order (the stream's) costs no
    sort: where only the last key is out of order, only the rows tied on the others (a few
    payments on one day) are sorted."""
    if _in_order(*keys):
        return None
    if len(keys) > 1 and _in_order(*keys[:-1]):
        tie = np.ones(len(keys[0]) - 1, dtype=bool)
        for key in keys[:-1]:
            tie &= key[1:] == key[:-1]
        rows = np.flatnonzero(np.r_[tie, False] | np.r_[False, tie])
        order = np.arange(len(keys[0]))
        order[rows] = rows[np.lexsort(tuple(k[rows] for k in reversed(keys)))]
        return order
    return np.lexsort(tuple(reversed(keys)))


def _in_order(*keys: np.ndarray) -> bool:
    """Whether the rows are already in the order ``np.lexsort`` of ``keys`` (first key
    first) gives: each key non-decreasing where all the keys before it tie. NaN compares
    false, so a NaN key is never taken as in order (the sort then runs)."""
    if len(keys[0]) < 2:
        return True
    tied = np.ones(len(keys[0]) - 1, dtype=bool)
    for key in keys:
        a, b = key[:-1], key[1:]
        if not (b[tied] >= a[tied]).all():
            return False
        tied &= b == a
        if not tied.any():
            return True
    return True


def prepare(
    customers: pd.DataFrame,
    bills: pd.DataFrame | pa.Table,
    payments: pd.DataFrame | pa.Table,
) -> Chunk:
    """Group a chunk's bills and payments by customer (all rows of its customers must be there).

    Bills and payments may be pandas frames or Arrow tables: the stages stream Arrow straight
    from Parquet, and its columns go to the kernel's arrays with no pandas (and no Python
    string) in between. Both give the same arrays."""
    customers = customers.reset_index(drop=True)
    if not customers["customer_id"].is_unique:
        raise ValueError("customers: customer_id is not unique")
    keys = _strings(customers["customer_id"])
    b_order, b_start = _group(bills["customer_id"], keys, "bills")
    # Payments in a total order (day, then amount), whatever the file's order: the ledger adds
    # them up in that order, so a reordered extract gives the same sums to the last bit.
    p_day, p_amount = _days(payments["paid_on"]), _floats(payments["amount"])
    p_order, p_start = _group(payments["customer_id"], keys, "payments", p_day, p_amount)
    b = {
        "issued": _days(bills["issued_on"]),
        "month": month_index(bills["period"]),
        "due": _days(bills["due_date"]),
        "amount": _floats(bills["amount"]),
        "kwh": _floats(bills["kwh"]),
    }
    if b_order is not None:
        b = {k: v[b_order] for k, v in b.items()}
    if p_order is not None:
        p_day, p_amount = p_day[p_order], p_amount[p_order]
    for column in (*b.values(), p_day, p_amount):
        # Read-only, as Arrow's are: one array type for the kernel whatever the input, so
        # numba compiles (and caches) one variant of it, not one per input kind.
        column.setflags(write=False)
    return Chunk(
        customers=customers,
        b_start=b_start,
        bills=b,
        p_start=p_start,
        payments={"day": p_day, "amount": p_amount},
    )


def _month_range(chunk: Chunk, snaps: Snapshots, horizon: int = 0) -> tuple[int, int]:
    months = [snaps.months.min() - 16, snaps.months.max() + horizon + 1]
    if len(chunk.bills["month"]):
        months += [chunk.bills["month"].min(), chunk.bills["month"].max()]
    return int(min(months)), int(max(months))


def build_features(
    customers: pd.DataFrame,
    bills: pd.DataFrame,
    payments: pd.DataFrame,
    snapshots: Snapshots,
    supply_cost: Mapping[str, float],
    grace_days: int,
) -> pd.DataFrame:
    """The feature table of a chunk: one row per active customer and snapshot.

    Args:
        customers, bills, payments: Validated tables (canonical dtypes) of the chunk.
        snapshots: The as_of dates.
        supply_cost: Supply cost per kWh by tariff class (for profit contribution).
        grace_days: Customers disconnected more than this before as_of are not rows.

    Returns:
        ``customer_id``, ``as_of``, the computed features (``catalog.COMPUTED``) and the
        static attributes (``catalog.STATIC``), sorted by customer then as_of.
    """
    return features_of(prepare(customers, bills, payments), snapshots, supply_cost, grace_days)


#: Why a customer is not a row at a snapshot (the kernel's status codes, said in words).
INACTIVE_REASONS = {
    kernel.NOT_BILLED_YET: "not_billed_yet",
    kernel.NOT_CONNECTED_YET: "not_connected_yet",
    kernel.DISCONNECTED: "disconnected_before_as_of",
}


def features_of(
    chunk: Chunk, snapshots: Snapshots, supply_cost: Mapping[str, float], grace_days: int
) -> pd.DataFrame:
    """:func:`build_features` on a prepared chunk."""
    return features_and_inactive(chunk, snapshots, supply_cost, grace_days)[0]


def features_and_inactive(
    chunk: Chunk, snapshots: Snapshots, supply_cost: Mapping[str, float], grace_days: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The feature rows of a prepared chunk, and every customer-snapshot that is not a row.

    Returns:
        The feature table (as :func:`build_features`) and ``customer_id``, ``as_of``,
        ``reason`` (one of :data:`INACTIVE_REASONS`) for each customer at each snapshot at
        which it is not active: together they account for every customer at every snapshot.
    """
    c = chunk.customers
    lo, hi = _month_range(chunk, snapshots)
    month_end, base = month_end_table(lo, hi)
    cost = c["tariff_class"].map(dict(supply_cost)).to_numpy(np.float64)
    values, status = kernel.compute_features(
        chunk.b_start,
        chunk.bills["issued"],
        chunk.bills["month"],
        chunk.bills["due"],
        chunk.bills["amount"],
        chunk.bills["kwh"],
        chunk.p_start,
        chunk.payments["day"],
        chunk.payments["amount"],
        _days(c["connected_on"]),
        _days(c["disconnected_on"]),
        c["contract_capacity_kva"].to_numpy(np.float64),
        cost,
        snapshots.days,
        snapshots.months,
        month_end,
        base,
        grace_days,
    )
    n_snap = len(snapshots.as_of)
    days = pd.DatetimeIndex(snapshots.as_of).astype("datetime64[us]")
    ids = c["customer_id"].to_numpy()
    rows = np.flatnonzero(status == kernel.ACTIVE)
    cust, snap = rows // n_snap, rows % n_snap
    frame = pd.DataFrame(values[rows], columns=list(COMPUTED))
    frame.insert(0, "as_of", days[snap])
    frame.insert(0, "customer_id", ids[cust])
    for name in STATIC:
        frame[name] = c[name].to_numpy()[cust]
    out = np.flatnonzero(status != kernel.ACTIVE)
    inactive = pd.DataFrame(
        {
            "customer_id": ids[out // n_snap],
            "as_of": days[out % n_snap],
            "reason": pd.Series(status[out]).map(INACTIVE_REASONS).to_numpy(dtype=object),
        }
    )
    return frame, inactive


def build_labels(
    customers: pd.DataFrame,
    bills: pd.DataFrame,
    payments: pd.DataFrame,
    snapshots: Snapshots,
    horizon_months: int,
    dpd_threshold: int,
    min_amount: float,
    data_end: pd.Timestamp,
    keys: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Arrears labels: for training and evaluation only, never an input to features.

    A customer is in arrears for ``as_of`` when, at some month end in
    ``(as_of, as_of + horizon_months]``, its days past due reach ``dpd_threshold`` with
    overdue arrears of at least ``min_amount``. When that horizon ends after ``data_end``
    the label is missing (``<NA>``): such snapshots can be scored but not trained on.

    Args:
        keys: The (customer_id, as_of) rows to label, usually the feature table's keys;
            default every customer at every snapshot.

    Returns:
        ``customer_id``, ``as_of``, ``in_arrears`` (nullable Int8).
    """
    chunk = prepare(customers, bills, payments)
    return labels_of(chunk, snapshots, horizon_months, dpd_threshold, min_amount, data_end, keys)


def labels_of(
    chunk: Chunk,
    snapshots: Snapshots,
    horizon_months: int,
    dpd_threshold: int,
    min_amount: float,
    data_end: pd.Timestamp,
    keys: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """:func:`build_labels` on a prepared chunk."""
    lo, hi = _month_range(chunk, snapshots, horizon_months)
    month_end, base = month_end_table(lo, hi)
    last = data_end.year * 12 + data_end.month - 1 - (0 if data_end.is_month_end else 1)
    labels = kernel.compute_labels(
        chunk.b_start,
        chunk.bills["issued"],
        chunk.bills["month"],
        chunk.bills["due"],
        chunk.bills["amount"],
        chunk.p_start,
        chunk.payments["day"],
        chunk.payments["amount"],
        snapshots.months,
        month_end,
        base,
        horizon_months,
        dpd_threshold,
        min_amount,
        last,
    )
    n_snap = len(snapshots.as_of)
    frame = pd.DataFrame(
        {
            "customer_id": np.repeat(chunk.customers["customer_id"].to_numpy(), n_snap),
            "as_of": np.tile(
                pd.DatetimeIndex(snapshots.as_of).astype("datetime64[us]"), len(chunk.customers)
            ),
            "in_arrears": pd.array(np.where(labels < 0, None, labels), dtype="Int8"),
        }
    )
    if keys is not None:
        frame = keys[["customer_id", "as_of"]].merge(frame, on=["customer_id", "as_of"], how="left")
    return frame
