"""Benchmark: exact SHAP reason codes, model size against explanation speed, and 1M customers.

1. Trade-off. Generates a training base (default 20,000 customers x 36 months), builds the
   multi-snapshot feature table with the `features` stage (params.yaml snapshots), and
   trains the arrears model (models.arrears.ArrearsModel, out-of-time split as in the
   `train` stage) in several sizes: the issue's reference 500 trees x 63 leaves and 300 x 31
   (fixed trees, no early stopping), and 63, 15 and 7 leaves (the project default since
   2026-12-07) with early stopping. Each model is saved and loaded again, as the `explain`
   stage loads it, and explains the same test rows with:
     - LightGBM's native TreeSHAP, `booster.predict(X, pred_contrib=True)`, 2 and 1 threads;
     - `shap.TreeExplainer(booster).shap_values(X)`, the documented call (for a LightGBM
       booster shap hands the work to LightGBM's `pred_contrib`);
     - shap's own C++ TreeSHAP, the code shap runs for models it does not hand off, reached by
       marking the parsed ensemble "internal" (categories passed as their codes);
     - Saabas (shap's C++ `approximate=True`), compared with shap's exact values on the same
       parsed trees.
   Agreement: max |native - shap| and the share of rows whose top-3 causes
   (models.reasons.group_by_cause, then argsort) match: same order, same three, same first.
2. End to end. Generates the base (default 1,000,000 customers) and builds the features of
   one snapshot (setup, timed apart), then with the default model of step 1 computes
   contributions (models.explain.contributions), group_by_cause and top_reasons (n=3) in
   partitions of the feature table (whole Parquet row groups, about --partition rows), with
   LightGBM on 2 threads, on 1 thread, and as partitions split over --workers processes of
   1 thread each. Nothing is written: the figure is the computing.

Each run is its own child process, so peak resident memory (ru_maxrss) is that run's own.
Models are trained with --train-threads (default 1). A probe times one busy process against
two at once, at the start, before step 2 and at the end, to tell how many of the cores the
runs really had (on a shared machine, two threads may get one core).

    python benchmarks/explain.py --train-customers 20000 --months 36 --customers 1000000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
# Keep this folder off the import path (benchmarks/features.py would shadow the package).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

#: name, BoosterParams overrides, fixed number of trees (no early stopping), slow (fewer rows)
CONFIGS = (
    ("500 x 63, fixed (reference)", {"num_leaves": 63, "n_estimators": 500}, True, True),
    ("300 x 31, fixed", {"num_leaves": 31, "n_estimators": 300}, True, True),
    ("63 leaves, early stopping", {"num_leaves": 63}, False, False),
    ("15 leaves, early stopping", {"num_leaves": 15}, False, False),
    ("7 leaves, early stopping (default)", {}, False, False),
)
DEFAULT = "7 leaves, early stopping (default)"
PARTS = ("read", "to_matrix", "contributions", "group_by_cause", "top_reasons")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _spin(q) -> None:
    t0 = time.perf_counter()
    x = 0
    for i in range(20_000_000):
        x += i
    q.put({"seconds": time.perf_counter() - t0})


def _cores() -> float:
    """Cores this benchmark really gets: one busy process, then two at once (2: both free)."""
    one = _measure(_spin)["seconds"]
    two = max(r["seconds"] for r in _measure_many(_spin, [(), ()]))
    return round(2 * one / two, 2)


def _generate(customers: int, months: int, root: Path, q) -> None:
    from pipelines.config import load_params
    from pipelines.generate import write_base

    params = load_params(PROJECT / "params.yaml")
    t0 = time.perf_counter()
    counts = write_base(
        customers, months, "2023-01", 1, params.tariffs, root / "validated", root / "t"
    )
    q.put({"seconds": time.perf_counter() - t0, "peak_rss_mb": _rss_mb(), "rows": counts})


def _features(root: Path, dates: list[str] | None, out: Path, q) -> None:
    """The `features` stage; ``dates`` None: the snapshots of params.yaml."""
    from datetime import date

    from pipelines import features
    from pipelines.config import load_params

    params = load_params(PROJECT / "params.yaml")
    if dates:
        as_of = tuple(date.fromisoformat(d) for d in dates)
        snaps = params.features.snapshots.model_copy(
            update={"dates": as_of, "first": None, "last": None}
        )
        params = params.override("features", snapshots=snaps)
    t0 = time.perf_counter()
    summary = features.run(params, features.Paths(root / "validated", out, root / "summary.json"))
    q.put({"seconds": time.perf_counter() - t0, "peak_rss_mb": _rss_mb(), "rows": summary["rows"]})


def _tree_shape(booster, trees: int) -> tuple[int, int]:
    """Total leaves and maximum depth of the first ``trees`` trees."""

    def depth(node: dict) -> int:
        if "split_index" not in node:
            return 0
        return 1 + max(depth(node["left_child"]), depth(node["right_child"]))

    info = booster.dump_model(num_iteration=trees)["tree_info"]
    return sum(t["num_leaves"] for t in info), max(depth(t["tree_structure"]) for t in info)


def _top3(contrib, columns) -> object:
    import numpy as np
    import pandas as pd

    from models.reasons import group_by_cause

    grouped = group_by_cause(pd.DataFrame(contrib, columns=columns)).to_numpy()
    return np.argsort(-grouped, axis=1, kind="stable")[:, :3]


def _agree(a, b, prefix: str, out: dict) -> None:
    """Shares of rows whose top-3 causes match: same order, same three, same first."""
    import numpy as np

    out[f"{prefix}_top3_agree"] = float((a == b).all(axis=1).mean())
    out[f"{prefix}_top3_set_agree"] = float((np.sort(a, 1) == np.sort(b, 1)).all(axis=1).mean())
    out[f"{prefix}_top1_agree"] = float((a[:, 0] == b[:, 0]).mean())


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def _fit(root: Path, overrides: dict, fixed: bool, threads: int):
    """Train one configuration on the training table; the model, test matrix and metrics."""
    import dataclasses

    from features.catalog import BY_NAME
    from models.arrears import ArrearsModel, infer_spec, to_matrix
    from models.metrics import classification_metrics
    from pipelines.config import load_params
    from pipelines.train import booster_params, load_table, split_roles

    params = load_params(PROJECT / "params.yaml")
    tp = params.train
    folder = root / "train_features"
    table = load_table(folder / "features.parquet", folder / "labels.parquet", tp.target)
    roles = split_roles(table, tp, params.label.horizon_months).to_numpy()
    directions = {n: f.risk_direction for n, f in BY_NAME.items()}
    spec = infer_spec(table, tp.target, list(tp.exclude), None, None, directions)
    X, y = to_matrix(table, spec), table[tp.target].to_numpy()
    bp = dataclasses.replace(booster_params(tp), threads=threads, **overrides)
    if fixed:  # 0 switches LightGBM's early stopping off: fit keeps all n_estimators trees
        bp = dataclasses.replace(bp, early_stopping_rounds=0)
    tr, va, te = (roles == "train"), (roles == "valid"), (roles == "test")
    model = ArrearsModel(bp, tp.calibration, tp.monotone)
    _, seconds = _timed(model.fit, X[tr], y[tr], X[va], y[va], spec)
    if fixed:
        assert model.best_iteration_ == bp.n_estimators, "early stopping was not switched off"
    metrics = {
        "auc": classification_metrics(y[te], model.predict_proba(X[te]))["auc"],
        "auc_raw": classification_metrics(y[te], model.predict_raw(X[te]))["auc"],
        "train_seconds": seconds,
        "train_rows": int(tr.sum()),
        "test_rows": int(te.sum()),
    }
    return model, X[te], metrics


def _tradeoff(
    root: Path, name: str, overrides: dict, fixed: bool, rows: int, threads: int, q
) -> None:
    import warnings

    import numpy as np
    import shap

    from models.arrears import ArrearsModel
    from models.explain import contributions

    warnings.filterwarnings("ignore", message="LightGBM binary classifier")
    model, X_test, out = _fit(root, overrides, fixed, threads)
    folder = root / "models" / name.split(",")[0].replace(" ", "")
    model.save(folder)
    loaded = ArrearsModel.load(folder)  # as the explain stage has it: only the kept trees
    booster, cols = loaded.booster_, list(X_test.columns)
    out["trees"] = booster.num_trees()
    out["leaves"], out["max_depth"] = _tree_shape(booster, out["trees"])
    X = X_test.head(rows)
    out["rows"] = len(X)
    ref, _ = contributions(loaded, X)
    native, out["native_s"] = _timed(booster.predict, X, pred_contrib=True, num_threads=2)
    _, out["native_1t_s"] = _timed(booster.predict, X, pred_contrib=True, num_threads=1)
    assert np.abs(native[:, :-1] - ref.to_numpy()).max() == 0.0
    explainer, out["shap_init_s"] = _timed(shap.TreeExplainer, booster)
    values, out["shap_s"] = _timed(explainer.shap_values, X)
    out["shap_max_diff"] = float(np.abs(values - ref.to_numpy()).max())
    top = _top3(ref.to_numpy(), cols)
    _agree(_top3(values, cols), top, "shap", out)
    _shap_cext(loaded, X, ref.to_numpy(), top, out)
    out["peak_rss_mb"] = _rss_mb()
    q.put(out)


def _shap_cext(model, X, ref, top, out: dict) -> None:
    """shap's own C++ TreeSHAP and Saabas on the same rows (categories as their codes)."""
    import numpy as np
    import shap

    codes = X.copy()
    for c in model.spec_.categorical:
        codes[c] = X[c].cat.codes.astype("float64").where(X[c].cat.codes >= 0)
    matrix, cols = codes.to_numpy("float64"), list(X.columns)
    explainer = shap.TreeExplainer(model.booster_)
    explainer.model.model_type = "internal"  # skip the hand-off to LightGBM
    exact, out["cext_s"] = _timed(explainer.shap_values, matrix, check_additivity=False)
    out["cext_max_diff"] = float(np.abs(exact - ref).max())
    out["cext_rows_differ"] = float((np.abs(exact - ref).max(axis=1) > 1e-9).mean())
    exact_top = _top3(exact, cols)
    _agree(exact_top, top, "cext", out)
    saabas, out["saabas_s"] = _timed(
        explainer.shap_values, matrix, approximate=True, check_additivity=False
    )
    _agree(_top3(saabas, cols), exact_top, "saabas", out)


