"""Benchmark: FastTreeSHAP against LightGBM's own exact TreeSHAP, on the project's model.

Issue 17 asks whether a faster exact TreeSHAP exists for the reason codes; exact means equal
to LightGBM's ``pred_contrib`` within 1e-9. FastTreeSHAP (its NumPy 2 build,
``fasttreeshap-fixed``) is not a dependency of the project, so it runs in a venv of its own,
made by ``make bench-fasttreeshap``. Two steps:

1. ``--dump`` (the project's venv): the default pipeline's model (``artifacts/arrears``) and
   its input matrix for the rows of the last snapshot of ``data/features`` (``dvc repro``
   first), categories as the integer codes LightGBM reads, written to ``--out``.
2. ``--measure`` (the FastTreeSHAP venv): LightGBM's ``pred_contrib`` and FastTreeSHAP's
   algorithms v0, v1 and v2 on the same rows, each timed (best of ``--repeat``, 2 threads),
   and every value compared with ``pred_contrib``.

    make bench-fasttreeshap       # both steps, 20,000 rows
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def dump(out: Path, rows: int) -> None:
    """The model file and ``rows`` rows of its input matrix (codes for categories)."""
    import shutil

    import pandas as pd

    sys.path.insert(0, str(PROJECT))
    from models.arrears import ArrearsModel, to_matrix

    model = ArrearsModel.load(PROJECT / "artifacts" / "arrears")
    feats = pd.read_parquet(PROJECT / "data" / "features" / "features.parquet")
    last = feats[feats["as_of"] == feats["as_of"].max()].head(rows)
    X = to_matrix(last, model.spec_)
    for c in model.spec_.categorical:  # LightGBM reads a pandas category as its code
        X[c] = X[c].cat.codes.astype("float64").where(X[c].notna())
    out.mkdir(parents=True, exist_ok=True)
    X.to_parquet(out / "X.parquet")
    shutil.copy(PROJECT / "artifacts" / "arrears" / "model.txt", out / "model.txt")
    meta = {"best_iteration": model.best_iteration_, "categorical": model.spec_.categorical}
    (out / "meta.json").write_text(json.dumps(meta))
    print(f"{len(X):,} rows x {X.shape[1]} features written to {out}")


def _best(fn, repeat: int) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t0)
    return best, value


def measure(folder: Path, repeat: int) -> dict:
    """Each algorithm's time and its largest difference from ``pred_contrib``."""
    import fasttreeshap_fixed as fts
    import lightgbm as lgb
    import numpy as np
    import pandas as pd

    X = pd.read_parquet(folder / "X.parquet")
    meta = json.loads((folder / "meta.json").read_text())
    booster = lgb.Booster(model_file=str(folder / "model.txt"))
    n_trees = meta["best_iteration"] or booster.num_trees()
    if n_trees < booster.num_trees():  # explain the trees the model predicts with
        booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=n_trees))
    values = X.to_numpy(dtype="float64")
    t_ref, ref = _best(lambda: booster.predict(values, pred_contrib=True, num_threads=2), repeat)
    results = {"rows": len(X), "trees": n_trees, "pred_contrib_s": t_ref}
    print(f"{len(X):,} rows, {n_trees} trees: LightGBM pred_contrib {t_ref:.3f} s (2 threads)")
    for algorithm in ("v0", "v1", "v2"):
        try:
            explainer = fts.TreeExplainer(booster, algorithm=algorithm, n_jobs=2)
            if getattr(explainer.model, "trees", None) is None:  # shap's parser gave up
                raise ValueError(
                    "its parser could not read the booster's trees (shap's LightGBM parser "
                    "leaves them unparsed when a tree has a categorical split)"
                )
            t, got = _best(
                lambda e=explainer: e.shap_values(values, check_additivity=False), repeat
            )
        except (AttributeError, ValueError, TypeError) as exc:  # a refusal is a result too
            results[algorithm] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            print(f"  FastTreeSHAP {algorithm}: {results[algorithm]['error']}")
            continue
        got = np.asarray(got)
        gap = np.abs(got - ref[:, :-1]).max(axis=1)
        results[algorithm] = {
            "seconds": t,
            "speedup": t_ref / t,
            "max_abs_diff": float(gap.max()),
            "rows_off_1e9": int((gap > 1e-9).sum()),
            "rows_off_1e6": int((gap > 1e-6).sum()),
        }
        r = results[algorithm]
        print(
            f"  FastTreeSHAP {algorithm}: {t:.3f} s (x{r['speedup']:.2f} of pred_contrib's "
            f"speed); largest difference {r['max_abs_diff']:.3g}; rows off by more than 1e-9: "
            f"{r['rows_off_1e9']:,} of {len(X):,} (1e-6: {r['rows_off_1e6']:,})"
        )
    return results


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dump", action="store_true", help="step 1, in the project's venv")
    ap.add_argument("--measure", action="store_true", help="step 2, in FastTreeSHAP's venv")
    ap.add_argument("--out", type=Path, default=PROJECT / ".bench" / "fasttreeshap")
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if args.dump == args.measure:
        raise SystemExit("give one of --dump or --measure")
    if args.dump:
        dump(args.out, args.rows)
        return
    results = measure(args.out, args.repeat)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
