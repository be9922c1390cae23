"""Generate the flagship example ``scenes/examples/shaded/``: shape *and* albedo of a closed
mesh recovered from ten shaded 8-bit photographs.

Writes (and overwrites, nothing else) in ``scenes/examples/shaded/``:

* ``truth_mesh.ply``: a copy of the bundled blobby bunny (``scenes/bunny/bunny.ply``);
* ``start.ply``: a level-2 icosphere (320 triangles) at the bunny's bounding-box centre,
  radius 0.9 x the bunny's bounding-sphere radius;
* ``env.exr``: a small procedural lat-long sky (gradient, darker ground, soft sun lobe);
* ``scene.xml``: the sky, one rectangle area light, the mesh (``$mesh``) with a diffuse BSDF
  ``albedo_bsdf`` and ten perspective cameras ``view0``..``view9`` on two rings;
* ``target_K.png``: view K of the true scene (bunny, true albedo) rendered by Mitsuba's own
  ``path`` integrator (max_depth 3) at ``TARGET_SPP`` samples per pixel, clipped to [0, 1]
  and stored as 8-bit sRGB, like a photograph (the area light's highlights clip);
* ``truth.json`` and ``example.json`` (the saved ``pathdiff optimize`` command line).

Deterministic for a given Mitsuba / Dr.Jit version. Usage (from anywhere):
``python3 experiments/make_flagship.py``.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import mitsuba as mi
import numpy as np

import pathdiff  # noqa: F401  (selects the Mitsuba variant)
from pathdiff.meshes import read_ply

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_scenes import icosphere, sensor_xml, write_ply  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "scenes" / "examples" / "shaded"
TRUTH_MESH = ROOT / "scenes" / "bunny" / "bunny.ply"

RES = 128
TARGET_SPP = 1024
MAX_DEPTH = 3
TRUE_ALBEDO = (0.75, 0.45, 0.3)
START_ALBEDO = 0.5
ALBEDO_KEY = "albedo_bsdf.reflectance.value"
FOV = 38.0
CAMERA_DISTANCE = 4.0
#: (elevation in degrees, azimuth of the first camera); five cameras per ring, 72 deg apart
RINGS = ((8.0, 0.0), (40.0, 36.0))
#: the area light, facing the object's centre: elevation and azimuth (degrees) of its
#: direction from the centre, distance (beyond the cameras, so that no camera sees it),
#: half-size and radiance
LIGHT_ELEVATION, LIGHT_AZIMUTH = 55.0, 0.0
LIGHT_DISTANCE = 7.0
LIGHT_HALF_SIZE = 1.1
LIGHT_RADIANCE = (25.0, 23.5, 21.5)
#: the sun lobe of the sky: direction, width (in 1 - cos) and peak radiance
SUN_ELEVATION, SUN_AZIMUTH = 40.0, 72.0
SUN_WIDTH = 0.03
SUN_RADIANCE = (10.0, 9.0, 7.0)

#: example.json's coarse-to-fine settings. 240 iterations (80 per stage) take ~5 min on 2
#: idle cores (~0.7, ~1 and ~2 s per iteration at 32, 64 and 128 pixels). lr 0.1 (ours:
#: Chamfer 0.060; 0.15: 0.061; 0.05: 0.099 after 240 iterations): at 0.2 and above the first
#: stage (32 pixels, 4 spp) diverged within ~80 iterations, and Mitsuba's prb_projective
#: (experiments/flagship_mitsuba.py) already diverges there at 0.15
SCHEDULE = "32:4:1,64:8:0.5,128:8:0.25"
ITERS = 240
LR = 0.1


def start_mesh(v_truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 320-triangle icosphere at the truth's bounding-box centre, 0.9 x its bounding radius."""
    centre = 0.5 * (v_truth.min(0) + v_truth.max(0))
    radius = 0.9 * np.linalg.norm(v_truth - centre, axis=1).max()
    v, f = icosphere(2)
    return v * radius + centre, f


