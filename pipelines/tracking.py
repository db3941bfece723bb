"""MLflow at the edge: the one tracking service every stage logs through.

The store is ``MLFLOW_TRACKING_URI`` when set, else a SQLite file ``mlflow.db`` in the
project with artifacts in ``mlartifacts/`` beside it; :class:`Tracker` is the only place
that says so. mlflow is imported only when something is logged or loaded, so the other
commands start fast, and nothing happens at import time.

A stage opens a run with :meth:`Tracker.stage_run` (tagged with the stage, params and
metrics logged), adds files and models inside it, and notes the run beside its DVC output
(:meth:`Tracker.note`). Every registered version gets the alias ``candidate`` in one place
(:meth:`Tracker.register_candidate`); ``gridscore promote`` decides the ``champion``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from features.errors import GridscoreError
from pipelines.config import Params
from pipelines.io import process_alive

log = logging.getLogger(__name__)

DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"
CANDIDATE, CHAMPION = "candidate", "champion"
#: What a logged gridscore model needs to load and predict, beside the gridscore package.
MODEL_DISTRIBUTIONS = ("mlflow", "lightgbm", "numpy", "pandas", "pyarrow", "scikit-learn", "skops")


def model_requirements() -> list[str]:
    """Exact pins of the installed versions of :data:`MODEL_DISTRIBUTIONS`, for a logged
    model's environment: stated rather than inferred by MLflow, which imports the model in a
    subprocess to guess them (4 to 5 s a model, and a guess)."""
    return [f"{d}=={md.version(d)}" for d in MODEL_DISTRIBUTIONS]


class TrackingError(GridscoreError):
    """The registry has no such model or version, or a run lacks what is asked of it."""


class TrackingUnreachable(TrackingError):
    """The tracking server does not answer."""


_RELOCATED: set[Path] = set()  # project stores checked in this process (once each)
_PROBED: dict[str, str | None] = {}  # server -> why it does not answer (None: it does); once


def _probe(uri: str, timeout: float) -> str | None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as reply:
            reply.read()
    except urllib.error.HTTPError as exc:  # it answered: an old server without /health
        return f"tracking server {uri} answers HTTP {exc.code}" if exc.code >= 500 else None
    except (urllib.error.URLError, OSError) as exc:
        return f"tracking server {uri} does not answer ({getattr(exc, 'reason', exc)})"
    return None


class Tracker:
    """One MLflow store and experiment."""

    def __init__(self, experiment: str = "gridscore", project_dir: Path = Path(".")):
        self.experiment = experiment
        self.project_dir = Path(project_dir)

    @classmethod
    def of(cls, params: Params) -> Tracker | None:
        """The tracker params.yaml asks for, or None when tracking is off, or when its server
        does not answer and ``tracking.unreachable`` is ``skip`` (said in the log). Called at
        the start of a stage, so a dead server stops it before any work.

        Raises:
            TrackingUnreachable: the server does not answer within
                ``tracking.timeout_seconds`` and ``tracking.unreachable`` is ``fail``.
        """
        if not params.tracking.enabled:
            return None
        tracker = cls(params.tracking.experiment)
        known = tracker.uri in _PROBED
        problem = tracker.unreachable(params.tracking.timeout_seconds)
        if problem is None:
            return tracker
        if params.tracking.unreachable == "skip":
            if not known:  # said once per process
                log.warning("tracking skipped: %s (tracking.unreachable: skip)", problem)
            return None
        raise TrackingUnreachable(
            f"{problem}; start it, point MLFLOW_TRACKING_URI at one that answers, or set "
            "tracking.enabled: false (tracking.unreachable: skip writes the outputs untracked)"
        )

    def unreachable(self, timeout: float) -> str | None:
        """Why the tracking server does not answer (its ``/health`` within ``timeout``
        seconds), or None when it does or the store is local (SQLite, files)."""
        uri = self.uri
        if not uri.startswith(("http://", "https://")):
            return None
        if uri not in _PROBED:
            _PROBED[uri] = _probe(uri, timeout)
        return _PROBED[uri]

    # ------------------------------------------------------------------ where runs go

    @property
    def _default_uri(self) -> str:
        return f"sqlite:///{(self.project_dir / DEFAULT_DB).resolve()}"

    @property
    def uri(self) -> str:
        """``MLFLOW_TRACKING_URI``, or ``sqlite:///<project>/mlflow.db``."""
        return os.environ.get("MLFLOW_TRACKING_URI") or self._default_uri

    def client(self):
        """An ``MlflowClient`` on this store (and the fluent API pointed at it)."""
        import mlflow

        if self.uri == self._default_uri and self.project_dir.resolve() not in _RELOCATED:
            relocate_store(self.project_dir)
            _RELOCATED.add(self.project_dir.resolve())
        mlflow.set_tracking_uri(self.uri)
        return mlflow.MlflowClient(self.uri)

    def _experiment_id(self, client) -> str:
        exp = client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return exp.experiment_id
        location = None
        if self.uri == self._default_uri:  # the project's own store keeps artifacts beside it
            location = (self.project_dir / DEFAULT_ARTIFACTS).resolve().as_uri()
        return client.create_experiment(self.experiment, artifact_location=location)

    # ------------------------------------------------------------------ runs

    @contextmanager
    def stage_run(
        self, stage: str, params: dict, metrics: dict[str, float], inputs: Sequence[Path] = ()
    ) -> Iterator:
        """An MLflow run of a stage, with its params and metrics, tagged with what made it
        (:func:`provenance`: the git commit, the hashes of the data ``inputs`` it read, a
        description) and those inputs logged as datasets (``mlflow.log_input``)."""
        import mlflow

        client = self.client()
        tags, data = provenance(stage, inputs, self.project_dir)
        experiment = self._experiment_id(client)
        self.close_dead_runs(client, experiment)
        owner = {"gridscore.pid": str(os.getpid()), "gridscore.host": socket.gethostname()}
        with mlflow.start_run(
            experiment_id=experiment,
            run_name=stage,
            tags={"gridscore.stage": stage, **owner, **tags},
        ) as run:
            mlflow.log_params(params)
            mlflow.log_metrics(metrics)
            _log_inputs(data, stage)
            yield run
        log.info("logged %s run %s to %s", stage, run.info.run_id, self.uri)

    @staticmethod
    def close_dead_runs(client, experiment_id: str) -> int:
        """Mark ``KILLED`` the runs still ``RUNNING`` whose process, on this host, is gone (a
        stage killed while it logged); returns how many. Runs of other hosts are left."""
        host = socket.gethostname()
        closed = 0
        for run in client.search_runs(
            [experiment_id], "attributes.status = 'RUNNING'", max_results=200
        ):
            tags = run.data.tags
            pid = tags.get("gridscore.pid", "")
            if tags.get("gridscore.host") != host or not pid.isdigit() or process_alive(int(pid)):
                continue
            client.set_terminated(run.info.run_id, status="KILLED")
            closed += 1
            log.info("run %s of a killed process (pid %s) marked KILLED", run.info.run_id, pid)
        return closed

    @staticmethod
    def log_files(files: list[Path], artifact_path: str | None = None) -> None:
        """Add files to the active run."""
        import mlflow

        for path in files:
            mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def add_to_run(
        self, run_id: str, metrics: dict[str, float], files: list[Path], artifact_path: str
    ) -> None:
        """Add metrics and files to a finished run (the evaluation of a trained model).

        Raises:
            TrackingError: the store has no such run (it was deleted, or the output was made
                against another store).
        """
        import mlflow

        client = self.client()
        try:
            client.get_run(run_id)
        except mlflow.exceptions.MlflowException as exc:
            raise TrackingError(
                f"the run {run_id} noted beside the model is not in the tracking store "
                f"{self.uri}: the store was replaced or the model made against another; "
                "train again (dvc repro --force train) or set tracking.enabled: false"
            ) from exc
        with mlflow.start_run(run_id=run_id):
            mlflow.log_metrics(metrics)
            self.log_files(files, artifact_path)

    # ------------------------------------------------------------------ models and registry

    def register_candidate(self, info, name: str | None) -> dict:
        """What a stage notes of a logged model: its run and URI, and, when it was registered
        as ``name``, its version, which gets the alias ``candidate``."""
        out = {"run_id": info.run_id, "model_uri": info.model_uri}
        if name:
            out["name"], out["version"] = name, str(info.registered_model_version)
            self.client().set_registered_model_alias(name, CANDIDATE, out["version"])
            log.info("registered %s version %s as %s", name, out["version"], CANDIDATE)
        return out

    def model_version(self, uri: str):
        """The registered version ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` names.

        Raises:
            TrackingError: The registry has no such version.
        """
        import mlflow

        rest = uri.removeprefix("models:/")
        name, sep, alias = rest.partition("@")
        client = self.client()
        try:
            if sep:
                return client.get_model_version_by_alias(name, alias)
            name, _, version = rest.partition("/")
            return client.get_model_version(name, version)
        except mlflow.exceptions.MlflowException as exc:
            raise TrackingError(f"{uri}: no such registered model version ({exc.message})") from exc

    def download(self, uri: str, artifact_path: str, dest: Path) -> tuple[Path, str]:
        """The files a registered version's run logged under ``artifact_path``, downloaded into
        ``dest``; and the version as ``NAME/VERSION``."""
        import mlflow

        mv = self.model_version(uri)
        local = mlflow.artifacts.download_artifacts(
            run_id=mv.run_id, artifact_path=artifact_path, dst_path=str(dest), tracking_uri=self.uri
        )
        return Path(local), f"{mv.name}/{mv.version}"

    def load_pyfunc(self, uri: str):
        """A logged pyfunc model (any MLflow model URI), unwrapped to its Python object."""
        import mlflow

        self.client()
        try:
            return mlflow.pyfunc.load_model(uri).unwrap_python_model()
        except mlflow.exceptions.MlflowException as exc:
            raise TrackingError(f"{uri}: cannot load the model ({exc.message})") from exc

    def promote(self, model_name: str, metric: str = "test_auc") -> tuple[bool, str]:
        """Move ``champion`` to the ``candidate`` version if its run's metric is no worse.

        Returns:
            Whether the candidate was promoted, and a sentence saying why.

        Raises:
            TrackingError: No candidate, or its run lacks the metric.
        """
        import mlflow

        client = self.client()
        try:
            cand = client.get_model_version_by_alias(model_name, CANDIDATE)
        except mlflow.exceptions.MlflowException as exc:
            raise TrackingError(f"{model_name} has no version with the alias {CANDIDATE}") from exc
        cand_score = client.get_run(cand.run_id).data.metrics.get(metric)
        if cand_score is None:
            raise TrackingError(f"the candidate's run {cand.run_id} has no metric {metric}")
        try:
            champ = client.get_model_version_by_alias(model_name, CHAMPION)
        except mlflow.exceptions.MlflowException:
            champ = None
        if champ is not None:
            champ_score = client.get_run(champ.run_id).data.metrics.get(metric, float("-inf"))
            if champ.version == cand.version:
                return False, f"version {cand.version} is already the champion"
            if cand_score < champ_score:
                return False, (
                    f"kept champion version {champ.version}: candidate version {cand.version} "
                    f"has {metric} {cand_score:.4f} < {champ_score:.4f}"
                )
        client.set_registered_model_alias(model_name, CHAMPION, cand.version)
        before = f" (was version {champ.version})" if champ is not None else ""
        return (
            True,
            f"champion is now version {cand.version} with {metric} {cand_score:.4f}{before}",
        )

    # ------------------------------------------------------------------ run notes

    @staticmethod
    def note_path(out: Path) -> Path:
        """Where a stage notes its MLflow run: beside its DVC output, not inside it, so the
        output's hash depends on the model alone and a rerun leaves dvc.lock unchanged."""
        return out.with_name(f"{out.name}.mlflow.json")

    def note(self, out: Path, logged: dict) -> None:
        self.note_path(out).write_text(json.dumps(logged, indent=2))

    def read_note(self, out: Path) -> dict | None:
        path = self.note_path(out)
        return json.loads(path.read_text()) if path.exists() else None


