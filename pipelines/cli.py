"""The ``gridscore`` command: one subcommand per DVC stage (the same word in dvc.yaml)."""

from __future__ import annotations

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
