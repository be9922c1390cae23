"""Boundary-term cost against mesh size: a smooth icosphere's silhouette, 320 -> 81 920 triangles.

Issue 18's sweep. One scene (a smooth-shaded diffuse icosphere under a constant sky and a sun,
no floor: the only discontinuity is the silhouette), the icosphere subdivided from level 2
(320 triangles) to level 6 (81 920), the derivative image of ``object.translate.x`` in forward
mode at 64x64, 16 spp. For each size and estimator: the median wall time of one derivative
(after a warm-up call that compiles the kernels; one integrator per estimator and size, as in
an optimization) and its noise, ``Σ_pixels var`` over ``--seeds`` independent seeds; printed
beside Mitsuba's ``prb_projective`` measured in the same process as the time ratio and
noise² x time (``Σ var · seconds``, lower is better) as a ratio to Mitsuba's. Then the growth
of each estimator's time from 5 120 to 81 920 triangles, with and without the scene update
that every call pays before any estimator runs (the moved vertices, Mitsuba's acceleration
structure rebuilt; measured separately, the same for both). The two estimators' mean images
are compared too (``rel. diff``: ``‖D_a − D_b‖ / ‖D_b‖``, which their noise bounds from below).

    python3 experiments/bench_mesh_size.py [--levels 2,3,4,5,6] [--estimators edge,psdr]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import mitsuba as mi
import numpy as np

import pathdiff as pd
from pathdiff.render import _as_spec, bind_tangent, make_integrator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments"))
from make_scenes import icosphere, write_ply  # noqa: E402

MITSUBA = "mitsuba:prb_projective"
ALBEDO = [0.75, 0.35, 0.2]
SPEC = "object.translate.x"


def scene(ply: Path, res: int) -> mi.Scene:
    """The icosphere (smooth normals: Mitsuba computes them from a PLY without any), 64 spp
    sampler (each call passes its own spp)."""
    return mi.load_dict(
        {
            "type": "scene",
            "integrator": {"type": "pathdiff_path", "max_depth": 2},
            "sensor": {
                "type": "perspective",
                "fov": 40,
                "to_world": mi.ScalarTransform4f().look_at([1.0, 1.2, 3.5], [0, 0, 0], [0, 1, 0]),
                "film": {
                    "type": "hdrfilm",
                    "width": res,
                    "height": res,
                    "pixel_format": "rgb",
                    "sample_border": True,
                    "rfilter": {"type": "box"},
                },
            },
            "sky": {"type": "constant", "radiance": {"type": "rgb", "value": 0.5}},
            "sun": {
                "type": "directional",
                "direction": [1, -1, -0.4],
                "irradiance": {"type": "rgb", "value": 2.5},
            },
            "object": {
                "type": "ply",
                "filename": str(ply),
                "bsdf": {"type": "diffuse", "reflectance": {"type": "rgb", "value": ALBEDO}},
            },
        }
    )


def measure(sc, estimator: str, spp: int, seeds: int) -> tuple[float, float, np.ndarray]:
    """(median seconds per derivative, Σ_pixels variance over seeds, mean image). One
    integrator serves all calls, as in an optimization (pathdiff's edge tables are built
    once per mesh topology and cached in it)."""
    integ = make_integrator(sc, estimator)
    pd.derivative(sc, SPEC, integ, spp=spp, seed=10_000)  # compile, tables
    times, images = [], []
    for s in range(seeds):
        t0 = time.perf_counter()
        images.append(pd.derivative(sc, SPEC, integ, spp=spp, seed=s))
        times.append(time.perf_counter() - t0)
    stack = np.stack(images)
    return float(np.median(times)), float(stack.var(0, ddof=1).sum()), stack.mean(0)


def scene_update(sc, repeats: int = 3) -> float:
    """Median seconds of what every derivative call pays before any estimator runs: binding
    the ParamSpec (the vertex buffer moved, Mitsuba's acceleration structure rebuilt) and
    restoring it, two scene updates."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        spec = _as_spec(sc, SPEC)
        bind_tangent(spec)
        spec.reset()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="2,3,4,5,6", help="icosphere levels (2: 320 triangles)")
    ap.add_argument("--estimators", default="edge", help="pathdiff estimators, comma-separated")
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--spp", type=int, default=16)
    ap.add_argument("--seeds", type=int, default=8)
    args = ap.parse_args()
    estimators = [*args.estimators.split(","), MITSUBA]

    results: dict[tuple[str, int], tuple[float, float, np.ndarray]] = {}
    updates: dict[int, float] = {}
    print(f"{'triangles':>9s}  {'estimator':24s} {'time [s]':>9s} {'Σ var':>10s}  vs Mitsuba")
    with tempfile.TemporaryDirectory() as tmp:
        for level in (int(x) for x in args.levels.split(",")):
            v, f = icosphere(level)
            ply = Path(tmp) / f"ico{level}.ply"
            write_ply(ply, 0.8 * v, f)
            sc = scene(ply, args.res)
            update = updates[len(f)] = scene_update(sc)
            print(f"{len(f):9d}  (scene update, in every time below: {update:.3f} s)")
            for est in estimators:
                results[est, len(f)] = measure(sc, est, args.spp, args.seeds)
            t_m, var_m, mean_m = results[MITSUBA, len(f)]
            for est in estimators:
                t, var, mean = results[est, len(f)]
                note = ""
                if est != MITSUBA:
                    diff = np.linalg.norm(mean - mean_m) / max(np.linalg.norm(mean_m), 1e-12)
                    note = (
                        f"time {t / t_m:.2f}, noise²·time {var * t / (var_m * t_m):.2f}, "
                        f"rel. diff {diff:.3f}"
                    )
                print(f"{len(f):9d}  {est:24s} {t:9.3f} {var:10.3g}  {note}", flush=True)
    sizes = sorted({n for _, n in results})
    lo = 5120 if 5120 in sizes and 5120 < sizes[-1] else sizes[0]
    hi = sizes[-1]
    print(f"\ntime growth from {lo} to {hi} triangles (without the scene update):")
    for est in estimators:
        t_lo, t_hi = results[est, lo][0], results[est, hi][0]
        own_lo, own_hi = t_lo - updates[lo], t_hi - updates[hi]
        own = f"{own_hi / own_lo:.2f}x" if min(own_lo, own_hi) > 0 else "below the update's noise"
        print(f"  {est:24s} {t_hi / t_lo:.2f}x ({own})")


if __name__ == "__main__":
    main()
