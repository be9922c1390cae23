"""Noise-aware statistics for comparing Monte Carlo images (gradcheck and tests).

Estimates from independent seeds give a mean and a standard error per element; two
estimates agree when their difference is within a threshold of the combined standard error.
The threshold comes from Student's t distribution with a family-wise false-alarm rate, so it
adapts to the number of seeds and of statistics instead of being tuned by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps


def mean_se(runs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-element mean and standard error of the mean over independent runs."""
    x = np.stack([np.asarray(r, dtype=np.float64) for r in runs])
    return x.mean(0), x.std(0, ddof=1) / np.sqrt(len(runs))


def z_scores(a: list[np.ndarray], b: list[np.ndarray], floor: float = 0.0) -> np.ndarray:
    """``(mean_a − mean_b) / sqrt(se_a² + se_b² + floor²)`` per element.

    ``floor`` is an absolute noise floor for elements where both sides are (nearly)
    noise-free, e.g. CRN finite differences that are exactly 0 where nothing changes.
    """
    ma, sa = mean_se(a)
    mb, sb = mean_se(b)
    return (ma - mb) / np.sqrt(sa**2 + sb**2 + floor**2 + 1e-30)


def threshold(n_stats: int, n_a: int, n_b: int, alpha: float = 1e-3) -> float:
    """Two-sided |z| bound exceeded by chance with probability ``alpha`` over ``n_stats``
    statistics (Bonferroni), with Welch-like ``n_a + n_b − 2`` degrees of freedom."""
    dof = max(n_a + n_b - 2, 1)
    return float(sps.t.ppf(1 - alpha / (2 * n_stats), dof))


def random_weights(shape: tuple[int, ...], count: int = 6, seed: int = 1234) -> np.ndarray:
    """Fixed Gaussian pixel weights ``(count, *shape)`` for random-weight losses."""
    return np.random.default_rng(seed).standard_normal((count, *shape))


def summary(img: np.ndarray, weights: np.ndarray, tiles: int = 0) -> np.ndarray:
    """Scalar statistics of a derivative image: the channel-summed total, the random-weight
    losses ``Σ_p w_p I_p`` (which, unlike the total, cannot cancel out opposite
    silhouettes), then, if ``tiles > 0``, the sums over a ``tiles × tiles`` grid (which
    localize a bias that whole-image statistics dilute)."""
    x = np.asarray(img, dtype=np.float64)
    blocks = []
    if tiles:
        rows = np.array_split(x.sum(-1), tiles, axis=0)
        blocks = [b.sum() for r in rows for b in np.array_split(r, tiles, axis=1)]
    return np.concatenate([[x.sum()], (weights * x).reshape(len(weights), -1).sum(1), blocks])


@dataclass
class Comparison:
    """Result of :func:`compare`: means, standard errors, z-scores and the verdict."""

    a_mean: np.ndarray
    a_se: np.ndarray
    b_mean: np.ndarray
    b_se: np.ndarray
    z: np.ndarray
    threshold: float

    @property
    def passed(self) -> bool:
        return bool(np.all(np.abs(self.z) <= self.threshold))


def compare(
    a_runs: list[np.ndarray],
    b_runs: list[np.ndarray],
    alpha: float = 1e-3,
    floor: float = 0.0,
    tiles: int = 0,
) -> Comparison:
    """Compare the summary statistics of two sets of independent derivative images
    (``tiles > 0`` adds tile sums, see :func:`summary`)."""
    w = random_weights(np.shape(a_runs[0]))
    sa = [summary(r, w, tiles) for r in a_runs]
    sb = [summary(r, w, tiles) for r in b_runs]
    am, ase = mean_se(sa)
    bm, bse = mean_se(sb)
    z = z_scores(sa, sb, floor=floor)
    return Comparison(am, ase, bm, bse, z, threshold(len(am), len(sa), len(sb), alpha))
