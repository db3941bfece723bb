"""The scoring job on Spark, for bases beyond one machine: the same features, the same decision.

Features: the validated tables are bucketed by a hash of ``customer_id``; each bucket's
customers, bills and payments meet in one pandas call (``cogroup().applyInPandas``) that runs
the portable feature engine (``features.engine.features_of``) exactly as the single-machine
job does per partition. Decisions: ``mapInPandas`` runs the whole-decision model, the object
inside the ``gridscore-decision`` MLflow pyfunc, on each batch of feature rows. The output is
written by Spark's committer (all or nothing, ``_SUCCESS``), with the columns and types of
the single-machine output. Paths may be any Spark URL (``s3a://``, ``abfss://``, ``hdfs://``).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from features import completeness
from features.engine import Snapshots, features_of, prepare
from features.errors import GridscoreError
from models.decision import DecisionModel
from pipelines import decision, streaming
from pipelines.config import Params
from pipelines.features import FEATURE_SCHEMA, FEATURE_TABLE
from pipelines.partition import output_schema
from pipelines.tracking import Tracker

log = logging.getLogger(__name__)

BILL_COLUMNS = streaming.COLUMNS["bills"]
PAYMENT_COLUMNS = streaming.COLUMNS["payments"]


@dataclass(frozen=True)
class Job:
    """What ``gridscore score-spark`` was asked to do."""

    validated: str  # a folder or a Spark URL
    out: str
    as_of: str
    quarantine: str | None = None  # the validate stage's quarantine: incomplete ledgers
    decision_model: str | None = None  # models:/gridscore-decision@champion, else the two below
    master: str | None = None  # e.g. local[2]; None: the one spark-submit set
    buckets: int = 64


def run(params: Params, job: Job) -> int:
    """Load the decision model, start Spark and score the base; returns the rows written.

    A local folder is checked for its three tables before Spark starts.
    """
    if job.quarantine is None:
        raise GridscoreError(
            "give --quarantine (the validate stage's quarantine): without it no decision can "
            "tell a complete ledger from one with rows held back"
        )
    if "://" not in job.validated:  # a local folder: its tables and the data's range, first
        inputs = streaming.inputs(Path(job.validated))
        con = duckdb.connect()
        try:
            start, end = streaming.data_start(con, inputs), streaming.data_end(con, inputs)
        finally:
            con.close()
        streaming.check_as_of(pd.Timestamp(job.as_of), start, end, params.score.allow_ahead)
    tracker = Tracker(params.tracking.experiment)
    with tempfile.TemporaryDirectory(prefix=f"gridscore-models-{os.getpid()}-") as workdir:
        if job.decision_model is not None:
            model = decision.load_pyfunc(job.decision_model, tracker)
        else:
            s = params.score
            model = decision.load(
                s.arrears_model, s.segments_model, params, Path(workdir), tracker
            ).model
    spark = session(master=job.master)
    return score_spark(
        spark, job.validated, job.out, params, model, job.as_of, job.buckets, job.quarantine
    )


def _spark_type(t: pa.DataType) -> str:
    if pa.types.is_string(t):
        return "string"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "int"
    return "double"


def ddl(schema: pa.Schema) -> str:
    """A Spark DDL schema string from an Arrow schema."""
    return ", ".join(f"`{f.name}` {_spark_type(f.type)}" for f in schema)


def session(app: str = "gridscore", master: str | None = None, **conf: str):
    """A Spark session; ``master`` None keeps the one spark-submit gave (``local[*]`` alone)."""
    import os
    import sys

    from pyspark.sql import SparkSession

    if master is None or master.startswith("local"):  # workers run this very interpreter
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app)
    if master:
        builder = builder.master(master)
    defaults = {
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.showConsoleProgress": "false",
    }
    for key, value in {**defaults, **conf}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _dates(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    for c in columns:
        if c in frame:
            frame[c] = pd.to_datetime(frame[c]).astype("datetime64[us]")
    return frame


def features_spark(spark, validated: str, params: Params, as_of: str, buckets: int = 64, gaps=None):
    """Point-in-time features of every active customer at ``as_of``, as a Spark DataFrame,
    with the customer's quarantined rows at as_of (``gaps``: ``features.completeness``)."""
    from pyspark.sql import functions as F

    day = pd.Timestamp(as_of)
    costs, grace = streaming.engine_settings(params)
    base = validated.rstrip("/")
    bucket = F.pmod(F.xxhash64("customer_id"), F.lit(buckets)).alias("bucket")
    customers = spark.read.parquet(f"{base}/customers.parquet")
    bills = spark.read.parquet(f"{base}/bills.parquet").select(*BILL_COLUMNS)
    payments = spark.read.parquet(f"{base}/payments.parquet").select(*PAYMENT_COLUMNS)
    events = (
        bills.withColumn("kind", F.lit("bill"))
        .withColumnRenamed("amount", "bill_amount")
        .unionByName(
            payments.withColumn("kind", F.lit("payment")).withColumnRenamed(
                "amount", "paid_amount"
            ),
            allowMissingColumns=True,
        )
    )
    cust_cols = customers.columns
    with_ledger = pa.schema(
        [*FEATURE_SCHEMA, ("quarantined_rows", pa.int64()), ("quarantine_refs", pa.string())]
    )
    schema = ddl(with_ledger)
    columns = [f.name for f in with_ledger]
    gaps = completeness.empty_gaps() if gaps is None else gaps  # small: shipped with the task

    def per_bucket(cust: pd.DataFrame, ev: pd.DataFrame) -> pd.DataFrame:
        if cust.empty:
            return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
        cust = _dates(
            cust[cust_cols].sort_values("customer_id"), ["connected_on", "disconnected_on"]
        )
        b = ev[ev["kind"] == "bill"].rename(columns={"bill_amount": "amount"})[BILL_COLUMNS]
        p = ev[ev["kind"] == "payment"].rename(columns={"paid_amount": "amount"})[PAYMENT_COLUMNS]
        b = _dates(b.reset_index(drop=True), ["issued_on", "due_date"])
        p = _dates(p.reset_index(drop=True), ["paid_on"])
        feats = FEATURE_TABLE.validate(
            features_of(prepare(cust.reset_index(drop=True), b, p), Snapshots((day,)), costs, grace)
        )
        feats = pd.concat([feats, completeness.gaps_at(gaps, feats)], axis=1)
        feats["as_of"] = feats["as_of"].dt.date
        return feats[columns]

    return (
        customers.select(bucket, *cust_cols)
        .groupBy("bucket")
        .cogroup(events.select(bucket, *events.columns).groupBy("bucket"))
        .applyInPandas(lambda c, e: per_bucket(c.drop(columns="bucket"), e), schema=schema)
    )


