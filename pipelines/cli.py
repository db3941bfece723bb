"""The ``gridscore`` command: one subcommand per DVC stage (the same word in dvc.yaml).

The CLI only parses: each command reads params.yaml, applies its options, and hands the
paths to its stage's ``run`` (``pipelines/<stage>.py``), which reads, computes, writes and
logs. What the user can fix (:class:`features.errors.GridscoreError`) is printed once as
``error: ...`` with exit code 2; anything else is a bug and shows its traceback (exit 1).
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import pyarrow as pa
import typer

from features.errors import GridscoreError
from pipelines.config import Params, load_params

app = typer.Typer(
    help="gridscore: customer value pyramid and arrears credit scoring for electricity utilities.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
T = TypeVar("T")

ParamsOpt = Annotated[Path, typer.Option("--params", help="params file", show_default=True)]
Table = Annotated[Path, typer.Option(help="feature table (Parquet)")]
Truth = Annotated[Path | None, typer.Option(help="generator truth, for evaluation only")]


@app.callback()
def _configure(
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = "INFO",
) -> None:
    level = log_level.upper()  # a name logging does not know: its own "Unknown level" error
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # What the libraries say of their own work at INFO (fontTools lists every glyph it keeps
    # when matplotlib embeds the report's CJK font: a hundred long lines) waits for DEBUG.
    for name in _CHATTY:
        logging.getLogger(name).setLevel("DEBUG" if level == "DEBUG" else "WARNING")


#: Libraries whose INFO records are about themselves, not the run.
_CHATTY = ("fontTools",)


#: What the machine, not the code, can be short of: each is said in one line, exit code 2.
_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _disk_problem(exc: OSError) -> bool:
    """A full disk or an output that cannot be written, from the OS or from pyarrow (whose
    OSError carries the errno only in its text)."""
    if exc.errno in _DISK_ERRORS:
        return True
    text = str(exc)
    return exc.errno is None and any(
        f"[errno {code}]" in text.lower() or os.strerror(code) in text for code in _DISK_ERRORS
    )


def _guard(call: Callable[[], T]) -> T:
    """Run ``call``; a user's error becomes one line and exit code 2, and so does a full
    disk, a read-only or forbidden output, or a Parquet file that cannot be decoded (the
    outputs are written beside and renamed, so nothing half-written is left marked done).
    Anything else is a bug and keeps its traceback."""
    try:
        return call()
    except GridscoreError as exc:
        message = str(exc)
    except OSError as exc:
        if not _disk_problem(exc):
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        message = f"{where}{exc.strerror or exc}; no output was marked as done"
    except pa.ArrowInvalid as exc:  # a damaged page the footer check could not see
        message = f"a Parquet input could not be decoded ({exc}); write it again"
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _params(path: Path, section: str | None = None, **options) -> Params:
    p = load_params(path)
    return p.override(section, **options) if section else p


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
        str | None, typer.Option(help="YYYY-MM [generate.start_period]")
    ] = None,
    defect_rate: Annotated[float | None, typer.Option(help="[generate.defect_rate]")] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Write the synthetic utility: raw tables in OUT, ground truth in TRUTH."""
    from pipelines import generate as stage

    options = dict(customers=customers, months=months, seed=seed, start_period=start_period)
    _guard(
        lambda: stage.run(
            _params(params, "generate", defect_rate=defect_rate, **options),
            stage.Paths(out, truth or out.parent / "truth"),
        )
    )


