"""Benchmark: the synthetic generator at 1,000,000 customers x 36 months.

Runs in a child process per measurement so peak resident memory (ru_maxrss) is its own:
  1. gridscore's generator, writing customers/bills/payments and truth as Parquet;
  2. the baseline: writing tables of the same row counts and column types, filled with
     random values, straight from numpy/Arrow -- the cost of the bytes alone;
  3. the generator at half the size, to show time growing linearly.
Prints a Markdown table with ratios against the baseline; the figures and the command go
into docs/benchmarks.md.

    python benchmarks/bench_generator.py --customers 1000000 --months 36
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import shutil
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def _generator(customers: int, months: int, out: Path, q) -> None:
    from pipelines.config import load_params
    from pipelines.generate import write_base

    params = load_params(PROJECT / "params.yaml")
    t0 = time.perf_counter()
    counts = write_base(customers, months, "2023-01", 1, params.tariffs, out / "raw", out / "truth")
    q.put(
        {
            "seconds": time.perf_counter() - t0,
            "rows": counts,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


def _baseline(counts: dict, out: Path, q) -> None:
    """Same rows and column types as the generator wrote, random values, written in blocks."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from features.contract import arrow_schema
    from features.synthetic.generator import BLOCK_SIZE, TRUTH_MONTHLY_SCHEMA

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    schemas = {
        "customers": arrow_schema("customers"),
        "bills": arrow_schema("bills"),
        "payments": arrow_schema("payments"),
        "truth_monthly": TRUTH_MONTHLY_SCHEMA,
    }
    n_blocks = -(-counts["customers"] // BLOCK_SIZE)
    ids = pa.array([f"C{i:08d}" for i in range(BLOCK_SIZE)])
    for name, schema in schemas.items():
        rows = counts[name]
        per_block = -(-rows // n_blocks)
        with pq.ParquetWriter(out / f"{name}.parquet", schema, compression="zstd") as w:
            for b in range(n_blocks):
                n = min(per_block, rows - b * per_block)
                if n <= 0:
                    break
                cols = []
                for field in schema:
                    if pa.types.is_string(field.type):
                        cols.append(ids.take(pa.array(rng.integers(0, BLOCK_SIZE, n))))
                    elif pa.types.is_date32(field.type):
                        cols.append(
                            pa.array(rng.integers(19000, 20000, n).astype(np.int32), pa.date32())
                        )
                    elif pa.types.is_boolean(field.type):
                        cols.append(pa.array(rng.random(n) < 0.5))
                    else:
                        cols.append(pa.array(np.round(rng.lognormal(5, 1, n), 2)))
                w.write_table(pa.Table.from_arrays(cols, schema=schema))
    q.put(
        {
            "seconds": time.perf_counter() - t0,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


def _measure(target, *args) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q))
    p.start()
    result = q.get()
    p.join()
    return result


def _size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*.parquet")) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--months", type=int, default=36)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_generator_"))
    try:
        gen = _measure(_generator, args.customers, args.months, root / "gen")
        gen["mb_on_disk"] = _size_mb(root / "gen")
        base = _measure(_baseline, gen["rows"], root / "base")
        base["mb_on_disk"] = _size_mb(root / "base")
        half = _measure(_generator, args.customers // 2, args.months, root / "half")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = sum(gen["rows"].values())
    print(
        f"\n{args.customers:,} customers x {args.months} months: {rows:,} rows "
        f"({', '.join(f'{k} {v:,}' for k, v in gen['rows'].items())})\n"
    )
    print(
        "| run | seconds | peak RSS (MB) | Parquet (MB) | time vs baseline | memory vs baseline |"
    )
    print("|---|---|---|---|---|---|")
    for label, r in (("generator", gen), ("baseline: random values, same rows and types", base)):
        print(
            f"| {label} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | {r['mb_on_disk']:.0f} | "
            f"{r['seconds'] / base['seconds']:.2f} | {r['peak_rss_mb'] / base['peak_rss_mb']:.2f} |"
        )
    print(
        f"| generator, {args.customers // 2:,} customers | {half['seconds']:.1f} | "
        f"{half['peak_rss_mb']:.0f} | | {half['seconds'] / base['seconds']:.2f} | "
        f"{half['peak_rss_mb'] / base['peak_rss_mb']:.2f} |"
    )
    print(
        f"\nfull / half size: time x{gen['seconds'] / half['seconds']:.2f}, "
        f"memory x{gen['peak_rss_mb'] / half['peak_rss_mb']:.2f}"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"generator": gen, "baseline": base, "half": half}, indent=2)
        )


if __name__ == "__main__":
    main()
