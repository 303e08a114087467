"""The compact series keeps steps exactly as given, whatever they are (the int32 offsets are only a
way to store the usual whole-number steps), and its step ranges match the full scan's."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tailboard.sidecar.series import DIRECT_MAX, ColumnarSeries, downsample_m4

ODD_STEPS = [-1e300, 1e300, float(2**53 + 1), float(-(2**53) - 1), -0.0, 0.0, 0.5, -7.0, 2.0**31,
             -(2.0**31), 2.0**52 + 0.5, 2.0**63, 1e-300, float("inf"), float("-inf"), float("nan")]


def bits(a: Any) -> list[int]:
    return np.ascontiguousarray(np.asarray(a, np.float64)).view(np.int64).tolist()  # type: ignore[no-any-return]


step = st.one_of(
    st.integers(-(2**31), 2**31).map(float),
    st.sampled_from(ODD_STEPS),
    st.floats(allow_nan=True, allow_infinity=True),
)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.lists(step, min_size=1, max_size=8), min_size=1, max_size=6),
       flush_each=st.booleans())
def test_steps_read_back_bit_for_bit(parts: list[list[float]], flush_each: bool) -> None:
    col = ColumnarSeries()
    for part in parts:
        col.append(part, np.ones(len(part)), np.zeros(len(part)))
        if flush_each:
            assert bits(col.steps[-len(part):]) == bits(part)
    assert bits(col.steps) == bits([x for part in parts for x in part])


def test_a_foreign_first_step_keeps_its_exact_value() -> None:
    for first in (-1e300, -0.0, float(2**53 + 1), 2.0**52 + 1, -(2.0**52) - 2):
        col = ColumnarSeries()
        col.append([first], [1.0], [0.0])
        col.append([first + 1.0, first + 2.0], [2.0, 3.0], [0.0, 0.0])
        assert bits(col.steps) == bits([first, first + 1.0, first + 2.0]), first


def test_whole_number_steps_stay_compact() -> None:
    col = ColumnarSeries()
    col.append(np.arange(1000, dtype=np.float64) - 3, np.ones(1000), np.zeros(1000))
    col.compact()
    assert col.nbytes() < 1000 * 20 + 1000


def test_a_range_of_steps_from_a_fractional_first_step_equals_the_full_scan() -> None:
    """Steps 0.5, 1.5, ...: a range from 1000.0 starts at 1000.5, from the summary as in the scan."""
    n = 4 * DIRECT_MAX
    s = 0.5 + np.arange(n, dtype=np.float64)
    v = np.sin(s)
    t = s * 0.5 + 1.7e9
    col = ColumnarSeries()
    col.append(s, v, t)
    for start, end in ((1000.0, 250_000.0), (999.5, 250_000.5), (None, 3e5), (-5.0, None)):
        got = col.downsample(40, start=start, end=end)
        want = downsample_m4(s, v, t, 40, start=start, end=end)
        assert got.total == want.total, (start, end)
        assert bits(got.steps) == bits(want.steps) and bits(got.envelope[0]) == bits(want.envelope[0])


def test_a_nan_bound_selects_what_the_full_scan_selects() -> None:
    n = 4 * DIRECT_MAX
    s = np.arange(n, dtype=np.float64)
    col = ColumnarSeries()
    col.append(s, np.cos(s), s)
    for start, end in ((float("nan"), None), (10.0, float("nan")), (float("nan"), float("nan"))):
        got = col.downsample(40, start=start, end=end)
        want = downsample_m4(s, np.cos(s), s, 40, start=start, end=end)
        assert (got.total, len(got)) == (want.total, len(want)), (start, end)