@app.command()
def validate(
    raw: Annotated[Path, typer.Option(help="raw folder: customers, bills, payments (csv/parquet)")],
    out: Annotated[Path, typer.Option(help="folder for the validated tables")],
    quarantine: Annotated[Path, typer.Option(help="folder for the quarantined rows")],
    summary: Annotated[Path, typer.Option(help="JSON summary (DVC metrics)")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Check RAW against the data contract; bad rows go to QUARANTINE with their reason."""
    from pipelines import validate as stage

    _guard(lambda: stage.run(_params(params), stage.Paths(raw, out, quarantine, summary)))


@app.command()
def features(
    validated: Annotated[Path, typer.Option(help="folder of the validated tables")],
    out: Annotated[Path, typer.Option(help="folder for features, labels and ledger.parquet")],
    summary: Annotated[Path, typer.Option(help="JSON summary (DVC metrics)")],
    quarantine: Annotated[
        Path | None, typer.Option(help="the validate stage's quarantine: incomplete ledgers")
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Point-in-time features (and labels) for every snapshot in params.yaml."""
    from pipelines import features as stage

    paths = stage.Paths(validated, out, summary, quarantine)
    _guard(lambda: stage.run(_params(params), paths))


@app.command()
def train(
    features: Table,
    out: Annotated[Path, typer.Option(help="folder for the model files")],
    labels: Annotated[
        Path | None, typer.Option(help="labels (Parquet); omit if in FEATURES")
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Fit the arrears model and its scorecard baseline; log and register it in MLflow."""
    from pipelines import train as stage

    _guard(lambda: stage.run(_params(params), stage.Paths(features, out, labels)))


@app.command()
def evaluate(
    features: Table,
    model: Annotated[Path, typer.Option(help="folder of the trained model")],
    reports: Annotated[Path, typer.Option(help="folder for figures, grades and test scores")],
    plots: Annotated[Path, typer.Option(help="folder for the curves as CSV (DVC plots)")],
    metrics: Annotated[Path, typer.Option(help="JSON metrics (DVC metrics)")],
    labels: Annotated[Path | None, typer.Option(help="labels (Parquet)")] = None,
    truth: Truth = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Evaluate the arrears model on the test snapshots: metrics, grades, plots, expected loss."""
    from pipelines import evaluate as stage

    paths = stage.Paths(features, model, reports, plots, metrics, labels, truth)
    _guard(lambda: stage.run(_params(params), paths))


@app.command()
def predict(
    features: Annotated[Path, typer.Option(help="feature table (.parquet or .csv)")],
    model: Annotated[str, typer.Option(help="model folder or models:/NAME@ALIAS")],
    out: Annotated[Path, typer.Option(help="scored rows (.parquet or .csv)")],
    reasons: Annotated[
        bool, typer.Option(help="add the features raising each PD most [explain.top_n]")
    ] = False,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Score any feature table with the arrears model: PD, grade, raw score [, reasons].

    Needs no tracking for a model folder; a registry URI is downloaded from MLflow."""
    from pipelines import predict as stage

    rows = _guard(lambda: stage.run(_params(params), stage.Paths(features, model, out), reasons))
    typer.echo(f"scored {rows} rows into {out}")


@app.command()
def tune(
    features: Table,
    out: Annotated[Path, typer.Option(help="the result (JSON): best settings, every trial")],
    labels: Annotated[
        Path | None, typer.Option(help="labels (Parquet); omit if in FEATURES")
    ] = None,
    trials: Annotated[int, typer.Option(help="at most this many trials", min=1)] = 30,
    timeout: Annotated[
        float | None, typer.Option(help="stop starting trials after this many seconds")
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Search leaves, minimum child samples, learning rate, L2 and feature fraction by
    held-out log-loss (cross-validation, or the validation snapshots); log it to MLflow."""
    from pipelines import tune as stage

    result = _guard(
        lambda: stage.run(_params(params), stage.Paths(features, out, labels), trials, timeout)
    )
    typer.echo(
        f"held-out log-loss {result['best']['log_loss']:.5f} "
        f"(now {result['current']['log_loss']:.5f}) after {result['trials']} trials; "
        f"to try it: {result['dvc_exp_run']}"
    )


@app.command()
def promote(
    model_name: Annotated[str, typer.Option("--model", help="registered model")] = (
        "gridscore-arrears"
    ),
    metric: Annotated[
        str | None,
        typer.Option(help="another model: the run metric to compare, higher is better"),
    ] = None,
    features: Annotated[Path, typer.Option(help="feature table (Parquet)")] = Path(
        "data/features/features.parquet"
    ),
    labels: Annotated[Path, typer.Option(help="labels (Parquet)")] = Path(
        "data/features/labels.parquet"
    ),
    model_dir: Annotated[Path, typer.Option("--model-dir", help="the candidate's folder")] = Path(
        "artifacts/arrears"
    ),
    metrics: Annotated[Path, typer.Option(help="the verdict (JSON, a DVC metric)")] = Path(
        "metrics/promotion.json"
    ),
    record: Annotated[
        Path | None, typer.Option(help="a copy of the verdict outside git (the DVC stage's out)")
    ] = None,
    force: Annotated[bool, typer.Option(help="move the alias even if the gate fails")] = False,
    refusal_ok: Annotated[
        bool, typer.Option(help="exit 0 when the gate refuses (the DVC stage)")
    ] = False,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """The champion/challenger gate: the arrears candidate becomes champion only if it beats
    the champion on the same test rows (exit 1 if refused). With --metric, any registered
    model by one run metric instead."""
    p = _params(params)
    if metric is not None or model_name != "gridscore-arrears":
        from pipelines.tracking import Tracker

        promoted, message = _guard(
            lambda: Tracker(p.tracking.experiment).promote(model_name, metric or "test_auc")
        )
    else:
        from pipelines import promote as stage

        paths = stage.Paths(features, labels, model_dir, metrics, record)
        verdict = _guard(lambda: stage.run(p, paths, force))
        promoted, message = verdict["promoted"] or verdict["passed"], verdict["message"]
    typer.echo(message)
    if not promoted and not refusal_ok:
        raise typer.Exit(1)


@app.command()
def segment(
    features: Table,
    out: Annotated[Path, typer.Option(help="folder for the fitted pipeline and every tier")],
    reports: Annotated[Path, typer.Option(help="folder for profiles, migrations and charts")],
    metrics: Annotated[Path, typer.Option(help="JSON metrics (DVC metrics)")],
    model: Annotated[
        Path | None, typer.Option(help="the arrears model's folder (risk-adjusted value)")
    ] = Path("artifacts/arrears"),
    truth: Truth = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """The customer value pyramid on risk-adjusted value, with hysteresis, validated out of
    time, and the behaviour segments within it."""
    from pipelines import segment as stage

    paths = stage.Paths(features, out, reports, metrics, truth, model)
    _guard(lambda: stage.run(_params(params), paths))


@app.command()
def monitor(
    features: Table = Path("data/features/features.parquet"),
    labels: Annotated[Path, typer.Option(help="labels (Parquet)")] = Path(
        "data/features/labels.parquet"
    ),
    ledger: Annotated[Path, typer.Option(help="the features stage's ledger.parquet")] = Path(
        "data/features/ledger.parquet"
    ),
    model: Annotated[Path, typer.Option(help="folder of the arrears model")] = Path(
        "artifacts/arrears"
    ),
    segments: Annotated[Path, typer.Option(help="folder of the segment model")] = Path(
        "artifacts/segments"
    ),
    reports: Annotated[Path, typer.Option(help="folder for the CSV tables")] = Path(
        "reports/monitor"
    ),
    metrics: Annotated[Path, typer.Option(help="compact JSON (DVC metrics)")] = Path(
        "metrics/monitor.json"
    ),
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """The last monthly runs: stability (PSI, CSI), expected and back-tested performance,
    fairness by group."""
    from pipelines import monitor as stage

    paths = stage.Paths(features, labels, ledger, model, segments, reports, metrics)
    summary = _guard(lambda: stage.run(_params(params), paths))
    last = summary["runs"][-1]
    typer.echo(
        f"{len(summary['runs'])} runs to {last['as_of']}: PSI of the PD "
        f"{last['psi_pd_vs_reference']:.3f} against the training rows, {last['alerts']} "
        f"alerts, {last['fairness_flags']} fairness flags; {reports}"
    )


@app.command()
def report(
    metrics: Annotated[Path, typer.Option(help="the stages' metrics folder")] = Path("metrics"),
    reports: Annotated[Path, typer.Option(help="the stages' reports folder")] = Path("reports"),
    lock: Annotated[Path, typer.Option(help="dvc.lock, for the hashes")] = Path("dvc.lock"),
    out: Annotated[Path, typer.Option(help="folder for report.en.html and report.zh.html")] = (
        Path("reports/report")
    ),
    headline: Annotated[
        Path | None, typer.Option(help="the run's headline figures (JSON, a DVC metric)")
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """One self-contained, offline HTML page of the run, in English and in Chinese."""
    from pipelines import report as stage

    paths = stage.Paths(metrics, reports, lock, out, headline)
    written = _guard(lambda: stage.run(_params(params), paths))
    typer.echo(" ".join(str(p) for p in written))


@app.command()
def explain(
    features: Table = Path("data/features/features.parquet"),
    model: Annotated[Path, typer.Option(help="folder of the arrears model")] = Path(
        "artifacts/arrears"
    ),
    segments: Annotated[Path, typer.Option(help="folder of the segment model")] = Path(
        "artifacts/segments"
    ),
    ledger: Annotated[
        Path, typer.Option(help="incomplete ledgers (the features stage's ledger.parquet)")
    ] = Path("data/features/ledger.parquet"),
    customer: Annotated[str | None, typer.Option(help="explain this one customer")] = None,
    as_of: Annotated[
        str | None, typer.Option(help="snapshot, YYYY-MM-DD [explain.as_of, else the latest]")
    ] = None,
    lang: Annotated[str, typer.Option(help="en or zh, for --customer")] = "en",
    chart: Annotated[
        Path | None, typer.Option(help="waterfall PNG [reports/waterfall_<id>_<date>_<lang>.png]")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="stage: folder for the tables")] = None,
    reports: Annotated[Path | None, typer.Option(help="stage: folder for the reports")] = None,
    summary: Annotated[Path | None, typer.Option(help="stage: JSON summary (DVC metrics)")] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """SHAP reason codes (English, Chinese): a whole snapshot (the stage: --out --reports
    --summary) or one customer's tier, PD, grade, expected loss and reasons (--customer)."""
    from pipelines import explain as stage

    def call() -> None:
        p = _params(params, "explain", as_of=as_of)
        if customer is not None:
            d = stage.explain_customer(features, model, segments, customer, p, as_of, ledger)
            typer.echo(stage.render(d, lang, p.tariffs.currency))
            name = f"waterfall_{customer}_{d['as_of'].date()}_{lang}.png"
            path = chart or Path("reports") / name
            typer.echo(f"waterfall chart: {stage.waterfall_chart(d, path, lang=lang)}")
            return
        if out is None or reports is None or summary is None:
            raise GridscoreError("give --customer ID, or --out, --reports and --summary")
        stage.run(p, stage.Paths(features, model, segments, out, reports, summary, ledger))

    _guard(call)


@app.command()
def notice(
    customer: Annotated[str, typer.Option(help="the customer asked for a deposit or guarantee")],
    lang: Annotated[str, typer.Option(help="zh or en")] = "zh",
    scores: Annotated[Path, typer.Option(help="the score stage's folder")] = Path("data/scores"),
    validated: Annotated[Path, typer.Option(help="the validate stage's tables")] = Path(
        "data/validated"
    ),
    out: Annotated[Path | None, typer.Option(help="HTML file [default: print it]")] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """The notice of a deposit or guarantee request (printable HTML), its reasons checked
    against the customer's validated bills and payments first."""
    from pipelines import notice as stage

    def call() -> None:
        page = stage.notice(scores, validated, customer, _params(params), lang)
        if out is None:
            typer.echo(page)
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(page, encoding="utf-8")
        typer.echo(f"notice: {out}")

    _guard(call)


@app.command()
def notices(
    out: Annotated[Path, typer.Option(help="folder for <customer_id>.<lang>.html")],
    scores: Annotated[Path, typer.Option(help="the score stage's folder")] = Path("data/scores"),
    lang: Annotated[list[str] | None, typer.Option(help="zh and/or en [default: both]")] = None,
) -> None:
    """Every notice a scoring run stored (its notices/part-*.parquet) as printable HTML files,
    for a print or mail job."""
    from pipelines import notice as stage

    def call() -> None:
        written = stage.export(scores, out, tuple(lang or stage.LANGUAGES))
        typer.echo(f"notices: {written} file(s) in {out}")

    _guard(call)


@app.command()
def score(
    out: Annotated[Path, typer.Option(help="folder of the scored base (Parquet partitions)")],
    validated: Annotated[Path | None, typer.Option(help="the validate stage's tables")] = None,
    raw: Annotated[
        Path | None,
        typer.Option(help="a raw folder instead, validated first into OUT.validated"),
    ] = None,
    as_of: Annotated[
        str | None, typer.Option(help="YYYY-MM-DD [score.as_of, else the data's last month end]")
    ] = None,
    arrears_model: Annotated[
        str | None, typer.Option(help="folder or models:/NAME@ALIAS [score.arrears_model]")
    ] = None,
    segments_model: Annotated[
        str | None, typer.Option(help="folder or models:/NAME@ALIAS [score.segments_model]")
    ] = None,
    quarantine: Annotated[
        Path | None, typer.Option(help="the validate stage's quarantine (reconciliation)")
    ] = None,
    metrics: Annotated[Path | None, typer.Option(help="copy of the reconciliation")] = None,
    history: Annotated[
        Path | None,
        typer.Option(help="keep the last RUNS month ends here, as_of=YYYY-MM-DD/ each"),
    ] = None,
    runs: Annotated[int | None, typer.Option(help="month ends in the history [score.runs]")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace a run of other settings in OUT")] = False,
    allow_ahead: Annotated[
        bool, typer.Option(help="an as_of after the data's end (a forecast) [score.allow_ahead]")
    ] = False,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Score the whole base at as_of: tier, PD, grade, expected loss, reasons, action.

    Streams customers in partitions; a run stopped midway and started again resumes."""
    from pipelines import score as stage

    models = dict(as_of=as_of, arrears_model=arrears_model, segments_model=segments_model)
    if allow_ahead:
        models["allow_ahead"] = True
    if runs is not None:
        models["runs"] = runs
    paths = stage.Paths(out, validated, raw, quarantine, metrics, history)
    _guard(lambda: stage.run(_params(params, "score", **models), paths, overwrite))


@app.command("score-spark")
def score_spark(
    validated: Annotated[str, typer.Option(help="validated tables: a folder or a Spark URL")],
    out: Annotated[str, typer.Option(help="output folder or URL (s3a://, abfss://, hdfs://)")],
    as_of: Annotated[str, typer.Option(help="YYYY-MM-DD, a month end")],
    quarantine: Annotated[
        str | None, typer.Option(help="the validate stage's quarantine: a folder or a Spark URL")
    ] = None,
    decision_model: Annotated[
        str | None, typer.Option(help="models:/gridscore-decision@champion (else the two below)")
    ] = None,
    arrears_model: Annotated[
        str | None, typer.Option(help="folder or registry URI [score.arrears_model]")
    ] = None,
    segments_model: Annotated[
        str | None, typer.Option(help="folder or registry URI [score.segments_model]")
    ] = None,
    master: Annotated[str | None, typer.Option(help="e.g. local[2] [spark-submit's]")] = None,
    buckets: Annotated[int, typer.Option(help="customer buckets (feature tasks)")] = 64,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """The scoring job on Spark: same features and decision, written by Spark (docs/scoring.md)."""
    from pipelines import spark as stage

    models = dict(arrears_model=arrears_model, segments_model=segments_model)
    job = stage.Job(validated, out, as_of, quarantine, decision_model, master, buckets)
    rows = _guard(lambda: stage.run(_params(params, "score", **models), job))
    typer.echo(f"scored {rows} customers at {as_of} into {out}")


def main() -> None:  # ``python -m pipelines.cli`` and spark-submit
    app()


if __name__ == "__main__":
    main()
