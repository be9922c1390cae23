"""Shadows of delta lights (point, spot, projector, directional) seen by the camera, against
CRN finite differences of the primal integrator (issue 14.2).

A card hangs between the light and a floor; its shadow's outline is the card's silhouette
seen from the light, cast onto the floor. When the card moves (moving occluder) or the floor
moves (moving receiver) the outline moves in the image: a boundary term no mesh edge
projects to; seen from a path vertex (a wall lit by the shadowed floor) it is a jump in that
vertex's direction integral. Negative control: ``delta_shadows=false`` (the behaviour before)
misses both.
"""

from __future__ import annotations

import mitsuba as mi
import numpy as np
import pytest
from conftest import assert_matches_fd

LIGHT_POS = [0.3, 2.0, 0.2]


def _quad(path, corners) -> str:
    """A two-triangle quad (corners in order) written as a PLY file."""
    m = mi.Mesh("quad", 4, 2)
    p = mi.traverse(m)
    p["vertex_positions"] = mi.Float(np.array(corners, np.float32).ravel())
    p["faces"] = mi.UInt32(np.array([[0, 2, 1], [0, 3, 2]], np.uint32).ravel())
    p.update()
    m.write_ply(str(path))
    return str(path)


def _emitter(kind: str) -> dict:
    down = mi.ScalarTransform4f().look_at(origin=LIGHT_POS, target=[0.0, 0, 0.0], up=[0, 0, 1])
    if kind == "point":
        return {"type": "point", "position": LIGHT_POS, "intensity": {"type": "rgb", "value": 8.0}}
    if kind == "spot":
        return {"type": "spot", "to_world": down, "cutoff_angle": 60.0, "beam_width": 50.0,
                "intensity": {"type": "rgb", "value": 8.0}}  # fmt: skip
    if kind == "projector":
        rng = np.random.default_rng(1)
        tex = (0.5 + rng.random((4, 4, 3))).astype(np.float32)
        return {"type": "projector", "to_world": down, "fov": 120.0, "scale": 8.0,
                "irradiance": {"type": "bitmap", "data": mi.TensorXf(tex), "raw": True,
                               "filter_type": "bilinear"}}  # fmt: skip
    return {"type": "directional", "direction": [0.3, -1.0, 0.2],
            "irradiance": {"type": "rgb", "value": 2.0}}  # fmt: skip


def _scene(tmp_path, kind: str, res: int = 16, wall: bool = False, mirror: bool = False):
    """``wall``: the camera looks at a wall beside the floor instead, which only sees the
    shadow in the light the floor reflects onto it (needs ``max_depth >= 3``)."""
    floor = [[-6, 0, -6], [6, 0, -6], [6, 0, 6], [-6, 0, 6]]
    card = [[-0.3, 0.8, -0.3], [0.3, 0.8, -0.3], [0.3, 0.8, 0.3], [-0.3, 0.8, 0.3]]
    extra = {}
    camera = mi.ScalarTransform4f().look_at(
        origin=[-0.4, 3, 1.2], target=[0.1, 0, -0.1], up=[0, 0, 1]
    )
    if wall:
        corners = [[-1, 0, 3], [-1, 3, 3], [-1, 3, -3], [-1, 0, -3]]
        grey = {"type": "diffuse", "reflectance": {"type": "rgb", "value": 0.8}}
        if mirror:
            grey = {"type": "conductor"}
        wall = _quad(tmp_path / "wall.ply", corners)
        extra["wall"] = {"type": "ply", "filename": wall, "bsdf": grey}
        camera = mi.ScalarTransform4f().look_at(
            origin=[1.5, 0.7, 0], target=[-1, 1.3, 0], up=[0, 1, 0]
        )
    return mi.load_dict({
        "type": "scene",
        "integrator": {"type": "pathdiff_path", "max_depth": 2},
        "sensor": {
            "type": "perspective", "fov": 50,
            "to_world": camera,
            "film": {"type": "hdrfilm", "width": res, "height": res,
                     "rfilter": {"type": "box"}, "pixel_format": "rgb"},
        },
        "floor": {"type": "ply", "filename": _quad(tmp_path / "floor.ply", floor),
                  "bsdf": {"type": "diffuse", "reflectance": {"type": "rgb", "value": 0.7}}},
        "card": {"type": "ply", "filename": _quad(tmp_path / "card.ply", card),
                 "bsdf": {"type": "diffuse", "reflectance": {"type": "rgb", "value": 0.3}}},
        "light": _emitter(kind),
        **extra,
    }, optimize=False)  # fmt: skip


CASES = [
    ("point", "card.translate.x", 0.01),
    ("point", "floor.translate.y", 0.01),
    ("spot", "card.translate.z", 0.01),
    ("spot", "floor.translate.y", 0.01),
    ("projector", "card.translate.x", 0.01),
    ("projector", "floor.translate.y", 0.01),
    ("directional", "card.translate.x", 0.01),
    ("directional", "floor.translate.y", 0.01),
    # a moving camera: the static shadow curve moves in the image (before: no term, |z| 46)
    ("point", "sensor.translate.x", 0.01),
    ("directional", "sensor.translate.x", 0.01),
]


@pytest.mark.parametrize(
    "integrator", ["edge", pytest.param("psdr", marks=pytest.mark.slow)]
)  # psdr shares the shadow part with edge: run it with `pytest -m slow`
@pytest.mark.parametrize("kind,spec,h", CASES)
def test_delta_light_shadow(pd, tmp_path, integrator, kind, spec, h):
    scene = _scene(tmp_path, kind)
    assert_matches_fd(pd, scene, spec, integrator, h=h, spp=16, tiles=4)


@pytest.mark.parametrize("kind", ["point", "directional"])
def test_without_shadow_term_fails(pd, tmp_path, kind):
    """Negative control: the old behaviour (no shadow-curve term) is far off FD."""
    from test_split_edges import _fd_compare

    scene = _scene(tmp_path, kind)
    assert not _fd_compare(pd, scene, "card.translate.x", "edge", 0.01, delta_shadows=False).passed


@pytest.mark.parametrize("delta_shadows", [True, False])
def test_shadow_seen_in_indirect_light(pd, tmp_path, delta_shadows):
    """A wall lit by the floor the card shadows; the camera does not see the shadow
    (max_depth 3): the shadow-curve term at path vertices. Measured (24², rows of the wall's
    base): FD +1.6 ... +7.3 per row, AD 0 without the vertex term, 1.2 ... 7.4 with it.
    Negative control: ``delta_shadows=false`` fails."""
    from pathdiff.stats import compare

    scene = _scene(tmp_path, "point", wall=True)
    spec, opts = "card.translate.x", {"max_depth": 3, "delta_shadows": delta_shadows}
    ad = [pd.derivative(scene, spec, "edge", spp=16, seed=s, **opts) for s in range(4)]
    fd = [
        pd.finite_difference(scene, spec, h=0.01, spp=256, seed=100 + s, max_depth=3)
        for s in range(8)
    ]
    assert compare(ad, fd, tiles=4).passed == delta_shadows
