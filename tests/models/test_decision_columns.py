"""The decision's text columns: Arrow-built, the same as pandas' own ``str`` construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.decision import _texts


@pytest.mark.parametrize(
    "values",
    [
        np.array(["A", None, np.nan, pd.NA, np.str_("B"), "", "风险"], dtype=object),
        ["R01;R02", None, "no_tier"],
        np.full(4, None, dtype=object),
        np.array([], dtype=object),
    ],
)
def test_texts_are_pandas_str_arrays_with_every_missing_value_missing(values):
    got, want = _texts(values), pd.array(np.asarray(values, dtype=object), dtype="str")
    assert got.dtype == want.dtype
    pd.testing.assert_series_equal(pd.Series(got), pd.Series(want))


def test_a_value_that_is_not_text_is_refused_not_turned_into_text():
    with pytest.raises((TypeError, ValueError)):
        _texts(np.array(["A", 3], dtype=object))
