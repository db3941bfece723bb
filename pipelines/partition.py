"""A decided partition of the score stage finished: its notices checked against the customers'
records, then its file written atomically; in a worker process of its own.

The score stage decides partition i + 1 while partition i is finished. Deciding is LightGBM,
TreeSHAP and Parquet (native code that releases the GIL) and the reason texts; finishing is
pandas and Python (the notices' checks and pages), which hold it. In one process the two
took turns on the GIL and the second core stood idle about two thirds of the time
(docs/benchmarks.md, "Batch scoring"); here each has a core. The worker is forked once, before the
stage reads its first partition (:class:`Finisher`), so it logs as the stage does; it is
killed with the stage (``PR_SET_PDEATHSIG``): a stage killed at any moment leaves whole
partitions only, and the next run clears what the worker had staged in ``out/_tmp``.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import multiprocessing as mp
import os
import pickle
import signal
import sys
import traceback
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
    return part


def _give_back() -> None:
    """The memory a finished partition freed, handed back to the system (Arrow's pool and
    the C heap keep freed memory for reuse): the worker holds one partition's worth at
    most, not the high-water mark of every partition before it."""
    pa.default_memory_pool().release_unused()
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc's; not every C library's
    if trim is not None:
        trim(0)


class WorkerDied(Exception):
    """The worker process ended before it returned a partition's counts (killed, or out of
    memory): the calling stage says which partition and that a run again resumes."""


class _RemoteTraceback(Exception):
    """The worker's traceback of an error it raised, as the cause of that error here."""

    def __str__(self) -> str:
        return self.args[0]


class Finisher:
    """The one worker process that finishes partitions (:func:`finish`), one at a time, in
    the order they are handed over.

    It is forked at once (before this process reads any partition: no Arrow or DuckDB work
    is in flight in another thread, and the worker shares the loaded modules instead of
    importing them again); elsewhere than Linux it is spawned (the calling script needs its
    ``if __name__ == "__main__"`` guard there, as for any multiprocessing). A partition goes
    over a pipe and :meth:`hand_over` returns once the worker has read it, so the caller can
    drop the partition at once: it is held by the worker alone while it is finished, not by
    both processes (a process pool keeps every call's arguments until its result is back).
    """

    def __init__(self) -> None:
        linux = sys.platform.startswith("linux")
        ctx = mp.get_context("fork" if linux else "spawn")
        self._conn, theirs = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve,
            # forked, the worker inherits this end too and closes it: else its own copy
            # would keep the pipe open, and a stage gone without a word would never read as
            # an end of file there (a spawned worker gets only its own end)
            args=(theirs, os.getpid(), self._conn) if linux else (theirs, None, None),
            name="gridscore-finisher",
            daemon=True,
        )
        # What the stage holds stays out of the worker's garbage collector (gc.freeze): a
        # cycle collected there would run the finalizer of a library object whose threads
        # did not survive the fork.
        gc.freeze()
        try:
            self._proc.start()
        finally:
            gc.unfreeze()
        theirs.close()  # the worker's end: its death is then an end of file here

    def hand_over(self, job: Finish, i: int, span: tuple, records: tuple, decided: tuple) -> None:
        """Partition ``i`` to the worker, to :func:`finish` (after :meth:`result` returned the
        one before it).

        Raises:
            WorkerDied: The worker is gone.
        """
        try:
            self._conn.send((job, i, span, records, decided))
        except (BrokenPipeError, ConnectionResetError):
            raise WorkerDied from None

    def result(self) -> dict:
        """The counts of the partition handed over last, once it is written; an error the
        worker raised is raised here (its traceback as the cause).

        Raises:
            WorkerDied: The worker ended before it sent them.
        """
        try:
            kind, value = self._conn.recv()
        except (EOFError, ConnectionResetError):
            raise WorkerDied from None
        if kind == "error":
            error, trace = value
            raise error from _RemoteTraceback(trace)
        return value

    def close(self, wait: bool = True) -> None:
        """The worker told to stop and waited for (``wait``), or killed at once."""
        if wait:
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._proc.join(timeout=60)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        self._conn.close()

    def __enter__(self) -> Finisher:
        return self

    def __exit__(self, kind, *_) -> None:
        self.close(wait=kind is None)  # after an error here, nothing it finishes is used


def _serve(conn, parent: int | None, stage_end=None) -> None:
    """The worker's loop: finish each partition handed over, send back its counts or the
    error it raised, until told to stop or the stage's end of the pipe is gone (nothing is
    left to finish for anyone: the worker ends, quietly)."""
    if stage_end is not None:
        stage_end.close()
    if parent is not None:  # Linux: die with the stage
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the stage died before the line above ran
            os._exit(1)
    while (work := _next(conn)) is not None:
        try:
            reply = ("done", finish(*work))
        except Exception as error:  # the stage's error, raised there
            trace = traceback.format_exc()
            try:  # it must be rebuilt there too (an __init__ of its own may refuse its args)
                pickle.loads(pickle.dumps(error))
            except Exception:
                error = RuntimeError(f"{type(error).__name__}: {error}")
            reply = ("error", (error, trace))
        del work  # the partition: the last reference to it
        _give_back()
        try:
            conn.send(reply)
        except (BrokenPipeError, ConnectionResetError):
            return  # the stage is gone
        del reply


def _next(conn) -> tuple | None:
    """The next partition, or None: told to stop, or the stage's end closed."""
    try:
        return conn.recv()
    except (EOFError, ConnectionResetError):
        return None
