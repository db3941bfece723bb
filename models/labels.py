"""Readable names of the features and of the values of the categorical columns, in English and
Chinese: what a chart or an explanation shows a person instead of a column name.

Every feature of the catalog (``features.catalog``) has a label in both languages, built from
its stem and its window ("late_bills_6m": "bills paid late, last 6 months" / "逾期账单数（近6个
月）"); a test checks none is missing. Category values of the contract (tariff classes) and of
the embedded generator (industries, regions) are translated; a value a utility's own data
brings that is not listed here is shown as it is, as an identifier.
"""

from __future__ import annotations

import re

import numpy as np

#: Stems of windowed features: English, Chinese.
_STEMS = {
    "bills_due": ("bills due", "到期账单数"),
    "late_bills": ("bills not paid in full by the due date", "未按期缴清的账单数"),
    "late30_bills": ("bills more than 30 days past due", "逾期超过30天的账单数"),
    "late60_bills": ("bills more than 60 days past due", "逾期超过60天的账单数"),
    "max_dpd": ("most days past due at a month end", "月末最长逾期天数"),
    "on_time_share": ("share of billed money paid on time", "按期缴费金额占比"),
    "partial_bills": ("bills partly paid by the due date", "到期仅部分缴纳的账单数"),
    "reversals": ("payments reversed or refunded", "缴费退回笔数"),
    "pay_delay_mean": ("mean days from due date to payment", "缴费平均滞后天数"),
    "pay_delay_std": ("spread of the days to payment", "缴费滞后天数波动"),
    "kwh": ("kWh billed", "用电量（千瓦时）"),
    "amount": ("amount billed", "电费金额"),
    "kwh_sum": ("kWh billed in all", "累计用电量（千瓦时）"),
    "kwh_mean": ("mean monthly kWh", "月均用电量（千瓦时）"),
    "kwh_std": ("spread of monthly kWh", "月用电量波动（千瓦时）"),
    "amount_sum": ("amount billed in all", "累计电费金额"),
    "amount_mean": ("mean monthly bill", "月均电费"),
    "amount_std": ("spread of monthly bills", "月电费波动"),
    "kwh_trend": ("trend of consumption", "用电量趋势"),
    "kwh_max_drop": ("sharpest monthly fall in consumption", "用电量最大环比降幅"),
    "zero_kwh_months": ("months with no consumption", "零用电月数"),
    "seasonality_ratio": ("peak month over the mean", "用电季节性（峰值/均值）"),
    "load_factor": ("load factor", "负荷率"),
    "revenue": ("revenue", "电费收入"),
    "profit": ("profit contribution", "利润贡献"),
    "margin_rate": ("margin rate", "利润率"),
}
#: Features without a window.
_PLAIN = {
    "months_of_history": ("monthly bills issued so far", "已出账单期数"),
    "tenure_months": ("months since connection", "用电时长（月）"),
    "balance": ("balance billed and not paid", "未缴余额"),
    "overdue_arrears": ("overdue arrears", "逾期欠费"),
    "dpd": ("days past due now", "当前逾期天数"),
    "unpaid_bills": ("unpaid bills", "未缴账单数"),
    "arrears_to_avg_bill": ("overdue arrears over the mean bill", "逾期欠费与月均电费之比"),
    "months_since_late": ("months since a bill was last late", "距上次逾期月数"),
    "kwh_yoy_change": ("consumption change on a year before", "用电量同比变化"),
    "tariff_class": ("tariff class", "电价类别"),
    "industry": ("industry", "行业"),
    "energy_intensive": ("energy-intensive industry", "高耗能行业"),
    "preferential_tariff": ("preferential tariff", "优惠电价"),
    "region": ("region", "地区"),
    "voltage_kv": ("supply voltage (kV)", "供电电压（千伏）"),
    "contract_capacity_kva": ("contract capacity (kVA)", "合同容量（千伏安）"),
}
_WINDOW = re.compile(r"^(?P<stem>.+)_(?P<months>\d+)m$")

