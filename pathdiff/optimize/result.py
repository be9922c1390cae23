"""What :func:`pathdiff.optimize` returns: :class:`OptimizeResult`."""

from __future__ import annotations

from dataclasses import dataclass, field

import mitsuba as mi
import numpy as np

from ..variables import param_error

#: parameters with at most this many components get one trajectory column per component
MAX_COLUMNS = 16


@dataclass
class OptimizeResult:
    """What :func:`optimize` returns: per-parameter values, losses, errors and how it ended.

    ``values``/``initial``/``truth`` map each variable name to its flat value; ``errors``
    maps it to the error to the truth per iteration (:func:`param_error`); ``stop_reason``
    is ``done``, ``plateau`` or ``interrupted``.
    """

    scene: mi.Scene
    names: list[str]
    initial: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    truth: dict[str, np.ndarray]
    losses: np.ndarray
    errors: dict[str, np.ndarray]
    iterations: int
    stop_reason: str
    skipped: list[int]
    seconds: float
    out_dir: str | None = None
    files: list[str] = field(default_factory=list)
    #: what the run noticed (clipped views, parameters at bounds, an early plateau)
    notes: list[str] = field(default_factory=list)
    #: per variable, its value after each iteration (rows; the trajectory's columns for it:
    #: the components, or their mean for large parameters)
    trajectory: dict[str, np.ndarray] = field(default_factory=dict)

    def error(self, name: str, values: np.ndarray | None = None) -> float:
        """Error of ``values`` (default: the final ones) to the truth (:func:`param_error`)."""
        values = self.values[name] if values is None else values
        return param_error(name, values, self.truth[name])

    def to_dict(self) -> dict:
        """JSON-ready summary (parameters with many components as mean and size)."""

        def small(x):
            return x if x.size <= MAX_COLUMNS else {"mean": float(x.mean()), "size": x.size}

        params = {}
        for n in self.names:
            params[n] = {"initial": small(self.initial[n]), "final": small(self.values[n])}
            if n in self.truth:
                params[n].update(
                    truth=small(self.truth[n]),
                    error_initial=self.error(n, self.initial[n]),
                    error_final=self.error(n),
                )
        return {
            "iterations": self.iterations,
            "stop_reason": self.stop_reason,
            "seconds": self.seconds,
            "final_loss": float(self.losses[-1]) if len(self.losses) else None,
            "skipped": self.skipped,
            "params": params,
            "notes": self.notes,
        }

    def summary(self) -> str:
        """A table of the initial, recovered and true values, and the error change."""
        rows = [("parameter", "initial", "recovered", "truth", "error")]
        for name in self.names:
            truth = self.truth.get(name)
            err = ""
            if truth is not None:
                e0, e1 = self.error(name, self.initial[name]), self.error(name)
                err = f"{e0:.3g} -> {e1:.3g}" + (f" (/{e0 / e1:.0f})" if e1 > 0 else "")
            cells = [self.initial[name], self.values[name], truth]
            rows.append((name, *(_short(c) for c in cells), err))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _short(x: np.ndarray | None) -> str:
    if x is None:
        return "-"
    if x.size <= 4:
        return " ".join(f"{v:.4g}" for v in x)
    return f"mean {x.mean():.4g} ({x.size} values)"
