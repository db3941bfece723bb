"""Ledger completeness: which customers' records are missing rows that validation held back.

A bill or payment row that validation quarantines is missing from the ledger the features
are computed on. A payment held back (a zeroed amount, two copies of one payment that
disagree) leaves money the customer did pay out of the settlement, so every later bill looks
late; a bill held back hides money owed. Either way the customer's features, label and
decision rest on an incomplete ledger. This module finds, for each customer and as_of, the
quarantined rows of that customer dated on or before it, so that the decision can say so
and refrain from an adverse action, and training can leave those snapshots out.

What counts: every quarantined bill or payment row whose ``customer_id`` is a validated
customer, except ``duplicate_row`` (an exact repeat of a row that was kept: the ledger has
the record). A row is dated by its ``issued_on`` (bills) or ``paid_on`` (payments) as far as
that can be read; a row whose date cannot be read counts at every as_of.

A row booked to a customer id that is not in the customers table (``unknown_customer``: a
payment keyed with a mistyped account number, the cash a utility holds "unapplied") may be
a known customer's own money. It is attributed to every validated customer whose id it could
be a slip of (:func:`probable_owners`: the same id but for case and spaces, or one character
inserted, deleted, changed or two neighbours swapped), at most :data:`MAX_OWNERS` of them:
the decision of each is held for a review until the cash is applied. A slip that fits more
customers than that stays unattributed (counted in the quarantine only). Rows of customers
the validation rejected (``customer_quarantined``) belong to no scored customer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Quarantine reasons that leave the ledger complete (the row's record was kept).
COMPLETE_REASONS = frozenset({"duplicate_row"})
#: Quarantine reasons of a row booked to an id that is no customer's: matched to probable owners.
UNMATCHED_REASONS = frozenset({"unknown_customer"})
#: An unknown id that could be a slip of more customers than this is attributed to none.
MAX_OWNERS = 10
_DATE_COLUMN = {"bills": "issued_on", "payments": "paid_on"}
GAP_COLUMNS = ["customer_id", "table", "source_file", "source_row", "reason", "day", "recorded_as"]


def _key(ids: pd.Series) -> pd.Series:
    """Ids as compared: upper case, no white space."""
    return ids.astype("string").str.upper().str.replace(r"\s+", "", regex=True)


def _slips(word: str, alphabet: str) -> set[str]:
    """Every string one slip away from ``word``: a character deleted, inserted or changed
    (from ``alphabet``), or two neighbours swapped; and ``word`` itself."""
    cuts = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    out = {word}
    out.update(a + b[1:] for a, b in cuts if b)
    out.update(a + b[1] + b[0] + b[2:] for a, b in cuts if len(b) > 1)
    out.update(a + c + b[1:] for a, b in cuts if b for c in alphabet)
    out.update(a + c + b for a, b in cuts for c in alphabet)
    return out


def probable_owners(unknown: pd.Series, customers: pd.Index) -> pd.DataFrame:
    """The known customers each unknown id could be a slip of (see the module docstring).

    Returns:
        ``pos`` (position in ``unknown``) and ``customer_id`` (a known id), one row per pair;
        an id with more than :data:`MAX_OWNERS` candidates has none.
    """
    pos, cand = [], []
    if len(unknown) == 0 or len(customers) == 0:
        return pd.DataFrame({"pos": np.asarray(pos, dtype=np.int64), "customer_id": cand})
    known = pd.Series(np.asarray(customers, dtype=str), index=_key(pd.Series(customers)).to_numpy())
    keys = set(known.index)
    alphabet = "".join(sorted(set("".join(keys))))
    for i, word in enumerate(_key(unknown).fillna("")):
        if not word:
            continue
        found = sorted(_slips(word, alphabet) & keys)
        owners = known.loc[found].unique() if found else []
        if 0 < len(owners) <= MAX_OWNERS:
            pos.extend([i] * len(owners))
            cand.extend(owners)
    return pd.DataFrame({"pos": np.asarray(pos, dtype=np.int64), "customer_id": cand})


def _read_day(values: pd.Series) -> pd.Series:
    """A quarantined row's date as far as it can be read (NaT where it cannot)."""
    text = values.astype("string").str.strip().str[:10]
    return pd.to_datetime(text, format="%Y-%m-%d", errors="coerce").astype("datetime64[us]")


