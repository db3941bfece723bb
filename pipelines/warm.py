"""Compile the feature kernel into numba's on-disk cache: ``python -m pipelines.warm``.

numba compiles features/kernel.py the first time a process uses it (about 17 s on 2 cores)
and caches the machine code beside the module. ``make install`` runs this once, as pip
byte-compiles Python, so the first ``dvc repro`` and every test worker load the cache
instead of compiling; an edit to kernel.py makes numba compile again at the next use.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from features.engine import build_features, build_labels, month_ends
from pipelines import streaming
from pipelines.config import Params, load_params
from pipelines.generate import write_base

PROJECT = Path(__file__).resolve().parents[1]


def compile_kernel(params: Params | None = None) -> float:
    """Run the feature and label kernels once on a tiny generated base; the seconds it took."""
    started = time.perf_counter()
    p = params or load_params(PROJECT / "params.yaml")
    costs, grace = streaming.engine_settings(p)
    with tempfile.TemporaryDirectory(prefix="gridscore-kernel-") as tmp:
        root = Path(tmp)
        write_base(30, 15, "2023-01", 1, p.tariffs, root / "raw", root / "truth")
        c, b, pay = (
            pq.read_table(root / "raw" / f"{t}.parquet").to_pandas(date_as_object=False)
            for t in ("customers", "bills", "payments")
        )
        snaps = month_ends("2023-12-31", "2024-01-31")
        f = build_features(c, b, pay, snaps, costs, grace)
        build_labels(c, b, pay, snaps, 3, 30, 10.0, pd.Timestamp("2024-03-31"), keys=f)
    return time.perf_counter() - started


if __name__ == "__main__":
    print(f"feature kernel compiled and cached in {compile_kernel():.1f} s")
