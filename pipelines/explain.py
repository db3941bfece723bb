"""The ``explain`` stage: every scored customer's SHAP contributions and reasons, in EN and ZH.

For the snapshot to explain (params ``explain.as_of``, default the latest), writes:
``contributions.parquet`` (customer_id, as_of, base_value, raw_score, pd, one column of
log-odds contribution per feature), ``causes.parquet`` (the same, summed by cause) and
``reasons.parquet`` (the top risk-raising causes with code and both texts), all schema-checked,
plus a JSON summary of mean absolute contributions by cause and by feature.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow.parquet as pq

from models.arrears import ArrearsModel, to_matrix
from models.explain import contributions
from models.metrics import assign_grades
from models.reasons import CATALOG_VERSION, CAUSES, group_by_cause, top_reasons
from pipelines.config import GradeParams
from pipelines.io import write_json, write_parquet

log = logging.getLogger(__name__)

REASONS = pa.DataFrameSchema(
    {
        "customer_id": pa.Column("str"),
        "as_of": pa.Column("datetime64[us]"),
        "rank": pa.Column(int, pa.Check.ge(1)),
        "code": pa.Column("str", pa.Check.isin([c.code for c in CAUSES])),
        "contribution": pa.Column(float, pa.Check.gt(0)),
        "text_en": pa.Column("str"),
        "text_zh": pa.Column("str"),
    },
    strict=False,
    name="reasons",
)


def main(
    features: Path,
    model_dir: Path,
    out: Path,
    summary_path: Path,
    grades: GradeParams,
    as_of: str | None = None,
    top_n: int = 3,
) -> dict:
    """Run the stage; see the module docstring. Returns the summary."""
    table = pq.read_table(features).to_pandas(date_as_object=False)
    table["as_of"] = table["as_of"].astype("datetime64[us]")
    day = pd.Timestamp(as_of) if as_of else table["as_of"].max()
    rows = table[table["as_of"] == day].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"no rows at as_of {day.date()} in {features}")
    model = ArrearsModel.load(model_dir)
    X = to_matrix(rows, model.spec_)
    contrib, base = contributions(model, X)
    pd_ = model.predict_proba(X)
    keys = pd.DataFrame(
        {
            "customer_id": rows["customer_id"],
            "as_of": rows["as_of"],
            "base_value": base,
            "raw_score": base + contrib.sum(axis=1).to_numpy(),
            "pd": pd_,
            "grade": assign_grades(pd_, grades.names, grades.upper_pd).astype(str),
        }
    )
    grouped = group_by_cause(contrib)
    reasons = top_reasons(grouped, rows, top_n)
    reasons.insert(0, "as_of", rows["as_of"].to_numpy()[reasons["row"]])
    reasons.insert(0, "customer_id", rows["customer_id"].to_numpy()[reasons["row"]])
    reasons = REASONS.validate(reasons.drop(columns="row"))
    write_parquet(
        pd.concat([keys, contrib.reset_index(drop=True)], axis=1), out / "contributions.parquet"
    )
    write_parquet(pd.concat([keys, grouped.reset_index(drop=True)], axis=1), out / "causes.parquet")
    write_parquet(reasons.assign(catalog_version=CATALOG_VERSION), out / "reasons.parquet")
    summary = {
        "as_of": str(day.date()),
        "rows": len(rows),
        "catalog_version": CATALOG_VERSION,
        "mean_abs_by_cause": grouped.abs().mean().round(6).to_dict(),
        "mean_abs_by_feature": contrib.abs().mean().sort_values(ascending=False).round(6).to_dict(),
        "rows_with_a_reason": int(reasons["customer_id"].nunique()),
        "max_additivity_gap": float(np.abs(keys["raw_score"] - model.predict_margin(X)).max()),
    }
    write_json(summary, summary_path)
    log.info("explained %d customers at %s", len(rows), day.date())
    return summary
