"""Benchmark: the monthly batch job (`gridscore score`) at 1,000,000 and 2,000,000 customers.

For each size, generates a clean base of 36 months (setup, not timed: a clean generated base
is also a valid `data/validated` folder), then runs, each in its own child process so peak
resident memory (ru_maxrss) is that run's own:

  1. the baseline: the `features` stage for the one snapshot alone (streamed, written);
  2. the `score` stage at that snapshot: features built per partition, the whole decision
     (tier, PD, grade, expected loss, exact SHAP reason codes in both languages, policy)
     and each partition written atomically, with the reconciliation.

Models: the DVC artifacts of the default pipeline (`dvc repro` first): artifacts/arrears,
artifacts/segments. Params: params.yaml (partition_customers 50,000), tracking off; with
``--tracking`` the stage's own entry (``pipelines.score.run``) logs the run and registers
the decision pyfunc in a SQLite store of its own, as `gridscore score` does.

    python benchmarks/score.py --customers 1000000 2000000 --months 36
    python benchmarks/score.py --customers 20000 200000 --months 36 --tracking --partition 10000
    python benchmarks/score.py --customers 1000000 --tracking --reasons all needed

Memory is each run's own process (ru_maxrss) and the peak of its whole process tree (PSS
summed over the processes, sampled every 0.1 s).

``--reasons all needed`` scores the same base twice, side by side: every row explained (the
baseline) and the reasons where needed (``score.reasons``, the default).
"""

from __future__ import annotations

import argparse
import contextlib
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
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
AS_OF = "2025-12-31"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _params():
    from pipelines.config import load_params

    p = load_params(PROJECT / "params.yaml")
    return p.without_tracking()


def _generate(customers: int, months: int, root: Path, q) -> None:
    from pipelines.generate import write_base

    t0 = time.perf_counter()
    write_base(
        customers, months, "2023-01", 1, _params().tariffs, root / "validated", root / "truth"
    )
    shutil.rmtree(root / "truth", ignore_errors=True)
    q.put({"seconds": time.perf_counter() - t0, "peak_rss_mb": _rss_mb()})


def _features(root: Path, q) -> None:
    from pipelines import features

    p = _params()
    snaps = p.features.snapshots.model_copy(
        update={"dates": (date.fromisoformat(AS_OF),), "first": None, "last": None}
    )
    p = p.override("features", snapshots=snaps)
    t0 = time.perf_counter()
    summary = features.run(
        p, features.Paths(root / "validated", root / "features", root / "f.json")
    )
    q.put({"seconds": time.perf_counter() - t0, "peak_rss_mb": _rss_mb(), "rows": summary["rows"]})


def _score(
    root: Path,
    arrears: str,
    segments: str,
    tracking: bool,
    partition: int,
    reasons: str,
    q,
) -> None:
    import os

    import pyarrow.parquet as pq

    from pipelines import decision, score
    from pipelines.config import load_params

    p = _params().override("score", as_of=AS_OF, partition_customers=partition, reasons=reasons)
    t0 = time.perf_counter()
    if tracking:  # the stage as `gridscore score` runs it: logged to a store of its own
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
        p = load_params(PROJECT / "params.yaml").override(
            "score",
            as_of=AS_OF,
            arrears_model=arrears,
            segments_model=segments,
            partition_customers=partition,
            reasons=reasons,
        )
        (root / "quarantine").mkdir(exist_ok=True)
        paths = score.Paths(root / "scores", root / "validated", quarantine=root / "quarantine")
        rec = score.run(p, paths)
    else:
        model = decision.load(arrears, segments, p, root / "models").model
        rec = score.score_base(root / "validated", root / "scores", p, model, progress=False)
    seconds = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in (root / "scores").glob("part-*.parquet"))
    explained = sum(
        pq.read_table(f, columns=["explained"])["explained"].to_numpy().sum()
        for f in (root / "scores").glob("part-*.parquet")
    )
    q.put(
        {
            "seconds": seconds,
            "peak_rss_mb": _rss_mb(),
            "scored": rec["scored"],
            "customers_in": rec["customers_in"],
            "partitions": rec["partitions"],
            "flagged": rec["flagged"],
            "output_mb": size / 2**20,
            "explained": int(explained),
            "credit_actions": rec["credit_actions"],
        }
    )


def _tree(pid: int) -> list[int]:
    """``pid`` and every process under it (the score stage's worker processes)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):  # a process that ended meanwhile
                todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def _tree_memory(pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MB summed over ``pid``'s process tree: PSS shares each shared page
    among the processes that map it, so the sum is what the tree holds of the machine."""
    rss = pss = 0
    for p in _tree(pid):
        with contextlib.suppress(OSError):  # a process that ended meanwhile
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
    return rss / 1024, pss / 1024


