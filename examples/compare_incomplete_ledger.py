"""Does leaving out the ledgers with an unmatched payment cost ranking? Two arrears models on
the same clean test set (evaluation only; run after `make repro`):

- *as before*: snapshots left out only when a quarantined row carries the customer's own id;
- *attributed*: also when an unmatched payment or bill (``unknown_customer``) could be the
  customer's (``features.completeness``), as the pipeline does now.

Both are trained with params.yaml's settings on the out-of-time split and evaluated on the
test months without any incomplete ledger.

    python examples/compare_incomplete_ledger.py
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.catalog import BY_NAME
from features.completeness import gaps_at
from models.arrears import ArrearsModel, infer_spec, to_matrix
from models.metrics import classification_metrics
from pipelines import streaming
from pipelines.config import load_params
from pipelines.train import booster_params, split_roles


def main() -> None:
    p = load_params(Path("params.yaml"))
    t = p.train
    feats = pd.read_parquet("data/features/features.parquet")
    labels = pd.read_parquet("data/features/labels.parquet")
    table = feats.merge(labels, on=["customer_id", "as_of"], how="left")
    table = table[table["in_arrears"].notna()].reset_index(drop=True)
    table["in_arrears"] = table["in_arrears"].astype(int)
    gaps = streaming.ledger_gaps(streaming.inputs(Path("data/validated")), Path("data/quarantine"))
    own = gaps[gaps["recorded_as"].isna()]
    keys = table[["customer_id", "as_of"]]
    before = gaps_at(own, keys, p.label.horizon_months)["quarantined_rows"].to_numpy() > 0
    now = table["quarantined_rows"].fillna(0).to_numpy() > 0
    roles = split_roles(table, t, p.label.horizon_months).to_numpy()
    directions = {n: c.risk_direction for n, c in BY_NAME.items()}
    spec = infer_spec(
        table.drop(columns=["quarantined_rows"]), "in_arrears", [], None, None, directions
    )
    X, y = to_matrix(table, spec), table["in_arrears"].to_numpy()
    test = (roles == "test") & ~now
    print(f"left out: as before {before.sum():,}, attributed {now.sum():,}")
    for name, bad in (("as before", before), ("attributed", now)):
        model = ArrearsModel(booster_params(t), t.calibration, t.monotone)
        train, valid = (roles == "train") & ~bad, (roles == "valid") & ~bad
        model.fit(X[train], y[train], X[valid], y[valid], spec)
        m = classification_metrics(y[test], model.predict_proba(X[test]))
        print(
            f"{name:>10}: {train.sum():,} training rows; test {test.sum():,} rows: "
            f"AUC {m['auc']:.4f}, ECE {m['ece']:.4f}, PR-AUC {m['pr_auc']:.4f}"
        )


if __name__ == "__main__":
    main()
