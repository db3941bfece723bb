"""A decided partition of the score stage finished: its notices checked against the customers'
records, then its file written atomically; in a worker process of its own.

The score stage decides partition i + 1 while partition i is finished. Deciding is LightGBM,
TreeSHAP and Parquet (native code that releases the GIL) and the reason texts; finishing is
pandas and Python (the notices' checks and pages), which hold it. In one process the two
took turns on the GIL and the second core stood idle about two thirds of the time
(docs/benchmarks.md, "Batch scoring"); here each has a core. The worker is forked once, before the
stage reads its first partition (:func:`finisher`), so it logs as the stage does; it is
killed with the stage (``PR_SET_PDEATHSIG``): a stage killed at any moment leaves whole
partitions only, and the next run clears what the worker had staged in ``out/_tmp``.
"""

from __future__ import annotations

import ctypes
import gc
import json
import multiprocessing as mp
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import notice as notices
from pipelines.config import Params

#: The Parquet footer key of a partition's counts (the reconciliation reads them back).
PART_KEY = b"gridscore.partition"
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Finish:
    """What finishing any partition of a run needs (sent once per partition to the worker)."""

    out: Path
    params: Params
    top_n: int
    schema: pa.Schema


def output_schema(columns: list[str]) -> pa.Schema:
    """Every column of the decision typed, so every partition (and the Spark path) has the
    same schema."""
    kinds = {
        "as_of": pa.date32(),
        "cluster": pa.int32(),
        "pd": pa.float64(),
        "exposure": pa.float64(),
        "expected_loss": pa.float64(),
        "raw_score": pa.float64(),
        "security_amount": pa.float64(),
        "quarantined_rows": pa.int64(),
        "explained": pa.bool_(),
    }
    return pa.schema([(c, kinds.get(c, pa.string())) for c in columns])


def to_arrow(decisions: pd.DataFrame, schema: pa.Schema, stats: dict | None = None) -> pa.Table:
    frame = decisions.assign(as_of=pd.to_datetime(decisions["as_of"]).dt.date)
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    if stats is not None:
        table = table.replace_schema_metadata({PART_KEY: json.dumps(stats).encode()})
    return table


def finish(job: Finish, i: int, span: tuple, records: tuple, decided: tuple) -> dict:
    """Partition ``i``'s notices, checked against its records (``records``: the bills and
    payments of the customers asked for security, ``notice.records_of``), then its file,
    written atomically into ``out`` (``out/_tmp`` first). ``span``: the partition's number
    of customers, its first and last customer id. Returns its counts (also in the footer)."""
    decisions, inactive = decided
    bills, pays = records
    decisions, written = notices.check_and_write(
        decisions, bills, pays, job.out, job.params, job.top_n, i
    )
    flags = decisions["flags"].dropna().str.split(";").explode().value_counts().to_dict()
    part = {
        "partition": i,
        "customers": span[0],
        "active": len(decisions),
        "inactive": {k: int(v) for k, v in inactive.items()},
        "flagged": int(decisions["flags"].notna().sum()),
        "flags": {k: int(v) for k, v in flags.items()},
        "grades": decisions["grade"].value_counts().sort_index().to_dict(),
        "credit_actions": decisions["credit_action"].value_counts().sort_index().to_dict(),
        "tiers": decisions["tier"].value_counts().sort_index().to_dict(),
        "notices": written,
        "first_customer": span[1],
        "last_customer": span[2],
    }
    path = job.out / f"part-{i:05d}.parquet"
    staged = job.out / "_tmp" / f"{path.name}.{os.getpid()}"
    pq.write_table(to_arrow(decisions, job.schema, part), staged, compression="zstd")
    os.replace(staged, path)  # atomic: a partition is there whole or not at all
    del decisions, bills, pays, decided, records
    _give_back()
    return part


def _give_back() -> None:
    """The memory a finished partition freed, handed back to the system (Arrow's pool and
    the C heap keep freed memory for reuse): the worker holds one partition's worth at
    most, not the high-water mark of every partition before it."""
    pa.default_memory_pool().release_unused()
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc's; not every C library's
    if trim is not None:
        trim(0)


def _worker_start(parent: int) -> None:
    """In the worker, first: die with the stage."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the stage died before the line above ran
        os._exit(1)


def finisher() -> ProcessPoolExecutor:
    """The one worker process that finishes partitions, in the order they are given, started
    at once (forked before this process reads any partition: no Arrow or DuckDB work is in
    flight in another thread, and the worker shares the loaded modules instead of importing
    them again). Elsewhere than Linux the worker is spawned (the calling script needs its
    ``if __name__ == "__main__"`` guard there, as for any multiprocessing)."""
    linux = sys.platform.startswith("linux")
    pool = ProcessPoolExecutor(
        max_workers=1,
        mp_context=mp.get_context("fork" if linux else "spawn"),
        initializer=_worker_start if linux else None,
        initargs=(os.getpid(),) if linux else (),
    )
    # The worker is there before the first partition is read. What the stage holds stays
    # out of the worker's garbage collector (gc.freeze): a cycle collected there would run
    # the finalizer of a library object whose threads did not survive the fork.
    gc.freeze()
    try:
        pool.submit(os.getpid).result()
    finally:
        gc.unfreeze()
    return pool