def _measure(target, *args) -> dict:
    """``target`` in a child process; its own figures, its wall time, and the peak of the
    memory of its whole process tree (sampled every 0.1 s)."""
    import threading

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, q))
    t0 = time.perf_counter()
    proc.start()
    peak = {"rss": 0.0, "pss": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            rss, pss = _tree_memory(proc.pid)
            peak["rss"], peak["pss"] = max(peak["rss"], rss), max(peak["pss"], pss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = q.get()
    proc.join()
    stop.set()
    sampler.join()
    out["wall_s"] = time.perf_counter() - t0
    out["tree_rss_mb"], out["tree_pss_mb"] = peak["rss"], peak["pss"]
    if proc.exitcode:
        raise SystemExit(f"{target.__name__} failed with exit code {proc.exitcode}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--customers", type=int, nargs="+", default=[1_000_000, 2_000_000])
    ap.add_argument("--months", type=int, default=36)
    ap.add_argument("--arrears", default=str(PROJECT / "artifacts" / "arrears"))
    ap.add_argument("--segments", default=str(PROJECT / "artifacts" / "segments"))
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument(
        "--partition",
        type=int,
        default=50_000,
        help="score.partition_customers (memory is flat in the base only below it)",
    )
    ap.add_argument(
        "--tracking",
        action="store_true",
        help="score through the stage with MLflow on (a SQLite store per size): the run, "
        "its input example and the registered decision pyfunc",
    )
    ap.add_argument(
        "--reasons",
        nargs="+",
        default=["needed"],
        choices=["needed", "all"],
        help="score.reasons of each scoring run, side by side on the same base "
        "(all: every row explained, the behaviour before 2026-12-04)",
    )
    args = ap.parse_args()
    for path in (args.arrears, args.segments):
        if not Path(path).exists():
            raise SystemExit(f"{path}: missing; run `dvc repro` (or make repro) first")
    results = {}
    for n in args.customers:
        root = Path(tempfile.mkdtemp(prefix=f"bench_score_{n}_"))
        try:
            gen = _measure(_generate, n, args.months, root)
            base = _measure(_features, root)
            shutil.rmtree(root / "features", ignore_errors=True)
            runs = {}
            for how in args.reasons:
                runs[how] = _measure(
                    _score, root, args.arrears, args.segments, args.tracking, args.partition, how
                )
                shutil.rmtree(root / "scores", ignore_errors=True)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        results[n] = {"generate": gen, "features_baseline": base, "score": runs}
        print(
            f"{n:>10,} customers: generate {gen['seconds']:.1f} s (setup); features alone "
            f"{base['seconds']:.1f} s, {base['peak_rss_mb']:,.0f} MB "
            f"(process tree: {base['tree_pss_mb']:,.0f} MB PSS)",
            flush=True,
        )
        for how, run in runs.items():
            print(
                f"    score (reasons: {how}) {run['seconds']:.1f} s (wall {run['wall_s']:.1f} s), "
                f"{run['peak_rss_mb']:,.0f} MB peak of the stage's process, process tree "
                f"{run['tree_pss_mb']:,.0f} MB PSS ({run['tree_rss_mb']:,.0f} MB RSS summed), "
                f"{run['scored']:,} of "
                f"{run['customers_in']:,} scored in {run['partitions']} partitions, "
                f"{run['explained']:,} explained, {run['output_mb']:.0f} MB written; "
                f"score / features {run['seconds'] / base['seconds']:.2f}",
                flush=True,
            )
        if len(runs) > 1:
            first = next(iter(runs))
            a = runs[first]
            for name, b in list(runs.items())[1:]:
                same = a["credit_actions"] == b["credit_actions"]
                print(
                    f"    ({name}) / ({first}): time x{b['seconds'] / a['seconds']:.2f}, "
                    f"process tree memory x{b['tree_pss_mb'] / a['tree_pss_mb']:.2f}; credit "
                    f"actions {'identical' if same else 'DIFFER'}",
                    flush=True,
                )
    sizes = sorted(results)
    if len(sizes) > 1:
        for how in results[sizes[0]]["score"]:
            a, b = results[sizes[0]]["score"][how], results[sizes[-1]]["score"][how]
            print(
                f"x{sizes[-1] / sizes[0]:.1f} customers (reasons: {how}): time "
                f"x{b['seconds'] / a['seconds']:.2f}, process tree memory "
                f"x{b['tree_pss_mb'] / a['tree_pss_mb']:.2f}"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
