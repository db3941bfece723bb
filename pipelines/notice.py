"""Notices of adverse action: checked against the records, written for every deposit or
guarantee the score stage asks, and on demand (``gridscore notice --customer ID``).

:func:`check_and_write` runs inside each scoring partition, on the partition's own validated
bills and payments: every customer asked for security has its reasons and amount recomputed
from its records (``models.notice.verify``). A request whose reasons the records do not bear
out is not sent: it becomes a review (``review_unverified_reasons``, flag
``reasons_unverified``). For each request that holds, a notice in Chinese and in English is
written to ``<scores>/notices/<customer_id>.<lang>.html``, each file atomically.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from features.errors import GridscoreError, InputMissing
from features.statement import facts, statement
from models.notice import LANGUAGES, NoticeTerms, evidence, render, tables, verify
from models.policy import ADVERSE, REVIEW_UNVERIFIED, SecurityTerms
from pipelines.config import Params

log = logging.getLogger(__name__)

FOLDER = "notices"
UNVERIFIED = "reasons_unverified"


class NoNotice(GridscoreError):
    """The customer asked for has no adverse action, or is not in the scoring run."""


def terms(params: Params) -> tuple[SecurityTerms, NoticeTerms]:
    p = params.policy
    return SecurityTerms(**p.security.model_dump()), NoticeTerms(**p.notice.model_dump())


def _write(text: str, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def notices_for(
    decisions: pd.DataFrame,
    bills: pd.DataFrame,
    payments: pd.DataFrame,
    params: Params,
    top_n: int,
) -> tuple[pd.Series, dict[str, dict[str, str]]]:
    """Check every adverse decision of ``decisions`` against the customers' records and render
    the notices of those that hold.

    Returns:
        Per decision row, the contradiction found (None where none), and the pages by
        customer and language.
    """
    adverse = decisions[decisions["credit_action"].isin(ADVERSE)]
    problems = pd.Series(None, index=decisions.index, dtype=object)
    if adverse.empty:
        return problems, {}
    as_of = pd.Timestamp(adverse["as_of"].iloc[0])
    ids = set(adverse["customer_id"])
    b = bills[bills["customer_id"].isin(ids)]
    p = payments[payments["customer_id"].isin(ids)]
    st = statement(b, p, as_of)  # once: the facts and the evidence both read it
    found = facts(b, p, as_of, st=st)
    currency = params.tariffs.currency
    security, notice = terms(params)
    problems.loc[adverse.index] = verify(adverse, found, top_n, currency, security)
    ok = adverse[problems.loc[adverse.index].isna()]
    records = evidence(st, p, b, as_of)
    shown = {
        (code, lang): tables(records[code], currency, lang)
        for code in records
        for lang in LANGUAGES
    }
    by_id = found.set_index("customer_id")
    bill = by_id["amount_mean_12m"].fillna(by_id["amount_mean_3m"])
    pages: dict[str, dict[str, str]] = {}
    for row in ok.to_dict("records"):
        cid = row["customer_id"]
        row["monthly_bill"] = float(bill.loc[cid])
        codes = [
            (k, row[f"reason_{k}_code"])
            for k in range(1, top_n + 1)
            if isinstance(row.get(f"reason_{k}_code"), str)
        ]
        pages[cid] = {
            lang: render(
                row,
                [
                    (c, row[f"reason_{k}_{lang}"], shown.get((c, lang), {}).get(cid))
                    for k, c in codes
                ],
                lang,
                currency,
                security,
                notice,
            )
            for lang in LANGUAGES
        }
    return problems, pages


def check_and_write(
    decisions: pd.DataFrame,
    bills: pd.DataFrame,
    payments: pd.DataFrame,
    out: Path,
    params: Params,
    top_n: int,
) -> tuple[pd.DataFrame, int]:
    """The decisions with every unverified request turned into a review, and the number of
    notices written into ``out / notices`` (see the module docstring)."""
    problems, pages = notices_for(decisions, bills, payments, params, top_n)
    bad = problems.notna().to_numpy()
    if bad.any():
        decisions = decisions.copy()
        decisions.loc[bad, "credit_action"] = REVIEW_UNVERIFIED
        decisions.loc[bad, "security_amount"] = np.nan
        flags = decisions.loc[bad, "flags"].fillna("")
        decisions.loc[bad, "flags"] = (flags + ";" + UNVERIFIED).str.strip(";")
        for cid, why in zip(decisions.loc[bad, "customer_id"], problems[bad], strict=True):
            log.warning("%s: security request held for review: %s", cid, why)
    folder = out / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for cid, by_lang in pages.items():
        for lang, page in by_lang.items():
            _write(page, folder / f"{cid}.{lang}.html")
    return decisions, len(pages)


def notice(scores: Path, validated: Path, customer: str, params: Params, lang: str = "zh") -> str:
    """One customer's notice, on demand, from a finished scoring run and the validated tables.

    Raises:
        NoNotice: The customer is not in the run, or was not asked for a deposit or guarantee.
        InputMissing: The scoring run or a validated table is not there.
    """
    from pipelines.score import SUCCESS

    if lang not in LANGUAGES:
        raise NoNotice(f"--lang must be one of {', '.join(LANGUAGES)}, not {lang!r}")
    if not (Path(scores) / SUCCESS).exists():
        raise InputMissing(f"{scores}: no finished scoring run (run `dvc repro score`)")
    parts = sorted(Path(scores).glob("part-*.parquet"))
    wanted = [("customer_id", "=", customer)]
    rows = pq.ParquetDataset(parts, filters=wanted).read().to_pandas() if parts else None
    if rows is None or rows.empty:
        raise NoNotice(f"customer {customer!r} is not in the scoring run in {scores}")
    row = rows.iloc[[0]].reset_index(drop=True)
    action = row["credit_action"].iloc[0]
    if action not in ADVERSE:
        raise NoNotice(
            f"customer {customer!r} was not asked for a deposit or guarantee at "
            f"{row['as_of'].iloc[0]} (credit action: {action}): there is no notice to write"
        )
    tables = {}
    for name in ("bills", "payments"):
        path = Path(validated) / f"{name}.parquet"
        if not path.exists():
            raise InputMissing(f"{path}: no validated {name} (run `dvc repro validate`)")
        tables[name] = pq.read_table(path, filters=wanted).to_pandas()
    top_n = sum(1 for c in row.columns if c.startswith("reason_") and c.endswith("_code"))
    problems, pages = notices_for(row, tables["bills"], tables["payments"], params, top_n)
    if problems.notna().any():
        raise NoNotice(f"customer {customer!r}: the records do not bear out the decision: "
                       f"{problems.iloc[0]}")  # fmt: skip
    return pages[customer][lang]
