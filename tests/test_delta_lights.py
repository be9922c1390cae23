"""Delta emitters (point, spot, projector, directional) over a moving receiver, against CRN
finite differences of the primal integrator.

Mitsuba's delta emitters evaluate their own falloff from the shading point (a point light's
``1/r^2``, a projector's ``1/z^2`` and texture lookup), so the interior term must not also
differentiate a geometry term for them: counted twice, a point light's derivative came out
~2x (Mitsuba's peer configuration ``translate_plane_under_projector``: AD/FD 2.1).
"""

from __future__ import annotations

import mitsuba as mi
import numpy as np
import pytest
from conftest import assert_matches_fd

LIGHT_POS = [0.3, 1.2, 0.2]


def _plane(path) -> str:
    """A 12 x 12 two-triangle floor at y = 0 facing up (larger than the view)."""
    from test_delta_shadows import _quad

    return _quad(path, [[-6, 0, -6], [6, 0, -6], [6, 0, 6], [-6, 0, 6]])


def _emitter(kind: str) -> dict:
    down = mi.ScalarTransform4f().look_at(origin=LIGHT_POS, target=[0.4, 0, 0.1], up=[0, 0, 1])
    if kind == "point":
        return {"type": "point", "position": LIGHT_POS, "intensity": {"type": "rgb", "value": 4.0}}
    if kind == "spot":
        return {"type": "spot", "to_world": down, "cutoff_angle": 40.0, "beam_width": 25.0,
                "intensity": {"type": "rgb", "value": 6.0}}  # fmt: skip
    if kind == "projector":
        # high and wide enough that the frustum's border is outside the view, and a smooth
        # (bilinear) texture: texel edges and the frustum border are discontinuities that
        # move with the receiver, for the boundary estimators, not this interior test
        rng = np.random.default_rng(1)
        tex = (0.5 + rng.random((4, 4, 3))).astype(np.float32)
        high = mi.ScalarTransform4f().look_at(origin=[0.3, 5, 0.2], target=[0, 0, 0], up=[0, 0, 1])
        return {"type": "projector", "to_world": high, "fov": 70.0, "scale": 20.0,
                "irradiance": {"type": "bitmap", "data": mi.TensorXf(tex), "raw": True,
                               "filter_type": "bilinear"}}  # fmt: skip
    return {"type": "directional", "direction": [0.3, -1.0, 0.2],
            "irradiance": {"type": "rgb", "value": 2.0}}  # fmt: skip


def _scene(tmp_path, kind: str) -> mi.Scene:
    return mi.load_dict({
        "type": "scene",
        "integrator": {"type": "pathdiff_path", "max_depth": 2},
        "sensor": {
            "type": "perspective", "fov": 50,
            "to_world": mi.ScalarTransform4f().look_at(
                origin=[0, 3, 0.01], target=[0, 0, 0], up=[0, 0, 1]),
            "film": {"type": "hdrfilm", "width": 16, "height": 16,
                     "rfilter": {"type": "box"}, "pixel_format": "rgb"},
        },
        "floor": {"type": "ply", "filename": _plane(tmp_path / "floor.ply"),
                  "bsdf": {"type": "diffuse", "reflectance": {"type": "rgb", "value": 0.7}}},
        "light": _emitter(kind),
    }, optimize=False)  # fmt: skip


@pytest.mark.parametrize("kind", ["point", "spot", "projector"])
@pytest.mark.parametrize("spec", ["floor.translate.y", "floor.rotate.x"])
def test_moving_receiver(pd, tmp_path, kind, spec):
    scene = _scene(tmp_path, kind)
    h = 0.02 if "translate" in spec else 1.0
    assert_matches_fd(pd, scene, spec, "prb", h=h, spp=16, tiles=4)


@pytest.mark.parametrize("integrator", ["edge", "psdr", "reparam"])
@pytest.mark.parametrize("kind", ["point", "projector"])
def test_moving_receiver_boundary_estimators(pd, tmp_path, kind, integrator):
    """The estimators built on the same loop inherit the interior term."""
    scene = _scene(tmp_path, kind)
    tiles = 0 if integrator == "reparam" else 4
    assert_matches_fd(pd, scene, "floor.translate.y", integrator, h=0.02, spp=16, tiles=tiles)


def test_moving_receiver_directional(pd, tmp_path):
    """Tilting the floor changes its cosine to the sun; translating it changes nothing. With
    a sun, a diffuse floor and depth 2 the render is deterministic up to pixel jitter, so the
    tile sums are compared directly (relative error), not by noise-aware z-scores."""
    scene = _scene(tmp_path, "directional")
    ad = np.mean(
        [pd.derivative(scene, "floor.rotate.x", "prb", spp=16, seed=s) for s in range(2)], 0
    )
    fd = np.mean(
        [
            pd.finite_difference(scene, "floor.rotate.x", h=1.0, spp=64, seed=9 + s)
            for s in range(2)
        ],
        0,
    )
    tiles = lambda x: x.sum(-1).reshape(4, 4, 4, 4).sum((1, 3))  # noqa: E731
    assert np.abs(fd).sum() > 0.1
    np.testing.assert_allclose(tiles(ad), tiles(fd), rtol=0.03, atol=0.01 * np.abs(fd).sum() / 16)
    d = pd.derivative(scene, "floor.translate.y", "prb", spp=16)
    assert np.abs(d).max() < 1e-4