def _partitions(path: Path, size: int) -> list[list[int]]:
    """Consecutive Parquet row groups, about ``size`` rows each (at least one group)."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    parts: list[list[int]] = [[]]
    rows = 0
    for g in range(meta.num_row_groups):
        n = meta.row_group(g).num_rows
        if parts[-1] and rows + n > size:
            parts.append([])
            rows = 0
        parts[-1].append(g)
        rows += n
    return parts


def _explain(root: Path, model_dir: Path, size: int, threads: int, worker: int, workers: int, q):
    """Explain this worker's share of the partitions; seconds per part, rows, peak RSS."""
    os.environ["OMP_NUM_THREADS"] = str(threads)  # LightGBM's default num_threads follows it
    t0 = time.perf_counter()
    import pyarrow.parquet as pq

    from models.arrears import ArrearsModel, to_matrix
    from models.explain import contributions
    from models.reasons import group_by_cause, top_reasons

    path = root / "features_1" / "features.parquet"
    model = ArrearsModel.load(model_dir)
    parts = _partitions(path, size)[worker::workers]
    pf = pq.ParquetFile(path)
    seconds = dict.fromkeys(PARTS, 0.0)
    rows = reasons = largest = 0
    for groups in parts:
        table, s_read = _timed(
            lambda g=groups: pf.read_row_groups(g).to_pandas(date_as_object=False)
        )
        X, s_matrix = _timed(to_matrix, table, model.spec_)
        (contrib, _), s_contrib = _timed(contributions, model, X)
        grouped, s_group = _timed(group_by_cause, contrib)
        out, s_reasons = _timed(top_reasons, grouped, table, 3)
        for part, s in zip(PARTS, (s_read, s_matrix, s_contrib, s_group, s_reasons), strict=True):
            seconds[part] += s
        rows, reasons, largest = rows + len(table), reasons + len(out), max(largest, len(table))
        del table, X, contrib, grouped, out
    q.put(
        {
            "seconds": time.perf_counter() - t0,
            "parts": seconds,
            "rows": rows,
            "reasons": reasons,
            "partitions": len(parts),
            "largest_partition": largest,
            "peak_rss_mb": _rss_mb(),
        }
    )


