"""Benchmark: where one partition of the score job spends its wall-clock time.

Generates a clean base (setup, not timed), loads the DVC artifacts of the default pipeline
(`dvc repro` first: artifacts/arrears, artifacts/segments) and scores it in process with
``pipelines.score.score_base``, tracking off, with each named step wrapped in a wall-clock
timer (no profiler: cProfile inflates the Python parts several times over). The steps run in
the stage's main process, the job's critical path (docs/benchmarks.md); the finisher process
(notices checked, partitions written) is not in these figures.

    python benchmarks/score_parts.py --customers 100000 --partition 50000
"""

from __future__ import annotations

import argparse
import collections
import functools
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
AS_OF = "2025-12-31"


def _timed(spent: collections.Counter, owner, name: str, label: str) -> None:
    """Replace ``owner.name`` (a module's function, a class's method or one object's) by
    itself with its wall-clock time added to ``spent[label]``."""
    inner = getattr(owner, name)

    @functools.wraps(inner)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - t0

    setattr(owner, name, wrapper)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--months", type=int, default=36)
    ap.add_argument("--partition", type=int, default=50_000)
    ap.add_argument("--arrears", default=str(PROJECT / "artifacts" / "arrears"))
    ap.add_argument("--segments", default=str(PROJECT / "artifacts" / "segments"))
    args = ap.parse_args()

    import models.decision as decision_core
    import models.explain as explain
    from pipelines import decision, score
    from pipelines.config import load_params
    from pipelines.generate import write_base

    params = load_params(PROJECT / "params.yaml").without_tracking()
    spent: collections.Counter = collections.Counter()
    steps = [  # (owner, attribute, label), inner steps after the ones that call them
        (score, "_decide_partition", "decide a partition (all below)"),
        (score, "prepare", "  prepare (Arrow to arrays)"),
        (score, "features_and_inactive", "  feature kernel"),
        (decision_core, "score_rows", "  PD, grade, expected loss"),
        (decision_core.Segmenter, "assign", "  tier and segment"),
        (decision_core, "recommend", "  policy"),
        (decision_core, "reasons_of", "  reasons (TreeSHAP and texts)"),
        (explain, "top_reasons", "    reason texts"),
        (decision_core, "officer_context", "  officer context"),
    ]
    for owner, name, label in steps:
        _timed(spent, owner, name, label)
    # the pandera check of the feature table: a method of a module-level schema object
    _timed(spent, score.FEATURE_TABLE, "validate", "  feature table check (pandera)")

    with tempfile.TemporaryDirectory(prefix="gridscore-parts-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        write_base(
            args.customers, args.months, "2023-01", 7, params.tariffs, root / "raw", root / "t"
        )
        print(f"generate {time.perf_counter() - t0:.1f} s (setup)")
        loaded = decision.load(Path(args.arrears), Path(args.segments), params, root / "models")
        (root / "quarantine").mkdir()
        p = params.override("score", partition_customers=args.partition, as_of=AS_OF)
        t0 = time.perf_counter()
        rec = score.score_base(
            root / "raw", root / "out", p, loaded.model, root / "quarantine", progress=False
        )
        total = time.perf_counter() - t0
    n = rec["partitions"]
    print(
        f"{args.customers:,} customers, {n} partitions of {args.partition:,}: "
        f"{total:.2f} s in all, {rec['scored']:,} scored"
    )
    print("seconds per partition, main process:")
    labels = [label for _, _, label in steps]
    labels.insert(3, "  feature table check (pandera)")  # after the kernel, as it runs
    for label in labels:
        print(f"{spent[label] / n:6.2f}  {label}")


if __name__ == "__main__":
    main()