def ledger_gaps(quarantine: dict[str, pd.DataFrame], customers: pd.Index) -> pd.DataFrame:
    """The quarantined bill and payment rows that leave a known customer's ledger incomplete.

    Args:
        quarantine: The quarantine tables by name (``bills``, ``payments``; others ignored),
            as the validate stage writes them (source_file, source_row, reason and the raw
            columns).
        customers: The validated customer ids.

    Returns:
        One row per such quarantined row: ``customer_id``, ``table``, ``source_file``,
        ``source_row``, ``reason``, ``day`` (NaT: undated, counts at every as_of), sorted.
    """
    parts = []
    for table, date_col in _DATE_COLUMN.items():
        q = quarantine.get(table)
        if q is None or q.empty or "customer_id" not in q:
            continue
        q = q.reset_index(drop=True)
        ids = q["customer_id"].astype("string").str.strip()
        day = _read_day(q[date_col]) if date_col in q else pd.Series(pd.NaT, index=q.index)
        own = (ids.isin(customers) & ~q["reason"].isin(COMPLETE_REASONS)).to_numpy()
        stray = np.flatnonzero(q["reason"].isin(UNMATCHED_REASONS).to_numpy() & ~own)
        owners = probable_owners(ids.iloc[stray].reset_index(drop=True), customers)
        at = np.r_[np.flatnonzero(own), stray[owners["pos"].to_numpy()]].astype(np.int64)
        recorded = np.full(len(at), None, dtype=object)
        recorded[own.sum() :] = ids.iloc[stray[owners["pos"].to_numpy()]].astype(str).to_numpy()
        parts.append(
            pd.DataFrame(
                {
                    "customer_id": np.r_[
                        ids[own].astype(str).to_numpy(), owners["customer_id"].to_numpy(str)
                    ],
                    "table": table,
                    "source_file": q["source_file"].astype(str).to_numpy()[at],
                    "source_row": q["source_row"].astype("int64").to_numpy()[at],
                    "reason": q["reason"].astype(str).to_numpy()[at],
                    "day": day.to_numpy(dtype="datetime64[us]")[at],
                    "recorded_as": recorded,
                }
            )
        )
    if not parts:
        return empty_gaps()
    gaps = pd.concat(parts, ignore_index=True)
    return gaps.sort_values(["customer_id", "table", "source_row"], ignore_index=True)


def empty_gaps() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series(dtype=str),
            "table": pd.Series(dtype=str),
            "source_file": pd.Series(dtype=str),
            "source_row": pd.Series(dtype="int64"),
            "reason": pd.Series(dtype=str),
            "day": pd.Series(dtype="datetime64[us]"),
            "recorded_as": pd.Series(dtype=object),
        }
    )


def gaps_at(gaps: pd.DataFrame, keys: pd.DataFrame, months_after: int = 0) -> pd.DataFrame:
    """For each (customer_id, as_of) of ``keys``: the quarantined rows dated on or before
    as_of (or ``months_after`` month ends later; undated rows always).

    Returns:
        Aligned with ``keys``: ``quarantined_rows`` (int) and ``quarantine_refs`` (text such
        as ``payments.parquet:5416 zero_amount 2024-07-04; ...``, None where there is none).
    """
    n = len(keys)
    counts = np.zeros(n, dtype=np.int64)
    refs = np.full(n, None, dtype=object)
    if n == 0 or gaps.empty:
        return pd.DataFrame({"quarantined_rows": counts, "quarantine_refs": refs}, index=keys.index)
    as_of = pd.to_datetime(keys["as_of"]).to_numpy(dtype="datetime64[us]")
    horizon = (pd.DatetimeIndex(as_of) + pd.offsets.MonthEnd(months_after)).to_numpy(
        dtype="datetime64[us]"
    )
    rows = pd.DataFrame(
        {"customer_id": keys["customer_id"].astype(str).to_numpy(), "pos": np.arange(n)}
    )
    joined = rows.merge(gaps, on="customer_id", how="inner")
    if joined.empty:
        return pd.DataFrame({"quarantined_rows": counts, "quarantine_refs": refs}, index=keys.index)
    day = joined["day"].to_numpy(dtype="datetime64[us]")
    until = horizon[joined["pos"].to_numpy()]
    joined = joined[np.isnat(day) | (day <= until)]
    if joined.empty:
        return pd.DataFrame({"quarantined_rows": counts, "quarantine_refs": refs}, index=keys.index)
    when = joined["day"].dt.strftime("%Y-%m-%d").fillna("undated")
    slip = joined["recorded_as"] if "recorded_as" in joined else pd.Series(None, index=joined.index)
    booked = (":" + slip.astype("string")).fillna("").astype(str)  # the id it was booked to
    joined = joined.assign(
        ref=joined["source_file"] + ":" + joined["source_row"].astype(str) + " "
        + joined["reason"] + booked + " " + when
    )  # fmt: skip
    by = joined.groupby("pos")
    counts[by.size().index.to_numpy()] = by.size().to_numpy()
    text = by["ref"].agg("; ".join)
    refs[text.index.to_numpy()] = text.to_numpy()
    return pd.DataFrame({"quarantined_rows": counts, "quarantine_refs": refs}, index=keys.index)
