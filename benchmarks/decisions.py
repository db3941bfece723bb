"""Benchmark: the decisions of two arrears models side by side, judged by what happened.

Both models decide the same labelled rows (the last ``--snapshots`` labelled snapshots of
the default pipeline's feature table, `data/features`, with their realised labels,
`in_arrears` of `data/features/labels.parquet`; rows whose ledger had rows quarantined are
left out, as the train and evaluate stages leave them out) through the one decision path
(``models.decision.DecisionModel.decide``, each with its own segment stage output), and
for each model the script prints: AUC of the PD; the customers asked for a deposit or a
guarantee, the share of them that fell into arrears (precision) and the share of all
arrears they hold (recall); the same for any credit action; the grade distribution with
the realised arrears rate per grade, and whether it rises grade by grade.

    python benchmarks/decisions.py artifacts/arrears,artifacts/segments \\
        /tmp/l15/arrears,/tmp/l15/segments

The rows include training months when ``--snapshots`` reaches back past the test months
(params.yaml `train.split.test_snapshots`), so use the default (3: the test months).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def main() -> None:
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from models.policy import ADVERSE, NONE
    from pipelines import decision
    from pipelines.config import load_params

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("models", nargs="+", help="ARREARS_DIR,SEGMENTS_DIR of each model")
    ap.add_argument("--features", type=Path, default=PROJECT / "data" / "features")
    ap.add_argument("--snapshots", type=int, default=3)
    args = ap.parse_args()
    for spec in args.models:
        if spec.count(",") != 1:
            ap.error(f"{spec!r}: give each model as ARREARS_DIR,SEGMENTS_DIR")
        for folder in spec.split(","):
            if not Path(folder).is_dir():
                ap.error(f"{folder}: no such folder (run `dvc repro`, or `dvc get` an old model)")
    for name in ("features.parquet", "labels.parquet"):
        if not (args.features / name).exists():
            ap.error(f"{args.features / name}: missing (run `dvc repro features`)")
    params = load_params(PROJECT / "params.yaml").without_tracking()
    feats = pd.read_parquet(args.features / "features.parquet")
    labels = pd.read_parquet(
        args.features / "labels.parquet", columns=[*KEYS, "in_arrears", "quarantined_rows"]
    )
    # as in training and evaluation: a label is only as good as a complete ledger
    labels = labels[labels.pop("quarantined_rows").fillna(0) == 0]
    rows = feats.merge(labels, on=list(KEYS))
    rows = rows[rows["in_arrears"].notna()]
    days = sorted(rows["as_of"].unique())[-args.snapshots :]
    rows = rows[rows["as_of"].isin(days)].reset_index(drop=True)
    y = rows.pop("in_arrears").astype(int).to_numpy()
    print(
        f"{len(rows):,} labelled rows at {', '.join(str(d)[:10] for d in days)}; "
        f"{y.sum():,} fell into arrears ({y.mean():.2%})"
    )
    for spec in args.models:
        arrears, segments = spec.split(",")
        model = decision.load(arrears, segments, params, Path(tempfile.mkdtemp())).model
        d = model.decide(rows)
        asked = d["credit_action"].isin(ADVERSE).to_numpy()
        acted = (d["credit_action"] != NONE).to_numpy()
        print(f"\n{arrears}: AUC {roc_auc_score(y, d['pd']):.4f}")
        for name, sel in (("asked for security", asked), ("any credit action", acted)):
            print(
                f"  {name}: {sel.sum():,}, of whom in arrears {y[sel].mean():.1%}; "
                f"they hold {y[sel].sum() / y.sum():.1%} of all arrears"
            )
        grades = pd.DataFrame({"grade": d["grade"], "bad": y})
        table = grades.groupby("grade", sort=False)["bad"].agg(["size", "mean"])
        table = table.reindex([g for g in params.grades.names if g in table.index])
        rates = table["mean"].to_numpy()
        print("  grade  customers  realised rate")
        for g, (n, rate) in table.iterrows():
            print(f"  {g:<5} {int(n):>10,}  {rate:.2%}")
        print(f"  rates rise grade by grade: {bool(np.all(np.diff(rates) >= 0))}")


KEYS = ("customer_id", "as_of")

if __name__ == "__main__":
    main()
