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
    from sklearn.metrics import roc_auc_score

    from models.metrics import grade_table, rates_rise
    from models.policy import ADVERSE, NONE
    from pipelines import decision
    from pipelines.config import load_params
    from pipelines.train import load_table

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
    target = params.train.target
    # the train and evaluate stages' rows: labelled, incomplete ledgers left out
    rows = load_table(args.features / "features.parquet", args.features / "labels.parquet", target)
    days = sorted(rows["as_of"].unique())[-args.snapshots :]
    rows = rows[rows["as_of"].isin(days)].reset_index(drop=True)
    y = rows.pop(target).to_numpy()
    print(
        f"{len(rows):,} labelled rows at {', '.join(str(d)[:10] for d in days)}; "
        f"{y.sum():,} fell into arrears ({y.mean():.2%})"
    )
    names = params.grades.names
    for spec in args.models:
        arrears, segments = spec.split(",")
        with tempfile.TemporaryDirectory() as work:
            model = decision.load(arrears, segments, params, Path(work)).model
            d = model.decide(rows)
        asked = d["credit_action"].isin(ADVERSE).to_numpy()
        acted = (d["credit_action"] != NONE).to_numpy()
        print(f"\n{arrears}: AUC {roc_auc_score(y, d['pd']):.4f}")
        for name, sel in (("asked for security", asked), ("any credit action", acted)):
            print(
                f"  {name}: {sel.sum():,}, of whom in arrears {y[sel].mean():.1%}; "
                f"they hold {y[sel].sum() / y.sum():.1%} of all arrears"
            )
        table = grade_table(y, d["pd"].to_numpy(), d["grade"].to_numpy(), names)
        print("  grade  customers  realised rate")
        for r in table[table["customers"] > 0].itertuples():
            print(f"  {r.grade:<5} {int(r.customers):>10,}  {r.realised_rate:.2%}")
        print(f"  rates rise grade by grade: {rates_rise(table)}")


if __name__ == "__main__":
    main()
