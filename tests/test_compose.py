"""Two ParamSpecs on one mesh compose (issue 14.4): binding ``obj.translate.x`` and
``obj.rotate.y`` together moves the mesh by both, in ``bind_specs``, ``gradient`` and
``optimize``; before, the last one bound won and the other's gradient was 0."""

from __future__ import annotations

import drjit as dr
import mitsuba as mi
import numpy as np
import pytest
from conftest import scene_path

from pathdiff.scene import bind_specs


def _vertices(params, key="occluder.vertex_positions") -> np.ndarray:
    return np.array(dr.unravel(mi.Point3f, params[key])).T.copy()


def expected_of(P, c):
    """P rotated by 90 degrees about +y through its centroid c, then moved by 0.5 along x."""
    out = np.stack([c[0] + (P[:, 2] - c[2]), P[:, 1], c[2] - (P[:, 0] - c[0])], 1)
    out[:, 0] += 0.5
    return out


def test_bind_specs_composes_rigid_motions(pd):
    scene = pd.load_scene(scene_path("shadow"), res=8)
    t = pd.resolve_param(scene, "occluder.translate.x")
    r = pd.resolve_param(scene, "occluder.rotate.y")
    params = t.params
    P = _vertices(params)
    c = P.mean(0)
    bind_specs(params, [(r, mi.Float(90.0)), (t, mi.Float(0.5))])
    np.testing.assert_allclose(_vertices(params), expected_of(P, c), atol=1e-5)
    bind_specs(params, [(t, mi.Float(0.5)), (r, mi.Float(90.0))])  # the order does not matter
    np.testing.assert_allclose(_vertices(params), expected_of(P, c), atol=1e-5)
    t.reset(params)
    np.testing.assert_allclose(_vertices(params), P, atol=0)


def test_gradient_of_two_specs_on_one_mesh(pd):
    """Each spec's gradient is what it is alone (the same samples: seed and θ = 0)."""
    scene = pd.load_scene(scene_path("shadow"), res=16, max_depth=2)
    target = np.zeros((16, 16, 3), np.float32)
    specs = ["occluder.translate.x", "occluder.rotate.y"]
    both = pd.gradient(scene, specs, "l2", target, "edge", spp=8, seed=3)
    for s in specs:
        alone = pd.gradient(scene, [s], "l2", target, "edge", spp=8, seed=3)[s]
        assert abs(alone) > 0
        assert both[s] == pytest.approx(alone, rel=1e-3, abs=1e-6 * abs(alone))


def test_optimize_binds_both(pd):
    """The optimizer's binding moves the mesh by both latent values."""
    from pathdiff.variables import bind, select_variables

    scene = pd.load_scene(scene_path("shadow"), res=8)
    variables = select_variables(scene, ["occluder.translate.x", "occluder.rotate.y"], 0.01, 0)
    params = variables[0].spec.params
    P = _vertices(params)
    variables[0].set_value(np.array([0.25]))
    variables[1].set_value(np.array([10.0]))
    with dr.suspend_grad():
        bind(params, variables)
    Q = _vertices(params)
    assert np.allclose(Q.mean(0) - P.mean(0), [0.25, 0, 0], atol=1e-4)  # translated
    assert not np.allclose(Q - Q.mean(0), P - P.mean(0), atol=1e-3)  # and rotated
