"""The ``generate`` stage: write the synthetic utility's raw tables and its ground truth."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from features.contract import TABLE_NAMES
from features.synthetic.defects import DEFECTS_SCHEMA
from features.synthetic.generator import BLOCK_SIZE, TariffPrices, generate_blocks, true_value_tiers
from pipelines.config import Params, Tariffs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Paths:
    out: Path  # customers, bills and payments.parquet
    truth: Path  # the generator's ground truth: for evaluation and tests only


def run(params: Params, paths: Paths) -> dict[str, int]:
    """Run the stage with ``params.generate``; returns the rows written per table."""
    g = params.generate
    return write_base(
        g.customers,
        g.months,
        g.start_period,
        g.seed,
        params.tariffs,
        paths.out,
        paths.truth,
        g.defect_rate,
    )


def tariff_prices(tariffs: Tariffs) -> TariffPrices:
    """The generator's view of the tariffs in params.yaml."""
    by_class = tariffs.by_class()
    return TariffPrices(
        price={c: t.price_per_kwh for c, t in by_class.items()},
        preferential_price={c: t.preferential_price_per_kwh for c, t in by_class.items()},
        supply_cost={c: t.supply_cost_per_kwh for c, t in by_class.items()},
    )


def write_base(
    customers: int,
    months: int,
    start_period: str,
    seed: int,
    tariffs: Tariffs,
    out: Path,
    truth: Path,
    defect_rate: float = 0.0,
) -> dict[str, int]:
    """Generate the base and write ``out/{customers,bills,payments}.parquet`` and ``truth/``.

    Files are written beside their final place and moved in when all are complete, so an
    interrupted run never leaves a half-written base behind.

    Returns:
        Rows written per table.
    """
    staging = {d: d.with_name(f".{d.name}.partial") for d in (out, truth)}
    for tmp in staging.values():
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    writers: dict[str, pq.ParquetWriter] = {}
    truth_customers: list[pa.Table] = []
    defects: list[tuple[str, int, str]] = []
    counts = dict.fromkeys((*TABLE_NAMES, "truth_monthly"), 0)
    blocks = generate_blocks(
        customers, months, start_period, seed, tariff_prices(tariffs), defect_rate
    )
    n_blocks = -(-customers // BLOCK_SIZE)
    for block in tqdm(blocks, total=n_blocks, desc="generate", unit="block", disable=None):
        parts = {
            "customers": (staging[out] / "customers.parquet", block.customers),
            "bills": (staging[out] / "bills.parquet", block.bills),
            "payments": (staging[out] / "payments.parquet", block.payments),
            "truth_monthly": (staging[truth] / "monthly.parquet", block.truth_monthly),
        }
        for name, rows in block.defects.items():  # block rows -> 1-based rows of the file
            defects += [(name, counts[name] + row + 1, reason) for row, reason in rows]
        for name, (path, table) in parts.items():
            if name not in writers:
                writers[name] = pq.ParquetWriter(path, table.schema, compression="zstd")
            writers[name].write_table(table)
            counts[name] += table.num_rows
        truth_customers.append(block.truth_customers)
    for w in writers.values():
        w.close()
    tc = pa.concat_tables(truth_customers).to_pandas()
    tc["true_value_tier"] = true_value_tiers(tc["expected_monthly_profit"])
    # value net of the money the customer is expected never to pay (docs/generator.md)
    tc["true_risk_adjusted_value"] = 12.0 * (
        tc["expected_monthly_profit"] - tc["expected_monthly_loss"]
    )
    tc["true_risk_adjusted_tier"] = true_value_tiers(tc["true_risk_adjusted_value"])
    pq.write_table(
        pa.Table.from_pandas(tc, preserve_index=False), staging[truth] / "customers.parquet"
    )
    defects_table = pa.table(
        {k: [d[i] for d in defects] for i, k in enumerate(DEFECTS_SCHEMA.names)},
        schema=DEFECTS_SCHEMA,
    )
    pq.write_table(defects_table, staging[truth] / "defects.parquet")
    counts["defects"] = defects_table.num_rows
    for final, tmp in staging.items():
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    log.info("generated %s into %s (truth in %s)", counts, out, truth)
    return counts
