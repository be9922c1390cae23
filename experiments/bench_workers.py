"""Speed-up of ``optimize --workers 2`` over one process on this machine.

The Cornell box seen by ``--views`` sensors (targets rendered at the true values) is
optimized for ``--iters`` iterations (red wall and lamp radiance, ``prb``), once with one
process and once with ``--workers`` processes, ``--reps`` times each, interleaved. The
time per iteration is read from ``trajectory.csv`` (rank 0's clock) after the warm-up: the
first ``--warmup`` iterations trace the Python code and compile the kernels (or load them
from Dr.Jit's kernel cache in ``~/.drjit``) and are left out. The best of the repetitions
is reported (other programs may share the CPU), with the wall time of a whole call, which
includes starting the workers (importing Mitsuba and torch, loading the scene).

Printed: seconds per iteration for each, their ratio (the speed-up), and the wall times.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import drjit as dr
import numpy as np

import pathdiff as pd
from pathdiff.images import write_image
from pathdiff.optimize.distributed import cores, threads

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ["red.reflectance.value", "light.emitter.radiance.value:lr=0.3"]
INIT = {"red.reflectance.value": 0.3, "light.emitter.radiance.value": 10.0}
SENSOR = """    <sensor type="perspective" id="view{i}">
        <float name="fov" value="45"/>
        <transform name="to_world">
            <lookat origin="{x:.3f}, {y:.3f}, 3.6" target="0, 0, 0" up="0, 1, 0"/>
        </transform>
        <sampler type="independent"/>
        <film type="hdrfilm">
            <integer name="width" value="$res"/>
            <integer name="height" value="$res"/>
            <string name="pixel_format" value="rgb"/>
        </film>
    </sensor>
"""


def scene_with_views(tmp: Path, views: int) -> Path:
    """The Cornell box with ``views`` sensors (the original one and ``views - 1`` more)."""
    xml = (ROOT / "scenes" / "cbox" / "scene.xml").read_text()
    extra = "".join(
        SENSOR.format(i=i, x=1.2 * np.cos(i), y=0.5 * np.sin(i)) for i in range(1, views)
    )
    head = '<scene version="3.0.0">'
    xml = xml.replace(head, f'{head}\n    <path value="{ROOT / "scenes" / "cbox"}"/>')
    xml = xml.replace(
        '    <bsdf type="diffuse" id="white">', extra + '    <bsdf type="diffuse" id="white">', 1
    )
    path = tmp / "scene.xml"
    path.write_text(xml)
    return path


def targets(scene_xml: Path, views: int, res: int, tmp: Path) -> list[str]:
    scene = pd.load_scene(str(scene_xml), res=res, max_depth=3)
    out = []
    for sensor in range(views):
        out.append(str(tmp / f"target{sensor}.exr"))
        write_image(out[-1], pd.render(scene, "path", spp=64, sensor=sensor))
    return out


def one_run(scene_xml: Path, target_files: list[str], args, workers: int, out: Path):
    """Seconds per iteration after the warm-up, and the wall time of the call."""
    t0 = time.perf_counter()
    pd.optimize(
        str(scene_xml), PARAMS, target_files, workers=workers, iters=args.iters, spp=args.spp,
        init=INIT, xml_params={"res": args.res, "max_depth": 3}, progress=False, final_spp=1,
        frame_every=10**6, checkpoint_every=10**6, out_dir=out,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    with open(out / "trajectory.csv") as fh:
        seconds = [float(r["seconds"]) for r in csv.DictReader(fh)]
    w = args.warmup
    return (seconds[-1] - seconds[w - 1]) / (len(seconds) - w), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--spp", type=int, default=8)
    ap.add_argument("--iters", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2, help="iterations left out (compilation)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    scene_xml = scene_with_views(tmp, args.views)
    files = targets(scene_xml, args.views, args.res, tmp)
    print(
        f"variant {pd.variant}, {cores()} cores, {args.views} views at {args.res}², "
        f"{args.spp} spp, {args.iters} iterations ({args.warmup} warm-up), best of {args.reps}"
    )
    print(
        f"threads: 1 process {dr.thread_count()}, {args.workers} processes "
        f"{threads(args.workers)} each"
    )
    runs: dict[int, list[tuple[float, float]]] = {1: [], args.workers: []}
    for rep in range(args.reps):
        for workers in runs:
            runs[workers].append(
                one_run(scene_xml, files, args, workers, tmp / f"w{workers}_{rep}")
            )
    best = {w: (min(r[0] for r in rs), min(r[1] for r in rs)) for w, rs in runs.items()}
    for w, (per_it, wall) in best.items():
        print(f"workers {w}: {per_it * 1000:7.1f} ms/iteration, {wall:6.1f} s per call (wall)")
    one, many = best[1][0], best[args.workers][0]
    print(f"speed-up per iteration, {args.workers} workers over 1: {one / many:.2f}x")


if __name__ == "__main__":
    main()
