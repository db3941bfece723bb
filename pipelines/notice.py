"""Notices of adverse action: checked against the records, stored for every deposit or
guarantee the score stage asks, and on demand (``gridscore notice --customer ID``).

:func:`check_and_write` runs inside each scoring partition, on the partition's own validated
bills and payments: every customer asked for security has its reasons and amount recomputed
from its records (``models.notice.verify``). A request whose reasons the records do not bear
out is not sent: it becomes a review (``review_unverified_reasons``, flag
``reasons_unverified``). The notices of the requests that hold, in Chinese and in English,
are one table per partition, ``<scores>/notices/part-NNNNN.parquet`` (``customer_id``,
``lang``, ``html``: the printable page), written atomically before the partition's own file:
a partition on disk has its notices. One table, not two HTML files per request: profiled at
200,000 customers, the 8,952 files took 6.5 s of a 37.5 s run (docs/benchmarks.md).
:func:`export` writes them out as HTML files for a print or mail job
(``gridscore notices --out DIR``), :func:`stored` reads one back.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.errors import GridscoreError, InputMissing
from features.statement import facts, statement
from models.notice import LANGUAGES, NoticeTerms, evidence, of_customers, render, tables, verify
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


#: The columns of a partition's notice table.
SCHEMA = pa.schema([("customer_id", pa.string()), ("lang", pa.string()), ("html", pa.string())])


def table_path(out: Path, partition: int) -> Path:
    """The notice table of partition ``partition`` of the scoring run in ``out``."""
    return out / FOLDER / f"part-{partition:05d}.parquet"


def _write_table(pages: dict[str, dict[str, str]], path: Path) -> None:
    """The pages as one table (by customer, then language), written atomically."""
    rows = [(cid, lang, page) for cid in sorted(pages) for lang, page in pages[cid].items()]
    table = pa.table([pa.array([r[k] for r in rows], pa.string()) for k in range(3)], schema=SCHEMA)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def records_of(
    decisions: pd.DataFrame, bills: pa.Table, payments: pa.Table
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The bills and payments (Arrow, as streamed) of the customers ``decisions`` asks for
    security, as frames: all that :func:`notices_for` reads of them."""
    ids = pa.array(
        decisions.loc[decisions["credit_action"].isin(ADVERSE), "customer_id"].unique(),
        pa.string(),
    )

    def of(table: pa.Table) -> pd.DataFrame:
        picked = table.filter(pc.is_in(table["customer_id"], value_set=ids))
        return picked.to_pandas(date_as_object=False)

    return of(bills), of(payments)


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
    b = bills[of_customers(bills["customer_id"], ids)]
    p = payments[of_customers(payments["customer_id"], ids)]
    st = statement(b, p, as_of)  # once: the facts and the evidence both read it
    found = facts(b, p, as_of, st=st)
    currency = params.tariffs.currency
    security, notice = terms(params)
    problems.loc[adverse.index] = verify(adverse, found, top_n, currency, security)
    ok = adverse[problems.loc[adverse.index].isna()]
    records = evidence(st, p, b, as_of)
    stated: dict[str, set] = {}  # each cause's table only for the customers it is stated to
    for k in range(1, top_n + 1):
        for cid, code in zip(ok["customer_id"], ok.get(f"reason_{k}_code", []), strict=False):
            if isinstance(code, str):
                stated.setdefault(code, set()).add(cid)
    behind = {  # each cause's records once, for the customers it is stated to
        code: records[code][of_customers(records[code]["customer_id"], stated[code])]
        for code in records
        if code in stated
    }
    shown = {
        (code, lang): tables(rows, currency, lang)
        for code, rows in behind.items()
        for lang in LANGUAGES
    }
    by_id = found.set_index("customer_id")
    bill = by_id["amount_mean_12m"].fillna(by_id["amount_mean_3m"])
    pages: dict[str, dict[str, str]] = {}
    # only the columns a page says, turned into a dict per row
    said = ["customer_id", "as_of", "grade", "credit_action", "security_amount"]
    said += [f"reason_{k}_{part}" for k in range(1, top_n + 1) for part in ("code", *LANGUAGES)]
    page_rows = ok[[c for c in said if c in ok]].assign(
        monthly_bill=bill.reindex(ok["customer_id"]).to_numpy(dtype=float)
    )
    for row in page_rows.to_dict("records"):
        cid = row["customer_id"]
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
    partition: int,
) -> tuple[pd.DataFrame, int]:
    """The decisions with every unverified request turned into a review, and the number of
    requests whose notices were written into partition ``partition``'s notice table (see
    the module docstring; the table is written, empty if need be, for every partition)."""
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
    _write_table(pages, table_path(out, partition))
    return decisions, len(pages)


def _finished(scores: Path) -> None:
    from pipelines.score import SUCCESS  # the score stage imports this module

    if not (Path(scores) / SUCCESS).exists():
        raise InputMissing(f"{scores}: no finished scoring run (run `dvc repro score`)")


def _tables(scores: Path) -> list[Path]:
    _finished(scores)
    return sorted((Path(scores) / FOLDER).glob("part-*.parquet"))


def stored(scores: Path, customer: str, lang: str) -> str:
    """The notice the scoring run in ``scores`` stored for ``customer`` in ``lang``.

    Raises:
        NoNotice: The run stored none for that customer (not asked, or held for review).
        InputMissing: There is no finished scoring run there.
    """
    wanted = [("customer_id", "=", customer), ("lang", "=", lang)]
    parts = _tables(scores)
    found = pq.ParquetDataset(parts, filters=wanted).read(columns=["html"]) if parts else None
    if found is None or found.num_rows == 0:
        raise NoNotice(f"the scoring run in {scores} stored no {lang} notice for {customer!r}")
    return found["html"][0].as_py()


def export(scores: Path, out: Path, langs: tuple[str, ...] = LANGUAGES) -> int:
    """Every notice of the scoring run in ``scores`` as ``out/<customer_id>.<lang>.html``
    (for a print or mail job), each file written atomically; returns the files written.

    Raises:
        InputMissing: There is no finished scoring run there.
        NoNotice: A language is not one of :data:`LANGUAGES`.
    """
    bad = [lang for lang in langs if lang not in LANGUAGES]
    if bad:
        raise NoNotice(f"--lang must be one of {', '.join(LANGUAGES)}, not {bad[0]!r}")
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for part in _tables(scores):
        table = pq.read_table(part, filters=[("lang", "in", list(langs))])
        for cid, lang, page in zip(*(table[c].to_pylist() for c in SCHEMA.names), strict=True):
            path = out / f"{cid}.{lang}.html"
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(page, encoding="utf-8")
            os.replace(tmp, path)
            written += 1
    return written


def notice(scores: Path, validated: Path, customer: str, params: Params, lang: str = "zh") -> str:
    """One customer's notice, on demand, from a finished scoring run and the validated tables.

    Raises:
        NoNotice: The customer is not in the run, or was not asked for a deposit or guarantee.
        InputMissing: The scoring run or a validated table is not there.
    """
    if lang not in LANGUAGES:
        raise NoNotice(f"--lang must be one of {', '.join(LANGUAGES)}, not {lang!r}")
    _finished(scores)
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
