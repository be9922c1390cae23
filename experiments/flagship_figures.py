"""Figures and per-stage errors of a run of the flagship example (issue 19), from the run's
own outputs: ``docs/images/shaded/``.

Reads a run directory of ``pathdiff optimize scenes/examples/shaded/example.json -o DIR``
(``mesh_stageK.ply``, ``mesh_final.ply``, ``result.json``, ``frames.png``, ``loss.png``) and
writes, per stage, the Chamfer distance (RMS of nearest-vertex distances, both ways) and the
normal consistency (mean |n·n'| of nearest vertices) against the true mesh and the albedo
error; copies the frame strip and the loss/error curves; renders a turntable of the
recovered mesh beside the true one (Mitsuba's ``path``, the example's lighting) as a GIF.

    python3 experiments/flagship_figures.py RUN_DIR [--docs docs/images/shaded] [--frames 24]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

import pathdiff as pd
from pathdiff.meshes import chamfer, normal_consistency, read_ply

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "scenes" / "examples" / "shaded"
ALBEDO = "albedo_bsdf.reflectance.value"


def stage_errors(run: Path) -> list[dict]:
    """Per written mesh (stages in order, then the final one): triangles, Chamfer, normal
    consistency against the true mesh."""
    tv, tf = read_ply(str(EXAMPLE / "truth_mesh.ply"))
    sv, sf = read_ply(str(EXAMPLE / "start.ply"))
    rows = [{"stage": "start", "triangles": len(sf), "chamfer": chamfer(sv, tv),
             "normals": normal_consistency(sv, sf, tv, tf)}]  # fmt: skip
    files = sorted(run.glob("mesh_stage*.ply"), key=lambda p: int(p.stem[len("mesh_stage") :]))
    for f in [*files, run / "mesh_final.ply"]:
        if f.exists():
            v, fa = read_ply(str(f))
            name = f.stem.removeprefix("mesh_")
            rows.append({"stage": name, "triangles": len(fa), "chamfer": chamfer(v, tv),
                         "normals": normal_consistency(v, fa, tv, tf)})  # fmt: skip
    return rows


def turntable(run: Path, out: Path, frames: int, res: int = 96) -> Path:
    """Recovered (left) and true (right) mesh from a circle of cameras, as a GIF."""
    import imageio.v3 as iio
    import mitsuba as mi

    from pathdiff.images import linear_to_srgb

    result = json.loads((run / "result.json").read_text())
    albedo = result["params"][ALBEDO]["final"]
    truth = json.loads((EXAMPLE / "truth.json").read_text())[ALBEDO]
    scenes = []
    for mesh, rgb in ((run / "mesh_final.ply", albedo), (EXAMPLE / "truth_mesh.ply", truth)):
        scene = mi.load_file(str(EXAMPLE / "scene.xml"), mesh=str(mesh), res=res)
        params = mi.traverse(scene)
        params[ALBEDO] = mi.Color3f(*rgb)
        params.update()
        scenes.append(scene)
    integrator = mi.load_dict({"type": "path", "max_depth": 3})
    images = []
    for k in range(frames):
        a = 2 * np.pi * k / frames
        sensor = mi.load_dict({
            "type": "perspective", "fov": 38,
            "to_world": mi.ScalarTransform4f().look_at(
                origin=[3.8 * np.sin(a), 1.2, 3.8 * np.cos(a)], target=[0, 0, 0], up=[0, 1, 0]),
            "film": {"type": "hdrfilm", "width": res, "height": res, "rfilter": {"type": "box"}},
        })  # fmt: skip
        row = [np.array(mi.render(s, sensor=sensor, integrator=integrator, spp=32)) for s in scenes]
        img = np.concatenate(row, axis=1)
        images.append(np.round(linear_to_srgb(np.clip(img, 0, 1)) * 255).astype(np.uint8))
    path = out / "turntable.gif"
    iio.imwrite(path, np.stack(images), duration=100, loop=0)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--docs", type=Path, default=ROOT / "docs" / "images" / "shaded")
    ap.add_argument("--frames", type=int, default=24)
    a = ap.parse_args()
    a.docs.mkdir(parents=True, exist_ok=True)
    rows = stage_errors(a.run)
    result = json.loads((a.run / "result.json").read_text())
    albedo = result["params"][ALBEDO]
    print("| stage | triangles | Chamfer | normal consistency |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['stage']} | {r['triangles']} | {r['chamfer']:.4f} | {r['normals']:.3f} |")
    print(f"albedo: {albedo['initial']} -> {albedo['final']} (truth {albedo.get('truth')}), "
          f"RMSE {albedo.get('error_initial')} -> {albedo.get('error_final')}")  # fmt: skip
    print(f"wall time: {result.get('seconds', float('nan')):.0f} s, "
          f"{result.get('iterations')} iterations")  # fmt: skip
    (a.docs / "stages.json").write_text(json.dumps(rows, indent=1))
    if (a.run / "loss.png").exists():
        shutil.copy(a.run / "loss.png", a.docs / "loss.png")
    if (a.run / "frames.png").exists():  # half size: 10 views x 10 frames
        import imageio.v3 as iio

        strip = iio.imread(a.run / "frames.png")[..., :3].astype(np.float32)
        h, w = strip.shape[0] // 2 * 2, strip.shape[1] // 2 * 2
        half = strip[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean((1, 3))
        iio.imwrite(a.docs / "frames.png", np.round(half).astype(np.uint8))
    print("wrote", turntable(a.run, a.docs, a.frames))
    pd  # noqa: B018  (importing pathdiff selects the Mitsuba variant and registers plugins)


if __name__ == "__main__":
    main()
