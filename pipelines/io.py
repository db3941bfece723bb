"""Writing at the edge: Parquet and JSON files written atomically (temporary file, rename),
folders replaced in one step, and an output folder held by one run at a time."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.errors import GridscoreError


def digest(*paths: Path) -> str:
    """The first 12 hex digits of the SHA-256 of the files' bytes, in order: a model's id."""
    import hashlib

    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()[:12]


def model_version(folder: Path) -> str:
    """``<folder name>@<digest of model.txt and calibrator.json>``: the arrears model's id."""
    return f"{folder.name}@{digest(folder / 'model.txt', folder / 'calibrator.json')}"


def write_parquet(df: pd.DataFrame, path: Path, schema: pa.Schema | None = None) -> None:
    """Write a frame as Parquet atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(df, preserve_index=False)
    if schema is not None:
        fields = [
            schema.field(n) if n in schema.names else table.schema.field(n)
            for n in table.column_names
        ]
        table = table.cast(pa.schema(fields))
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


#: Significant digits kept in the metrics files DVC and git track: a metric's meaning is in
#: far fewer, and the last bits of a float sum differ between CPUs (the same inputs on
#: another machine would otherwise change metrics/*.json in the 17th digit).
METRIC_DIGITS = 8


def rounded(data, significant: int = METRIC_DIGITS):
    """``data`` (dicts, lists, numbers) with every float rounded to ``significant``
    significant digits; other values as they are."""
    if isinstance(data, float):
        return float(f"{data:.{significant}g}") if data == data else data
    if isinstance(data, dict):
        return {k: rounded(v, significant) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [rounded(v, significant) for v in data]
    return data


def write_json(data: dict, path: Path) -> None:
    """Write JSON atomically, pretty-printed and key-sorted for readable diffs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def replace_folder(staged: Path, dest: Path) -> None:
    """Put the complete folder ``staged`` where ``dest`` is, as one step for a reader: the
    old ``dest`` (if any) is moved aside, ``staged`` renamed into place, the old removed. A
    failure before the rename leaves the old ``dest`` as it was."""
    import shutil

    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    if dest.exists():
        os.replace(dest, old)
    try:
        os.replace(staged, dest)
    except OSError:
        if old.exists():
            os.replace(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_skops(obj: object, path: Path) -> None:
    """Save ``obj`` with skops so that the same object has the same bytes on every run (a
    DVC output that is not byte-stable makes an identical rerun change dvc.lock).

    skops names the arrays and shared objects it writes after ``id()``, a memory address
    that changes every run, and stamps the zip entries with the time. Here the ids are
    renumbered in order of first appearance in ``schema.json`` (the same mapping for the
    ``__id__`` fields and the ``<id>.npy`` files they point to) and the entries are packed in
    name order with a fixed time. Written atomically.
    """
    import io
    import re
    import zipfile

    import skops.io as sio

    src = zipfile.ZipFile(io.BytesIO(sio.dumps(obj)))
    schema = src.read("schema.json").decode()
    numbers: dict[str, str] = {}
    for m in re.finditer(r'"__id__": (\d+)|"file": "(\d+)\.npy"', schema):
        numbers.setdefault(m.group(1) or m.group(2), str(len(numbers) + 1))
    schema = re.sub(r'("__id__": )(\d+)', lambda m: m.group(1) + numbers[m.group(2)], schema)
    schema = re.sub(
        r'("file": ")(\d+)(\.npy")', lambda m: m.group(1) + numbers[m.group(2)] + m.group(3), schema
    )
    entries = {"schema.json": schema.encode()}
    for info in src.infolist():
        name = info.filename
        if name.endswith(".npy") and name.removesuffix(".npy") in numbers:
            name = f"{numbers[name.removesuffix('.npy')]}.npy"
        if name != "schema.json":
            entries[name] = src.read(info)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as dst:
        for name in sorted(entries):
            dst.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), entries[name])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)


class FolderBusy(GridscoreError):
    """Another live process holds the output folder's lock."""


_HELD: dict[str, int] = {}  # lock files this process holds -> depth (re-entrant)


def lock_path(folder: Path) -> Path:
    """The lock of ``folder``: beside it (``.<name>.lock``), so replacing the folder
    (``--overwrite``) never removes the lock of the run doing it."""
    folder = Path(folder).absolute()
    return folder.with_name(f".{folder.name}.lock")


@contextmanager
def exclusive(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s lock for the block: a second process that asks for it while this
    one holds it gets :class:`FolderBusy` at once, naming the holder. The lock is the
    kernel's (``fcntl.flock`` on the lock file), so it goes with the process: a run killed
    at any moment leaves no lock to clear, and the next run takes it over. Re-entrant
    within one process. Local file systems only (on NFS, ``flock`` may not be shared)."""
    import fcntl

    path = lock_path(folder)
    key = str(path)
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise FolderBusy(
                f"{folder} is being written by another run ({holder}); wait for it to finish "
                "or write to another folder (--overwrite does not take over a live run)"
            ) from None
        os.ftruncate(fd, 0)
        started = time.strftime("%Y-%m-%dT%H:%M:%S")
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {started}".encode(), 0)
        _HELD[key] = 1
        try:
            yield
        finally:
            del _HELD[key]
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def clear_stale_temp(prefix: str) -> int:
    """Remove the temporary folders ``<tmp>/<prefix><pid>-*`` of processes no longer alive
    (a run killed before it could clean up); returns how many were removed."""
    import shutil
    import tempfile

    removed = 0
    for path in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        pid = path.name[len(prefix) :].split("-", 1)[0]
        if not pid.isdigit() or process_alive(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process of this host with this pid is alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DamagedInput(GridscoreError):
    """An input Parquet file cannot be read: empty, truncated or not Parquet."""


def readable(*paths: Path | None) -> None:
    """Check that every Parquet input (a file, or every ``*.parquet`` in a folder) opens:
    its footer is there and parses. A stage calls it before any work, so a truncated or
    empty file stops it with one line naming the file, not a traceback midway.

    Raises:
        DamagedInput: a file is empty, truncated or not Parquet.
    """
    for given in paths:
        if given is None or not Path(given).exists():
            continue  # a missing input has its own message where it is read
        path = Path(given)
        files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
        for file in files:
            if file.suffix != ".parquet":
                continue
            try:
                pq.read_metadata(file)
            except (pa.ArrowException, OSError) as exc:
                raise DamagedInput(
                    f"{file}: not a readable Parquet file ({exc}); it is empty, truncated or "
                    "damaged: write it again (dvc repro, or the stage that made it)"
                ) from exc


@contextmanager
def staged_folder(dest: Path) -> Iterator[Path]:
    """A folder to write ``dest``'s new content into, beside it; when the block ends it
    replaces ``dest`` in one step (:func:`replace_folder`); when the block fails it is
    removed and ``dest`` is left as it was: the whole new output or the previous one."""
    import shutil

    dest = Path(dest)
    staged = dest.with_name(f".{dest.name}.staged-{os.getpid()}")
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    try:
        yield staged
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    replace_folder(staged, dest)
