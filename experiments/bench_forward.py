"""Forward (primal) rendering speed: ``pathdiff_path`` vs Mitsuba's own ``path`` integrator.

For each bundled scene, both integrators render the same scene in one process at equal
resolution, spp and ``max_depth`` (the scene's, or ``--max-depth``; ``rr_depth`` and
``hide_emitters`` are inherited from the scene too). Each integrator is called once to
warm up (the first call traces the Python code and JIT-compiles the kernels, or loads them
from Dr.Jit's kernel cache in ``~/.drjit``); then ``--reps`` renders per integrator are
timed, interleaved, and the median is reported. Every timed call converts the image to a
NumPy array, which waits for the asynchronous kernel launches to finish.

Printed: camera samples per second (res² · spp / median seconds) of each integrator, the
ratio ours / Mitsuba (higher is better), the same ratio for the kernels' own execution time
(Dr.Jit's kernel history: the rendering work without the per-call cost of recording the
kernel, which for ours is Python tracing the loop, about 1.5 ms a call here against Mitsuba's
C++), and the first-call time with the number of kernels compiled by it (0 = all from the
kernel cache; for cold-cache compile times run with an empty cache:
``HOME=$(mktemp -d) python3 experiments/bench_forward.py``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import drjit as dr

import pathdiff as pd
from pathdiff.render import scene_integrator_options

SCENES = ["cbox", "shadow", "silhouette", "textured", "glossy", "bunny"]
INTEGRATORS = {"ours": "path", "mitsuba": "mitsuba:path"}
ROOT = Path(__file__).resolve().parents[1]


def timed_render(scene, integrator: str, spp: int, opts: dict) -> float:
    t0 = time.perf_counter()
    pd.render(scene, integrator, spp=spp, seed=0, **opts)
    return time.perf_counter() - t0


def kernel_seconds() -> float:
    """Execution time of the kernels launched since the last call (kernel history)."""
    ms = [k.get("execution_time", 0.0) for k in dr.kernel_history()]
    return sum(ms) / 1e3


def first_call(scene, integrator: str, spp: int, opts: dict) -> tuple[float, int]:
    """Seconds of the first render and the number of kernels it compiled (cache misses)."""
    compiled = dr.detail.launch_stats()[2]
    seconds = timed_render(scene, integrator, spp, opts)
    return seconds, dr.detail.launch_stats()[2] - compiled


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", nargs="+", default=SCENES, choices=SCENES)
    ap.add_argument("--res", type=int, default=128)
    ap.add_argument("--spp", type=int, default=64)
    ap.add_argument("--max-depth", type=int, help="override the scenes' max_depth")
    ap.add_argument("--reps", type=int, default=9)
    args = ap.parse_args()
    opts = {} if args.max_depth is None else {"max_depth": args.max_depth}

    print(f"variant {pd.variant}, res {args.res}, spp {args.spp}, median of {args.reps}")
    print(
        f"{'scene':<11}{'depth':>6}{'ours MS/s':>11}{'mitsuba MS/s':>14}{'ratio':>7}"
        f"{'kernels':>9}{'first call: ours':>26}{'mitsuba':>22}"
    )
    dr.set_flag(dr.JitFlag.KernelHistory, True)
    for name in args.scenes:
        scene = pd.load_scene(str(ROOT / "scenes" / name / "scene.xml"), res=args.res)
        depth = opts.get("max_depth") or scene_integrator_options(scene)["max_depth"]
        first = {k: first_call(scene, v, args.spp, opts) for k, v in INTEGRATORS.items()}
        times = {k: [] for k in INTEGRATORS}
        kernels = {k: [] for k in INTEGRATORS}
        for _ in range(args.reps):
            for k, v in INTEGRATORS.items():
                kernel_seconds()
                times[k].append(timed_render(scene, v, args.spp, opts))
                kernels[k].append(kernel_seconds())
        rate = {k: args.res**2 * args.spp / statistics.median(t) / 1e6 for k, t in times.items()}
        work = {k: statistics.median(t) for k, t in kernels.items()}
        calls = {k: f"{s:.2f} s ({n} compiled)" for k, (s, n) in first.items()}
        print(
            f"{name:<11}{depth:>6}{rate['ours']:>11.2f}{rate['mitsuba']:>14.2f}"
            f"{rate['ours'] / rate['mitsuba']:>7.2f}{work['mitsuba'] / work['ours']:>9.2f}"
            f"{calls['ours']:>26}{calls['mitsuba']:>22}"
        )
    print(
        "MS/s = million camera samples per second; ratio = ours / mitsuba (target >= 1.0); "
        "kernels = the same ratio of kernel execution time"
    )


if __name__ == "__main__":
    main()
