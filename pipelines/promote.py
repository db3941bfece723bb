"""The ``promote`` stage: the champion/challenger gate of the arrears model (``models.gate``).

The candidate is the train stage's model (``artifacts/arrears``, registered as
``gridscore-arrears@candidate`` by the same run); the champion is the registry's
``gridscore-arrears@champion``, downloaded. Both score the candidate's out-of-time test
rows; the gate's verdict is written to ``metrics/promotion.json`` (a DVC metric), added to
the candidate's MLflow run (metrics ``gate_*`` and the file), and, when it passes, the alias
``champion`` moves to the candidate. With no champion yet the first candidate that clears
the absolute bars becomes champion, so a fresh ``dvc repro`` ends with one. A refusal says
every reason; ``force`` moves the alias anyway and records that it was forced (a feature
catalog change the champion cannot score, say). Without tracking the verdict is written and
no alias moves.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from features.errors import GridscoreError, InputMissing
from models.arrears import ArrearsModel, to_matrix
from models.gate import GateRules, judge
from pipelines.config import Params
from pipelines.io import exclusive, readable, rounded, write_json
from pipelines.tracking import CANDIDATE, CHAMPION, Tracker, TrackingError
from pipelines.train import load_table, split_roles

log = logging.getLogger(__name__)
NAME = "gridscore-arrears"


@dataclass(frozen=True)
class Paths:
    features: Path
    labels: Path
    model: Path  # the train stage's folder (the candidate)
    metrics: Path  # the verdict (metrics/promotion.json, in git)
    record: Path | None = None  # the same, beside the model (not in git): the stage ran here


def run(params: Params, paths: Paths, force: bool = False) -> dict:
    """Judge the candidate against the champion; returns the verdict written (``promoted``
    says whether the alias moved, ``message`` says why in one sentence)."""
    tracker = Tracker.of(params)
    readable(paths.features, paths.labels)
    with exclusive(paths.metrics):
        verdict = _verdict(params, paths, tracker, force)
        write_json(rounded(verdict), paths.metrics)
        if paths.record is not None:
            write_json(rounded(verdict), paths.record)
    log.info("%s", verdict["message"])
    return verdict


def _test_rows(params: Params, paths: Paths):
    table = load_table(paths.features, paths.labels, params.train.target)
    roles = split_roles(table, params.train, params.label.horizon_months)
    test = table[(roles == "test").to_numpy()].reset_index(drop=True)
    if test.empty:
        raise InputMissing(
            f"{paths.features}: no out-of-time test rows to compare the models on "
            "(train.split holds none out)"
        )
    return test


def _verdict(params: Params, paths: Paths, tracker: Tracker | None, force: bool) -> dict:
    if not (paths.model / "model.txt").exists():
        raise InputMissing(f"{paths.model}: no model.txt (run the train stage)")
    rules = GateRules(**params.promote.model_dump(exclude={"enabled"}))
    test = _test_rows(params, paths)
    y = test[params.train.target].to_numpy().astype(int)
    candidate = ArrearsModel.load(paths.model)
    cand_pd = candidate.predict_proba(to_matrix(test, candidate.spec_))
    trained = json.loads((paths.model / "train.json").read_text())
    baseline_auc = float(trained["test"]["baseline"]["auc"])
    window = {"first": str(test["as_of"].min().date()), "last": str(test["as_of"].max().date())}
    out: dict = {"model": NAME, "window": window, "rules": asdict(rules), "forced": False}

    cand_v = champ_v = None
    champ_pd = None
    if tracker is not None:
        cand_v, champ_v = _versions(tracker, paths.model)
        if champ_v is not None and champ_v.version == cand_v.version:
            out |= {"candidate_version": str(cand_v.version)}
            out |= {"champion_version": str(champ_v.version)}
            out |= {"passed": True, "promoted": False, "reasons": [], "reasons_zh": []}
            out["message"] = f"version {cand_v.version} is already the champion"
            out["message_zh"] = f"版本 {cand_v.version} 已是冠军模型"
            return out
        if champ_v is not None:
            champ_pd, unscorable = _champion_pd(tracker, test)
            if unscorable:
                out |= judge(y, cand_pd, None, baseline_auc, rules, params.grades.upper_pd)
                out["reasons"].append(f"the champion cannot score these rows: {unscorable}")
                out["reasons_zh"].append(f"冠军模型无法为这些行评分：{unscorable}")
                out["passed"] = False
    if "passed" not in out:
        out |= judge(y, cand_pd, champ_pd, baseline_auc, rules, params.grades.upper_pd)
    out["candidate_version"] = str(cand_v.version) if cand_v is not None else None
    out["champion_version"] = str(champ_v.version) if champ_v is not None else None
    out["promoted"] = False
    if tracker is None:
        out["message"] = _sentence(out, "tracking is off: the verdict is recorded, no alias moved")
        out["message_zh"] = _sentence(out, "未启用跟踪：结论已记录，别名未移动", "zh")
        return out
    if not params.promote.enabled and not force:
        out["message"] = _sentence(out, "promote.enabled is false: no alias moved")
        out["message_zh"] = _sentence(out, "promote.enabled 为 false：别名未移动", "zh")
        _record(tracker, cand_v.run_id, out, paths.metrics)
        return out
    if out["passed"] or force:
        out["forced"] = not out["passed"]
        tracker.client().set_registered_model_alias(NAME, CHAMPION, cand_v.version)
        out["promoted"] = True
    out["message"] = _message(out)
    out["message_zh"] = _message(out, "zh")
    _record(tracker, cand_v.run_id, out, paths.metrics)
    return out


def _versions(tracker: Tracker, model: Path):
    """The registry's candidate (checked to be the model in ``model``) and champion (or None)."""
    import mlflow

    client = tracker.client()
    try:
        cand = client.get_model_version_by_alias(NAME, CANDIDATE)
    except mlflow.exceptions.MlflowException as exc:
        raise TrackingError(
            f"{NAME} has no version with the alias {CANDIDATE} (train with train.register_model)"
        ) from exc
    note = tracker.read_note(model)
    if note is None or note.get("run_id") != cand.run_id:
        raise TrackingError(
            f"the registry's {NAME}@{CANDIDATE} (version {cand.version}) is not the model in "
            f"{model}: train again, or promote by hand in MLflow"
        )
    try:
        champ = client.get_model_version_by_alias(NAME, CHAMPION)
    except mlflow.exceptions.MlflowException:
        champ = None
    return cand, champ


