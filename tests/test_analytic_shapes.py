"""Mitsuba's ``disk`` in the boundary terms (through its boundary proxy) and rigid
ParamSpecs through ``to_world`` (``disk``, and ``rectangle``, a mesh placed by its
``to_world``): each case against CRN FD of the primal integrator with tiles, for ``edge``
(``psdr`` in the slow tier), with a negative control (the disk without its proxy: the old
behaviour)."""

from __future__ import annotations

import warnings
from pathlib import Path

import mitsuba as mi
import numpy as np
import pytest
from conftest import assert_matches_fd

import pathdiff  # noqa: F401  (selects the Mitsuba variant)

T = mi.ScalarTransform4f
RES = 24


def _film() -> dict:
    return {
        "type": "hdrfilm", "width": RES, "height": RES, "rfilter": {"type": "box"},
        "pixel_format": "rgb", "sample_border": True,
    }  # fmt: skip


def _sensor(origin=(0, -2.5, 2.5), target=(0, 0, 0.2)) -> dict:
    return {
        "type": "perspective", "id": "sensor", "fov": 45,
        "to_world": T().look_at(origin=list(origin), target=list(target), up=[0, 0, 1]),
        "film": _film(), "sampler": {"type": "independent", "sample_count": 16},
    }  # fmt: skip


def _floor() -> dict:
    return {
        "type": "obj", "filename": _quad_obj(), "to_world": T().scale(2.0),
        "bsdf": {"type": "diffuse", "reflectance": {"type": "rgb", "value": 0.6}},
    }  # fmt: skip


def _quad_obj() -> str:
    """A two-triangle quad [-1, 1]² in z = 0 as a mesh (the receiver)."""
    return str(Path(__file__).resolve().parent / "data" / "quad.obj")


def _light(kind: str = "rectangle") -> dict:
    return {
        "type": kind, "to_world": T().translate([0.3, 0.2, 2.0]).scale(0.35),
        "emitter": {"type": "area", "radiance": {"type": "rgb", "value": 14.0}},
    }  # fmt: skip


def _occluder(kind: str) -> dict:
    return {
        "type": kind,
        "to_world": T().translate([0.0, 0.0, 0.9]) @ T().rotate([1, 0, 0], 20).scale(0.45),
        "bsdf": {"type": "diffuse", "reflectance": {"type": "rgb", "value": [0.2, 0.3, 0.8]}},
    }  # fmt: skip


def _scene(occluder: str, light: str = "rectangle", max_depth: int = 2) -> mi.Scene:
    return mi.load_dict(
        {
            "type": "scene",
            "integrator": {"type": "pathdiff_path", "max_depth": max_depth},
            "sensor": _sensor(),
            "floor": _floor(),
            "occ": _occluder(occluder),
            "light": _light(light),
            "env": {"type": "constant", "radiance": {"type": "rgb", "value": 0.1}},
        }
    )


# (occluder shape, light shape, ParamSpec, FD step): the occluder's silhouette and its
# shadow move (moving proxy: primary + secondary edges), the floor moves under the static
# occluder's shadow (static proxy at moving receivers), the camera moves (static proxies
# in the image), an emitter that is a disk moves
CASES = [
    ("rectangle", "rectangle", "occ.translate.x", 0.01),
    ("disk", "rectangle", "occ.rotate.y", 1.0),
    ("disk", "rectangle", "occ.scale", 0.02),
    ("disk", "disk", "floor.translate.z", 0.005),  # 0.02: the floor's rim, 0.1 px
    ("rectangle", "disk", "sensor.translate.x", 0.01),
    ("rectangle", "disk", "light.translate.y", 0.01),
]


def _id(case) -> str:
    return f"{case[0]}-{case[1]}-{case[2]}"


@pytest.fixture(scope="module")
def scenes():
    cache = {}

    def get(occluder, light):
        if (occluder, light) not in cache:
            cache[occluder, light] = _scene(occluder, light)
        return cache[occluder, light]

    return get


#: in the slow tier for edge too (the default tier keeps one case per mechanism: a moving
#: disk, a static disk at a moving receiver, static proxies seen by a moving camera)
SLOW = {"occ.translate.x", "occ.scale", "light.translate.y"}


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=_id(c), marks=[pytest.mark.slow] if c[2] in SLOW else []) for c in CASES],
)
def test_edge_matches_fd(pd, scenes, case):
    occluder, light, spec, h = case
    assert_matches_fd(pd, scenes(occluder, light), spec, "edge", h=h, spp=32)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_psdr_matches_fd(pd, scenes, case):
    occluder, light, spec, h = case
    assert_matches_fd(pd, scenes(occluder, light), spec, "psdr", h=h, spp=32)


@pytest.mark.parametrize(
    "case",
    [pytest.param(CASES[1], id=_id(CASES[1]), marks=pytest.mark.slow),
     pytest.param(CASES[3], id=_id(CASES[3]))],
)  # fmt: skip
def test_without_proxies_the_comparison_fails(pd, scenes, case, monkeypatch):
    """Negative control: the same comparison rejects the estimator without proxies (the
    disk's silhouette and shadow are missing: what every estimator did before)."""
    from pathdiff.integrators import edges

    monkeypatch.setattr(edges, "supported", lambda shape: False)
    occluder, light, spec, h = case
    with pytest.raises(AssertionError, match="z = "), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the moving disk is named: not what is tested here
        assert_matches_fd(pd, scenes(occluder, light), spec, "edge", h=h, spp=32)


def test_to_world_specs_compose_and_reset(pd, scenes):
    """``SHAPE.translate/rotate/scale`` of an analytic shape move its ``to_world`` about the
    shape's centre, compose, and restore the transform on reset."""
    from pathdiff.params import scene_params
    from pathdiff.specs import bind_specs, rigid_specs

    scene = scenes("disk", "rectangle")
    params = scene_params(scene)
    before = np.array(params["occ.to_world"].matrix)
    centre = np.array(params["occ.to_world"] @ mi.Point3f(0)).ravel()
    specs = [pd.resolve_param(scene, s) for s in ("occ.translate.z", "occ.rotate.x", "occ.scale")]
    bind_specs(params, [(specs[0], mi.Float(0.5)), (specs[1], mi.Float(90)), (specs[2], 1.0)])
    M = params["occ.to_world"]
    moved = np.array(M @ mi.Point3f(0)).ravel()
    np.testing.assert_allclose(moved, centre + [0, 0, 0.5], atol=1e-5)
    radius = np.linalg.norm(np.array(M @ mi.Vector3f(1, 0, 0)).ravel())
    np.testing.assert_allclose(radius, 2 * 0.45, rtol=1e-5)  # scaled by 1 + θ = 2
    for s in specs:
        s.reset()
    np.testing.assert_allclose(np.array(params["occ.to_world"].matrix), before, atol=1e-6)
    assert "occ.rotate.y" in rigid_specs(scene)


def test_curved_shapes_are_named(pd):
    """A sphere has no proxy (its silhouette depends on the viewpoint): one warning naming
    it, for every boundary estimator."""
    scene = _scene("sphere")
    for integrator in ("edge", "psdr"):
        with pytest.warns(UserWarning, match=r"shape 'occ' \(Sphere\) moves, but curved"):
            pd.derivative(scene, "occ.translate.x", integrator, spp=1)