def decide_spark(features, model: DecisionModel):
    """The whole decision of every feature row, through ``mapInPandas``."""
    schema = output_schema(model.columns())
    names = schema.names

    def batches(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in frames:
            if frame.empty:
                continue
            out = model.decide(frame.assign(as_of=pd.to_datetime(frame["as_of"]).astype(str)))
            out["as_of"] = pd.to_datetime(out["as_of"]).dt.date
            out["cluster"] = out["cluster"].astype("int32")
            yield out[names]

    return features.mapInPandas(batches, schema=ddl(schema))


def score_spark(
    spark,
    validated: str,
    out: str,
    params: Params,
    model: DecisionModel,
    as_of: str,
    buckets: int = 64,
    quarantine: str | None = None,
) -> int:
    """Features and decisions for the whole base at ``as_of`` written to ``out`` (Parquet).

    ``quarantine``: the validate stage's quarantine (a folder or URL); its bill and payment
    rows are read on the driver (they are few) and travel with every feature task, so an
    incomplete ledger is never acted on automatically, as on one machine.

    Returns the number of rows written.
    """
    gaps = None
    if quarantine is not None:
        tables = {
            t: spark.read.parquet(f"{quarantine.rstrip('/')}/{t}.parquet").toPandas()
            for t in ("bills", "payments")
        }
        ids = spark.read.parquet(f"{validated.rstrip('/')}/customers.parquet").select("customer_id")
        known = pd.Index([r[0] for r in ids.collect()])
        gaps = completeness.ledger_gaps(tables, known)
    feats = features_spark(spark, validated, params, as_of, buckets, gaps)
    decided = decide_spark(feats, model)
    decided.write.mode("overwrite").parquet(out)
    rows = spark.read.parquet(out).count()
    log.info("spark: scored %d customers at %s into %s", rows, as_of, out)
    return rows
