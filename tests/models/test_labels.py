"""Every feature and category value has a readable name in English and Chinese."""

from __future__ import annotations

import re

import pytest

from features.catalog import COMPUTED, STATIC
from features.contract import TARIFF_CLASSES
from features.synthetic.archetypes import ARCHETYPES, REGIONS
from models.labels import VALUES, feature_label, value_label

HAN = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize("feature", [*COMPUTED, *STATIC])
def test_every_feature_has_a_readable_name_in_both_languages(feature):
    en, zh = feature_label(feature, "en"), feature_label(feature, "zh")
    assert "_" not in en and (en != feature or feature.isalpha())  # "region" is a word
    assert HAN.search(zh) and not re.search(r"[A-Za-z]{2,}", zh.replace("kWh", "")), zh


def test_windows_are_said_and_every_known_category_is_translated():
    assert feature_label("late_bills_6m", "zh") == "未按期缴清的账单数（近6个月）"
    assert feature_label("late_bills_6m") == "bills not paid in full by the due date, last 6 months"
    industries = {i for a in ARCHETYPES for i in a.industries}
    for value in (*TARIFF_CLASSES, *REGIONS, *industries):
        assert value in VALUES and HAN.search(value_label(value, "zh")), value
    assert value_label("a_new_industry", "zh") == "a_new_industry"  # an identifier, as it is
    assert value_label(float("nan"), "zh") == "缺失" and value_label(True, "zh") == "是"
    assert value_label(1234.5678) == "1,235"
    assert feature_label("my_own_column", "zh") == "my_own_column"
