"""Regenerate the target images and ground truth of the optimization examples.

Each folder ``scenes/examples/<name>/`` holds a hand-written ``example.json`` — a saved
``pathdiff optimize`` command line: scene, targets, parameters, starting values (``init``) and
settings — and, written by this script, its targets and ``truth.json``:

* the targets are the example's scene rendered at the *true* values (the scene as loaded,
  plus the ``TRUTH_DEFINES`` below), at the example's resolution with ``TARGET_SPP`` samples
  per pixel and fixed seeds, one per ``targets`` entry (its sensor), saved as the file type
  the entry names (EXR linear, PNG 8-bit sRGB like a photograph);
* ``truth.json`` holds the true value of every optimized parameter: small values inline,
  textures as ``truth_<key>.exr``, vertex positions as ``truth_<shape>.ply``, and ``0`` for
  rigid ParamSpecs (θ = 0 is the scene as loaded; the example starts at ``init``).

Deterministic for a given Mitsuba / Dr.Jit version. Usage (from the repository root):
``python experiments/make_examples.py [name ...]``.
"""

import json
import sys
from pathlib import Path

import mitsuba as mi
import numpy as np

import pathdiff as pd
from pathdiff.images import write_image

EXAMPLES = Path(__file__).resolve().parents[1] / "scenes" / "examples"

#: XML $parameters that turn an example's starting scene into the true one
TRUTH_DEFINES = {"bunny": {"mesh": "../../bunny/bunny.ply"}}
#: samples per pixel of the targets
TARGET_SPP = {
    "cbox": 2048, "textured": 1024, "shadow": 2048, "bunny": 1024, "camera": 1024, "photos": 2048,
}  # fmt: skip
#: photographs not made by pathdiff: Mitsuba's own ``path`` integrator, a per-view exposure
#: the optimizer does not know (view 0's is the reference), a photo stored at a multiple of
#: its film's size (upsampled: the optimizer resamples it back, with a warning)
PHOTOS = {"photos": {"exposure": [1.0, 0.6, 1.5], "upsample": {2: 2}}}


def truth_value(scene: mi.Scene, name: str, folder: Path):
    """The true value of one parameter, inline or as a file written into ``folder``."""
    params = mi.traverse(scene)
    if name not in params:  # a ParamSpec (rigid motion or KEY[i]): θ = 0 is the truth
        return 0.0
    value = params[name]
    if name.endswith("vertex_positions"):
        shape = name.rsplit(".", 1)[0]
        mesh = next(s for s in scene.shapes() if s.id() == shape)
        mesh.write_ply(str(folder / f"truth_{shape}.ply"))
        return f"truth_{shape}.ply"
    array = np.array(value, dtype=np.float64)
    if isinstance(value, mi.TensorXf):
        file = f"truth_{name.replace('.', '_')}.exr"
        write_image(folder / file, array)
        return file
    return [round(float(x), 7) for x in array.ravel()]


def make(name: str) -> None:
    folder = EXAMPLES / name
    spec = json.loads((folder / "example.json").read_text())
    defines = {**spec.get("define", {}), **TRUTH_DEFINES.get(name, {})}
    res = {"res": spec["res"]} if "res" in spec else {}
    scene = pd.load_scene(folder / spec["scene"], **res, **defines)
    photos = PHOTOS.get(name)
    for i, target in enumerate(spec["targets"]):
        sensor = target.get("sensor", i)
        integrator = "mitsuba:path" if photos else "path"
        img = pd.render(scene, integrator, spp=TARGET_SPP[name], seed=1000 + sensor, sensor=sensor)
        if photos:
            img = np.array(img) * photos["exposure"][sensor]
            k = photos["upsample"].get(sensor, 1)
            img = np.repeat(np.repeat(img, k, axis=0), k, axis=1)
        write_image(folder / target["image"], img)
        print(f"{name}: {target['image']} (sensor {sensor}, {TARGET_SPP[name]} spp)")
    truth = {p.split(":")[0]: truth_value(scene, p.split(":")[0], folder) for p in spec["params"]}
    (folder / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    print(f"{name}: truth.json ({', '.join(truth)})")


if __name__ == "__main__":
    for name in sys.argv[1:] or sorted(TARGET_SPP):
        make(name)
