"""Say what went wrong: notes on the targets before a run and on its trajectory after it.

Each finding is a one-line note (kept in :attr:`OptimizeResult.notes` and ``result.json``);
the ones that mean the result is probably not what the user wants are also warnings:

- a view whose photo clipped pixels (they are compared as "at least white", see
  :mod:`pathdiff.targets`), and a view that is mostly masked or clipped;
- a parameter component that sat at a bound of its range for the last quarter of the run
  (the target asks for a value outside the range: wrong exposure, a missing mask, a range
  that is too tight);
- a loss that did not decrease over the run (the parameters cannot explain the target, or
  the learning rate is too small); a plateau stop (``--patience``) is reported as such.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from ..targets import Target, clipped_fraction

#: a view with more than this fraction masked or clipped is warned about
MOSTLY = 0.5


def _view(t: Target, i: int) -> str:
    return f"view {i} ({os.path.basename(t.path)})" if t.path else f"view {i}"


def target_notes(targets: list[Target]) -> list[str]:
    """Clipped and masked pixels per view (warning when most of a view is unusable)."""
    notes = []
    for i, t in enumerate(targets):
        n = t.image.shape[0] * t.image.shape[1]
        masked = 0.0 if t.mask is None else float((1.0 - t.mask).sum()) / n
        clipped = clipped_fraction(t) * (1.0 - masked)
        if clipped > 0:
            notes.append(
                f"{_view(t, i)}: {round(clipped * n)} of {n} pixels ({clipped:.1%}) clipped in"
                " the photo; the render is clipped there too (compared as 'at least white')"
            )
        if t.unreliable:
            notes.append(
                f"{_view(t, i)}: {t.unreliable} pixels next to clipped ones left out"
                " (compression ringing makes them read below white)"
            )
        if masked + clipped > MOSTLY:
            msg = (
                f"{_view(t, i)}: {masked + clipped:.0%} of the pixels are masked ({masked:.0%})"
                f" or clipped ({clipped:.0%}): little of this view constrains the fit"
            )
            warnings.warn(msg, stacklevel=3)
            notes.append(msg)
    return notes


def bound_notes(
    names: list[str], bounds: dict[str, tuple[float, float]], columns: list[str], rows: np.ndarray
) -> list[str]:
    """Components that sat at a bound for the last quarter of the run (at least 5 iterations)."""
    notes = []
    last = max(5, len(rows) // 4)
    if len(rows) < last:
        return notes
    for name in names:
        lo, hi = bounds[name]
        cols = [j for j, c in enumerate(columns) if c == name or c.startswith(name + "[")]
        for side, b in (("lower", lo), ("upper", hi)):
            if not np.isfinite(b):
                continue
            at = [j for j in cols if np.all(np.abs(rows[-last:, j] - b) <= 1e-6 * (1 + abs(b)))]
            if not at:
                continue
            what = name if len(at) == len(cols) else ", ".join(columns[j] for j in at)
            msg = (
                f"{what} sat at its {side} bound {b:g} for the last {last} iterations: the"
                " target asks for a value outside the range (check the exposure"
                " (--exposure fit), masks, or widen the range with :min=/:max=)"
            )
            warnings.warn(msg, stacklevel=3)
            notes.append(msg)
    return notes


def loss_notes(losses: np.ndarray) -> list[str]:
    """A loss that did not decrease: its last quarter is not below its first iterations by
    more than their noise (the parameters cannot explain the target, or --lr is too small).

    A Monte Carlo loss has a noise floor (the variance of the render), so "far from zero"
    is no sign of trouble; only a loss that never went down is."""
    n = len(losses)
    if n < 12:
        return []
    w = max(3, n // 10)
    first, last = np.asarray(losses[:w]), np.asarray(losses[-(n // 4) :])
    noise = np.hypot(first.std(ddof=1) / np.sqrt(len(first)), last.std(ddof=1) / np.sqrt(len(last)))
    if last.mean() < first.mean() - 2 * noise:
        return []
    msg = (
        f"the loss did not decrease over {n} iterations ({first.mean():.4g} ->"
        f" {last.mean():.4g}): the parameters may not explain the target (wrong parameter,"
        " exposure or mask), or --lr is too small"
    )
    warnings.warn(msg, stacklevel=3)
    return [msg]