def _measure_many(target, arglists: list[tuple]) -> list[dict]:
    """Run ``target`` in one spawned child per argument tuple, all at once; their results."""
    ctx = mp.get_context("spawn")
    runs = []
    for args in arglists:
        q = ctx.Queue()
        p = ctx.Process(target=target, args=(*args, q))
        p.start()
        runs.append((p, q))
    results = []
    for p, q in runs:
        while p.is_alive() or not q.empty():
            try:
                results.append(q.get(timeout=5))
                break
            except Exception:  # queue.Empty: the child is still working
                continue
        else:
            raise RuntimeError(f"{target.__name__} failed (exit code {p.exitcode})")
        p.join()
    return results


def _measure(target, *args) -> dict:
    return _measure_many(target, [args])[0]


def _end_to_end(root: Path, model_dir: Path, size: int, workers: int) -> dict:
    runs = {}
    for label, threads, n in (("2 threads", 2, 1), ("1 thread", 1, 1), ("workers", 1, workers)):
        t0 = time.perf_counter()
        parts = _measure_many(_explain, [(root, model_dir, size, threads, k, n) for k in range(n)])
        wall = time.perf_counter() - t0
        runs[label] = {
            "wall_seconds": wall,
            "seconds": max(p["seconds"] for p in parts) if n == 1 else wall,
            "workers": n,
            "threads": threads,
            "rows": sum(p["rows"] for p in parts),
            "reasons": sum(p["reasons"] for p in parts),
            "partitions": sum(p["partitions"] for p in parts),
            "largest_partition": max(p["largest_partition"] for p in parts),
            "parts": {k: max(p["parts"][k] for p in parts) for k in PARTS},
            "peak_rss_mb": max(p["peak_rss_mb"] for p in parts),
        }
    return runs