def sky(width: int = 64, height: int = 32) -> np.ndarray:
    """Lat-long sky (Mitsuba's envmap layout, +y up): blue gradient above the horizon, a
    darker warm ground below, and a soft sun lobe."""
    theta = (np.arange(height) + 0.5) / height * np.pi
    phi = (np.arange(width) + 0.5) / width * 2 * np.pi
    th, ph = np.meshgrid(theta, phi, indexing="ij")
    # the direction of a texel in Mitsuba's envmap convention
    d = np.stack([np.sin(th) * np.sin(ph), np.cos(th), -np.sin(th) * np.cos(ph)], -1)
    up = d[..., 1:2]
    zenith, horizon = np.array([0.12, 0.2, 0.42]), np.array([0.36, 0.4, 0.45])
    t = np.clip(up, 0, 1) ** 0.5
    above = horizon * (1 - t) + zenith * t
    below = np.array([0.11, 0.09, 0.07]) * (1 - 0.5 * np.clip(-up, 0, 1))
    env = np.where(up >= 0, above, below)
    s = direction(SUN_ELEVATION, SUN_AZIMUTH)
    env = env + np.exp(-(1 - d @ s) / SUN_WIDTH)[..., None] * np.asarray(SUN_RADIANCE)
    return env.astype(np.float32)


def direction(elevation: float, azimuth: float) -> np.ndarray:
    """Unit vector at ``elevation`` above the xz plane (+y up), ``azimuth`` from +z towards +x
    (degrees)."""
    el, az = np.radians(elevation), np.radians(azimuth)
    return np.array([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)])


def cameras(centre: np.ndarray) -> list[np.ndarray]:
    """Ten camera origins on two rings around ``centre``."""
    return [
        centre + CAMERA_DISTANCE * direction(elevation, azimuth0 + 72.0 * k)
        for elevation, azimuth0 in RINGS
        for k in range(5)
    ]


def fmt(x) -> str:
    return ", ".join(f"{float(c):.4f}" for c in x)


SCENE = """<?xml version="1.0" encoding="utf-8"?>
<!-- Flagship example (generated by experiments/make_flagship.py; do not edit): a closed
     diffuse mesh under a procedural sky (env.exr, with a soft sun) and one rectangle area
     light, seen by ten cameras (view0..view4 on a low ring, view5..view9 on a high one).
     The mesh file is a parameter: the optimization starts from start.ply (a 320-triangle
     icosphere, albedo 0.5 grey); the targets were rendered with mesh=truth_mesh.ply and
     albedo {albedo} by Mitsuba's own path integrator and saved as 8-bit sRGB PNG. -->
<scene version="3.0.0">
    <default name="res" value="{res}"/>
    <default name="spp" value="64"/>
    <default name="max_depth" value="{max_depth}"/>
    <default name="mesh" value="start.ply"/>

    <integrator type="pathdiff_path">
        <integer name="max_depth" value="$max_depth"/>
    </integrator>
{sensors}
    <emitter type="envmap" id="sky">
        <string name="filename" value="env.exr"/>
    </emitter>

    <shape type="rectangle" id="light">
        <transform name="to_world">
            <scale value="{light_size}"/>
            <lookat origin="{light_origin}" target="{centre}" up="0, 1, 0"/>
        </transform>
        <emitter type="area">
            <rgb name="radiance" value="{light_radiance}"/>
        </emitter>
    </shape>

    <bsdf type="diffuse" id="albedo_bsdf">
        <rgb name="reflectance" value="{albedo}"/>
    </bsdf>

    <shape type="ply" id="mesh">
        <string name="filename" value="$mesh"/>
        <ref id="albedo_bsdf"/>
    </shape>
</scene>
"""


def write_scene(centre: np.ndarray) -> None:
    sensors = "".join(sensor_xml(f"view{k}", o, centre, FOV) for k, o in enumerate(cameras(centre)))
    light_dir = direction(LIGHT_ELEVATION, LIGHT_AZIMUTH)
    xml = SCENE.format(
        res=RES,
        max_depth=MAX_DEPTH,
        sensors=sensors,
        light_size=LIGHT_HALF_SIZE,
        light_origin=fmt(centre + LIGHT_DISTANCE * light_dir),
        centre=fmt(centre),
        light_radiance=", ".join(f"{c:g}" for c in LIGHT_RADIANCE),
        albedo=", ".join(f"{c:g}" for c in TRUE_ALBEDO),
    )
    (OUT / "scene.xml").write_text(xml)


