"""Moving path vertices in the interior term (issue 13.2): a vertex that moves with its shape
changes what the vertices after it receive, and a moving emitter's texture slides under
the shading points that see it.

Each scene is compared with CRN finite differences of the primal integrator (tiles and
random-weight losses, :func:`conftest.assert_matches_fd`), with a negative control: the
same comparison rejects the replay without its moving-vertex factors
(``moving_vertices=false``, the old behaviour).

* ``glossy``: a rough-conductor floor moving along its normal under a textured area
  emitter; the emitter is seen in the floor's reflection (BSDF samples and NEE).
* ``lens``: a static rough-glass pane, then a second (tilted) pane moving along z, then a
  textured emitter: the moving vertex is in the middle of the path.
* ``emitter``: a textured area emitter (facing down) sliding sideways over a diffuse floor;
  its texture fades to black at the border, so its light has no discontinuity, but the
  camera sees its back move over the floor: ``edge``.
"""

from __future__ import annotations

from pathlib import Path

import mitsuba as mi
import numpy as np
import pytest
from conftest import assert_matches_fd

import pathdiff  # noqa: F401  (selects the Mitsuba variant)

T = mi.ScalarTransform4f
RES = 16
QUAD = str(Path(__file__).resolve().parent / "data" / "quad.obj")


@pytest.fixture(scope="module")
def texture(tmp_path_factory) -> str:
    """A smooth 32×32 colour pattern (radiance up to ~10), black at the border (no
    discontinuity at the emitter's edge)."""
    u = (np.arange(32) + 0.5) / 32
    x, y = np.meshgrid(u, u)
    window = np.clip(np.sin(np.pi * x) * np.sin(np.pi * y) * 1.6 - 0.25, 0, None)
    rgb = np.stack([1 + np.sin(6 * x), 1 + np.cos(5 * y), 1 + np.sin(4 * (x + y))], -1)
    path = tmp_path_factory.mktemp("tex") / "pattern.exr"
    mi.Bitmap((5 * window[..., None] * rgb).astype(np.float32)).write(str(path))
    return str(path)


def _sensor(origin, target) -> dict:
    return {
        "type": "perspective", "fov": 40,
        "to_world": T().look_at(origin=origin, target=target, up=[0, 1, 0]),
        "film": {"type": "hdrfilm", "width": RES, "height": RES, "rfilter": {"type": "box"},
                 "pixel_format": "rgb"},
    }  # fmt: skip


def _emitter(texture: str, to_world) -> dict:
    radiance = {"type": "bitmap", "filename": texture, "wrap_mode": "clamp", "raw": True}
    return {
        "type": "rectangle", "to_world": to_world,
        "emitter": {"type": "area", "radiance": radiance},
    }  # fmt: skip


def _scene(kind: str, texture: str) -> mi.Scene:
    glass = {"type": "roughdielectric", "alpha": 0.25, "int_ior": 1.5}
    if kind == "glossy":
        shapes = {
            "sensor": _sensor([0, -2.2, 2.2], [0, 0, 0]),
            "floor": {"type": "obj", "filename": QUAD, "to_world": T().scale(3.0),
                      "bsdf": {"type": "roughconductor", "alpha": 0.2}},
            "light": _emitter(texture, T().translate([0, 1.5, 1.6]) @ T().rotate([1, 0, 0], 120)),
        }  # fmt: skip
        depth = 3
    elif kind == "lens":
        shapes = {
            "sensor": _sensor([0, 0, 2.5], [0, 0, 0]),
            "pane1": {"type": "obj", "filename": QUAD, "bsdf": glass,
                      "to_world": T().translate([0, 0, 0.8]).scale(3.0)},
            "pane2": {"type": "obj", "filename": QUAD, "bsdf": dict(glass, alpha=0.3),
                      "to_world": T().rotate([1, 0, 0], 10).scale(3.0)},
            "light": _emitter(texture, T().translate([0, 0, -1.0]).scale(0.8)),  # faces +z
        }  # fmt: skip
        depth = 4
    else:  # emitter
        shapes = {
            "sensor": _sensor([0, -2.0, 2.6], [0, 0, 0]),
            "floor": {"type": "obj", "filename": QUAD, "to_world": T().scale(3.0),
                      "bsdf": {"type": "diffuse", "reflectance": {"type": "rgb", "value": 0.7}}},
            "light": _emitter(
                texture, T().translate([0.2, 0.1, 1.0]) @ T().rotate([1, 0, 0], 180).scale(0.8)
            ),
        }  # fmt: skip
        depth = 2
    return mi.load_dict(
        {
            "type": "scene",
            "integrator": {"type": "pathdiff_path", "max_depth": depth},
            **shapes,
        }
    )


# (scene, ParamSpec, FD step, estimator): the emitter's back is an occluder the camera sees
# move (a primary boundary), so that case needs ``edge``
CASES = [
    ("glossy", "floor.translate.z", 0.005, "prb"),
    ("lens", "pane2.translate.z", 0.005, "prb"),
    ("emitter", "light.translate.x", 0.01, "edge"),
]


@pytest.fixture(scope="module")
def scenes(texture):
    cache = {}

    def get(kind):
        if kind not in cache:
            cache[kind] = _scene(kind, texture)
        return cache[kind]

    return get


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_fd(pd, scenes, case):
    kind, spec, h, estimator = case
    assert_matches_fd(pd, scenes(kind), spec, estimator, h=h, spp=64)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_without_moving_vertex_factors_fails(pd, scenes, case):
    """Negative control: the replay without the moving-vertex factors (the old behaviour)."""
    kind, spec, h, estimator = case
    with pytest.warns(UserWarning, match="moving_vertices=false"):  # said at run time
        with pytest.raises(AssertionError, match="z = "):
            assert_matches_fd(pd, scenes(kind), spec, estimator, h=h, spp=64, moving_vertices=False)
