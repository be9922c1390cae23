# The 24 scene configurations below are adapted from Mitsuba 3 v3.9.1,
# src/integrators/tests/test_ad_integrators.py (BASIC_CONFIGS_LIST,
# CONTINUOUS_BUT_NON_STATIC_GEOM_CONFIGS_LIST, DISCONTINUOUS_CONFIGS_LIST), which is
# distributed under the following licence:
#
# Copyright (c) 2017 Wenzel Jakob <wenzel.jakob@epfl.ch>, All rights reserved.
#
# Redistribution and use in source and binary forms, with or without
# modification, are permitted provided that the following conditions are met:
#
# 1. Redistributions of source code must retain the above copyright notice, this
#    list of conditions and the following disclaimer.
#
# 2. Redistributions in binary form must reproduce the above copyright notice,
#    this list of conditions and the following disclaimer in the documentation
#    and/or other materials provided with the distribution.
#
# 3. Neither the name of the copyright holder nor the names of its contributors
#    may be used to endorse or promote products derived from this software
#    without specific prior written permission.
#
# THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND
# ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED
# WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
# DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
# FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
# DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
# SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
# CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
# OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
# OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""Mitsuba 3's AD-integrator test configurations, rebuilt for pathdiff (issue 13).

Each :class:`Config` holds a scene dictionary (for ``mi.load_dict``), the scalar θ that the
original configuration's ``update(theta)`` applies (as a :class:`pathdiff.ParamSpec`), the
path depth and an FD step. The original's resource files (``rectangle.obj``,
``sphere.obj``, ``museum.exr``, ``gradient.jpg``) are not in the Mitsuba wheel; equivalents
with the properties the configurations rely on are written by :func:`write_resources`
into ``tests/data/peer/``:

* ``rectangle.obj``: two triangles spanning [-1, 1]² in z = 0, normal +z, UVs;
* ``sphere.obj``: a closed UV sphere of radius 1 (32 × 16 segments, vertex normals);
* ``museum.exr``: a 64 × 32 HDR latitude-longitude image (sky gradient, a bright lobe);
* ``gradient.png``: a 64 × 64 LDR colour gradient with a black border (8 px), so that the
  textured emitters and the projector have no discontinuity at their border (the
  configurations' comments rely on it; PNG rather than JPEG keeps the border exactly 0).

Films are square with ``res`` pixels (the originals use 16 to 128; the crop-window
configuration keeps its proportions). Mitsuba's integrator options that pathdiff has no
equivalent for (``guiding``, ``sppc``, ``sppi``) are dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import drjit as dr
import mitsuba as mi
import numpy as np

import pathdiff  # noqa: F401  (selects the Mitsuba variant)

DATA = Path(__file__).resolve().parent / "data" / "peer"

BASIC, CONTINUOUS, DISCONTINUOUS = "basic", "continuous", "discontinuous"


# ---- Resources ---------------------------------------------------------------------------
def _rectangle_obj() -> str:
    return (
        "# two triangles spanning [-1, 1]^2 in z = 0 (pathdiff tests/peer_configs.py)\n"
        "v -1 -1 0\nv 1 -1 0\nv 1 1 0\nv -1 1 0\n"
        "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\n"
        "vn 0 0 1\n"
        "f 1/1/1 2/2/1 3/3/1\nf 1/1/1 3/3/1 4/4/1\n"
    )


def _sphere_obj(nu: int = 32, nv: int = 16) -> str:
    """A closed UV sphere (shared vertices, single-vertex poles) with vertex normals."""
    verts = [(0.0, 0.0, 1.0)]
    for j in range(1, nv):
        t = np.pi * j / nv
        for i in range(nu):
            p = 2 * np.pi * i / nu
            verts.append((np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)))
    verts.append((0.0, 0.0, -1.0))
    ring = lambda j, i: 2 + (j - 1) * nu + i % nu  # noqa: E731  (1-based OBJ index)
    faces = [(1, ring(1, i), ring(1, i + 1)) for i in range(nu)]
    for j in range(1, nv - 1):
        for i in range(nu):
            a, b, c, d = ring(j, i), ring(j + 1, i), ring(j + 1, i + 1), ring(j, i + 1)
            faces += [(a, b, c), (a, c, d)]
    last = len(verts)
    faces += [(ring(nv - 1, i + 1), ring(nv - 1, i), last) for i in range(nu)]
    lines = ["# closed UV sphere, radius 1 (pathdiff tests/peer_configs.py)"]
    lines += [f"v {x:.7f} {y:.7f} {z:.7f}" for x, y, z in verts]
    lines += [f"vn {x:.7f} {y:.7f} {z:.7f}" for x, y, z in verts]
    lines += [f"f {a}//{a} {b}//{b} {c}//{c}" for a, b, c in faces]
    return "\n".join(lines) + "\n"


