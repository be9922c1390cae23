"""Bias and noise of ``pathdiff_reparam`` versus ``kappa`` and ``aux_rays``.

``pathdiff_reparam`` samples the primary (image-plane) boundary exactly like ``pathdiff_edge``;
only its secondary integrals are reparameterized. We therefore measure the secondary part in
isolation (``primary=False``: interior + secondary term) on the shadow scene, where the
occluder's shadow on the floor is a pure secondary-visibility effect, against the same
quantity from the unbiased secondary edge sampler (``pathdiff_edge``, ``primary=False``,
checked against finite differences in ``tests/test_edge.py``).

For each (κ, M) we render ``--seeds`` independent derivative images and report

* the gains ``Σ_{R+} D / Σ_{R+} D_ref`` and ``Σ_{R−} D / Σ_{R−} D_ref`` over the regions
  ``R±`` where the reference is positive / negative (1 = unbiased; < 1 = biased low), with
  standard errors from the per-seed sums (the reference's own error is printed once);
* the noise of one derivative image, ``‖D_k − mean‖ / ‖D_ref‖`` (RMS over seeds);
* the time of one derivative (median, after a warm-up that compiles the kernels).

Writes ``experiments/out/reparam_kappa.png`` and ``.json``.

    python3 experiments/reparam_kappa.py [--res 24] [--spp 32] [--seeds 64]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib
import numpy as np

import pathdiff as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "experiments" / "out"
SPEC = "occluder.translate.x"


def region_sums(img: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    x = img.sum(2)
    return np.array([x[pos].sum(), x[neg].sum()])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=int, default=24)
    ap.add_argument("--spp", type=int, default=32)
    ap.add_argument("--seeds", type=int, default=64)
    ap.add_argument("--kappa", default="1e3,1e4,1e5")
    ap.add_argument("--aux-rays", default="4,16,64,256")
    args = ap.parse_args()
    kappas = [float(k) for k in args.kappa.split(",")]
    aux = [int(m) for m in args.aux_rays.split(",")]

    scene = pd.load_scene(str(ROOT / "scenes" / "shadow" / "scene.xml"), res=args.res)
    kw = dict(spp=args.spp, primary=False)
    refs = [
        pd.derivative(scene, SPEC, "edge", seed=10_000 + s, **kw) for s in range(4 * args.seeds)
    ]
    ref = np.mean(refs, 0)
    pos, neg = ref.sum(2) > 0, ref.sum(2) < 0
    ref_sums = np.array([region_sums(r, pos, neg) for r in refs])
    ref_mean = ref_sums.mean(0)
    ref_se = ref_sums.std(0, ddof=1) / np.sqrt(len(refs))
    norm = np.linalg.norm(ref)
    print(
        f"reference (edge, {len(refs)} seeds): R+ {ref_mean[0]:.2f} ± {ref_se[0]:.2f}, "
        f"R- {ref_mean[1]:.2f} ± {ref_se[1]:.2f}"
    )

    rows = []
    print(f"{'kappa':>8s} {'M':>4s} {'gain R+':>14s} {'gain R-':>14s} {'noise':>7s} {'time':>7s}")
    for κ in kappas:
        for M in aux:
            opts = dict(kappa=κ, aux_rays=M, **kw)
            pd.derivative(scene, SPEC, "reparam", seed=0, **opts)  # compile / warm up
            runs, times = [], []
            for s in range(args.seeds):
                t0 = time.perf_counter()
                runs.append(pd.derivative(scene, SPEC, "reparam", seed=1 + s, **opts))
                times.append(time.perf_counter() - t0)
            sums = np.array([region_sums(r, pos, neg) for r in runs]) / ref_mean
            gain, gain_se = sums.mean(0), sums.std(0, ddof=1) / np.sqrt(len(runs))
            mean = np.mean(runs, 0)
            noise = float(np.sqrt(np.mean([np.sum((r - mean) ** 2) for r in runs])) / norm)
            row = dict(
                kappa=κ,
                aux_rays=M,
                gain=gain.tolist(),
                gain_se=gain_se.tolist(),
                noise=noise,
                time=float(np.median(times)),
            )
            rows.append(row)
            print(
                f"{κ:8.0e} {M:4d} {gain[0]:7.3f}±{gain_se[0]:.3f} {gain[1]:7.3f}±{gain_se[1]:.3f}"
                f" {noise:7.3f} {row['time']:6.3f}s",
                flush=True,
            )

    OUT.mkdir(parents=True, exist_ok=True)
    meta = dict(
        res=args.res,
        spp=args.spp,
        seeds=args.seeds,
        reference_seeds=len(refs),
        reference=ref_mean.tolist(),
        reference_se=ref_se.tolist(),
    )
    (OUT / "reparam_kappa.json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))

    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    for M in aux:
        sel = [r for r in rows if r["aux_rays"] == M]
        k = [r["kappa"] for r in sel]
        for i, (style, label) in enumerate((("o-", "R+"), ("s--", "R−"))):
            ax[0].errorbar(
                k,
                [r["gain"][i] for r in sel],
                [r["gain_se"][i] for r in sel],
                fmt=style,
                color=f"C{aux.index(M)}",
                label=f"M={M} {label}",
                capsize=2,
            )
        ax[1].plot(k, [r["noise"] for r in sel], "o-", label=f"M={M}")
    ax[0].axhline(1, color="k", lw=0.8)
    ax[0].set(
        xscale="log",
        xlabel="κ",
        ylabel="gain (mean / reference)",
        title="bias of the secondary term",
    )
    ax[0].legend(fontsize=7, ncol=2)
    ax[1].set(
        xscale="log",
        yscale="log",
        xlabel="κ",
        ylabel="‖D − mean‖ / ‖D_ref‖",
        title=f"noise of one derivative ({args.spp} spp)",
    )
    ax[1].legend(fontsize=7)
    for κ in kappas:
        sel = [r for r in rows if r["kappa"] == κ]
        ax[2].plot([r["aux_rays"] for r in sel], [r["time"] for r in sel], "o-", label=f"κ={κ:g}")
    ax[2].set(
        xscale="log",
        xlabel="aux_rays M",
        ylabel="seconds per derivative",
        title=f"time ({args.res}² px, {args.spp} spp, 2 CPU cores)",
    )
    ax[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "reparam_kappa.png", dpi=110)
    print(f"wrote {OUT / 'reparam_kappa.png'}")


if __name__ == "__main__":
    main()
