"""Time per optimization iteration: ``pd.optimize`` (frozen and not) against a minimal loop
of Mitsuba's own (``mi.render`` + ``prb`` + ``mi.ad.Adam``, under ``@dr.freeze``), measured in
one process on the Cornell-box example's settings (64², 16 spp, four parameters: three wall
colours and the light's radiance, L2 loss against the example's target).

Each loop runs ``--warmup`` iterations (tracing, kernel compilation or the kernel cache,
the freeze's recording), then ``--iters`` timed ones; the loops are interleaved in rounds so
that another process's load hits them alike, and the median per-iteration time of each is
printed with the ratio to Mitsuba's frozen loop (lower is better). ``pd.optimize`` runs
without an output directory or progress bar (what the CLI adds on top: checkpoints every 10
iterations and frames, is outside the loop being compared).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from pathlib import Path

import drjit as dr
import mitsuba as mi
import numpy as np

import pathdiff as pd
from pathdiff.images import read_image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "scenes" / "examples" / "cbox"
KEYS = [
    "red.reflectance.value",
    "green.reflectance.value",
    "white.reflectance.value",
    "light.emitter.radiance.value",
]
INIT = {KEYS[0]: 0.5, KEYS[1]: 0.5, KEYS[2]: 0.5, KEYS[3]: 10.0}


def pathdiff_loop(target: np.ndarray, iters: int, freeze: str, spp: int) -> list[float]:
    """Per-iteration seconds of ``pd.optimize`` (timestamps from its callback)."""
    scene = pd.load_scene(EXAMPLE.parent.parent / "cbox" / "scene.xml", res=64)
    stamps: list[float] = []
    pd.optimize(
        scene, KEYS, [target], iters=iters, spp=spp, lr=0.02, init=INIT, progress=False,
        freeze=freeze, callback=lambda it, loss: stamps.append(time.perf_counter()),
    )  # fmt: skip
    return list(np.diff(stamps))


def mitsuba_loop(target: np.ndarray, iters: int, spp: int) -> list[float]:
    """Per-iteration seconds of a minimal frozen Mitsuba loop (same scene, settings)."""
    scene = pd.load_scene(EXAMPLE.parent.parent / "cbox" / "scene.xml", res=64)
    params = mi.traverse(scene)
    integrator = mi.load_dict({"type": "prb", "max_depth": 6})
    opt = mi.ad.Adam(lr=0.02)
    for key in KEYS:
        value = params[key]
        opt[key] = type(value)(INIT[key])
    params.update(opt)
    T = mi.TensorXf(target)

    @dr.freeze
    def step(scene, params, opt, seed):
        img = mi.render(scene, params, integrator=integrator, spp=spp, seed=seed)
        loss = dr.mean(dr.square(img - T), axis=None)
        dr.backward(loss)
        opt.step()
        params.update(opt)
        return loss

    out = []
    gc.collect()  # a collection during a recording aborts the process (pathdiff.optimize.frozen)
    gc.disable()
    for it in range(iters):
        t0 = time.perf_counter()
        loss = step(scene, params, opt, mi.UInt32(it))
        dr.eval(loss)
        float(loss.array[0])  # wait for the kernels, as pd.optimize's loss read does
        out.append(time.perf_counter() - t0)
    gc.enable()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=40, help="timed iterations per loop and round")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--spp", type=int, default=16)
    args = ap.parse_args()
    target = read_image(EXAMPLE / "target.exr")
    n = args.warmup + args.iters
    loops = {
        "mitsuba prb, frozen": lambda: mitsuba_loop(target, n, args.spp),
        "pathdiff optimize, frozen": lambda: pathdiff_loop(target, n, "auto", args.spp),
        "pathdiff optimize, unfrozen": lambda: pathdiff_loop(target, n, "off", args.spp),
    }
    times: dict[str, list[float]] = {k: [] for k in loops}
    for _ in range(args.rounds):
        for name, run in loops.items():
            times[name] += run()[args.warmup :]
    ref = statistics.median(times["mitsuba prb, frozen"])
    print(f"variant {pd.variant}; cbox 64², {args.spp} spp, 4 parameters; median per iteration")
    print(f"{'loop':<30}{'ms/it':>8}{'ratio':>8}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<30}{1000 * med:>8.1f}{med / ref:>8.2f}")


if __name__ == "__main__":
    main()
