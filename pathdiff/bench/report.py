"""The suite's outputs: the markdown table, JSON, mean derivative images and plots."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .problems import PROBLEMS
from .run import Result, Settings

HEADER = (
    "| problem | estimator | bias ‖Δ‖/‖ref‖ ± se | max \\|z\\| (thr.) | rel. RMSE | time [s] "
    "| peak [MiB] | rel. MSE × s | opt. θ error | note |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def _num(x: float, digits: int = 3) -> str:
    return "–" if x is None or math.isnan(x) else f"{x:.{digits}g}"


def row(r: Result) -> str:
    """One markdown table row."""
    if r.status != "ok":
        return f"| {r.problem} | {r.estimator} | n/a | | | | | | | {r.note} |"
    z = f"{_num(r.max_z, 2)} ({_num(r.threshold, 2)}){' **biased**' if r.biased else ''}"
    return (
        f"| {r.problem} | {r.estimator} | {_num(r.bias, 2)} ± {_num(r.bias_se, 1)} | {z} "
        f"| {_num(r.rel_rmse)} | {_num(r.time)} | {_num(r.peak_mib, 2)} | {_num(r.efficiency)} "
        f"| {_num(r.opt_error, 2)} | {r.note} |"
    )


def table(results: Sequence[Result]) -> str:
    """The per-pair markdown table."""
    return "\n".join([HEADER, *(row(r) for r in results)])


def floors(refs: dict[str, dict]) -> str:
    """Markdown table of the problems and their references' relative noise floors."""
    lines = [
        "| problem | ParamSpec | covers | FD h | ref. seeds × spp | ref. noise ‖se‖/‖mean‖ |",
        "|---|---|---|---|---|---|",
    ]
    for p in PROBLEMS:
        if p.name not in refs:
            continue
        ref, st = refs[p.name], refs[p.name]["settings"]
        noise = np.linalg.norm(ref["se"]) / np.linalg.norm(ref["mean"])
        lines.append(
            f"| {p.name} | `{p.spec}` | {p.covers} | {p.h:g} | {st['seeds']} × {st['spp']} "
            f"| {noise:.3f} |"
        )
    return "\n".join(lines)


def write(out: Path, results: Sequence[Result], refs: dict, s: Settings, header: str) -> None:
    """``table.md``, ``results.json``, ``images.npz`` and the plots in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    text = f"{header}\n\n{floors(refs)}\n\n{table(results)}\n"
    (out / "table.md").write_text(text)
    (out / "results.json").write_text(
        json.dumps({"settings": vars(s), "results": [r.to_dict() for r in results]}, indent=1)
    )
    images = {f"{r.problem}/{r.estimator}": r.mean_image for r in results if r.status == "ok"}
    images.update({f"{name}/fd": ref["mean"] for name, ref in refs.items()})
    np.savez_compressed(out / "images.npz", **images)
    plot_errors(out, results)
    plot_optimization(out, results, refs)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_errors(out: Path, results: Sequence[Result]) -> None:
    """Grouped bars per problem: rel. RMSE and rel. MSE × time; hatched = significant bias."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    ok = [r for r in results if r.status == "ok"]
    problems = list(dict.fromkeys(r.problem for r in ok))
    estimators = list(dict.fromkeys(r.estimator for r in ok))
    width = 0.8 / max(len(estimators), 1)
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 1.1 * len(problems)), 7), sharex=True)
    for ax, metric, label in zip(
        axes, ["rel_rmse", "efficiency"], ["rel. RMSE", "rel. MSE × seconds"]
    ):
        for j, est in enumerate(estimators):
            for i, name in enumerate(problems):
                r = next((r for r in ok if r.problem == name and r.estimator == est), None)
                if r is None:
                    continue
                value = r.rel_rmse if metric == "rel_rmse" else r.efficiency
                ax.bar(
                    i + (j - (len(estimators) - 1) / 2) * width,
                    value,
                    width,
                    color=f"C{j}",
                    hatch="//" if r.biased else None,
                    edgecolor="k",
                    linewidth=0.3,
                )
        ax.set(yscale="log", ylabel=label)
    handles = [Patch(color=f"C{j}", label=est) for j, est in enumerate(estimators)]
    axes[0].legend(handles=handles, ncol=4, fontsize=8)
    axes[0].set_title("per problem and estimator (hatched: bias significant)")
    axes[1].set_xticks(range(len(problems)), problems, rotation=30, ha="right")
    fig.tight_layout()
    fig.savefig(out / "errors.png", dpi=110)
    plt.close(fig)


def plot_optimization(out: Path, results: Sequence[Result], refs: dict) -> None:
    """θ per Adam step for every estimator, one panel per problem (dashed: the target)."""
    plt = _pyplot()
    ok = [r for r in results if r.status == "ok" and r.opt_trace]
    problems = list(dict.fromkeys(r.problem for r in ok))
    if not problems:
        return
    estimators = list(dict.fromkeys(r.estimator for r in ok))
    cols = min(4, len(problems))
    rows = math.ceil(len(problems) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, problems):
        for r in (r for r in ok if r.problem == name):
            j = estimators.index(r.estimator)
            ax.plot(r.opt_trace, color=f"C{j}", label=r.estimator)
        ax.axhline(refs[name]["settings"]["target"], color="k", ls="--", lw=0.8)
        ax.set(title=name, xlabel="Adam step", ylabel="θ")
    for ax in list(axes.flat)[len(problems) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "optimization.png", dpi=110)
    plt.close(fig)
