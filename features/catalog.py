"""The feature catalog: every feature the engine writes, with its meaning, window, unit and
the direction in which it raises arrears risk (used for monotone constraints).

``docs/features.md`` is rendered from this module (``render_markdown``); a test keeps them equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["numeric", "categorical", "bool"]


@dataclass(frozen=True)
class Feature:
    """One feature column.

    Attributes:
        name: Column name in the feature table.
        description: What it measures, in one sentence.
        window: The look-back window ("at as_of", "3m", "12m", "static", ...).
        unit: Unit of the value.
        risk_direction: +1 when a higher value raises the risk of arrears, -1 when it lowers
            it, 0 when there is no stated direction (no monotone constraint).
        group: Ledger, payment, consumption, value or static.
        kind: numeric, categorical or bool.
    """

    name: str
    description: str
    window: str
    unit: str
    risk_direction: int
    group: str
    kind: Kind = "numeric"


PAYMENT_WINDOWS = (3, 6, 12)
CONSUMPTION_WINDOWS = (1, 3, 6, 12)
#: Mean days in a month (365.25 / 12): tenure and months-since in months of this length.
DAYS_PER_MONTH = 30.4375
#: Hours in such a month: a load factor is kWh / (kVA x HOURS_PER_MONTH).
HOURS_PER_MONTH = 24 * DAYS_PER_MONTH


def _ledger() -> list[Feature]:
    return [
        Feature(
            "months_of_history",
            "Bills issued on or before as_of.",
            "all history",
            "bills",
            -1,
            "ledger",
        ),
        Feature(
            "tenure_months",
            "Months since connection (first bill when the connection date is unknown).",
            "all history",
            "months",
            -1,
            "ledger",
        ),
        Feature(
            "balance",
            "Billed minus paid, all history; negative is a credit.",
            "at as_of",
            "money",
            1,
            "ledger",
        ),
        Feature(
            "overdue_arrears",
            "Unpaid amount of bills past their due date.",
            "at as_of",
            "money",
            1,
            "ledger",
        ),
        Feature(
            "dpd",
            "Days past due of the oldest unpaid overdue bill (0 when none).",
            "at as_of",
            "days",
            1,
            "ledger",
        ),
        Feature("unpaid_bills", "Bills not fully paid.", "at as_of", "bills", 1, "ledger"),
        Feature(
            "arrears_to_avg_bill",
            "Overdue arrears over the mean bill of the last 12 months.",
            "12m",
            "ratio",
            1,
            "ledger",
        ),
        Feature(
            "months_since_late",
            "Months since the due date of the latest bill paid late or unpaid past due "
            "(empty when never late).",
            "all history",
            "months",
            -1,
            "payment",
        ),
    ]


def _payment(w: int) -> list[Feature]:
    win = f"{w}m"
    return [
        Feature(
            f"bills_due_{win}",
            "Bills whose due date falls in the window.",
            win,
            "bills",
            0,
            "payment",
        ),
        Feature(
            f"late_bills_{win}",
            "Bills due in the window paid after the due date, or unpaid and past due.",
            win,
            "bills",
            1,
            "payment",
        ),
        Feature(
            f"late30_bills_{win}",
            "Bills due in the window paid, or still unpaid, more than 30 days late.",
            win,
            "bills",
            1,
            "payment",
        ),
        Feature(
            f"late60_bills_{win}",
            "Bills due in the window paid, or still unpaid, more than 60 days late.",
            win,
            "bills",
            1,
            "payment",
        ),
        Feature(
            f"max_dpd_{win}",
            "Highest days past due at any month end in the window.",
            win,
            "days",
            1,
            "payment",
        ),
        Feature(
            f"on_time_share_{win}",
            "Share of the money of bills due in the window paid by the due date.",
            win,
            "ratio",
            -1,
            "payment",
        ),
        Feature(
            f"partial_bills_{win}",
            "Bills due in the window partly, not fully, paid by the due date.",
            win,
            "bills",
            1,
            "payment",
        ),
        Feature(
            f"reversals_{win}",
            "Reversed or refunded payments (negative amounts) in the window.",
            win,
            "payments",
            1,
            "payment",
        ),
    ]


def _consumption(w: int) -> list[Feature]:
    win = f"{w}m"
    if w == 1:
        return [
            Feature("kwh_1m", "kWh billed for the last month.", win, "kWh", 0, "consumption"),
            Feature(
                "amount_1m", "Amount billed for the last month.", win, "money", 0, "consumption"
            ),
        ]
    out = []
    for what, unit in (("kwh", "kWh"), ("amount", "money")):
        out += [
            Feature(
                f"{what}_sum_{win}",
                f"Total {what} billed for the window's months.",
                win,
                unit,
                0,
                "consumption",
            ),
            Feature(
                f"{what}_mean_{win}",
                f"Mean monthly {what} over the billed months of the window.",
                win,
                unit,
                0,
                "consumption",
            ),
            Feature(
                f"{what}_std_{win}",
                f"Standard deviation of monthly {what} in the window.",
                win,
                unit,
                0,
                "consumption",
            ),
        ]
    return out


def _trends() -> list[Feature]:
    return [
        Feature(
            "kwh_trend_12m",
            "Least-squares slope of monthly kWh over 12 months, over their mean.",
            "12m",
            "1/month",
            -1,
            "consumption",
        ),
        Feature(
            "kwh_yoy_change",
            "Mean monthly kWh of the last 3 months over the same months a year before, minus 1.",
            "3m vs 3m a year before",
            "ratio",
            -1,
            "consumption",
        ),
        Feature(
            "kwh_max_drop_12m",
            "Sharpest fall from one month to the next, as a share of the first.",
            "12m",
            "ratio",
            1,
            "consumption",
        ),
        Feature(
            "zero_kwh_months_12m", "Billed months with zero kWh.", "12m", "months", 1, "consumption"
        ),
        Feature(
            "seasonality_ratio_12m",
            "Highest month's kWh over the 12-month mean.",
            "12m",
            "ratio",
            0,
            "consumption",
        ),
        Feature(
            "load_factor_12m",
            "Mean power drawn (kWh per hour) over contract capacity (kVA).",
            "12m",
            "ratio",
            0,
            "consumption",
        ),
    ]


def _value() -> list[Feature]:
    return [
        Feature("revenue_12m", "Amount billed over 12 months.", "12m", "money", 0, "value"),
        Feature(
            "profit_12m",
            "Amount billed minus kWh times the tariff's supply cost, 12 months.",
            "12m",
            "money",
            0,
            "value",
        ),
        Feature("margin_rate_12m", "Profit over revenue, 12 months.", "12m", "ratio", 0, "value"),
    ]


def _static() -> list[Feature]:
    return [
        Feature("tariff_class", "Tariff class.", "static", "", 0, "static", "categorical"),
        Feature("industry", "Industry.", "static", "", 0, "static", "categorical"),
        Feature(
            "energy_intensive",
            "In an energy-intensive industry.",
            "static",
            "",
            0,
            "static",
            "bool",
        ),
        Feature(
            "preferential_tariff", "On a preferential tariff.", "static", "", 0, "static", "bool"
        ),
        Feature("region", "Region.", "static", "", 0, "static", "categorical"),
        Feature("voltage_kv", "Supply voltage.", "static", "kV", 0, "static"),
        Feature("contract_capacity_kva", "Contracted capacity.", "static", "kVA", 0, "static"),
    ]


def _all() -> tuple[Feature, ...]:
    out = _ledger()
    for w in PAYMENT_WINDOWS:
        out += _payment(w)
    out += [
        Feature(
            "pay_delay_mean_12m",
            "Mean days from due date to payment, bills due in 12 months and paid.",
            "12m",
            "days",
            1,
            "payment",
        ),
        Feature(
            "pay_delay_std_12m",
            "Spread of those delays: how irregular the payment timing is.",
            "12m",
            "days",
            1,
            "payment",
        ),
    ]
    for w in CONSUMPTION_WINDOWS:
        out += _consumption(w)
    return tuple(out + _trends() + _value() + _static())


FEATURES: tuple[Feature, ...] = _all()
#: Features computed by the engine's kernel, in the kernel's column order.
COMPUTED: tuple[str, ...] = tuple(f.name for f in FEATURES if f.group != "static")
STATIC: tuple[str, ...] = tuple(f.name for f in FEATURES if f.group == "static")
BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}


def render_markdown() -> str:
    """The catalog as the table in docs/features.md."""
    lines = [
        "| feature | group | window | unit | raises risk when | description |",
        "|---|---|---|---|---|---|",
    ]
    arrow = {1: "higher", -1: "lower", 0: "-"}
    for f in FEATURES:
        cells = (f"`{f.name}`", f.group, f.window, f.unit, arrow[f.risk_direction], f.description)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
