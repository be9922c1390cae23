"""Visibility-gradient error versus time: pathdiff's boundary estimators against Mitsuba's.

For each problem (scene + ParamSpec) a reference derivative image is computed once by CRN
central finite differences of the primal tracer (many seeds, high spp). Each estimator then
renders forward-mode derivative images at increasing spp; we record the wall time of one
derivative (after a warm-up call that compiles its kernels) and the relative RMSE
``‖D − D_ref‖ / ‖D_ref‖``. The reference's own noise floor is printed. Estimators run in one
process on the same scene; Mitsuba's ``prb_projective`` is the yardstick.

    python3 experiments/bench_visibility.py [--res 32] [--estimators edge,mitsuba:prb_projective]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import pathdiff as pd
from pathdiff.stats import mean_se

ROOT = Path(__file__).resolve().parent.parent
PROBLEMS = [
    ("silhouette", "object.translate.x", 2e-3),
    ("shadow", "occluder.translate.x", 2e-3),
]


def reference(scene, spec: str, h: float, seeds: int, spp: int) -> tuple[np.ndarray, float]:
    """High-spp FD reference and its relative noise floor (standard error / norm)."""
    runs = [pd.finite_difference(scene, spec, h=h, spp=spp, seed=1000 + s) for s in range(seeds)]
    mean, se = mean_se(runs)
    return mean, float(np.linalg.norm(se) / np.linalg.norm(mean))


def measure(scene, spec, estimator, spp, ref, repeats=2) -> tuple[float, float]:
    """(seconds per derivative, relative RMSE) for one estimator at one spp."""
    pd.derivative(scene, spec, estimator, spp=spp, seed=0)  # compile / warm up
    times, errors = [], []
    for r in range(repeats):
        t0 = time.perf_counter()
        d = pd.derivative(scene, spec, estimator, spp=spp, seed=1 + r)
        times.append(time.perf_counter() - t0)
        errors.append(np.linalg.norm(d - ref) / np.linalg.norm(ref))
    return float(np.median(times)), float(np.mean(errors))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=int, default=32)
    ap.add_argument("--estimators", default="edge,mitsuba:prb_projective")
    ap.add_argument("--spp", default="4,16,64")
    ap.add_argument("--ref-seeds", type=int, default=16)
    ap.add_argument("--ref-spp", type=int, default=1024)
    ap.add_argument("--out", default=str(ROOT / "experiments" / "out" / "bench_visibility.png"))
    args = ap.parse_args()
    estimators = args.estimators.split(",")
    spps = [int(s) for s in args.spp.split(",")]

    rows = []
    for name, spec, h in PROBLEMS:
        scene = pd.load_scene(ROOT / "scenes" / name / "scene.xml", res=args.res)
        ref, floor = reference(scene, spec, h, args.ref_seeds, args.ref_spp)
        print(f"\n{name} {spec}: reference noise floor (rel.) {floor:.3f}")
        print(f"{'estimator':28s} {'spp':>5s} {'time [s]':>9s} {'rel. RMSE':>10s}")
        for est in estimators:
            for spp in spps:
                t, e = measure(scene, spec, est, spp, ref)
                rows.append((name, spec, est, spp, t, e))
                print(f"{est:28s} {spp:5d} {t:9.3f} {e:10.3f}")
        base = {r[3]: r for r in rows if r[0] == name and r[2] == estimators[0]}
        for est in estimators[1:]:
            for r in (r for r in rows if r[0] == name and r[2] == est):
                ours = base[r[3]]
                print(
                    f"spp {r[3]:4d}: {estimators[0]}/{est} error ratio {ours[5] / r[5]:.2f}, "
                    f"time ratio {ours[4] / r[4]:.2f}"
                )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PROBLEMS), figsize=(5 * len(PROBLEMS), 4))
    for ax, (name, spec, _) in zip(np.atleast_1d(axes), PROBLEMS):
        for est in estimators:
            pts = [(r[4], r[5]) for r in rows if r[0] == name and r[2] == est]
            ax.loglog(*zip(*pts), "o-", label=est)
        ax.set(title=f"{name}: {spec}", xlabel="seconds per derivative", ylabel="rel. RMSE")
        ax.legend()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"\nplot: {args.out}")


if __name__ == "__main__":
    main()
