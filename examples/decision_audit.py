"""Audit the score stage's credit decisions against the generator's truth (evaluation only).

The pipeline never reads ``data/truth``; this script does, to measure what the decisions are
worth on the synthetic base: how many deposit or guarantee requests rest on an incomplete
ledger (quarantined rows), and how many go to customers who, by the truth, pay on time and
were never in distress.

    python examples/decision_audit.py [--scores data/scores] [--truth data/truth]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from models.policy import ADVERSE
from pipelines.score import read_scores


def audit(scores: pd.DataFrame, truth: Path) -> dict:
    """Counts of the decisions against the truth (see the module docstring)."""
    customers = pd.read_parquet(truth / "customers.parquet").set_index("customer_id")
    monthly = pd.read_parquet(truth / "monthly.parquet", columns=["customer_id", "in_distress"])
    ever = monthly.groupby("customer_id")["in_distress"].any()
    clean = (customers["behaviour"] == "on_time") & ~ever.reindex(customers.index, fill_value=False)
    asked = scores[scores["credit_action"].isin(ADVERSE)]
    clean_asked = asked["customer_id"].map(clean).fillna(False).astype(bool)
    return {
        "as_of": str(pd.Timestamp(scores["as_of"].iloc[0]).date()),
        "scored": len(scores),
        "credit_actions": scores["credit_action"].value_counts().sort_index().to_dict(),
        "asked_for_security": len(asked),
        "asked_on_incomplete_ledger": int((asked["quarantined_rows"] > 0).sum()),
        "asked_on_time_never_in_distress": int(clean_asked.sum()),
        "share_of_list_on_time_never_in_distress": round(float(clean_asked.mean()), 4)
        if len(asked)
        else 0.0,
        "incomplete_ledger_sent_to_review": int(
            (scores["credit_action"] == "review_incomplete_records").sum()
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scores", type=Path, default=Path("data/scores"))
    ap.add_argument("--truth", type=Path, default=Path("data/truth"))
    args = ap.parse_args()
    print(json.dumps(audit(read_scores(args.scores), args.truth), indent=2))


if __name__ == "__main__":
    main()