def _museum() -> np.ndarray:
    """HDR lat-long map: blue-to-warm sky gradient, a bright lobe (peak ~12), a dim ground."""
    h, w = 32, 64
    v, u = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing="ij")
    sky = np.stack([0.3 + 0.5 * u, 0.4 + 0.2 * np.sin(2 * np.pi * u), 0.9 - 0.4 * u], -1)
    ground = np.array([0.15, 0.12, 0.1])
    img = np.where((v < 0.5)[..., None], sky * (1.2 - v)[..., None], ground)
    lobe = 12.0 * np.exp(-(((u - 0.3) / 0.06) ** 2 + ((v - 0.3) / 0.08) ** 2))
    return (img + lobe[..., None] * np.array([1.0, 0.9, 0.7])).astype(np.float32)


def _gradient() -> np.ndarray:
    """LDR gradient (8-bit) with an 8-pixel black border."""
    n, b = 64, 8
    y, x = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n), indexing="ij")
    img = np.stack([x, y, 1 - 0.5 * (x + y)], -1)
    img[:b], img[-b:], img[:, :b], img[:, -b:] = 0, 0, 0, 0
    return np.round(img * 255).astype(np.uint8)


def write_resources(out: Path = DATA) -> Path:
    """Write the four resource files into ``out`` (kept if already there); returns ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    texts = {"rectangle.obj": _rectangle_obj, "sphere.obj": _sphere_obj}
    for name, make in texts.items():
        if not (out / name).exists():
            (out / name).write_text(make())
    if not (out / "museum.exr").exists():
        mi.Bitmap(_museum()).write(str(out / "museum.exr"))
    if not (out / "gradient.png").exists():
        bmp = mi.Bitmap(_gradient(), mi.Bitmap.PixelFormat.RGB)
        bmp.set_srgb_gamma(True)
        bmp.write(str(out / "gradient.png"))
    return out


def res_path(name: str) -> str:
    return str(DATA / name)


# ---- Configurations ----------------------------------------------------------------------
@dataclass
class Config:
    """One adapted configuration: ``scene(res)`` is the scene dictionary, ``spec(scene)``
    the ParamSpec of its θ, ``h`` the FD step (θ units), ``zero`` whether the exact
    derivative is 0 (the original's comment says so)."""

    name: str
    group: str
    scene: Callable[[int], dict]
    spec: Callable[[mi.Scene], object]
    max_depth: int = 2
    h: float = 1e-2
    zero: bool = False

    @property
    def interior_only(self) -> bool:
        return self.group != DISCONTINUOUS

    def load(self, res: int) -> tuple[mi.Scene, object]:
        write_resources()
        d = self.scene(res)
        d["integrator"] = {"type": "path", "max_depth": self.max_depth}
        scene = mi.load_dict(d, optimize=False)
        return scene, self.spec(scene)


T = mi.ScalarTransform4f


def sensor(res: int, origin=(0, 0, 4), target=(0, 0, 0), up=(0, 1, 0), film=None, **kw) -> dict:
    f = {
        "type": "hdrfilm",
        "rfilter": {"type": "box"},
        "width": res,
        "height": res,
        "sample_border": True,
        "pixel_format": "rgb",
        "component_format": "float32",
    }
    f.update(film or {})
    return {
        "type": "perspective",
        "to_world": T().look_at(origin=origin, target=target, up=up),
        "film": f,
        **kw,
    }


def obj(name: str, **kw) -> dict:
    return {"type": "obj", "filename": res_path(name), **kw}


def rect(**kw) -> dict:
    return obj("rectangle.obj", face_normals=True, **kw)


def custom(name: str, keys: list[str], change: Callable) -> Callable[[mi.Scene], object]:
    """A ParamSpec whose values at θ are ``change(base, θ)`` (``base``: key -> value)."""

    def make(scene: mi.Scene):
        from pathdiff import ParamSpec

        params = mi.traverse(scene)
        base = {k: type(params[k])(dr.detach(params[k])) for k in keys}
        return ParamSpec(name, "geometry", keys, params, base, lambda θ: change(base, θ))

    return make


def named(key: str) -> Callable[[mi.Scene], object]:
    """The public ParamSpec string ``key`` (a traverse key or ``SHAPE.translate.x`` ...)."""

    def make(scene: mi.Scene):
        from pathdiff import resolve_param

        return resolve_param(scene, key)

    return make


def _rotate_normals(base: dict, θ: mi.Float) -> dict:
    """Shading normals rotated by θ degrees about +y (Mitsuba's update rule)."""
    n = dr.unravel(mi.Vector3f, base["plane.vertex_normals"])
    φ = dr.deg2rad(θ)
    s, c = dr.sin(φ), dr.cos(φ)
    r = mi.Vector3f(c * n.x + s * n.z, n.y, -s * n.x + c * n.z)
    return {"plane.vertex_normals": dr.ravel(r)}


def _scale_about_origin(key: str):
    return lambda base, θ: {key: base[key] * (1 + θ)}


def _translate_z(*keys: str):
    def change(base, θ):
        return {k: dr.ravel(dr.unravel(mi.Point3f, base[k]) + mi.Vector3f(0, 0, θ)) for k in keys}

    return change


def _disk_translate_x(base: dict, θ: mi.Float) -> dict:
    return {
        "disk.to_world": mi.Transform4f().translate(mi.Vector3f(θ, 0, 0)) @ base["disk.to_world"]
    }


SPHERE_QUARTER = {"type": "sphere", "to_world": T().scale(0.25)}
SIDE = T().translate([1.25, 0.0, 1.0]) @ T().rotate([0, 1, 0], -90)
GRADIENT = {"type": "bitmap", "filename": res_path("gradient.png")}
EMITTER_PLANE_SENSOR = dict(origin=(0, 0.1, 4), target=(0, 0.1, 0), fov=18)
EMITTER_BELOW = (
    T().translate([0, -1.5, 0])
    @ T().rotate([0, 1, 0], -90)
    @ T().rotate([1, 0, 0], -90)
    @ T().scale(4.0)
)
TILTED = T().rotate([1, 0, 0], 45) @ T().rotate([0, 0, 1], 90)
SPHERE_LIGHT = {"type": "area", "radiance": {"type": "rgb", "value": [1000.0] * 3}}


def _scenes() -> list[Config]:
    C = []

    def add(name, group, scene, spec, **kw):
        C.append(Config(name, group, scene, spec, **kw))

    # ---- BASIC_CONFIGS_LIST ----
    add(
        "diffuse_albedo",
        BASIC,
        lambda r: {
            "type": "scene",
            "sensor": sensor(r),
            "plane": {"type": "rectangle", "bsdf": {"type": "diffuse"}},
            "sphere": SPHERE_QUARTER,
            "light": {"type": "constant"},
        },
        named("plane.bsdf.reflectance.value"),
    )
    add(
        "diffuse_albedo_gi",
        BASIC,
        lambda r: {
            "type": "scene",
            "sensor": sensor(r),
            "plane": {"type": "rectangle"},
            "sphere": SPHERE_QUARTER,
            "green": {
                "type": "rectangle",
                "bsdf": {"type": "diffuse", "reflectance": {"type": "rgb", "value": [0.1, 1, 0.1]}},
                "to_world": SIDE,
            },
            "light": {"type": "constant", "radiance": 3.0},
        },
        named("green.bsdf.reflectance.value"),
        max_depth=3,
    )
    add(
        "area_light_radiance",
        BASIC,
        lambda r: {
            "type": "scene",
            "sensor": sensor(r),
            "plane": {"type": "rectangle", "bsdf": {"type": "diffuse", "reflectance": 1.0}},
            "sphere": SPHERE_QUARTER,
            "light": {
                "type": "rectangle",
                "to_world": SIDE,
                "emitter": {"type": "area", "radiance": {"type": "rgb", "value": [3.0] * 3}},
            },
        },
        named("light.emitter.radiance.value"),
        h=0.1,
    )
    add(
        "directly_visible_area_light_radiance",
        BASIC,
        lambda r: {
            "type": "scene",
            "sensor": sensor(r),
            "light": {
                "type": "rectangle",
                "emitter": {"type": "area", "radiance": {"type": "rgb", "value": [1.0] * 3}},
            },
        },
        named("light.emitter.radiance.value"),
        h=0.1,
    )
    add(
        "point_light_intensity",
        BASIC,
        lambda r: {
            "type": "scene",
            "sensor": sensor(r),
            "plane": {"type": "rectangle", "bsdf": {"type": "diffuse", "reflectance": 1.0}},
            "sphere": SPHERE_QUARTER,
            "light": {
                "type": "point",
                "position": [1.25, 0.0, 1.0],
                "intensity": {"type": "rgb", "value": [5.0] * 3},
            },
        },
        named("light.intensity.value"),
        h=0.1,
    )
    add(
        "constant_emitter_radiance",
        BASIC,
        lambda r: {
            "type": "scene",
            "sensor": sensor(r),
            "plane": {"type": "rectangle", "bsdf": {"type": "diffuse"}},
            "sphere": SPHERE_QUARTER,
            "light": {"type": "constant"},
        },
        named("light.radiance.value"),
        h=0.1,
    )
    add(
        "crop_window",  # 64² film, 32² crop at (32, 20) in the original: same proportions
        BASIC,
        lambda r: {
            "type": "scene",
            "sensor": sensor(
                r,
                film={
                    "rfilter": {"type": "gaussian", "stddev": 0.5},
                    "crop_width": r // 2,
                    "crop_height": r // 2,
                    "crop_offset_x": r // 2,
                    "crop_offset_y": (20 * r) // 64,
                },
            ),
            "plane": {"type": "rectangle", "bsdf": {"type": "diffuse"}},
            "light": {"type": "constant"},
        },
        named("plane.bsdf.reflectance.value"),
    )
    add(
        "rotate_shading_normals_plane",  # θ in degrees about +y
        BASIC,
        lambda r: {
            "type": "scene",
            "sensor": sensor(r),
            "plane": obj("rectangle.obj", bsdf={"type": "diffuse"}),
            "light": {
                "type": "rectangle",
                "to_world": SIDE,
                "emitter": {"type": "area", "radiance": {"type": "rgb", "value": [3.0] * 3}},
            },
        },
        custom("plane.normals.rotate.y", ["plane.vertex_normals"], _rotate_normals),
        h=0.5,
    )

    # ---- CONTINUOUS_BUT_NON_STATIC_GEOM_CONFIGS_LIST ----
    add(
        "translate_textured_plane",
        CONTINUOUS,
        lambda r: {
            "type": "scene",
            "sensor": sensor(r),
            "plane": rect(
                bsdf={"type": "diffuse", "reflectance": obj_bitmap("museum.exr", format="variant")},
                to_world=T().scale(2.0),
            ),
            "light": {"type": "constant"},
        },
        named("plane.translate.x"),
        h=2e-3,
    )
    add(
        "translate_plane_under_envmap",  # exact derivative 0 (the original's comment)
        CONTINUOUS,
        lambda r: {
            "type": "scene",
            "sensor": sensor(r),
            "plane": rect(bsdf={"type": "diffuse"}, to_world=T().scale(3.0)),
            "light": {"type": "envmap", "filename": res_path("museum.exr")},
        },
        named("plane.translate.z"),
        h=2e-3,
        zero=True,
    )
    add(
        "translate_plane_under_projector",
        CONTINUOUS,
        lambda r: {
            "type": "scene",
            "sensor": sensor(r),
            "plane": rect(bsdf={"type": "diffuse"}, to_world=T().scale(3.0)),
            "light": {
                "type": "projector",
                "irradiance": dict(GRADIENT, format="variant"),
                "to_world": T().look_at(origin=[0, 0, 3], target=[0, 0, 0], up=[0, 1, 0]),
            },
        },
        named("plane.translate.z"),
        h=2e-3,
    )
    rough_glass = {
        "type": "roughdielectric",
        "distribution": "beckmann",
        "alpha": 0.8,
        "int_ior": 1.001,
        "ext_ior": 1.1,
    }
    add(
        "translate_glass_plane_lens",
        CONTINUOUS,
        lambda r: {
            "type": "scene",
            "sensor": sensor(r, origin=(0, 0, 2)),
            "glass1": rect(to_world=T().translate([0, 0, 1]) @ T().scale(4.0), bsdf=rough_glass),
            "shape": rect(to_world=T().scale(4.0), bsdf=rough_glass),
            "glass3": rect(to_world=T().translate([0, 0, -1]) @ T().scale(4.0), bsdf=rough_glass),
            "light": rect(
                to_world=T().translate([0, 0, -2]) @ T().scale(0.7),
                emitter={"type": "area", "radiance": dict(GRADIENT, wrap_mode="clamp")},
            ),
        },
        named("shape.translate.z"),
        max_depth=4,
        h=2e-3,
    )
    add(
        "translate_textured_area_emitter",
        CONTINUOUS,
        lambda r: {
            "type": "scene",
            "sensor": sensor(r, origin=(0, 0.2, 4), target=(0, 0.2, 0), fov=40),
            "plane": rect(
                to_world=T().rotate([1, 0, 0], 45) @ T().rotate([0, 0, 1], -90),
                emitter={"type": "area", "radiance": GRADIENT},
            ),
        },
        named("plane.translate.z"),
        h=2e-3,
    )
    add(
        "translate_plane_under_textured_area_emitter",
        CONTINUOUS,
        lambda r: {
            "type": "scene",
            "sensor": sensor(r, **EMITTER_PLANE_SENSOR),
            "plane": rect(to_world=TILTED),
            "light": rect(
                to_world=EMITTER_BELOW,
                emitter={"type": "area", "radiance": dict(GRADIENT, wrap_mode="clamp")},
            ),
        },
        named("plane.translate.z"),
        h=2e-3,
    )
    add(
        "translate_textured_area_emitter_illuminating_plane",
        CONTINUOUS,
        lambda r: {
            "type": "scene",
            "sensor": sensor(r, **EMITTER_PLANE_SENSOR),
            "plane": rect(to_world=TILTED),
            "light": rect(
                to_world=EMITTER_BELOW,
                emitter={"type": "area", "radiance": dict(GRADIENT, wrap_mode="clamp")},
            ),
        },
        named("light.translate.z"),
        h=2e-3,
    )

    # ---- DISCONTINUOUS_CONFIGS_LIST ----
    add(
        "translate_diffuse_rectangle_constant",
        DISCONTINUOUS,
        lambda r: {
            "type": "scene",
            "sensor": sensor(r),
            "rectangle": rect(),
            "light": {"type": "constant"},
        },
        named("rectangle.translate.x"),
        h=2e-3,
    )
    add(
        "translate_rectangle_emitter_on_black",
        DISCONTINUOUS,
        lambda r: {
            "type": "scene",
            "sensor": sensor(r),
            "light": rect(
                emitter={"type": "area", "radiance": {"type": "rgb", "value": [1.0] * 3}},
                to_world=T().translate([1.25, 0.0, 0.0]),
            ),
        },
        named("light.translate.x"),
        h=2e-3,
    )
    add(
        "translate_disk_emitter_on_gray",  # a `disk` moved through its to_world
        DISCONTINUOUS,
        lambda r: {
            "type": "scene",
            "sensor": sensor(r, origin=(0, 0, 1), fov=120, near_clip=0.01),
            "disk": {
                "type": "disk",
                "to_world": T().translate([0.2, 0, -1]) @ T().rotate([0, 1, 0], 60).scale(1.5),
                "emitter": {"type": "area", "radiance": {"type": "rgb", "value": 2}},
            },
            "light": {"type": "constant", "radiance": {"type": "rgb", "value": 0.2}},
        },
        custom("disk.to_world.translate.x", ["disk.to_world"], _disk_translate_x),
        max_depth=1,
        h=2e-3,
    )
    add(
        "translate_sphere_emitter_on_black",
        DISCONTINUOUS,
        lambda r: {
            "type": "scene",
            "sensor": sensor(r),
            "light": obj(
                "sphere.obj",
                emitter={"type": "area", "radiance": {"type": "rgb", "value": [1.0] * 3}},
                to_world=T().translate([1.25, 0.0, 0.0]) @ T().rotate(angle=180, axis=[0, 1, 0]),
            ),
        },
        named("light.translate.x"),
        h=2e-3,
    )
    add(
        "scale_sphere_emitter_on_black",  # vertices × (1 + θ) about the origin
        DISCONTINUOUS,
        lambda r: {
            "type": "scene",
            "sensor": sensor(r),
            "light": obj(
                "sphere.obj",
                emitter={"type": "area", "radiance": {"type": "rgb", "value": [1.0] * 3}},
            ),
        },
        custom(
            "light.scale_about_origin",
            ["light.vertex_positions"],
            _scale_about_origin("light.vertex_positions"),
        ),
        h=2e-3,
    )
    add(
        "translate_occluder_area_light",
        DISCONTINUOUS,
        lambda r: {
            "type": "scene",
            "sensor": sensor(r),
            "plane": {"type": "rectangle", "bsdf": {"type": "diffuse"}},
            "occluder": obj(
                "sphere.obj", to_world=T().translate([2.0, 0.0, 2.0]) @ T().scale(0.25)
            ),
            "light": obj(
                "sphere.obj",
                emitter=SPHERE_LIGHT,
                to_world=T().translate([4.0, 0.0, 4.0]) @ T().scale(0.05),
            ),
        },
        named("occluder.translate.x"),
        h=2e-3,
    )
    add(
        "translate_shadow_receiver_area_light",
        DISCONTINUOUS,
        lambda r: {
            "type": "scene",
            "sensor": sensor(r),
            "plane": rect(bsdf={"type": "diffuse"}),
            "occluder": obj(
                "sphere.obj", to_world=T().translate([2.0, 0.0, 2.0]) @ T().scale(0.25)
            ),
            "light": obj(
                "sphere.obj",
                emitter=SPHERE_LIGHT,
                to_world=T().translate([4.0, 0.0, 4.0]) @ T().scale(0.05),
            ),
        },
        named("plane.translate.x"),
        h=2e-3,
    )
    add(
        "translate_plane_and_area_emitter",
        DISCONTINUOUS,
        lambda r: {
            "type": "scene",
            "sensor": sensor(r, origin=(0, 0, 0), target=(0, 0, -1)),
            "plane": rect(
                to_world=T().look_at(origin=[0, 0, -1], target=[0, -1, 0], up=[0, 1, 0]).scale(0.25)
            ),
            "light": rect(
                to_world=T()
                .look_at(origin=[0, -2, -1], target=[0, 0, -1], up=[0, 0, 1])
                .scale(0.75),
                emitter={"type": "area", "radiance": {"type": "rgb", "value": 1.0}},
            ),
        },
        custom(
            "plane+light.translate.z",
            ["plane.vertex_positions", "light.vertex_positions"],
            _translate_z("plane.vertex_positions", "light.vertex_positions"),
        ),
        h=2e-3,
    )
    add(
        "translate_self_shadowing_right_angle",
        DISCONTINUOUS,
        lambda r: {
            "type": "scene",
            "sensor": sensor(r, origin=(0, 0, 1), target=(0, 0, -1), fov=87),
            "wall": rect(
                to_world=T().look_at(origin=[0, 0, -1], target=[0, 0, 0], up=[0, 1, 0]),
                bsdf={"type": "diffuse", "reflectance": {"type": "rgb", "value": [0.1, 0.1, 0.4]}},
            ),
            "floor": rect(
                to_world=T().look_at(origin=[0, -1, -1], target=[0, 0, -1], up=[0, 0, 1]),
                bsdf={"type": "diffuse", "reflectance": {"type": "rgb", "value": [0.4, 0.1, 0.1]}},
            ),
            "light": {
                "type": "rectangle",
                "to_world": T().translate([0, 8, -4]).scale([2, 0.5, 1]),
                "emitter": {"type": "area", "radiance": {"type": "rgb", "value": 1}},
            },
        },
        custom(
            "wall+floor.translate.z",
            ["wall.vertex_positions", "floor.vertex_positions"],
            _translate_z("wall.vertex_positions", "floor.vertex_positions"),
        ),
        h=2e-3,
    )
    return C


def obj_bitmap(name: str, **kw) -> dict:
    return {"type": "bitmap", "filename": res_path(name), **kw}


CONFIGS: list[Config] = _scenes()
BY_NAME = {c.name: c for c in CONFIGS}
assert len(CONFIGS) == 24 and sum(c.interior_only for c in CONFIGS) == 15


# ---- Measurement -------------------------------------------------------------------------
@dataclass
class Measurement:
    """``estimator`` against CRN FD on one configuration (see :func:`measure`)."""

    config: str
    estimator: str
    ratio: float  # AD/FD of the image total (nan when FD's total is ~0)
    max_z: float  # largest |z| over total, random-weight losses and tiles
    threshold: float
    significant: bool  # some FD statistic is > 4 standard errors from 0
    passed: bool

    def line(self) -> str:
        verdict = "agree" if self.passed else "DISAGREE"
        return (
            f"{self.config:52s} {self.estimator:8s} AD/FD {self.ratio:7.3f}  "
            f"|z| {self.max_z:7.2f} / {self.threshold:.2f}  {verdict}"
        )


def fd_runs(cfg: Config, res: int, spp: int = 256, seeds: int = 8) -> list[np.ndarray]:
    """Independent CRN central differences of the primal ``path`` integrator."""
    import pathdiff as pd

    scene, spec = cfg.load(res)
    return [
        pd.finite_difference(scene, spec, h=cfg.h, spp=spp, seed=100 + s, max_depth=cfg.max_depth)
        for s in range(seeds)
    ]


def ad_runs(cfg: Config, estimator: str, res: int, spp: int = 32, seeds: int = 4):
    """Independent forward-mode derivative images of ``pathdiff_<estimator>``."""
    import pathdiff as pd

    scene, spec = cfg.load(res)
    return [
        pd.derivative(scene, spec, estimator, spp=spp, seed=s, max_depth=cfg.max_depth)
        for s in range(seeds)
    ]


def judge(cfg: Config, estimator: str, ad: list, fd: list, tiles: int = 4) -> Measurement:
    """Noise-aware verdict (:func:`pathdiff.stats.compare`: image total, random-weight
    losses, tile sums, Student-t threshold). An absolute noise floor of 1e-5 of the FD
    image's absolute sum covers float32 rounding where both sides are noise-free; for
    configurations whose exact derivative is 0 the floor is 1e-3 of the larger side's
    absolute sum (at least 1e-6)."""
    from pathdiff.stats import compare

    # float32 rounding: noise-free statistics (e.g. a directly visible emitter's radiance,
    # where every seed gives the same interior pixels) still differ in the last bits
    scale = np.abs(np.stack(fd)).sum() / len(fd)
    floor = 1e-5 * scale
    if cfg.zero:
        floor = max(1e-3 * max(scale, np.abs(np.stack(ad)).sum() / len(ad)), 1e-6)
    r = compare(ad, fd, tiles=tiles, floor=floor)
    total_fd = r.b_mean[0]
    ratio = r.a_mean[0] / total_fd if abs(total_fd) > 4 * r.b_se[0] else float("nan")
    significant = bool((np.abs(r.b_mean) > 4 * r.b_se).any())
    return Measurement(
        cfg.name,
        estimator,
        float(ratio),
        float(np.abs(r.z).max()),
        r.threshold,
        significant,
        r.passed,
    )
