"""The report stage: one offline HTML page per language, opened in a real headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from pipelines import monitor, report
from tests.conftest import PROJECT, default_params, shared

SECTIONS = ("made", "validation", "label", "performance", "grades", "figures", "shap",
            "pyramid", "stability", "fairness", "decisions", "limits")  # fmt: skip


@pytest.fixture(scope="session")
def pages(default_run, segmented, explained, tmp_path_factory):
    """The report of the default run: the committed metrics, the fixtures' figures and a
    two-run monitor; built once for every worker (``shared``)."""
    root, _, _ = default_run
    p = default_params().override("monitor", runs=2, bootstrap=10)

    def build(work):
        shutil.copytree(PROJECT / "metrics", work / "metrics")
        reports = work / "reports"
        shutil.copytree(root / "reports", reports / "arrears")
        shutil.copytree(segmented[0] / "reports", reports / "segments")
        shutil.copytree(explained[0] / "reports", reports / "explanations")
        f = root / "features"
        monitor.run(
            p,
            monitor.Paths(f / "features.parquet", f / "labels.parquet", f / "ledger.parquet",
                          root / "model", segmented[0] / "model", reports / "monitor",
                          work / "metrics" / "monitor.json"),
        )  # fmt: skip
        (work / "metrics" / report.HEADLINE).write_text('{"stale": 1}')  # never read back
        paths = report.Paths(
            work / "metrics", reports, PROJECT / "dvc.lock", work / "out", work / "headline.json"
        )
        return [str(page) for page in report.run(p, paths)]

    work, written = shared(tmp_path_factory, "report_pages", build)
    return [Path(page) for page in written], work


def test_every_section_and_figure_is_in_the_page_and_nothing_is_fetched(pages):
    written, _ = pages
    assert [p.name for p in written] == ["report.en.html", "report.zh.html"]
    for page in written:
        text = page.read_text(encoding="utf-8")
        for section in SECTIONS:
            assert f"id='{section}'" in text, (page.name, section)
        assert "<script" not in text.lower()
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # nothing remote
        assert text.count("data:image/png;base64,") >= 7  # every figure embedded
    zh = written[1].read_text(encoding="utf-8")
    assert "数据校验" in zh and "已知局限" in zh and "lang='zh-CN'" in zh
    # The Chinese page carries its own font (cut to its characters): no CJK font needed.
    assert "@font-face" in zh and "data:font/otf;base64," in zh
    assert "@font-face" not in written[0].read_text(encoding="utf-8")
    # The gate's verdict in the page's language.
    import json

    promo = json.loads((PROJECT / "metrics" / "promotion.json").read_text())
    assert promo["message_zh"] in zh and promo["message"] not in zh
    assert promo["message"] in written[0].read_text(encoding="utf-8")


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is not installed: `make test` installs it (Makefile, browser)"
    return found


def test_the_page_renders_offline_in_headless_chromium_without_errors(pages, tmp_path):
    written, _ = pages
    for page in written:
        shot = tmp_path / f"{page.stem}.png"
        cmd = [
            _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--proxy-server=127.0.0.1:9",  # offline
            "--enable-logging=stderr", "--v=0", "--window-size=1200,2400",
            f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
            page.as_uri(),
        ]  # fmt: skip
        start = time.monotonic()
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        took = time.monotonic() - start
        assert res.returncode == 0, res.stderr[-2000:]
        console = [ln for ln in res.stderr.splitlines() if "CONSOLE" in ln]
        assert console == [], console  # no console message, error or other
        assert shot.exists() and shot.stat().st_size > 20_000  # a rendered page, not blank
        dom = subprocess.run(
            [*cmd[:-2], "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
        ).stdout
        assert "</h2>" in dom and dom.count("<img") >= 7
        assert took < 60  # browser start included; the page itself is measured in docs


def test_the_console_check_sees_a_page_that_logs_an_error(tmp_path):
    """The check above can fail: a page with a console error shows it on Chromium's log."""
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>console.error('boom')</script></body></html>")
    cmd = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={tmp_path / 'bad.png'}", page.as_uri(),
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert any("CONSOLE" in ln and "boom" in ln for ln in res.stderr.splitlines())


def test_the_code_digest_names_the_code_and_ignores_docs(tmp_path):
    """The page names the code by content (a rerun of the same code writes the same page):
    the digest moves with a source file or params, not with a doc."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.py").write_text("x = 1\n")
    (tmp_path / "params.yaml").write_text("a: 1\n")
    (tmp_path / "README.md").write_text("doc\n")
    first = report.code_digest(tmp_path)
    (tmp_path / "README.md").write_text("another doc\n")
    assert report.code_digest(tmp_path) == first
    (tmp_path / "models" / "m.py").write_text("x = 2\n")
    assert report.code_digest(tmp_path) != first
    assert report.code_digest(PROJECT) == report.code_digest(PROJECT)


def test_the_hash_table_leaves_out_the_reports_own_previous_hash():
    """Else each page would depend on the page before, and a forced rerun would differ."""
    rows = report._hashes(PROJECT / "dvc.lock", PROJECT / "reports" / "report")
    paths = {r[1] for r in rows}
    assert "reports/report" not in paths and "artifacts/arrears" in paths
    every = report._hashes(PROJECT / "dvc.lock", PROJECT / "elsewhere")
    assert {r[1] for r in every} == paths | {"reports/report"}


def test_the_headline_is_a_screenful_of_the_run_s_figures(pages):
    """`dvc metrics show` reads the headline only: every figure in it comes from a stage's
    own metrics file, and there are few enough to read in one row."""
    import json

    _, work = pages
    head = json.loads((work / "headline.json").read_text())
    m = {p.stem: json.loads(p.read_text()) for p in (work / "metrics").glob("*.json")}

    def leaves(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from leaves(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    flat = dict(leaves(head))
    assert 15 <= len(flat) <= 30 and "stale" not in flat
    assert flat["as_of"] == m["score"]["as_of"]
    assert flat["arrears.auc"] == m["arrears"]["model"]["auc"]
    assert flat["arrears.baseline_auc"] == m["arrears"]["baseline"]["auc"]
    assert flat["score.deposits"] == m["score"]["credit_actions"].get("deposit", 0)
    assert flat["score.scored"] == m["score"]["scored"]
    last = m["monitor"][max(m["monitor"])]
    assert flat["monitor.psi_pd_vs_reference"] == last["psi_pd_vs_reference"]
    quarantined = sum(t["rows_quarantined"] for t in m["validation"]["tables"].values())
    assert flat["validation.rows_quarantined"] == quarantined > 0
