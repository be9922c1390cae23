"""Regenerate the suite's finite-difference references (``references/NAME.npz``).

For each problem: independent CRN central differences ``(I(h) − I(−h)) / 2h`` of the primal
``path`` tracer (``seeds`` of them, ``visibility_seeds`` for visibility problems, or the problem's
``ref_seeds``; seeds
``SEED0 + i``, disjoint from the benchmark's) at ``spp`` samples per pixel, reduced to the
per-pixel mean and standard error and to the per-seed summary statistics of
:func:`pathdiff.stats.summary` (image total + random-weight losses); and the optimization
target: the scene rendered at ``θ = target`` with ``target_spp`` samples. The settings are
stored beside the arrays (``settings``, a JSON string) and checked by ``tests/test_suite.py``.
About 4 minutes on 2 cores at the defaults.

    python -m pathdiff.bench.make_references [--problems a,b] [--res 24] [--spp 2048]
"""

from __future__ import annotations

import argparse
import json
import time

import drjit as dr
import mitsuba as mi
import numpy as np

import pathdiff as pd
from pathdiff.stats import mean_se, random_weights, summary

from .problems import PROBLEMS, REFERENCES, Problem, load, problem, resolve

SEED0 = 1_000_000
#: visibility derivatives are far noisier (estimators.md §7.1), so they get more seeds
DEFAULTS = {"res": 24, "spp": 2048, "seeds": 8, "visibility_seeds": 32, "target_spp": 4096}


def settings(p: Problem, res: int, spp: int, seeds: int, target_spp: int) -> dict:
    """Everything a reference depends on (compared with the problem list by the tests)."""
    return {
        "problem": p.name,
        "scene": p.scene,
        "spec": p.spec,
        "h": p.h,
        "opts": p.opts,
        "target": p.target,
        "res": res,
        "spp": spp,
        "seeds": seeds,
        "seed0": SEED0,
        "target_spp": target_spp,
        "integrator": "path",
        "variant": mi.variant(),
        "mitsuba": mi.__version__,
        "drjit": dr.__version__,
    }


def make_reference(p: Problem, res: int, spp: int, seeds: int, target_spp: int) -> dict:
    """The reference arrays of one problem (see the module docstring)."""
    scene = load(p, res)
    spec = resolve(p, scene, fd=True)
    runs = [
        pd.finite_difference(scene, spec, h=p.h, spp=spp, seed=SEED0 + i, **p.opts)
        for i in range(seeds)
    ]
    mean, se = mean_se(runs)
    w = random_weights(runs[0].shape)
    try:
        spec.bind(theta=mi.Float(p.target))
        target = pd.render(scene, "path", spp=target_spp, seed=SEED0 - 1, **p.opts)
    finally:
        spec.reset()
    return {
        "mean": mean.astype(np.float32),
        "se": se.astype(np.float32),
        "stats": np.stack([summary(r, w) for r in runs]),
        "target_image": target,
        "settings": json.dumps(settings(p, res, spp, seeds, target_spp)),
    }


def load_reference(p: Problem) -> dict:
    """The stored reference of ``p`` with its settings decoded."""
    with np.load(p.reference_path) as f:
        ref = dict(f)
    ref["settings"] = json.loads(str(ref["settings"]))
    return ref


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", help="comma-separated names (default: all)")
    for key, value in DEFAULTS.items():
        ap.add_argument(f"--{key.replace('_', '-')}", type=int, default=value)
    args = ap.parse_args(argv)
    chosen = [problem(n) for n in args.problems.split(",")] if args.problems else PROBLEMS
    REFERENCES.mkdir(exist_ok=True)
    for p in chosen:
        t0 = time.perf_counter()
        seeds = p.ref_seeds or (args.visibility_seeds if p.visibility else args.seeds)
        ref = make_reference(p, args.res, args.spp, seeds, args.target_spp)
        np.savez_compressed(p.reference_path, **ref)
        floor = np.linalg.norm(ref["se"]) / np.linalg.norm(ref["mean"])
        print(f"{p.name:22s} noise floor (rel.) {floor:.4f}  {time.perf_counter() - t0:6.1f} s")


if __name__ == "__main__":
    main()
