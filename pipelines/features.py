"""The ``features`` stage: point-in-time features and labels for every snapshot, in one pass.

Streams the validated tables in customer order, a chunk of customers at a time
(``pipelines.streaming``), so memory stays bounded whatever the size of the base. Inputs not
in customer order are first sorted out of core by DuckDB (memory limit and threads from
params). Writes:

- ``features.parquet``: one row per active customer and snapshot (``docs/features.md``);
- ``labels.parquet``: ``customer_id``, ``as_of``, ``in_arrears`` (empty when the horizon
  runs past the data) and ``quarantined_rows`` (the customer's quarantined bill and payment
  rows dated up to the label horizon's end), for training and evaluation only;
- ``ledger.parquet``: the customer-snapshots whose ledger misses quarantined rows dated on
  or before as_of, with the rows' references (``features.completeness``);
- a JSON summary (rows and label rate per snapshot).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pandera.pandas as pa_schema
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from features.catalog import COMPUTED, FEATURES, STATIC
from features.completeness import gaps_at
from features.engine import Snapshots, features_of, labels_of, prepare
from features.errors import GridscoreError
from pipelines import streaming
from pipelines.config import LabelParams, Params
from pipelines.io import write_json
from pipelines.stage import guarded

log = logging.getLogger(__name__)

_ARROW_KIND = {"numeric": pa.float64(), "bool": pa.bool_(), "categorical": pa.string()}
FEATURE_SCHEMA = pa.schema(
    [("customer_id", pa.string()), ("as_of", pa.date32())]
    + [(f.name, _ARROW_KIND[f.kind]) for f in FEATURES if f.name in COMPUTED]
    + [(f.name, _ARROW_KIND[f.kind]) for f in FEATURES if f.name in STATIC]
)
LABEL_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("as_of", pa.date32()),
        ("in_arrears", pa.int8()),
        # quarantined bill/payment rows of the customer dated up to the label horizon's end:
        # the snapshot's features or label rest on an incomplete ledger (left out of training)
        ("quarantined_rows", pa.int32()),
    ]
)
#: Customer-snapshots whose ledger misses quarantined rows dated on or before as_of (sparse).
LEDGER_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("as_of", pa.date32()),
        ("quarantined_rows", pa.int32()),
        ("quarantine_refs", pa.string()),
    ]
)

#: The feature table as it leaves the stage (and enters training and scoring).
FEATURE_TABLE = pa_schema.DataFrameSchema(
    {
        "customer_id": pa_schema.Column("str", nullable=False),
        "as_of": pa_schema.Column("datetime64[us]", nullable=False),
        "months_of_history": pa_schema.Column(float, pa_schema.Check.ge(0)),
        "dpd": pa_schema.Column(float, pa_schema.Check.ge(0)),
        "overdue_arrears": pa_schema.Column(float, pa_schema.Check.ge(0)),
        **{
            n: pa_schema.Column(float, nullable=True)
            for n in COMPUTED
            if n not in ("months_of_history", "dpd", "overdue_arrears")
        },
        "tariff_class": pa_schema.Column("str", nullable=False),
    },
    unique=["customer_id", "as_of"],
    strict=False,
    name="feature table",
)


@dataclass(frozen=True)
class Paths:
    validated: Path
    out: Path  # features.parquet, labels.parquet and ledger.parquet
    summary: Path
    quarantine: Path | None = None  # the validate stage's; None: the ledgers count as complete


def run(params: Params, paths: Paths) -> dict:
    """Run the stage; see the module docstring. Returns the summary. One run at a time
    holds ``paths.out`` (``pipelines.stage.guarded``)."""
    return guarded(
        params, paths.out, [paths.validated, paths.quarantine], lambda: _stage(params, paths)
    )


def _stage(params: Params, paths: Paths) -> dict:
    started = time.perf_counter()
    label = params.label
    inputs = streaming.inputs(paths.validated)
    gaps = streaming.ledger_gaps(inputs, paths.quarantine)
    costs, grace = streaming.engine_settings(params)
    workdir = Path(tempfile.mkdtemp(prefix="gridscore-features-"))
    staging = paths.out.with_name(f".{paths.out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        con = streaming.connect(params.features, workdir)
        end = pd.Timestamp(label.data_end) if label.data_end else streaming.data_end(con, inputs)
        last = streaming.last_month_end(end).date()
        snaps = Snapshots(tuple(pd.Timestamp(d) for d in params.features.snapshots.as_of(last)))
        n = streaming.customer_count(inputs["customers"])
        f = params.features
        size = max(100, min(f.chunk_customers, f.chunk_rows // len(snaps.as_of)))
        counts = streaming.in_customer_order(
            con,
            inputs,
            workdir,
            lambda found: _run(n, found, size, snaps, costs, grace, label, end, gaps, staging),
        )
        con.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if paths.out.exists():
        shutil.rmtree(paths.out)
    os.replace(staging, paths.out)
    summary = _summary(counts, snaps, end, label)
    write_json(summary, paths.summary)
    log.info(
        "features: %d rows for %d snapshots in %.1f s",
        summary["rows"],
        len(snaps.as_of),
        time.perf_counter() - started,
    )
    return summary


def _run(n_customers, inputs, size, snaps, costs, grace, label, end, gaps, staging) -> pd.DataFrame:
    """Stream the chunks through the engine into the Parquet files; counts per snapshot."""
    text = [f.name for f in FEATURE_SCHEMA if pa.types.is_string(f.type)]
    counts = []
    n_chunks = -(-n_customers // size)
    chunks = tqdm(
        streaming.chunks(inputs, size),
        total=n_chunks,
        desc="features",
        unit="chunk",
        disable=None,
    )
    with (
        pq.ParquetWriter(
            staging / "features.parquet", FEATURE_SCHEMA, compression="snappy", use_dictionary=text
        ) as fw,
        pq.ParquetWriter(staging / "labels.parquet", LABEL_SCHEMA, compression="zstd") as lw,
        pq.ParquetWriter(staging / "ledger.parquet", LEDGER_SCHEMA, compression="zstd") as gw,
    ):
        for cust, bills, pays in chunks:
            chunk = prepare(cust, bills, pays)
            feats = FEATURE_TABLE.validate(features_of(chunk, snaps, costs, grace))
            labels = labels_of(
                chunk,
                snaps,
                label.horizon_months,
                label.dpd_threshold,
                label.min_amount,
                end,
                keys=feats,
            )
            horizon = gaps_at(gaps, feats, label.horizon_months)
            labels["quarantined_rows"] = horizon["quarantined_rows"].to_numpy()
            now = gaps_at(gaps, feats)
            ledger = pd.concat([feats[["customer_id", "as_of"]], now], axis=1)
            ledger = ledger[ledger["quarantined_rows"] > 0]
            fw.write_table(pa.Table.from_pandas(feats, schema=FEATURE_SCHEMA, preserve_index=False))
            lw.write_table(pa.Table.from_pandas(labels, schema=LABEL_SCHEMA, preserve_index=False))
            gw.write_table(pa.Table.from_pandas(ledger, schema=LEDGER_SCHEMA, preserve_index=False))
            counts.append(
                labels.assign(incomplete=labels["quarantined_rows"] > 0)
                .groupby("as_of")
                .agg(
                    size=("in_arrears", "size"),
                    count=("in_arrears", "count"),
                    sum=("in_arrears", "sum"),
                    incomplete=("incomplete", "sum"),
                )
            )
    if not counts:
        raise GridscoreError(f"{inputs['customers']}: no customers in the validated table")
    return pd.concat(counts).groupby(level=0).sum()


def _summary(counts: pd.DataFrame, snaps: Snapshots, end: pd.Timestamp, label: LabelParams) -> dict:
    per = {}
    for as_of in snaps.as_of:
        rows, labelled, positive, incomplete = (
            counts.loc[as_of] if as_of in counts.index else (0, 0, 0, 0)
        )
        per[str(as_of.date())] = {
            "rows": int(rows),
            "labelled": int(labelled),
            "arrears_rate": round(float(positive) / labelled, 6) if labelled else None,
            "incomplete_ledger": int(incomplete),
        }
    return {
        "rows": int(counts["size"].sum()),
        "incomplete_ledger": int(counts["incomplete"].sum()),
        "snapshots": per,
        "data_end": str(end.date()),
        "label": label.model_dump(mode="json"),
    }