#: Category values: English, Chinese.
VALUES = {
    "residential": ("residential", "居民生活"),
    "commercial": ("commercial", "一般工商业"),
    "industrial": ("industrial", "工业"),
    "large_industrial": ("large industrial", "大工业"),
    "agricultural": ("agricultural", "农业生产"),
    "north": ("north", "北区"),
    "south": ("south", "南区"),
    "east": ("east", "东区"),
    "west": ("west", "西区"),
    "central": ("central", "中心区"),
    "coastal": ("coastal", "沿海区"),
    "aquaculture": ("aquaculture", "水产养殖"),
    "automotive": ("automotive", "汽车制造"),
    "building_materials": ("building materials", "建材"),
    "catering": ("catering", "餐饮"),
    "cement": ("cement", "水泥"),
    "chemicals": ("chemicals", "化工"),
    "chlor_alkali": ("chlor-alkali", "氯碱"),
    "data_center": ("data centre", "数据中心"),
    "electrolytic_aluminium": ("electrolytic aluminium", "电解铝"),
    "electronics": ("electronics", "电子"),
    "ferroalloys": ("ferroalloys", "铁合金"),
    "food_processing": ("food processing", "食品加工"),
    "greenhouse": ("greenhouse", "温室种植"),
    "hospital": ("hospital", "医院"),
    "hotel": ("hotel", "酒店"),
    "irrigation": ("irrigation", "农业灌溉"),
    "livestock": ("livestock", "畜牧养殖"),
    "machinery": ("machinery", "机械制造"),
    "office_tower": ("office tower", "写字楼"),
    "offices": ("offices", "办公"),
    "paper": ("paper", "造纸"),
    "personal_services": ("personal services", "居民服务"),
    "pharmaceuticals": ("pharmaceuticals", "医药"),
    "plastics": ("plastics", "塑料"),
    "polysilicon": ("polysilicon", "多晶硅"),
    "printing": ("printing", "印刷"),
    "repair_shops": ("repair shops", "维修"),
    "retail": ("retail", "零售"),
    "shopping_mall": ("shopping mall", "商场"),
    "steel": ("steel", "钢铁"),
    "textiles": ("textiles", "纺织"),
}
_LANG = {"en": 0, "zh": 1}
_TEXT = {
    "missing": ("missing", "缺失"),
    "yes": ("yes", "是"),
    "no": ("no", "否"),
    "others": ("{n} other features", "其他{n}个特征"),
}


def _index(lang: str) -> int:
    if lang not in _LANG:
        raise ValueError(f"lang must be one of {sorted(_LANG)}, not {lang!r}")
    return _LANG[lang]


def feature_label(feature: str, lang: str = "en") -> str:
    """A feature's readable name; a column not in the catalog keeps its name."""
    i = _index(lang)
    if feature in _PLAIN:
        return _PLAIN[feature][i]
    m = _WINDOW.match(feature)
    if m and m["stem"] in _STEMS:
        name, months = _STEMS[m["stem"]][i], int(m["months"])
        return f"{name}, last {months} months" if i == 0 else f"{name}（近{months}个月）"
    return feature


def value_label(value: object, lang: str = "en") -> str:
    """A feature value as a person reads it: numbers to 4 significant digits, flags as yes/no,
    known categories translated."""
    i = _index(lang)
    if value is None or (isinstance(value, float | np.floating) and np.isnan(value)):
        return _TEXT["missing"][i]
    if isinstance(value, bool | np.bool_):
        return _TEXT["yes" if value else "no"][i]
    if isinstance(value, int | float | np.integer | np.floating):
        return f"{value:,.4g}"
    text = str(value)
    return VALUES[text][i] if text in VALUES else text


def others(n: int, lang: str = "en") -> str:
    return _TEXT["others"][_index(lang)].format(n=n)
