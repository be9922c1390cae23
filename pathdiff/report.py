"""Reports for gradient checks: the AD | FD | AD−FD panel (PNG) and the text table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .gradcheck import GradcheckResult

#: percentile of |derivative| that sets the symmetric color scale (robust to fireflies)
SCALE_PERCENTILE = 99.5

TABLE_COLUMNS = ("spec", "kind", "h", "AD sum ± se", "FD sum ± se", "rel.err", "|z|/thr", "verdict")


def _pm(value: float, se: float) -> str:
    return f"{value:.4g} ± {se:.2g}"


def write_panel(result: GradcheckResult, path: str | Path) -> Path:
    """Write the panel of one result: channel-summed AD, FD and AD−FD images side by side.

    All three share one symmetric diverging color scale (red positive, blue negative, white
    zero) set by the 99.5th percentile of |AD| and |FD|, with one colorbar; values beyond it
    saturate. Titles give the summed derivative ± standard error and the verdict.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ad = result.ad_mean.sum(-1)
    fd = result.fd_mean.sum(-1)
    vmax = float(np.percentile(np.abs(np.stack([ad, fd])), SCALE_PERCENTILE)) or 1.0
    panels = [
        (f"AD ({result.integrator}): Σ = {_pm(result.ad_sum, result.ad_sum_se)}", ad),
        (f"FD (h = {result.h:.3g}): Σ = {_pm(result.fd_sum, result.fd_sum_se)}", fd),
        (f"AD − FD: max|z| = {result.max_abs_z:.2f} / {result.threshold:.2f}", ad - fd),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2), layout="constrained")
    for ax, (title, img) in zip(axes, panels):
        im = ax.imshow(img, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.colorbar(im, ax=axes, shrink=0.85, label="dI/dθ (channel sum)")
    fig.suptitle(f"{result.name} [{result.kind}]: {result.verdict}", fontsize=11)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def format_table(results: Sequence[GradcheckResult]) -> str:
    """A plain-text table with one row per checked parameter."""
    rows = [
        (
            r.name,
            r.kind,
            f"{r.h:.3g}",
            _pm(r.ad_sum, r.ad_sum_se),
            _pm(r.fd_sum, r.fd_sum_se),
            f"{r.rel_error:.2%}",
            f"{r.max_abs_z:.2f}/{r.threshold:.2f}",
            r.verdict,
        )
        for r in results
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(TABLE_COLUMNS, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    header = "  ".join(c.ljust(w) for c, w in zip(TABLE_COLUMNS, widths)).rstrip()
    return "\n".join([header, "-" * len(header), *lines])
