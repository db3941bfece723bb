"""The ``report`` stage: one self-contained HTML page per run, in English and in Chinese.

A model card and monitoring page in one file, for a manager or a credit officer: what made
the run (as_of, the code's digest, the data and model hashes of ``dvc.lock``, the model
versions; the git commit is on the MLflow run, whose tags :func:`Tracker.stage_run` sets),
data validation, label and split, the model against its baseline and the champion, the
grade table and the back-test, calibration, the global SHAP explanation, the value pyramid
and its migration, stability and fairness, the decisions, and the known limitations. Every
figure is embedded (PNG as base64), and so is the CJK font cut to the page's characters; the
page loads nothing (no script, font or style from
anywhere), so it opens on an offline network. Written as ``report.en.html`` and
``report.zh.html`` and logged to MLflow. Built only from the other stages' outputs: it
decides nothing itself.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from features.errors import InputMissing
from pipelines.config import Params
from pipelines.io import exclusive, staged_folder, write_json
from pipelines.tracking import Tracker

log = logging.getLogger(__name__)
LANGS = ("en", "zh")
#: The headline metrics file's name (in the metrics folder: the one DVC metric, the only file
#: ``dvc metrics show`` reads; every stage's own file is a plain output).
HEADLINE = "headline.json"


@dataclass(frozen=True)
class Paths:
    metrics: Path  # the metrics/ folder (every stage's JSON)
    reports: Path  # the reports/ folder (the stages' figures and tables)
    lock: Path  # dvc.lock
    out: Path  # reports/report
    headline: Path | None = None  # metrics/headline.json: the run's headline figures


# English -> Chinese for every label on the page.
T = {
    "title": ("gridscore run report", "gridscore 运行报告"),
    "made": ("What produced it", "生成信息"),
    "item": ("Item", "项目"),
    "as_of": ("Decided at", "评估日"),
    "commit": (
        "Code (SHA-256 of the tracked source, params and pins; the git commit is on the "
        "MLflow run)",
        "代码摘要（源代码、参数与依赖版本的SHA-256；Git提交号见MLflow运行记录）",
    ),
    "models": ("Model versions", "模型版本"),
    "hashes": ("Data and model hashes (dvc.lock)", "数据与模型哈希（dvc.lock）"),
    "validation": ("Data validation", "数据校验"),
    "table": ("Table", "数据表"),
    "rows_in": ("Rows in", "输入行数"),
    "rows_passed": ("Passed", "通过"),
    "rows_quarantined": ("Quarantined", "隔离"),
    "reasons": ("Reasons", "原因"),
    "quarantine_note": (
        "Quarantined rows are missing from what the models see; a customer whose ledger "
        "misses rows is sent to a records review, never asked for security on them.",
        "被隔离的记录不参与模型计算；账目不完整的客户转入记录复核，不会据此要求担保。",
    ),
    "label": ("Label and split", "标签与样本划分"),
    "label_text": (
        "In arrears: {dpd}+ days past due with at least {amt} overdue within {h} months "
        "after the decision date. Test months {first} to {last} ({rows} rows), never seen "
        "in training; {left} labelled snapshots with an incomplete ledger left out.",
        "违约定义：评估日后{h}个月内逾期{dpd}天以上且欠费不少于{amt}。测试期{first}至{last}"
        "（{rows}行），训练中未使用；{left}个账目不完整的样本被排除。",
    ),
    "calibration_text": (
        "Calibration: {method}, level anchored to the long-run arrears rate {lr} (held-out "
        "months {ho}).",
        "校准：{method}，水平锚定长期违约率{lr}（验证期{ho}）。",
    ),
    "performance": ("The model, its baseline and the champion", "模型、基准与冠军模型"),
    "metric": ("Metric", "指标"),
    "model": ("Model", "模型"),
    "baseline": ("Scorecard baseline", "评分卡基准"),
    "champion": ("Champion", "冠军模型"),
    "gate": ("Promotion gate", "晋升检验"),
    "grades": ("Grades on the test months", "测试期信用等级"),
    "grade": ("Grade", "等级"),
    "customers": ("Customers", "客户数"),
    "mean_pd": ("Mean PD", "平均违约概率"),
    "realised": ("Realised", "实际违约率"),
    "jeffreys": ("Jeffreys p", "Jeffreys检验p值"),
    "backtest": ("Back-test of past runs", "历史回测"),
    "run": ("Run", "批次"),
    "figures": ("Calibration and ranking", "校准与排序"),
    "shap": ("Why: global SHAP explanation", "原因：全局SHAP解释"),
    "pyramid": ("The value pyramid and its migration", "价值金字塔与等级迁移"),
    "stability": ("Stability between runs", "批次间稳定性"),
    "alerts": ("Alerts in the latest run", "最新批次预警"),
    "variable": ("Variable", "变量"),
    "against": ("Against", "对比"),
    "fairness": ("Fairness by group", "分组公平性"),
    "attribute": ("Attribute", "属性"),
    "group": ("Group", "组别"),
    "adverse_rate": ("Asked for security", "要求担保比例"),
    "fpr": ("False-positive rate", "误报率"),
    "flagged": ("Flagged", "标记"),
    "decisions": ("Decisions", "决策"),
    "action": ("Credit action", "信用措施"),
    "tier": ("Tier", "客户等级"),
    "count": ("Count", "数量"),
    "limits": ("Known limitations", "已知局限"),
    "none": ("none", "无"),
}
LIMITS = [
    (
        "The PD level is the long-run arrears rate: above the realised rate in a low month, "
        "below it at a peak (docs/arrears_model.md).",
        "违约概率水平为长期违约率：低谷月份高于实际，高峰月份低于实际。",
    ),
    (
        "months_of_history and kwh_trend_12m drift against the training rows every month "
        "(docs/monitoring.md): a base that ages, and a slope that depends on the season.",
        "months_of_history与kwh_trend_12m每月相对训练样本漂移：客户历史变长，趋势受季节影响。",
    ),
    (
        "A payment returned in the last month makes its bill unpaid and late; a reminder "
        "first for such a customer is an open policy question (docs/scoring.md).",
        "上月退回的付款使账单重新变为未缴；此类客户是否先发提醒尚属未决的政策问题。",
    ),
    (
        "On the embedded default the data are synthetic (docs/generator.md); the figures "
        "describe the generator's utility, not a real one.",
        "默认数据为合成数据，数字描述的是生成器模拟的电力公司，而非真实公司。",
    ),
]
STYLE = """
body{font-family:sans-serif;margin:2em auto;max-width:1100px;color:#222;line-height:1.4}
h1{border-bottom:3px solid #2b6cb0}h2{border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#edf2f7}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:0.3em 0}.note{color:#555;font-size:0.9em}
.warn{color:#975a16;font-weight:bold}.ok{color:#2f855a;font-weight:bold}
"""


def _t(key: str, lang: str) -> str:
    return T[key][LANGS.index(lang)]


def _esc(x) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return html.escape("" if x is None else str(x))


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(path: Path, alt: str) -> str:
    if not path.exists():
        return f'<p class="note">({html.escape(path.name)}: not produced)</p>'
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _json(path: Path) -> dict:
    if not path.exists():
        raise InputMissing(f"{path}: missing (run the stage that writes it: dvc repro)")
    return json.loads(path.read_text())


#: What the code of a run is: the tracked source, the params, the pipeline and the pins.
#: What the page's code digest covers; the report stage lists exactly these as its DVC deps,
#: so the page is made again whenever any of them changes (dvc.yaml cannot be a DVC dep: a
#: stage's command changing reruns that stage, whose outputs the page then shows).
CODE = ("features", "models", "pipelines", "params.yaml", "pyproject.toml", "requirements.lock")


def code_digest(project: Path) -> str:
    """The first 12 hex digits of the SHA-256 of the tracked files of :data:`CODE` (their
    paths and bytes, in path order). It names the code exactly and, unlike a git commit,
    does not change when only the report's own lock entry or the docs are committed, so a
    rerun of the same code writes the same page (docs/monitoring.md)."""
    import hashlib

    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", *CODE], cwd=project, capture_output=True, text=True
        ).stdout.split("\0")
    except OSError:
        listed = []
    files = sorted(f for f in listed if f and (project / f).is_file())
    if not files:  # not a git checkout: the files on disk
        files = sorted(
            str(p.relative_to(project))
            for c in CODE
            for p in ([project / c] if (project / c).is_file() else (project / c).rglob("*.py"))
            if p.is_file()
        )
    h = hashlib.sha256()
    for f in files:
        h.update(f.encode() + b"\0" + (project / f).read_bytes())
    return h.hexdigest()[:12]


def _hashes(lock: Path, own: Path) -> list[list[str]]:
    """Every stage output's hash in ``lock`` but the report's own (``own``): its previous
    hash would make each page depend on the page before."""
    stages = yaml.safe_load(lock.read_text())["stages"] if lock.exists() else {}
    root = lock.parent.absolute()
    rows = []
    for name, stage in stages.items():
        for out in stage.get("outs", []):
            if (root / out["path"]).absolute() == Path(own).absolute():
                continue
            rows.append([name, out["path"], out.get("md5", "")[:12]])
    return rows


def _metrics(folder: Path) -> dict[str, dict]:
    """Every stage's metrics file by stage (the headline, this stage's own, left out)."""
    return {
        p.stem: json.loads(p.read_text())
        for p in sorted(folder.glob("*.json"))
        if p.name != HEADLINE  # the report's own output
    }


def headline(m: dict[str, dict]) -> dict:
    """The run's headline figures, a screenful for ``dvc metrics show`` and ``dvc exp show``
    (every stage's details stay in its own file): the decision date, the quarantine, the
    model against its baseline, the gate, the pyramid, stability and the decisions."""
    a, sc = m["arrears"], m["score"]
    tables = m["validation"].get("tables", {})
    out: dict = {"as_of": sc["as_of"]}
    out["validation"] = {
        "rows_quarantined": sum(t.get("rows_quarantined", 0) for t in tables.values()),
        "max_quarantine_share": max(
            (t.get("quarantine_share", 0.0) for t in tables.values()), default=0.0
        ),
    }
    out["arrears"] = {
        "auc": a["model"]["auc"],
        "ks": a["model"]["ks"],
        "ece": a["model"]["ece"],
        "baseline_auc": a["baseline"]["auc"],
    }
    if "oracle" in a:
        out["arrears"]["oracle_auc"] = a["oracle"]["auc"]
    if "promotion" in m:
        g = m["promotion"]
        out["gate"] = {"passed": g["passed"], "champion_version": g.get("champion_version")}
        if g.get("promoted"):
            out["gate"]["champion_version"] = g.get("candidate_version")
    if "segments" in m:
        seg = m["segments"]
        out["segments"] = {k: seg[k] for k in ("k", "silhouette") if k in seg}
    if "monitor" in m and m["monitor"]:
        last = m["monitor"][max(m["monitor"])]
        out["monitor"] = {
            k: last[k]
            for k in ("psi_pd_vs_reference", "psi_pd_vs_previous", "alerts", "fairness_flags")
            if k in last
        }
    actions = sc.get("credit_actions", {})
    out["score"] = {
        "scored": sc["scored"],
        "flagged": sc["flagged"],
        "deposits": actions.get("deposit", 0),
        "guarantees": actions.get("bank_guarantee", 0),
        "reviews": sum(v for k, v in actions.items() if "review" in k),
        "reminders": actions.get("payment_reminder", 0),
    }
    return out


def build(params: Params, paths: Paths, lang: str) -> str:
    """The page in ``lang`` (``en`` or ``zh``)."""
    m = _metrics(paths.metrics)
    for need in ("validation", "arrears", "score"):
        if need not in m:
            raise InputMissing(f"{paths.metrics / (need + '.json')}: missing (dvc repro)")
    a, sc = m["arrears"], m["score"]
    r = paths.reports
    s = [f"<h1>{_t('title', lang)} · {_esc(sc['as_of'])}</h1>"]

    s.append(f"<h2 id='made'>{_t('made', lang)}</h2>")
    models = sc.get("models", {})
    s.append(
        _table(
            [_t("item", lang), ""],
            [
                [_t("as_of", lang), sc["as_of"]],
                [_t("commit", lang), code_digest(paths.lock.parent)],
                *[[k, v] for k, v in models.items()],
            ],
        )
    )
    s.append(f"<details><summary>{_t('hashes', lang)}</summary>")
    s.append(_table(["stage", "path", "md5"], _hashes(paths.lock, paths.out)) + "</details>")

    s.append(f"<h2 id='validation'>{_t('validation', lang)}</h2>")
    rows = []
    for name, t in m["validation"]["tables"].items():
        why = ", ".join(f"{k} {v}" for k, v in t.get("by_reason", {}).items()) or _t("none", lang)
        rows.append([name, t["rows_in"], t["rows_passed"], t["rows_quarantined"], why])
    header = [_t(k, lang) for k in ("table", "rows_in", "rows_passed", "rows_quarantined")]
    s.append(_table([*header, _t("reasons", lang)], rows))
    s.append(f"<p class='note'>{_t('quarantine_note', lang)}</p>")

    s.append(f"<h2 id='label'>{_t('label', lang)}</h2>")
    lab = params.label
    s.append(
        "<p>"
        + _t("label_text", lang).format(
            dpd=lab.dpd_threshold,
            amt=lab.min_amount,
            h=lab.horizon_months,
            first=a["test"]["first"],
            last=a["test"]["last"],
            rows=a["test"]["rows"],
            left=a.get("left_out_incomplete_ledger", 0),
        )
        + "</p>"
    )
    cal = a.get("calibration") or {}
    level = cal.get("level", {})
    if level:
        s.append(
            "<p>"
            + _t("calibration_text", lang).format(
                method=cal.get("chosen"),
                lr=f"{level['long_run_rate']:.2%}",
                ho=f"{level['held_out_rate']:.2%}",
            )
            + "</p>"
        )

    s.append(f"<h2 id='performance'>{_t('performance', lang)}</h2>")
    promo = m.get("promotion", {})
    champ = promo.get("champion", {})
    rows = [
        [k, a["model"].get(k), a["baseline"].get(k), champ.get(k, "")]
        for k in ("auc", "ks", "ece", "log_loss", "mean_pd", "bad_rate")
    ]
    s.append(
        _table(
            [_t(k, lang) for k in ("metric", "model", "baseline", "champion")],
            rows,
        )
    )
    if promo:
        cls = "ok" if promo.get("passed") or promo.get("promoted") else "warn"
        verdict = _esc(promo.get("message_zh" if lang == "zh" else "message", promo.get("message")))
        s.append(f"<p><b>{_t('gate', lang)}:</b> <span class='{cls}'>{verdict}</span></p>")

    s.append(f"<h2 id='grades'>{_t('grades', lang)}</h2>")
    s.append(
        _table(
            [_t(k, lang) for k in ("grade", "customers", "mean_pd", "realised", "jeffreys")],
            [
                [g["grade"], g["customers"], g["mean_pd"], g["realised_rate"], g["jeffreys_p"]]
                for g in a["grades"]
            ],
        )
    )
    runs_csv = r / "monitor" / "runs.csv"
    if runs_csv.exists():
        runs = pd.read_csv(runs_csv)
        done = runs[runs["auc"].notna()] if "auc" in runs else runs.iloc[0:0]
        s.append(f"<h3>{_t('backtest', lang)}</h3>")
        s.append(
            _table(
                [_t("run", lang), "mean PD", "realised", "AUC", "ECE", "grades off"],
                [
                    [x.as_of, x.mean_pd, x.realised_rate, x.auc, x.ece, x.grades_off]
                    for x in done.itertuples()
                ],
            )
        )

    s.append(f"<h2 id='figures'>{_t('figures', lang)}</h2>")
    for name in ("calibration", "roc", "grades"):
        s.append(_img(r / "arrears" / f"{name}.png", name))

    s.append(f"<h2 id='shap'>{_t('shap', lang)}</h2>")
    for name in ("importance_causes", "beeswarm"):
        s.append(_img(r / "explanations" / f"{name}.png", name))

    s.append(f"<h2 id='pyramid'>{_t('pyramid', lang)}</h2>")
    for name in ("pyramid", "migration"):
        s.append(_img(r / "segments" / f"{name}.png", name))

    s.append(f"<h2 id='stability'>{_t('stability', lang)}</h2>")
    if runs_csv.exists():
        cols = ["as_of", "mean_pd", "asked_for_security", "expected_auc"]
        cols += ["psi_pd_vs_reference", "psi_pd_vs_previous", "psi_grade_vs_previous"]
        cols += ["alerts", "fairness_flags"]
        s.append(
            _table(cols, runs[cols].astype(object).where(runs[cols].notna(), "").values.tolist())
        )
        stab = pd.read_csv(r / "monitor" / "stability.csv")
        last = stab[(stab["as_of"] == stab["as_of"].max()) & (stab["level"] == "alert")]
        s.append(f"<h3>{_t('alerts', lang)}</h3>")
        s.append(
            _table(
                [_t("variable", lang), _t("against", lang), "PSI"],
                [[x.variable, x.against, x.psi] for x in last.itertuples()],
            )
        )
    s.append(f"<h2 id='fairness'>{_t('fairness', lang)}</h2>")
    fair_csv = r / "monitor" / "fairness.csv"
    if fair_csv.exists():
        fair = pd.read_csv(fair_csv)
        fair = fair[fair["as_of"] == fair.loc[fair["labelled"], "as_of"].max()]
        s.append(
            _table(
                [_t(k, lang) for k in ("run", "attribute", "group", "customers")]
                + [_t("adverse_rate", lang), _t("fpr", lang), _t("flagged", lang)],
                [
                    [
                        x.as_of,
                        x.attribute,
                        x.group,
                        int(x.n),
                        x.adverse_rate,
                        x.false_positive_rate,
                        x.flagged if isinstance(x.flagged, str) else "",
                    ]
                    for x in fair.itertuples()
                ],
            )  # fmt: skip
        )

    s.append(f"<h2 id='decisions'>{_t('decisions', lang)}</h2>")
    s.append(
        _table(
            [_t("action", lang), _t("count", lang)],
            [[k, v] for k, v in sorted(sc["credit_actions"].items())],
        )
    )
    s.append(
        _table(
            [_t("tier", lang), _t("count", lang)], [[k, v] for k, v in sorted(sc["tiers"].items())]
        )
    )

    s.append(f"<h2 id='limits'>{_t('limits', lang)}</h2><ul>")
    s += [f"<li>{html.escape(x[LANGS.index(lang)])}</li>" for x in LIMITS]
    s.append("</ul>")
    title = f"{_t('title', lang)} {sc['as_of']}"
    body = "".join(s)
    return (
        f"<!DOCTYPE html><html lang='{'zh-CN' if lang == 'zh' else 'en'}'><head>"
        f"<meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}{embedded_font(title + body)}</style></head><body>{body}</body></html>"
    )


def embedded_font(page: str) -> str:
    """An ``@font-face`` rule with Noto Sans CJK cut to the characters of ``page`` (the
    project's font wheel, subset by fontTools) as a data URI: the Chinese page renders the
    same on a machine with no CJK font and no network. Empty when the page has no CJK."""
    chars = {c for c in page if ord(c) > 0x2E7F}
    if not chars:
        return ""
    import io

    import cvttf_NotoSansCJK_Regular as noto
    from fontTools import subset

    opts = subset.Options()
    opts.layout_features, opts.name_IDs, opts.notdef_outline = [], [], True
    font = subset.load_font(noto.get_TTF_path(), opts)
    sub = subset.Subsetter(opts)
    sub.populate(text="".join(sorted(chars)))
    sub.subset(font)
    buf = io.BytesIO()
    font.save(buf)
    data = base64.b64encode(buf.getvalue()).decode()
    return (
        "@font-face{font-family:'gridscore-cjk';font-display:block;"
        f"src:url(data:font/otf;base64,{data}) format('opentype')}}"
        "body{font-family:'gridscore-cjk',sans-serif}"
    )


def run(params: Params, paths: Paths) -> list[Path]:
    """Write both pages into ``paths.out`` (whole or not at all) and log them to MLflow."""
    tracker = Tracker.of(params)
    with exclusive(paths.out), staged_folder(paths.out) as out:
        for lang in LANGS:
            (out / f"report.{lang}.html").write_text(build(params, paths, lang), encoding="utf-8")
        if paths.headline is not None:
            write_json(headline(_metrics(paths.metrics)), paths.headline)
    written = [paths.out / f"report.{lang}.html" for lang in LANGS]
    if tracker is not None:
        with tracker.stage_run("report", {"langs": ",".join(LANGS)}, {}):
            tracker.log_files(written, "report")
    log.info("report: %s", ", ".join(str(p) for p in written))
    return written
