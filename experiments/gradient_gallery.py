"""Gradient images of every estimator beside the finite-difference reference, per problem.

Reads ``images.npz`` of a benchmark-suite run (``pathdiff bench``: the mean
derivative image of each (problem, estimator) pair over its seeds, and each problem's FD
reference) and draws one row per problem: FD, then every estimator, channel-summed, on one
symmetric diverging colour scale per row (99.5th percentile of |FD|; beyond it saturates).

    python experiments/gradient_gallery.py [--suite-dir bench_out] [--out PNG]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pathdiff.report import SCALE_PERCENTILE

ROOT = Path(__file__).resolve().parent.parent


def gallery(images: dict[str, np.ndarray], out: Path) -> None:
    """Write the gallery PNG of ``images`` (keys ``PROBLEM/ESTIMATOR``, ``PROBLEM/fd``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = list(dict.fromkeys(k.split("/")[0] for k in images))
    columns = ["fd", *dict.fromkeys(k.split("/", 1)[1] for k in images if not k.endswith("/fd"))]
    fig, axes = plt.subplots(
        len(problems),
        len(columns),
        figsize=(1.5 * len(columns), 1.6 * len(problems)),
        squeeze=False,
        layout="constrained",
    )
    for i, name in enumerate(problems):
        vmax = float(np.percentile(np.abs(images[f"{name}/fd"].sum(-1)), SCALE_PERCENTILE)) or 1
        for j, col in enumerate(columns):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if f"{name}/{col}" in images:
                img = images[f"{name}/{col}"].sum(-1)
                ax.imshow(img, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
            else:
                ax.set_facecolor("0.85")
            if i == 0:
                ax.set_title("FD reference" if col == "fd" else col, fontsize=7)
            if j == 0:
                ax.set_ylabel(name, fontsize=7)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite-dir", type=Path, default=ROOT / "experiments" / "out" / "suite")
    ap.add_argument("--out", type=Path, help="default: SUITE_DIR/gallery.png")
    args = ap.parse_args()
    path = args.suite_dir / "images.npz"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run `pathdiff bench` first")
    with np.load(path) as f:
        images = dict(f)
    out = args.out or args.suite_dir / "gallery.png"
    gallery(images, out)
    print(f"gallery: {out}")


if __name__ == "__main__":
    main()