def optional_schema(frame, required: tuple[str, ...]):
    """A column schema where every column but ``required`` may be missing (NaN): real
    feature rows have gaps the five rows of an input example do not show."""
    import pandas as pd
    from mlflow.types import ColSpec, Schema

    def kind(col: pd.Series) -> str:
        if pd.api.types.is_bool_dtype(col):
            return "boolean"
        if pd.api.types.is_integer_dtype(col):
            return "long"
        if pd.api.types.is_float_dtype(col):
            return "double"
        return "string"

    return Schema([ColSpec(kind(frame[c]), c, required=c in required) for c in frame.columns])


# ---------------------------------------------------------------------- provenance


def _git(project_dir: Path, *args: str) -> str | None:
    import subprocess

    try:
        done = subprocess.run(
            ["git", *args], cwd=project_dir, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _dvc_outputs(project_dir: Path) -> dict[str, str]:
    """Every stage output's hash in dvc.lock, by path."""
    import yaml

    lock = project_dir / "dvc.lock"
    if not lock.exists():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    return {
        o["path"]: o.get("md5") or o.get("hash", "")
        for st in stages.values()
        for o in st.get("outs", [])
    }


def _file_md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def provenance(
    stage: str, inputs: Sequence[Path] = (), project_dir: Path = Path(".")
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The tags of a stage's run and its data inputs as (path, hash).

    Tags: ``mlflow.source.git.commit`` (and ``gridscore.git_dirty``: uncommitted changes
    to tracked files), ``gridscore.input.<path>`` for each of ``inputs``: the hash dvc.lock
    records for it where an earlier stage wrote it (the data this run read; a stage's own
    entry is updated only after it), else the MD5 of a file (a table of one's own), else
    ``not hashed`` (a folder outside the pipeline), and ``mlflow.note.content``, the run's
    description. Outside a git checkout what cannot be known is left out.
    """
    tags: dict[str, str] = {}
    commit = _git(project_dir, "rev-parse", "HEAD")
    if commit:
        tags["mlflow.source.git.commit"] = commit
        dirty = _git(project_dir, "status", "--porcelain", "--untracked-files=no")
        tags["gridscore.git_dirty"] = "true" if dirty else "false"
    outs = _dvc_outputs(project_dir)
    root = project_dir.resolve()
    data = []
    for given in inputs:
        path = Path(given).resolve()
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        if rel in outs:
            digest = outs[rel]
        elif path.is_file():
            digest = _file_md5(path)
        else:
            digest = "not hashed"
        data.append((rel, digest))
        tags[f"gridscore.input.{rel}"] = digest
    said = ", ".join(f"{rel} ({digest[:12]})" for rel, digest in data) or "none given"
    at = "no git commit"
    if commit:
        local = " with local changes" if tags["gridscore.git_dirty"] == "true" else ""
        at = f"commit {commit[:12]}{local}"
    tags["mlflow.note.content"] = f"gridscore {stage} at {at}; data: {said}."
    return tags, data


def _log_inputs(inputs: list, stage: str) -> None:
    """Each data input as an MLflow dataset (its path and DVC hash; nothing is read)."""
    import warnings

    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    for path, digest in inputs:
        with warnings.catch_warnings():  # "can be interpreted in multiple ways": a local path
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(str(Path(path).resolve()))
        mlflow.log_input(MetaDataset(source, name=path, digest=digest[:36]), context=stage)


# ---------------------------------------------------------------------- a copied project

#: The columns of MLflow's SQLite schema (mlflow 3.17, pinned) that hold artifact locations.
_LOCATION_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
    ("model_versions", "source"),
)


def relocate_store(project_dir: Path) -> int:
    """Point the project's own store (``mlflow.db``) at this project's ``mlartifacts/``.

    MLflow records artifact locations as absolute paths, so a project copied or moved
    elsewhere would keep writing its artifacts into the original's folder, and read the
    original's. When the store's locations name another project's ``mlartifacts/``, they
    are rewritten, in one transaction, to this one's (where the copy of them is). Returns
    the number of values rewritten (0 when the store is where it was made, or absent).
    """
    import sqlite3

    db = project_dir / DEFAULT_DB
    if not db.exists():
        return 0
    here = (project_dir / DEFAULT_ARTIFACTS).resolve().as_uri()
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT artifact_location FROM experiments WHERE artifact_location LIKE ?",
            (f"%/{DEFAULT_ARTIFACTS}",),
        ).fetchall()
        old = {r[0] for r in rows if r[0].startswith("file://") and r[0] != here}
        changed = 0
        with con:
            for before in old:
                for table, column in _LOCATION_COLUMNS:
                    cur = con.execute(
                        f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                        f"WHERE substr({column}, 1, ?) = ?",
                        (here, len(before) + 1, len(before), before),
                    )
                    changed += cur.rowcount
        if changed:
            log.info("store moved: %d artifact locations now under %s", changed, here)
        return changed
    finally:
        con.close()
