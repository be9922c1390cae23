"""Reverse-mode gradient cost: time of ``pathdiff_prb`` vs Mitsuba's ``prb``, and peak memory
of ``pathdiff_prb`` (path replay) vs ``pathdiff_ad`` (attached AD) as ``max_depth`` grows.

(a) Time. One gradient is ``mi.render`` with gradients enabled on ``--param`` (default cbox
``red.reflectance.value``), an L2 loss against a half-as-bright target, ``dr.backward`` and
reading the gradient back as NumPy (which waits for the asynchronous kernels). Both
integrators run in one process at equal scene, resolution, spp and ``max_depth``; each is
warmed up once (tracing + JIT compilation or kernel-cache load), then ``--reps`` gradients
are timed, interleaved, and the median is reported with the ratio ours / Mitsuba (lower is
better). The gradients are printed too: with the same seed both should agree closely.

(b) Memory. Each (integrator, max_depth) runs in a fresh subprocess with ``rr_depth`` above
``max_depth`` (so paths really reach the depth): one warm-up gradient, then Dr.Jit's
allocator cache is flushed and both statistics are reset, and one more gradient is measured
(``MALLOC_MMAP_THRESHOLD_`` is pinned so that freed arrays go back to the OS and reused heap
pages do not hide the second gradient's allocations):
  * Dr.Jit peak: Dr.Jit's own allocation watermark (``dr.detail.malloc_watermark``) minus the
    memory in use before the gradient; exact for Dr.Jit arrays, the primary number.
  * RSS peak: the process's peak resident set (Linux ``VmHWM``, reset via
    ``/proc/self/clear_refs``) minus its RSS before the gradient; includes everything else
    (LLVM, Python, the allocator's slack), so it is coarser.
A table is printed and the plot is written to ``experiments/out/bench_gradients_memory.png``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import drjit as dr
import numpy as np

import pathdiff as pd
from pathdiff.backend import jit_backend

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "out"
MIB = 2**20


def gradient_fn(scene_name: str, res: int, spp: int, param: str):
    """``grad(integrator, **opts) -> np.ndarray``: the L2 loss gradient for ``param``."""
    scene = pd.load_scene(str(ROOT / "scenes" / scene_name / "scene.xml"), res=res)
    target = 0.5 * pd.render(scene, "path", spp=spp, seed=1)

    def grad(integrator: str, **opts) -> np.ndarray:
        g = pd.gradient(scene, [param], "l2", target, integrator, spp=spp, seed=0, **opts)
        return g[param]

    return grad


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t0, result


def bench_time(args) -> None:
    grad = gradient_fn(args.scene, args.res, args.spp, args.param)
    integrators = {"ours": "prb", "mitsuba": "mitsuba:prb"}
    opts = {"max_depth": args.max_depth}
    first = {k: timed(grad, v, **opts) for k, v in integrators.items()}
    times = {k: [] for k in integrators}
    for _ in range(args.reps):
        for k, v in integrators.items():
            times[k].append(timed(grad, v, **opts)[0])
    med = {k: statistics.median(t) for k, t in times.items()}
    print(
        f"(a) time per reverse-mode gradient: {args.scene} {args.param}, res {args.res}, "
        f"spp {args.spp}, max_depth {args.max_depth}, "
        f"median of {args.reps}"
    )
    print(f"{'integrator':<14}{'s/grad':>8}{'first call (s)':>16}  gradient")
    for k, v in integrators.items():
        g = np.array2string(first[k][1].ravel(), precision=5)
        print(f"{v:<14}{med[k]:>8.3f}{first[k][0]:>16.2f}  {g}")
    print(f"ratio ours / mitsuba: {med['ours'] / med['mitsuba']:.2f} (target <= 1.0)\n")


def measure(args) -> None:
    """Subprocess body: print one JSON line with the peak memory of one gradient."""
    integrator, depth = args.measure.rsplit(":", 1)
    grad = gradient_fn(args.scene, args.res, args.spp, args.param)
    opts = {"max_depth": int(depth), "rr_depth": int(depth) + 1}
    grad(integrator, **opts)
    gc.collect()
    dr.flush_malloc_cache()
    dr.detail.malloc_clear_statistics()
    in_use = dr.detail.malloc_watermark(jit_backend())
    Path("/proc/self/clear_refs").write_text("5")
    rss = status_kib("VmRSS")
    grad(integrator, **opts)
    out = {
        "dr": (dr.detail.malloc_watermark(jit_backend()) - in_use) / MIB,
        "rss": (status_kib("VmHWM") - rss) / 1024,
    }
    print(json.dumps(out))


def status_kib(field: str) -> int:
    line = next(
        x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":")
    )
    return int(line.split()[1])


def bench_memory(args) -> None:
    rows = {}
    for integrator in args.mem_integrators:
        for depth in args.depths:
            cmd = [sys.executable, __file__, *sys.argv[1:], "--measure", f"{integrator}:{depth}"]
            env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
            out = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True)
            rows[integrator, depth] = json.loads(out.stdout.splitlines()[-1])
    print(
        f"(b) peak memory of one reverse-mode gradient: {args.scene}, res {args.res}, "
        f"spp {args.spp}, rr_depth = max_depth + 1, fresh process per row"
    )
    print(f"{'integrator':<14}{'max_depth':>10}{'Dr.Jit peak MiB':>17}{'RSS peak MiB':>14}")
    for (integrator, depth), r in rows.items():
        print(f"{integrator:<14}{depth:>10}{r['dr']:>17.1f}{r['rss']:>14.1f}")
    for integrator in args.mem_integrators:
        peaks = [rows[integrator, d]["dr"] for d in args.depths]
        print(
            f"{integrator}: Dr.Jit peak at max_depth {args.depths[-1]} / {args.depths[0]} = "
            f"{peaks[-1] / peaks[0]:.2f}x (spread {max(peaks) / min(peaks) - 1:.0%})"
        )
    plot(rows, args)


def plot(rows: dict, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key, title in zip(
        axes, ["dr", "rss"], ["Dr.Jit allocation peak", "RSS peak"], strict=True
    ):
        for i, integrator in enumerate(args.mem_integrators):
            peaks = [rows[integrator, d][key] for d in args.depths]
            ax.plot(args.depths, peaks, ["o-", "s-", "^--"][i % 3], label=integrator)
        ax.set(title=title, xlabel="max_depth", ylabel="MiB")
        ax.set_xticks(args.depths)
        ax.legend()
    fig.suptitle(f"One gradient, {args.scene} {args.res}² × {args.spp} spp")
    fig.tight_layout()
    OUT.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT / "bench_gradients_memory.png", dpi=120)
    print(f"plot: {OUT / 'bench_gradients_memory.png'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scene", default="cbox")
    ap.add_argument("--param", default="red.reflectance.value")
    ap.add_argument("--res", type=int, default=128)
    ap.add_argument("--spp", type=int, default=32)
    ap.add_argument("--max-depth", type=int, default=6, help="for (a)")
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--depths", type=int, nargs="+", default=[2, 4, 8, 16])
    ap.add_argument("--mem-integrators", nargs="+", default=["prb", "ad", "mitsuba:prb"])
    ap.add_argument("--skip", choices=["time", "memory"], help="run only the other part")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        measure(args)
        return
    print(f"variant {pd.variant}")
    if args.skip != "time":
        bench_time(args)
    if args.skip != "memory":
        bench_memory(args)


if __name__ == "__main__":
    main()
