"""The finisher process: partitions handed over, counts back in order, its failures raised here."""

from __future__ import annotations

import os
import signal

import pytest

from pipelines import partition


def _counts(job, i, span, records, decided) -> dict:  # in the worker, for partition.finish
    if i == 3:
        raise ValueError(f"partition {i} is bad")
    return {"partition": i, "rows": len(decided), "pid": os.getpid()}


def test_partitions_come_back_in_order_from_one_worker(monkeypatch):
    monkeypatch.setattr(partition, "finish", _counts)
    with partition.Finisher() as finisher:
        got = []
        for i in range(3):
            finisher.hand_over(None, i, (), (), tuple(range(i)))
            got.append(finisher.result())
    assert [g["partition"] for g in got] == [0, 1, 2]
    assert [g["rows"] for g in got] == [0, 1, 2]
    assert len({g["pid"] for g in got}) == 1 and got[0]["pid"] != os.getpid()


def test_an_error_in_the_worker_is_raised_here_with_the_workers_traceback(monkeypatch):
    monkeypatch.setattr(partition, "finish", _counts)
    with partition.Finisher() as finisher:
        finisher.hand_over(None, 3, (), (), ())
        with pytest.raises(ValueError, match="partition 3 is bad") as info:
            finisher.result()
        cause = info.value.__cause__
        assert isinstance(cause, partition._RemoteTraceback)
        assert "in _counts" in str(cause) and "raise ValueError" in str(cause)
        finisher.hand_over(None, 4, (), (), ())  # the worker goes on after an error
        assert finisher.result()["partition"] == 4


class _Local(Exception):  # an error the pickle cannot rebuild here: it needs two arguments
    def __init__(self, a, b):
        super().__init__(f"{a} and {b}")


def _unpicklable(job, i, span, records, decided) -> dict:
    raise _Local("this", "that")


def test_an_error_that_cannot_cross_the_pipe_comes_back_as_its_text(monkeypatch):
    monkeypatch.setattr(partition, "finish", _unpicklable)
    with partition.Finisher() as finisher:
        finisher.hand_over(None, 0, (), (), ())
        with pytest.raises(RuntimeError, match=r"^_Local: this and that$") as info:
            finisher.result()
    assert "raise _Local" in str(info.value.__cause__)


def test_a_killed_worker_is_worker_died_not_a_hang(monkeypatch):
    monkeypatch.setattr(partition, "finish", _counts)
    finisher = partition.Finisher()
    try:
        finisher.hand_over(None, 0, (), (), ())
        assert finisher.result()["partition"] == 0
        os.kill(finisher._proc.pid, signal.SIGKILL)
        finisher._proc.join(timeout=10)
        with pytest.raises(partition.WorkerDied):
            finisher.result()
        with pytest.raises(partition.WorkerDied):
            finisher.hand_over(None, 1, (), (), ())
    finally:
        finisher.close(wait=False)
    assert not finisher._proc.is_alive()


def test_the_stage_s_end_closed_without_a_word_ends_the_worker_quietly(capfd):
    """A stage that drops its end of the pipe without telling the worker to stop (killed by
    something PR_SET_PDEATHSIG does not cover, or off Linux where there is none): the worker
    reads an end of file and exits, with no traceback; it does not wait on a pipe it holds
    open itself."""
    finisher = partition.Finisher()
    try:
        finisher._conn.close()
        finisher._proc.join(timeout=10)
        assert not finisher._proc.is_alive(), "the worker still waits on the pipe"
        assert finisher._proc.exitcode == 0
    finally:
        if finisher._proc.is_alive():
            finisher._proc.kill()
            finisher._proc.join()
    assert "Traceback" not in capfd.readouterr().err