def write_targets() -> list[float]:
    """Render the ten views of the true scene with Mitsuba's path integrator and store them
    as 8-bit sRGB PNG; return the fraction of pixels with a clipped channel per view."""
    scene = mi.load_file(str(OUT / "scene.xml"), mesh="truth_mesh.ply", res=RES)
    params = mi.traverse(scene)
    params[ALBEDO_KEY] = mi.Color3f(*TRUE_ALBEDO)
    params.update()
    integrator = mi.load_dict({"type": "path", "max_depth": MAX_DEPTH})
    clipped = []
    for k in range(len(scene.sensors())):
        img = mi.render(scene, integrator=integrator, sensor=k, spp=TARGET_SPP, seed=1000 + k)
        img = np.clip(np.array(img, np.float32)[..., :3], 0, 1)
        png = mi.Bitmap(img).convert(mi.Bitmap.PixelFormat.RGB, mi.Struct.Type.UInt8, True)
        png.write(str(OUT / f"target_{k}.png"))
        clipped.append(float((np.array(png) == 255).any(-1).mean()))
        print(f"target_{k}.png: {100 * clipped[-1]:.1f}% of the pixels clipped")
    return clipped


def write_example(n_views: int) -> None:
    truth = {"mesh.vertex_positions": "truth_mesh.ply", ALBEDO_KEY: list(TRUE_ALBEDO)}
    (OUT / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    example = {
        "description": (
            "Shape and albedo together from ten shaded 8-bit photographs: a closed diffuse"
            " mesh (the blobby bunny) under a sky with a soft sun and one area light whose"
            " highlights clip, rendered by Mitsuba's own path integrator. Starts from a"
            " 320-triangle icosphere and 0.5 grey; coarse to fine (32, 64, 128 pixels), each"
            " stage subdividing the mesh (320 -> 1280 -> 5120 triangles), large steps"
            " (Nicolet et al. 2021). experiments/flagship_mitsuba.py solves the same problem"
            " with Mitsuba's prb_projective; experiments/flagship_compare.py runs both."
        ),
        "scene": "scene.xml",
        "targets": [{"image": f"target_{k}.png", "sensor": k} for k in range(n_views)],
        "params": ["mesh.vertex_positions", f"{ALBEDO_KEY}:lr=0.02"],
        "init": {ALBEDO_KEY: START_ALBEDO},
        "truth": "truth.json",
        "integrator": "edge",
        "max_depth": MAX_DEPTH,
        "loss": "l1",
        "lambda_": 20,
        "lr": LR,
        "iters": ITERS,
        "schedule": SCHEDULE,
        "upsample": True,
    }
    text = json.dumps(example, indent=2) + "\n"
    # one target per line, as in the hand-written examples
    for k in range(n_views):
        long = f'{{\n      "image": "target_{k}.png",\n      "sensor": {k}\n    }}'
        text = text.replace(long, f'{{"image": "target_{k}.png", "sensor": {k}}}')
    (OUT / "example.json").write_text(text)


def main() -> None:
    t0 = time.time()
    OUT.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TRUTH_MESH, OUT / "truth_mesh.ply")
    v_truth, _ = read_ply(OUT / "truth_mesh.ply")
    centre = 0.5 * (v_truth.min(0) + v_truth.max(0))
    write_ply(OUT / "start.ply", *start_mesh(v_truth))
    mi.Bitmap(sky()).write(str(OUT / "env.exr"))
    write_scene(centre)
    clipped = write_targets()
    write_example(len(clipped))
    print(
        f"clipped pixels: mean {100 * np.mean(clipped):.1f}%, "
        f"min {100 * min(clipped):.1f}%, max {100 * max(clipped):.1f}%"
    )
    print(f"wrote {OUT} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
