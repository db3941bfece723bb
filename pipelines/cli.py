"""The ``gridscore`` command: one subcommand per DVC stage (the same word in dvc.yaml)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from features.contract import ContractError
from pipelines.config import ParamsError, load_params

app = typer.Typer(
    help="gridscore: customer value pyramid and arrears credit scoring for electricity utilities.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
log = logging.getLogger("gridscore")

ParamsOpt = Annotated[Path, typer.Option("--params", help="params file", show_default=True)]


@app.callback()
def _configure(
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = "INFO",
) -> None:
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _run_file(out: Path) -> Path:
    """Where a stage notes its MLflow run: beside its DVC output, not inside it, so the
    output's hash depends on the model alone and a rerun leaves dvc.lock unchanged."""
    return out.with_name(f"{out.name}.mlflow.json")


def _fail(message: str, code: int = 2) -> typer.Exit:
    log.error("%s", message)
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="folder for customers/bills/payments.parquet")],
    truth: Annotated[
        Path | None, typer.Option(help="folder for the ground truth [default: OUT/../truth]")
    ] = None,
    customers: Annotated[int | None, typer.Option(help="[default: generate.customers]")] = None,
    months: Annotated[int | None, typer.Option(help="[default: generate.months]")] = None,
    seed: Annotated[int | None, typer.Option(help="[default: generate.seed]")] = None,
    start_period: Annotated[
        str | None, typer.Option(help="YYYY-MM [default: generate.start_period]")
    ] = None,
    defect_rate: Annotated[
        float | None, typer.Option(help="[default: generate.defect_rate]")
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Write the synthetic utility: raw tables in OUT, ground truth in TRUTH (tests only)."""
    from pipelines import generate as stage

    try:
        p = load_params(params)
        g = p.generate.model_copy(
            update={
                k: v
                for k, v in dict(
                    customers=customers,
                    months=months,
                    seed=seed,
                    start_period=start_period,
                    defect_rate=defect_rate,
                ).items()
                if v is not None
            }
        )
        g = type(g).model_validate(g.model_dump())
    except (ParamsError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    stage.main(
        g.customers,
        g.months,
        g.start_period,
        g.seed,
        p.tariffs,
        out,
        truth or out.parent / "truth",
        defect_rate=g.defect_rate,
    )


@app.command()
def validate(
    raw: Annotated[
        Path, typer.Option(help="raw-data folder: customers, bills, payments (.csv or .parquet)")
    ],
    out: Annotated[Path, typer.Option(help="folder for the validated tables")],
    quarantine: Annotated[Path, typer.Option(help="folder for the quarantined rows")],
    summary: Annotated[Path, typer.Option(help="JSON summary (DVC metrics)")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Check RAW against the data contract; bad rows go to QUARANTINE with their reason."""
    from pipelines import tracking
    from pipelines import validate as stage

    try:
        p = load_params(params)
        result = stage.main(raw, out, quarantine, summary, p.validate_.max_quarantine_share)
    except (ParamsError, ContractError, stage.QuarantineLimitError) as exc:
        raise _fail(str(exc)) from exc
    if p.tracking.enabled:
        tracking.log_stage_run(
            p.tracking.experiment,
            "validate",
            {"raw": str(raw), "max_quarantine_share": p.validate_.max_quarantine_share},
            stage.metrics(result),
            [summary],
        )


@app.command()
def features(
    validated: Annotated[Path, typer.Option(help="folder of the validated tables")],
    out: Annotated[Path, typer.Option(help="folder for features.parquet and labels.parquet")],
    summary: Annotated[Path, typer.Option(help="JSON summary (DVC metrics)")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Point-in-time features (and labels) for every snapshot in params.yaml."""
    from pipelines import features as stage

    try:
        p = load_params(params)
        stage.main(validated, out, summary, p.features, p.label, p.tariffs)
    except (ParamsError, ContractError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from exc


@app.command()
def train(
    features: Annotated[Path, typer.Option(help="feature table (Parquet)")],
    out: Annotated[Path, typer.Option(help="folder for the model files")],
    labels: Annotated[
        Path | None, typer.Option(help="labels (Parquet); omit if the target is in FEATURES")
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Fit the arrears model and its scorecard baseline; log and register it in MLflow."""
    import json

    from pipelines import tracking
    from pipelines import train as stage

    try:
        p = load_params(params)
        summary, model, example = stage.main(features, labels, out, p.train, p.label)
    except (ParamsError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from exc
    if p.tracking.enabled:
        logged = tracking.log_model_run(
            p.tracking.experiment,
            "train",
            stage.flat_params(p.train),
            stage.flat_metrics(summary),
            out,
            model,
            example,
            stage.MODEL_NAME if p.train.register_model else None,
        )
        _run_file(out).write_text(json.dumps(logged, indent=2))


@app.command()
def evaluate(
    features: Annotated[Path, typer.Option(help="feature table (Parquet)")],
    model: Annotated[Path, typer.Option(help="folder of the trained model")],
    reports: Annotated[Path, typer.Option(help="folder for figures, grades and test scores")],
    plots: Annotated[Path, typer.Option(help="folder for the curves as CSV (DVC plots)")],
    metrics: Annotated[Path, typer.Option(help="JSON metrics (DVC metrics)")],
    labels: Annotated[Path | None, typer.Option(help="labels (Parquet)")] = None,
    truth: Annotated[
        Path | None, typer.Option(help="generator truth, for the oracle AUC only")
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Evaluate the arrears model on the test snapshots: metrics, grades, plots, expected loss."""
    import json

    from pipelines import evaluate as stage
    from pipelines import tracking

    try:
        p = load_params(params)
        result = stage.main(
            features, labels, model, reports, plots, metrics, p.train, p.label, p.grades, truth
        )
    except (ParamsError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from exc
    logged = _run_file(model)
    if p.tracking.enabled and logged.exists():
        run_id = json.loads(logged.read_text())["run_id"]
        files = [metrics, *sorted(reports.glob("*.png")), reports / "grades.csv"]
        tracking.log_to_run(run_id, stage.flat_metrics(result), files)


@app.command()
def promote(
    model_name: Annotated[
        str, typer.Option("--model", help="registered model")
    ] = "gridscore-arrears",
    metric: Annotated[
        str, typer.Option(help="run metric to compare, higher is better")
    ] = "test_auc",
) -> None:
    """Make the candidate version the champion if its test AUC is no worse (exit 1 if not)."""
    from pipelines import tracking

    try:
        promoted, message = tracking.promote(model_name, metric)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(message)
    if not promoted:
        raise typer.Exit(1)


@app.command()
def segment(
    features: Annotated[Path, typer.Option(help="feature table (Parquet)")],
    out: Annotated[
        Path, typer.Option(help="folder for the fitted pipeline and every customer's tier")
    ],
    reports: Annotated[Path, typer.Option(help="folder for profiles, migration tables and charts")],
    metrics: Annotated[Path, typer.Option(help="JSON metrics (DVC metrics)")],
    truth: Annotated[
        Path | None, typer.Option(help="generator truth, for the ARI against it only")
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """The customer value pyramid: clusters by profit contribution mapped to tiers A/B/C/D."""
    import json

    import pandas as pd

    from pipelines import segment as stage
    from pipelines import tracking

    try:
        p = load_params(params)
        result = stage.main(features, out, reports, metrics, p.segment, truth)
    except (ParamsError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from exc
    if p.tracking.enabled:
        import skops.io as sio

        trusted = sio.get_untrusted_types(file=out / "pipeline.skops")
        pipe = sio.load(out / "pipeline.skops", trusted=trusted)
        cols = list(p.segment.features)
        example = pd.read_parquet(features, columns=cols).head(5).astype(float)
        flat = {
            k: v
            for k, v in result.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        files = [
            metrics,
            out / "tiers.json",
            out / "pipeline.skops",
            *sorted(reports.glob("*.png")),
            *sorted(reports.glob("*.csv")),
        ]
        logged = tracking.log_sklearn_run(
            p.tracking.experiment,
            "segment",
            p.segment.model_dump(mode="json"),
            flat,
            files,
            pipe,
            example,
            stage.MODEL_NAME,
            trusted=trusted,
        )
        _run_file(out).write_text(json.dumps(logged, indent=2))


@app.command()
def explain(
    features: Annotated[Path, typer.Option(help="feature table (Parquet)")] = Path(
        "data/features/features.parquet"
    ),
    model: Annotated[Path, typer.Option(help="folder of the trained arrears model")] = Path(
        "artifacts/arrears"
    ),
    tiers: Annotated[
        Path, typer.Option(help="tiers of the segment stage (tier and service level)")
    ] = Path("artifacts/segments/tiers.parquet"),
    customer: Annotated[
        str | None, typer.Option(help="explain this one customer and print its decision")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(help="snapshot, YYYY-MM-DD [default: explain.as_of, else the latest]"),
    ] = None,
    lang: Annotated[str, typer.Option(help="en or zh, for --customer")] = "en",
    chart: Annotated[
        Path | None,
        typer.Option(
            help="waterfall PNG for --customer [default: reports/waterfall_<id>_<date>.png]"
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="stage: folder for contributions, causes and reasons")
    ] = None,
    reports: Annotated[
        Path | None, typer.Option(help="stage: folder for the global explanation reports")
    ] = None,
    summary: Annotated[Path | None, typer.Option(help="stage: JSON summary (DVC metrics)")] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """SHAP reason codes (English, Chinese): a whole snapshot (the stage: --out --reports
    --summary) or one customer's tier, PD, grade, expected loss and reasons (--customer)."""
    from pipelines import explain as stage

    try:
        p = load_params(params)
        if as_of is not None:
            p = p.model_copy(update={"explain": p.explain.model_copy(update={"as_of": as_of})})
        if customer is not None:
            d = stage.explain_customer(features, model, customer, p, as_of, tiers)
            typer.echo(stage.render(d, lang, p.tariffs.currency))
            path = chart or Path("reports") / f"waterfall_{customer}_{d['as_of'].date()}.png"
            typer.echo(f"waterfall chart: {stage.waterfall_chart(d, path)}")
            return
        if out is None or summary is None or reports is None:
            raise ValueError("give --customer ID, or --out, --reports and --summary for the stage")
        result = stage.main(features, model, out, reports, summary, p, tiers)
    except (ParamsError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from exc
    if p.tracking.enabled:
        import json

        from models.reasons import CATALOG_VERSION
        from pipelines import tracking

        metrics = {
            "rows": result["rows"],
            "rows_with_a_reason": result["rows_with_a_reason"],
            "max_additivity_gap": result["max_additivity_gap"],
            **{f"mean_abs_{k}": v for k, v in result["mean_abs_by_cause"].items()},
        }
        run_id = tracking.log_stage_run(
            p.tracking.experiment,
            "explain",
            {
                **p.explain.model_dump(mode="json"),
                "as_of": result["as_of"],
                "catalog_version": CATALOG_VERSION,
            },
            metrics,
            [summary, *sorted(reports.glob("*.csv")), *sorted(reports.glob("*.png"))],
        )
        _run_file(out).write_text(json.dumps({"run_id": run_id}, indent=2))


@app.command()
def score(
    out: Annotated[Path, typer.Option(help="folder of the scored base (Parquet partitions)")],
    validated: Annotated[
        Path | None, typer.Option(help="validated tables (the validate stage's output)")
    ] = None,
    raw: Annotated[
        Path | None,
        typer.Option(
            help="a raw-data folder instead: validated first, as the validate stage does, "
            "into OUT/../<out>.validated and <out>.quarantine"
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(help="YYYY-MM-DD [default: score.as_of, else the data's last month end]"),
    ] = None,
    arrears_model: Annotated[
        str | None,
        typer.Option(help="folder or models:/gridscore-arrears@champion [default: params]"),
    ] = None,
    segments_model: Annotated[
        str | None,
        typer.Option(help="folder or models:/gridscore-value-segments@champion [default: params]"),
    ] = None,
    quarantine: Annotated[
        Path | None, typer.Option(help="the validate stage's quarantine, for the reconciliation")
    ] = None,
    metrics: Annotated[
        Path | None, typer.Option(help="a copy of the reconciliation (DVC metrics)")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="replace a run of other settings in OUT instead of stopping")
    ] = False,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Score the whole base at as_of: tier, PD, grade, expected loss, reasons, action.

    Streams customers in partitions; a run stopped midway and started again resumes."""
    import shutil
    import tempfile

    from models.arrears import FeatureMismatchError
    from pipelines import score as stage
    from pipelines.io import write_json
    from pipelines.validate import QuarantineLimitError

    workdir = Path(tempfile.mkdtemp(prefix="gridscore-models-"))
    try:
        p = load_params(params)
        if (raw is None) == (validated is None):
            raise ValueError("give one of --validated (validated tables) or --raw (a raw folder)")
        if raw is not None:
            from pipelines import validate as checks

            validated = out.with_name(f"{out.name}.validated")
            quarantine = quarantine or out.with_name(f"{out.name}.quarantine")
            checks.main(
                raw,
                validated,
                quarantine,
                out.with_name(f"{out.name}.validation.json"),
                p.validate_.max_quarantine_share,
            )
        model, a_dir, s_dir = stage.load_decision_model(
            arrears_model or p.score.arrears_model,
            segments_model or p.score.segments_model,
            p,
            workdir,
        )
        rec = stage.main(validated, out, p, model, as_of, quarantine, overwrite)
        if metrics is not None:  # without the run time: a rerun leaves the metric unchanged
            write_json({k: v for k, v in rec.items() if k != "seconds"}, metrics)
        if p.tracking.enabled:
            from pipelines import tracking

            example = stage.feature_sample(validated, p, rec["as_of"])
            flat = {
                "customers_in": rec["customers_in"],
                "scored": rec["scored"],
                "flagged": rec["flagged"],
                "seconds": rec["seconds"],
            }
            logged = tracking.log_decision_model(
                p.tracking.experiment,
                flat,
                [out / stage.RECONCILIATION, out / stage.MANIFEST],
                a_dir,
                s_dir,
                model,
                example,
                stage.DECISION_MODEL if p.score.register_model else None,
            )
            _run_file(out).write_text(json.dumps(logged, indent=2))
    except (
        ParamsError,
        ValueError,
        FileNotFoundError,
        FeatureMismatchError,
        ContractError,
        QuarantineLimitError,
    ) as exc:
        raise _fail(str(exc)) from exc
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@app.command("score-spark")
def score_spark(
    validated: Annotated[str, typer.Option(help="validated tables: a folder or a Spark URL")],
    out: Annotated[str, typer.Option(help="output folder or URL (s3a://, abfss://, hdfs://)")],
    as_of: Annotated[str, typer.Option(help="YYYY-MM-DD, a month end")],
    decision_model: Annotated[
        str | None,
        typer.Option(help="models:/gridscore-decision@champion (else the two models below)"),
    ] = None,
    arrears_model: Annotated[
        str | None, typer.Option(help="folder or registry URI [default: score.arrears_model]")
    ] = None,
    segments_model: Annotated[
        str | None, typer.Option(help="folder or registry URI [default: score.segments_model]")
    ] = None,
    master: Annotated[
        str | None, typer.Option(help="e.g. local[2]; none: the one spark-submit set")
    ] = None,
    buckets: Annotated[int, typer.Option(help="customer buckets (feature tasks)")] = 64,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """The scoring job on Spark: same features and decision, written by Spark (docs/scoring.md)."""
    import shutil
    import tempfile

    from pipelines import score as stage
    from pipelines import spark

    workdir = Path(tempfile.mkdtemp(prefix="gridscore-models-"))
    try:
        p = load_params(params)
        if "://" not in validated:  # a local folder: say which table is missing before Spark
            for table in stage.TABLES:
                if not (Path(validated) / f"{table}.parquet").exists():
                    raise FileNotFoundError(
                        f"{Path(validated) / table}.parquet: missing (run the validate stage)"
                    )
        if decision_model is not None:
            model = stage.load_decision_pyfunc(decision_model)
        else:
            model, _, _ = stage.load_decision_model(
                arrears_model or p.score.arrears_model,
                segments_model or p.score.segments_model,
                p,
                workdir,
            )
        rows = spark.score_spark(
            spark.session(master=master), validated, out, p, model, as_of, buckets
        )
    except (ParamsError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from exc
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    typer.echo(f"scored {rows} customers at {as_of} into {out}")


def main() -> None:  # ``python -m pipelines.cli`` and spark-submit
    app()


if __name__ == "__main__":
    main()
