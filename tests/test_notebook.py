"""The review notebook runs on the explain stage's outputs, and is committed without outputs."""

from __future__ import annotations

import json

import nbclient
import nbformat
import pandas as pd

from tests.conftest import PROJECT

NOTEBOOK = PROJECT / "notebooks" / "review_explanations.ipynb"


def test_notebook_is_committed_without_outputs():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)


def _text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.extend(str(v) for k, v in out.get("data", {}).items() if k.startswith("text/"))
    return "\n".join(parts)


def test_review_notebook_runs_on_the_stage_outputs(explained, scored, monkeypatch):
    out, summary, p, _ = explained
    tmp, _, scores = scored
    reasons = pd.read_parquet(out / "data" / "reasons.parquet")
    who = reasons.loc[reasons["rank"] == 3, "customer_id"].iloc[0]
    monkeypatch.setenv("GRIDSCORE_SCORES", str(tmp / "scores"))
    monkeypatch.setenv("GRIDSCORE_EXPLANATIONS", str(out / "data"))
    monkeypatch.setenv("GRIDSCORE_REPORTS", str(out / "reports"))
    monkeypatch.setenv("GRIDSCORE_CUSTOMER", who)
    monkeypatch.setenv("GRIDSCORE_LANG", "zh")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(out)}}
    ).execute()  # raises CellExecutionError if any cell fails
    text = _text(nb)
    assert f"{summary['rows']:,} customers explained" in text
    asked = scores["credit_action"].isin(["deposit", "bank_guarantee"]).sum()
    assert asked > 0 and f"{asked:,} customers asked for a deposit or a guarantee" in text
    assert f"{asked:,} notices stored" in text  # in the language of the notebook
    assert "0 customers whose explanation and decision differ" in text
    for sentence in reasons.loc[reasons["customer_id"] == who, "text_zh"]:
        assert sentence in text
    images = sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert images >= 4 + p.explain.dependence_plots  # 2 importance, beeswarm, waterfall, deps