def _print_tradeoff(results: dict) -> None:
    ref = results[CONFIGS[0][0]]
    print(
        "\n| config | trees | leaves | max depth | test AUC | AUC vs ref | rows | native rows/s"
        " | speed vs ref | 1M at that rate (min) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        rate = r["rows"] / r["native_s"]
        ratio = rate / (ref["rows"] / ref["native_s"])
        print(
            f"| {name} | {r['trees']} | {r['leaves']:,} | {r['max_depth']} | {r['auc']:.4f} "
            f"| {r['auc'] - ref['auc']:+.4f} | {r['rows']:,} | {rate:,.0f} | {ratio:.1f} "
            f"| {1e6 / rate / 60:.1f} |"
        )
    print(
        "\n| config | native 2 thr rows/s | native 1 thr | shap default call | shap C++ "
        "| Saabas (shap C++) | max abs native-shap | top-3 same | max abs native-shap C++ "
        "| rows differ | C++ vs native top-3: order / set / first "
        "| Saabas vs C++ exact: order / set / first |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        n = r["rows"]
        print(
            f"| {name} | {n / r['native_s']:,.0f} | {n / r['native_1t_s']:,.0f} "
            f"| {n / r['shap_s']:,.0f} | {n / r['cext_s']:,.0f} | {n / r['saabas_s']:,.0f} "
            f"| {r['shap_max_diff']:.1e} | {r['shap_top3_agree']:.1%} | {r['cext_max_diff']:.3f} "
            f"| {r['cext_rows_differ']:.1%} | {_shares(r, 'cext')} | {_shares(r, 'saabas')} |"
        )


def _shares(r: dict, prefix: str) -> str:
    keys = ("top3", "top3_set", "top1")
    return " / ".join(f"{r[f'{prefix}_{k}_agree']:.1%}" for k in keys)


def _print_end_to_end(results: dict) -> None:
    print("\n| setup | seconds | peak RSS (MB) | rows |")
    print("|---|---|---|---|")
    for key in ("generate_big", "features_big"):
        r = results[key]
        rows = r["rows"] if isinstance(r["rows"], int) else r["rows"]["customers"]
        print(f"| {key} | {r['seconds']:.1f} | {r['peak_rss_mb']:,.0f} | {rows:,} |")
    runs = results["end_to_end"]
    base = runs["2 threads"]["seconds"]
    print("\n| run | " + " | ".join(PARTS) + " | total s | rows/s | vs 2 threads | peak RSS (MB) |")
    print("|---|" + "---|" * (len(PARTS) + 4))
    for label, r in runs.items():
        cells = " | ".join(f"{r['parts'][k]:.1f}" for k in PARTS)
        print(
            f"| {label} ({r['workers']} x {r['threads']} thr) | {cells} | {r['seconds']:.1f} "
            f"| {r['rows'] / r['seconds']:,.0f} | {r['seconds'] / base:.2f} "
            f"| {r['peak_rss_mb']:,.0f} |"
        )
    r = runs["2 threads"]
    print(
        f"\n{r['rows']:,} rows in {r['partitions']} partitions "
        f"(largest {r['largest_partition']:,}), {r['reasons']:,} reason rows"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--train-customers", type=int, default=20_000)
    ap.add_argument("--months", type=int, default=36)
    ap.add_argument("--customers", type=int, default=1_000_000, help="end-to-end base")
    ap.add_argument("--rows", type=int, default=20_000, help="test rows explained per model")
    ap.add_argument("--rows-slow", type=int, default=2_000, help="rows for the fixed big models")
    ap.add_argument("--partition", type=int, default=100_000, help="rows per partition, about")
    ap.add_argument("--workers", type=int, default=2, help="processes for the parallel run")
    ap.add_argument(
        "--train-threads",
        type=int,
        default=1,
        help="LightGBM threads for training (params.yaml: 2; 1 is steadier on a busy machine)",
    )
    ap.add_argument("--skip-end-to-end", action="store_true")
    ap.add_argument(
        "--default-only",
        action="store_true",
        help="train only the default model in step 1 (a quick rerun of step 2)",
    )
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_explain_"))
    results: dict = {"load_before": os.getloadavg(), "cores_before": _cores()}
    try:
        small = root / "small"
        results["generate_train"] = _measure(_generate, args.train_customers, args.months, small)
        results["features_train"] = _measure(_features, small, None, small / "train_features")
        results["tradeoff"] = {}
        for name, overrides, fixed, slow in CONFIGS:
            if args.default_only and name != DEFAULT:
                continue
            rows = args.rows_slow if slow else args.rows
            results["tradeoff"][name] = _measure(
                _tradeoff, small, name, overrides, fixed, rows, args.train_threads
            )
        if not args.default_only:
            _print_tradeoff(results["tradeoff"])
        if not args.skip_end_to_end:
            results["cores_before_end_to_end"] = _cores()
            big = root / "big"
            results["generate_big"] = _measure(_generate, args.customers, args.months, big)
            results["features_big"] = _measure(_features, big, ["2025-12-31"], big / "features_1")
            model_dir = small / "models" / DEFAULT.split(",")[0].replace(" ", "")
            results["end_to_end"] = _end_to_end(big, model_dir, args.partition, args.workers)
            _print_end_to_end(results)
    finally:
        results["load_after"], results["cores_after"] = os.getloadavg(), _cores()
        shutil.rmtree(root, ignore_errors=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str))
    print(
        f"\ncores really available (two busy processes against one): "
        f"{results['cores_before']} at start, {results.get('cores_before_end_to_end')} before "
        f"the end-to-end runs, {results['cores_after']} at the end; load average "
        f"{results['load_before']} at start, {results['load_after']} at the end"
    )


if __name__ == "__main__":
    main()
