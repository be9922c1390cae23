"""``RNGSampler.next_1d_sorted``: the stratified, lane-sorted edge picks of batched boundary
samples (unbiasedness of the estimators that use it is checked against finite differences by
the edge, psdr and delta-shadow tests)."""

from __future__ import annotations

import mitsuba as mi
import numpy as np
import pytest

from pathdiff.integrators.sampling import RNGSampler


@pytest.mark.parametrize("n", [1, 7, 1000, 2**24 + 5])
def test_sorted_lanes_lie_in_their_strata(n):
    """Lane ``i`` of ``n`` in ``[i/n, (i+1)/n)`` (up to float32 rounding of the result, which
    past 2**24 lanes is as coarse as a stratum), below 1 and non-decreasing."""
    u = np.array(RNGSampler(mi.PCG32(n, 7)).next_1d_sorted(), np.float64)
    i = np.arange(n, dtype=np.float64)
    ulp = np.spacing(np.float32(1.0))  # float32 rounding of u near 1
    assert u.shape == (n,)
    assert np.all(u >= i / n - ulp) and np.all(u <= (i + 1) / n + ulp)
    assert np.all(u < 1.0) and np.all(np.diff(u) >= 0)


def test_sorted_is_uniform_within_strata():
    """The offsets within the strata are uniform: a KS-like bound on ``u n − i``."""
    n = 20000
    u = np.array(RNGSampler(mi.PCG32(n, 3)).next_1d_sorted(), np.float64)
    frac = np.sort(u * n - np.arange(n))
    assert np.max(np.abs(frac - (np.arange(n) + 0.5) / n)) < 1.63 / np.sqrt(n)  # KS, p≈0.01


def test_sorted_draws_one_number_per_lane():
    """The numbers after it are those after one ``next_1d``: boundary samples that follow
    (edge position, side rays) keep their streams."""
    a, b = RNGSampler(mi.PCG32(64, 11)), RNGSampler(mi.PCG32(64, 11))
    a.next_1d_sorted()
    b.next_1d()
    assert np.array_equal(np.array(a.next_1d()), np.array(b.next_1d()))