def _champion_pd(tracker: Tracker, test) -> tuple[np.ndarray | None, str | None]:
    """The champion's PDs on the test rows, or why it cannot give them."""
    with tempfile.TemporaryDirectory(prefix="gridscore-champion-") as tmp:
        folder, _ = tracker.download(f"models:/{NAME}@{CHAMPION}", "arrears", Path(tmp))
        champion = ArrearsModel.load(folder)
        try:
            return champion.predict_proba(to_matrix(test, champion.spec_)), None
        except GridscoreError as exc:  # a feature the table no longer has, say
            return None, str(exc)


#: The verdict's sentences, by language (``message`` and ``message_zh``: the report shows the
#: page's own); ``{why}`` is the failed rules (``reasons`` / ``reasons_zh``) joined.
PHRASES = {
    "en": {
        "join": "; ", "reasons": "reasons",
        "passes": "passes the gate", "fails": "fails the gate: {why}",
        "sentence": "candidate {verdict}; {tail}",
        "forced": "champion is now version {cand} (forced past: {why})",
        "promoted": "champion is now version {cand} with test AUC {auc:.4f}{was}",
        "was": " (was version {champ}, AUC {champ_auc:.4f})",
        "no_champion": "no champion: candidate version {cand} fails the gate: {why}",
        "kept": "kept champion version {champ}: candidate version {cand} fails the gate: {why}",
    },
    "zh": {
        "join": "；", "reasons": "reasons_zh",
        "passes": "通过检验", "fails": "未通过检验：{why}",
        "sentence": "候选模型{verdict}；{tail}",
        "forced": "冠军模型现为版本 {cand}（强制晋升，未满足：{why}）",
        "promoted": "冠军模型现为版本 {cand}，测试 AUC {auc:.4f}{was}",
        "was": "（原为版本 {champ}，AUC {champ_auc:.4f}）",
        "no_champion": "暂无冠军模型：候选版本 {cand} 未通过检验：{why}",
        "kept": "保留冠军版本 {champ}：候选版本 {cand} 未通过检验：{why}",
    },
}  # fmt: skip


def _why(out: dict, lang: str) -> str:
    t = PHRASES[lang]
    return t["join"].join(out[t["reasons"]])


def _sentence(out: dict, tail: str, lang: str = "en") -> str:
    t = PHRASES[lang]
    verdict = t["passes"] if out["passed"] else t["fails"].format(why=_why(out, lang))
    return t["sentence"].format(verdict=verdict, tail=tail)


def _message(out: dict, lang: str = "en") -> str:
    """The verdict in one sentence, in ``lang``."""
    t = PHRASES[lang]
    cand, champ, why = out["candidate_version"], out["champion_version"], _why(out, lang)
    if out["promoted"] and out["forced"]:
        return t["forced"].format(cand=cand, why=why)
    if out["promoted"]:
        was = t["was"].format(champ=champ, champ_auc=out["champion"]["auc"]) if champ else ""
        return t["promoted"].format(cand=cand, auc=out["candidate"]["auc"], was=was)
    if champ is None:
        return t["no_champion"].format(cand=cand, why=why)
    return t["kept"].format(champ=champ, cand=cand, why=why)


def _record(tracker: Tracker, run_id: str, out: dict, path: Path) -> None:
    """The verdict on the candidate's run: ``gate_*`` metrics and the verdict file."""
    metrics = {
        "gate_passed": float(out["passed"]),
        "gate_promoted": float(out["promoted"]),
        "gate_auc": out["candidate"]["auc"],
        "gate_ece": out["candidate"]["ece"],
    }
    if "champion" in out:
        metrics |= {"gate_auc_gain": out["auc_gain"], "gate_psi_grades": out["psi_grades"]}
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / path.name
        copy.write_text(json.dumps(rounded(out), indent=2, sort_keys=True))
        tracker.add_to_run(run_id, metrics, [copy], "promotion")
