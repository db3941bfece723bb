"""What every stage does before its work: the guards a stage's ``run`` wraps its body in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from pipelines.config import Params
from pipelines.io import exclusive, readable
from pipelines.tracking import Tracker

T = TypeVar("T")


def guarded(params: Params, out: Path, inputs: Sequence[Path | None], body: Callable[[], T]) -> T:
    """``body()`` after the checks that stop a stage before any work (a tracking server that
    does not answer, an empty or truncated Parquet input: one line each), holding ``out``
    for one run at a time (``pipelines.io.exclusive``)."""
    Tracker.of(params)
    readable(*inputs)
    with exclusive(out):
        return body()
