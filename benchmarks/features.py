"""Benchmark: the feature engine at 1,000,000 customers x 36 months.

Generates the base once (clean, so it is also a valid `data/validated` folder), then runs,
each in its own child process so peak resident memory (ru_maxrss) is that run's own:

  1. the `features` stage with one snapshot (2025-12-31);
  2. the `features` stage with twelve monthly snapshots (2025-01-31 .. 2025-12-31);
  3. side by side on the first N customers (default 20,000) of the same base, one snapshot:
     the engine (features.engine.build_features) and the plain pandas reference
     (features.reference.reference_features), with the ratio.

A warm-up run on a tiny base first fills numba's on-disk cache, as any earlier run would.

    python benchmarks/features.py --customers 1000000 --months 36
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
# This file is named like the `features` package: keep its folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _generate(customers: int, months: int, root: Path, q) -> None:
    from pipelines.config import load_params
    from pipelines.generate import write_base

    params = load_params(PROJECT / "params.yaml")
    counts = write_base(
        customers, months, "2023-01", 1, params.tariffs, root / "validated", root / "truth"
    )
    q.put({"rows": counts})


def _stage(root: Path, dates: list[str], q) -> None:
    from pipelines import features
    from pipelines.config import load_params

    params = load_params(PROJECT / "params.yaml")
    as_of = tuple(date.fromisoformat(d) for d in dates)
    snaps = params.features.snapshots.model_copy(
        update={"dates": as_of, "first": None, "last": None}
    )
    params = params.override("features", snapshots=snaps)
    t0 = time.perf_counter()
    out = root / f"features_{len(dates)}"
    summary = features.run(params, features.Paths(root / "validated", out, root / "summary.json"))
    q.put({"seconds": time.perf_counter() - t0, "peak_rss_mb": _rss_mb(), "rows": summary["rows"]})


def _side_by_side(root: Path, n: int, as_of: str, which: str, q) -> None:
    import pandas as pd
    import pyarrow.parquet as pq

    from features.engine import Snapshots, build_features
    from features.reference import reference_features
    from pipelines.config import load_params

    params = load_params(PROJECT / "params.yaml")
    costs = {c: t.supply_cost_per_kwh for c, t in params.tariffs.by_class().items()}

    def read(name: str) -> pd.DataFrame:
        return pq.read_table(root / "validated" / f"{name}.parquet").to_pandas(date_as_object=False)

    customers = read("customers").sort_values("customer_id").head(n)
    keep = set(customers["customer_id"])
    bills = read("bills")
    bills = bills[bills["customer_id"].isin(keep)]
    payments = read("payments")
    payments = payments[payments["customer_id"].isin(keep)]
    day = pd.Timestamp(as_of)
    t0 = time.perf_counter()
    if which == "engine":
        rows = len(build_features(customers, bills, payments, Snapshots((day,)), costs, 91))
    else:
        rows = len(reference_features(customers, bills, payments, day, costs, 91))
    q.put({"seconds": time.perf_counter() - t0, "rows": rows})


def _measure(target, *args) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q))
    p.start()
    while p.is_alive() or not q.empty():
        try:
            result = q.get(timeout=5)
            break
        except Exception:  # queue.Empty: the child is still working
            continue
    else:
        raise RuntimeError(f"{target.__name__} failed (exit code {p.exitcode})")
    p.join()
    return result


def main() -> None:
    import pandas as pd

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--months", type=int, default=36)
    ap.add_argument(
        "--side-by-side", type=int, default=20_000, help="customers for engine vs reference"
    )
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_features_"))
    results: dict = {}
    try:
        warm = root / "warm"
        _measure(_generate, 300, 24, warm)
        _measure(_stage, warm, ["2024-06-30"])
        results["generate"] = _measure(_generate, args.customers, args.months, root)
        results["one"] = _measure(_stage, root, ["2025-12-31"])
        twelve = [
            str((pd.Timestamp(2025, m, 1) + pd.offsets.MonthEnd(0)).date()) for m in range(1, 13)
        ]
        results["twelve"] = _measure(_stage, root, twelve)
        results["engine_n"] = _measure(
            _side_by_side, root, args.side_by_side, "2025-12-31", "engine"
        )
        results["reference_n"] = _measure(
            _side_by_side, root, args.side_by_side, "2025-12-31", "reference"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = results["generate"]["rows"]
    print(
        f"\nbase: {args.customers:,} customers x {args.months} months: bills {rows['bills']:,}, "
        f"payments {rows['payments']:,}\n"
    )
    print("| run | rows out | seconds | peak RSS (MB) |")
    print("|---|---|---|---|")
    for key, label in (
        ("one", "features stage, 1 snapshot"),
        ("twelve", "features stage, 12 snapshots"),
    ):
        r = results[key]
        print(f"| {label} | {r['rows']:,} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} |")
    e, ref = results["engine_n"], results["reference_n"]
    print(f"\nside by side, first {args.side_by_side:,} customers, 1 snapshot (in memory, no I/O):")
    print("| implementation | rows | seconds | ratio |")
    print("|---|---|---|---|")
    print(f"| engine (numba kernel) | {e['rows']:,} | {e['seconds']:.2f} | 1.0 |")
    ratio = ref["seconds"] / e["seconds"]
    print(f"| pandas reference | {ref['rows']:,} | {ref['seconds']:.2f} | {ratio:.0f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
