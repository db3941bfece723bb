"""Shared fixtures: a tiny hand-written raw base (CSV) and a small seeded synthetic one."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import textwrap
from pathlib import Path

#: pytest-xdist runs the suite on workers that share the machine's cores (`make test`: 3 on
#: 2 cores, as the server, Spark and dvc tests wait on other processes); each worker's OpenMP
#: (LightGBM, scikit-learn), numba and DuckDB get its share of the cores, at least one, so
#: workers do not oversubscribe them. Set before anything loads them.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, (os.cpu_count() or 1) // WORKERS)
if WORKERS > 1:
    for _var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, str(THREADS))

import pytest  # noqa: E402
import yaml  # noqa: E402

from pipelines.config import Params, load_params  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]


def example(name: str):
    """The script ``examples/<name>.py`` as a module (examples are scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, PROJECT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _params_file() -> Path:
    """The project's params.yaml with ``features.threads`` and ``train.threads`` set to this
    worker's share of the cores (what the tests run; tests of params.yaml itself read it)."""
    raw = yaml.safe_load((PROJECT / "params.yaml").read_text())
    raw["features"]["threads"] = min(raw["features"]["threads"], THREADS)
    raw["train"]["threads"] = min(raw["train"]["threads"], THREADS)
    folder = Path(tempfile.mkdtemp(prefix="gridscore-params-"))
    atexit.register(shutil.rmtree, folder, True)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return folder / "params.yaml"


#: The params the tests run with (see :func:`_params_file`).
PARAMS = _params_file()
#: The default pipeline's tests run the project's params.yaml on a base of this many
#: customers instead of generate.customers (20,000): the quality bars they check hold there
#: too (AUC above the scorecard, within 0.03 of the oracle, ECE below 0.02, grades' realised
#: rates rising) and the whole default pipeline builds in about a third of the time.
DEFAULT_RUN_CUSTOMERS = 8000
#: Supply cost per kWh by tariff class, as in params.yaml, for tests of the pure core.
COSTS = {
    "residential": 0.45,
    "commercial": 0.58,
    "industrial": 0.55,
    "large_industrial": 0.53,
    "agricultural": 0.46,
}

CUSTOMERS_CSV = """\
customer_id,tariff_class,industry,energy_intensive,preferential_tariff,region,voltage_kv,contract_capacity_kva,connected_on,disconnected_on,account_manager
C1,residential,,false,false,north,0.22,,2015-04-01,,
C2,large_industrial,steel,true,true,west,110,12000,2010-01-15,,Li Wei
C3,commercial,retail,False,no,,0.4,40,2024-02-10,2025-03-20,
"""
BILLS_CSV = """\
customer_id,period,kwh,amount,issued_on,due_date
C1,2024-01,310.5,173.88,2024-02-03,2024-02-18
C1,2024-02,290.0,162.40,2024-03-02,2024-03-17
C1,2024-03,275.2,154.11,2024-04-03,2024-04-18
C2,2024-01,1500000,802500.00,2024-02-02,2024-02-22
C2,2024-02,1320000,706200.00,2024-03-01,2024-03-21
C2,2024-03,1480000,791800.00,2024-04-02,2024-04-22
C3,2024-02,820,656.00,2024-03-04,2024-03-24
C3,2024-03,910,728.00,2024-04-01,2024-04-21
"""
PAYMENTS_CSV = """\
payment_id,customer_id,paid_on,amount
P1,C1,2024-02-15,173.88
P2,C1,2024-03-20,162.40
P3,C2,2024-02-21,802500.00
P4,C2,2024-03-25,400000.00
P5,C2,2024-03-29,-400000.00
P6,C3,2024-03-20,656.00
P7,C3,2024-04-30,728.00
"""


def pytest_configure(config) -> None:
    """Compile the feature kernel once, before pytest-xdist starts its workers
    (``pipelines.warm``; ``make install`` has done it, and then this loads the cache): every
    worker, and the dvc repro copy, which copies the cache, load it instead of compiling it
    again, about 17 s each."""
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return
    from pipelines.warm import compile_kernel

    compile_kernel(load_params(PARAMS))


def shared(tmp_path_factory, name: str, build):
    """``build(folder) -> dict`` run once per test session, by whichever pytest-xdist worker
    asks first (the others wait on the lock, then reuse it): the expensive fixtures are
    built once, and the tests that use them spread over every worker. ``(folder, result)``;
    the result goes through JSON, so it holds JSON types. Without xdist, the session's own
    temporary folder."""
    import fcntl
    import json

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, done = root / f"shared-{name}", root / f"shared-{name}.json"
    with open(root / f".shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the worker dies
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            result = build(folder)
            done.write_text(json.dumps(result))
    return folder, json.loads(done.read_text())


def pytest_collection_modifyitems(config, items) -> None:
    """The slow end-to-end tests first: pytest-xdist hands tests out in this order, so the
    longest one (dvc repro, about a minute and a half) starts at once beside the others
    instead of last, alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable


def write_tiny_base(folder: Path) -> Path:
    """Write the tiny hand-checked raw base as CSV into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("customers", CUSTOMERS_CSV),
        ("bills", BILLS_CSV),
        ("payments", PAYMENTS_CSV),
    ):
        (folder / f"{name}.csv").write_text(textwrap.dedent(text))
    return folder


@pytest.fixture
def tiny_raw(tmp_path: Path) -> Path:
    """A valid 3-customer raw folder in CSV that tests may edit."""
    return write_tiny_base(tmp_path / "raw")


@pytest.fixture(scope="session")
def params() -> Params:
    return load_params(PARAMS)


@pytest.fixture(scope="session")
def small_base(tmp_path_factory, params: Params) -> Path:
    """A seeded synthetic base of 3,000 customers over 24 months (raw/ and truth/)."""
    from pipelines.generate import write_base

    def build(root: Path) -> dict:
        write_base(3000, 24, "2023-01", 7, params.tariffs, root / "raw", root / "truth")
        return {}

    return shared(tmp_path_factory, "small_base", build)[0]


def first_customers(validated: Path, quarantine: Path, n: int, out: Path) -> tuple[Path, Path]:
    """The first ``n`` customers (in id order) of a validated folder with their bills and
    payments, and the quarantined rows that are theirs or no validated customer's (the rows
    tied to customers by id slips): ``(out/validated, out/quarantine)``. For the tests that
    re-run scoring to compare two runs: a slice of the base proves the same thing faster."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    everyone = pq.read_table(validated / "customers.parquet", columns=["customer_id"])
    ids = pa.array(sorted(everyone["customer_id"].to_pylist())[:n])
    dst, held = out / "validated", out / "quarantine"
    dst.mkdir(parents=True)
    held.mkdir(parents=True)
    for table in ("customers", "bills", "payments"):
        t = pq.read_table(validated / f"{table}.parquet")
        pq.write_table(t.filter(pc.is_in(t["customer_id"], ids)), dst / f"{table}.parquet")
    for path in quarantine.glob("*.parquet"):
        q = pq.read_table(path)
        if "customer_id" not in q.column_names:
            pq.write_table(q, held / path.name)
            continue
        cid = q["customer_id"]
        keep = pc.or_kleene(pc.is_in(cid, ids), pc.invert(pc.is_in(cid, everyone["customer_id"])))
        pq.write_table(q.filter(pc.fill_null(keep, True)), held / path.name)
    return dst, held


def default_params() -> Params:
    """The project's params.yaml, tracking off, on the tests' base size."""
    p = load_params(PARAMS).without_tracking()
    return p.override("generate", customers=DEFAULT_RUN_CUSTOMERS)


@pytest.fixture(scope="session")
def default_run(tmp_path_factory):
    """generate -> validate -> features -> train -> evaluate with the project's params.yaml
    (tracking off: the tests that log use a store of their own): (root, train summary,
    metrics)."""
    from pipelines import evaluate, features, generate, train, validate

    def build(root: Path) -> dict:
        p = default_params()
        generate.run(p, generate.Paths(root / "raw", root / "truth"))
        validate.run(
            p,
            validate.Paths(root / "raw", root / "validated", root / "quarantine", root / "v.json"),
        )
        features.run(
            p,
            features.Paths(
                root / "validated", root / "features", root / "f.json", root / "quarantine"
            ),
        )
        f, lab = root / "features" / "features.parquet", root / "features" / "labels.parquet"
        summary = train.run(p, train.Paths(f, root / "model", lab))
        metrics = evaluate.run(
            p,
            evaluate.Paths(
                f, root / "model", root / "reports", root / "plots", root / "arrears.json", lab,
                root / "truth",
            ),
        )  # fmt: skip
        return {"summary": summary, "metrics": metrics}

    root, result = shared(tmp_path_factory, "default_run", build)
    return root, result["summary"], result["metrics"]


@pytest.fixture(scope="session")
def segmented(default_run, tmp_path_factory):
    """The segment stage on the default run's features: (out, metrics, tiers ⨝ features, params)."""
    import pyarrow.parquet as pq

    from pipelines import segment

    root, _, _ = default_run
    p = default_params()

    def build(out: Path) -> dict:
        paths = segment.Paths(
            root / "features" / "features.parquet",
            out / "model",
            out / "reports",
            out / "segments.json",
            root / "truth",
            root / "model",
        )
        return segment.run(p, paths)

    out, metrics = shared(tmp_path_factory, "segmented", build)
    tiers = pq.read_table(out / "model" / "tiers.parquet").to_pandas(date_as_object=False)
    feats = pq.read_table(root / "features" / "features.parquet").to_pandas(date_as_object=False)
    tiers["as_of"] = tiers["as_of"].astype(feats["as_of"].dtype)
    return out, metrics, tiers.merge(feats, on=["customer_id", "as_of"]), p


@pytest.fixture(scope="session")
def explained(default_run, segmented, tmp_path_factory):
    """The explain stage on the default run: (out folder, summary, params, input paths)."""
    from pipelines import explain

    root, _, _ = default_run
    seg_out, _, _, p = segmented
    paths = {
        "features": root / "features" / "features.parquet",
        "model": root / "model",
        "segments": seg_out / "model",
        "ledger": root / "features" / "ledger.parquet",
    }

    def build(out: Path) -> dict:
        return explain.run(
            p,
            explain.Paths(
                paths["features"],
                paths["model"],
                paths["segments"],
                out / "data",
                out / "reports",
                out / "explanations.json",
                paths["ledger"],
            ),
        )

    out, summary = shared(tmp_path_factory, "explained", build)
    return out, summary, p, paths


@pytest.fixture(scope="session")
def scored(default_run, segmented, tmp_path_factory):
    """The default base scored by the CLI at its default as_of (the last month end the data
    covers, 2026-01-31), logged to a fresh MLflow store: (folder, tracking URI, scores)."""
    from typer.testing import CliRunner

    from pipelines import score
    from pipelines.cli import app

    root, _, _ = default_run
    seg_out = segmented[0]

    def build(tmp: Path) -> dict:
        uri = f"sqlite:///{tmp / 'mlflow.db'}"
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MLFLOW_TRACKING_URI", uri)
            result = CliRunner().invoke(
                app,
                [
                    "score",
                    "--validated",
                    str(root / "validated"),
                    "--quarantine",
                    str(root / "quarantine"),
                    "--out",
                    str(tmp / "scores"),
                    "--metrics",
                    str(tmp / "score.json"),
                    "--arrears-model",
                    str(root / "model"),
                    "--segments-model",
                    str(seg_out / "model"),
                    "--params",
                    str(PARAMS),
                ],
            )
        assert result.exit_code == 0, result.output
        return {"uri": uri}

    tmp, result = shared(tmp_path_factory, "scored", build)
    return tmp, result["uri"], score.read_scores(tmp / "scores")


@pytest.fixture(autouse=True)
def _mlflow_uri_restored():
    """A test that points mlflow's process-wide tracking URI somewhere (the tracker does, to
    log) leaves it as it found it, so no later test writes into its store."""
    import sys

    if "mlflow" not in sys.modules:
        yield
        return
    from mlflow.tracking._tracking_service import utils

    saved = utils._tracking_uri
    yield
    utils._tracking_uri = saved
