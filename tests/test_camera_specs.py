"""Camera ParamSpecs (``SENSOR.translate|rotate.x|y|z``, ``SENSOR.fov``): listed, moved by
finite differences on the real sensor, differentiated by the interior term (attached camera
rays), in forward and reverse mode, and optimized.

The scene is a large diffuse floor under a point light, seen from above with no edge in
view, so that the derivative is the interior term alone (boundary terms: tests/test_camera.py).
"""

from __future__ import annotations

import drjit as dr
import mitsuba as mi
import numpy as np
import pytest
from conftest import assert_matches_fd
from test_delta_lights import _scene

SPECS = {"sensor.rotate.x": 0.2, "sensor.fov": 0.2, "sensor.translate.x": 0.01}


@pytest.fixture
def floor(tmp_path):
    return _scene(tmp_path, "point")


def test_sensor_specs_are_listed_and_move_the_real_sensor(pd, floor):
    from pathdiff.scene import rigid_specs

    assert {*SPECS, "sensor.rotate.z", "sensor.translate.y"} <= set(rigid_specs(floor))
    spec = pd.resolve_param(floor, "sensor.translate.x")
    before = np.array(floor.sensors()[0].world_transform().translation()).ravel()
    spec.bind(theta=mi.Float(0.5))
    moved = np.array(floor.sensors()[0].world_transform().translation()).ravel()
    spec.reset()
    after = np.array(floor.sensors()[0].world_transform().translation()).ravel()
    np.testing.assert_allclose(moved - before, [0.5, 0, 0], atol=1e-5)
    np.testing.assert_allclose(after, before, atol=0)
    with pytest.raises(pd.scene.SceneError, match="unknown parameter"):
        pd.resolve_param(floor, "sensor.bogus")


@pytest.mark.parametrize("spec", list(SPECS))
def test_interior_camera_derivative_matches_fd(pd, floor, spec):
    assert_matches_fd(pd, floor, spec, "prb", h=SPECS[spec], spp=16, tiles=4)


def test_camera_derivative_is_zero_without_it(pd, floor):
    """Negative control: without the attached camera rays (the registry emptied after
    binding), the interior term has no camera derivative at all, while FD has one."""
    from pathdiff.integrators.camera import detach_camera
    from pathdiff.render import make_integrator

    spec = pd.resolve_param(floor, "sensor.rotate.x")
    θ = mi.Float(0.0)
    dr.enable_grad(θ)
    spec.bind(theta=θ)
    detach_camera(floor.sensors()[0])
    try:
        integ = make_integrator(floor, "prb")
        with pytest.raises(RuntimeError):  # "the argument does not depend on the input"
            integ.render_forward(floor, params=θ, sensor=0, seed=0, spp=4)
    finally:
        spec.reset()
    fd = pd.finite_difference(floor, "sensor.rotate.x", h=0.2, spp=64)
    assert np.abs(fd).sum() > 0.1


def test_reverse_mode_matches_forward(pd, floor):
    """pd.gradient (reverse, through the render operation that also takes camera θ) agrees
    with the forward derivative of the same random-weight loss, within noise."""
    w = np.random.default_rng(0).standard_normal((16, 16, 3)).astype(np.float32)

    def loss(img, _):
        return dr.sum(img * mi.TensorXf(w), axis=None)

    n = 6
    for spec in SPECS:
        rev = [
            pd.gradient(floor, [spec], loss, None, "prb", spp=32, seed=s)[spec] for s in range(n)
        ]
        fwd = [(w * pd.derivative(floor, spec, "prb", spp=32, seed=10 + s)).sum() for s in range(n)]
        se = np.hypot(np.std(rev, ddof=1), np.std(fwd, ddof=1)) / np.sqrt(n)
        assert abs(np.mean(rev) - np.mean(fwd)) < 5 * se, (spec, rev, fwd)
        assert abs(np.mean(fwd)) > 5 * se  # not vacuous


def test_optimize_recovers_a_camera_rotation(pd, floor):
    spec = pd.resolve_param(floor, "sensor.rotate.x")
    spec.bind(theta=mi.Float(2.0))
    target = pd.render(floor, "path", spp=256, seed=5)
    spec.reset()
    r = pd.optimize(floor, ["sensor.rotate.x"], [target], iters=40, spp=8, lr=0.1,
                    integrator="prb", progress=False)  # fmt: skip
    assert abs(r.values["sensor.rotate.x"][0] - 2.0) < 0.2, r.values


@pytest.mark.parametrize("integrator", ["edge", "psdr", "reparam"])
def test_boundary_estimators_follow_the_camera(pd, integrator):
    """An area light's shadow seen directly: as the camera moves, the shadow's outline moves
    in the image (primary edges) and relative to the sliding camera hits (each estimator's
    own secondary term: edge sampling at camera hits, psdr's K = 1 segments, reparam's warp
    of the rays leaving the attached hits). reparam runs with 64 aux rays, which shrinks its
    kernel bias below the tiles' noise. Measured (16², tiles, vs FD): psdr failed before
    without its K = 1 term; reparam |z| 2.6 now, 17.4 with the code before this (whole-image
    statistics alone pass both, so the tiles are what makes this a test)."""
    from conftest import scene_path

    scene = pd.load_scene(scene_path("shadow"), res=16)
    opts = {"aux_rays": 64} if integrator == "reparam" else {}
    assert_matches_fd(pd, scene, "sensor.translate.x", integrator, h=0.01, spp=16, **opts)


def test_psdr_without_its_camera_hit_term_fails(pd):
    """Negative control: psdr without static edges (so no K = 1 segments at the camera's
    hits, the behaviour before) misses the shadow's motion relative to them."""
    from conftest import scene_path
    from test_split_edges import _fd_compare

    scene = pd.load_scene(scene_path("shadow"), res=16)
    spec = "sensor.translate.x"
    assert not _fd_compare(pd, scene, spec, "psdr", 0.01, static_edges=False).passed


def test_exported_scene_holds_the_camera(pd, tmp_path):
    """The optimized pose and fov are written to the scene XML (the transform as a matrix,
    the fov along x), and the written scene loads with them."""
    from conftest import scene_path

    from pathdiff.scene import write_scene

    scene = pd.load_scene(scene_path("cbox"), res=16)
    moves = {"sensor.translate.x": 0.3, "sensor.rotate.y": 5.0, "sensor.fov": 2.0}
    specs = [pd.resolve_param(scene, k) for k in moves]
    for spec, θ in zip(specs, moves.values()):
        spec.bind(theta=mi.Float(θ))
    sensor = scene.sensors()[0]
    expected = np.array(sensor.world_transform().matrix).ravel()
    fov = float(mi.traverse(sensor)["x_fov"][0])
    keys = ["sensor.to_world", "sensor.x_fov"]
    xml, missing = write_scene(scene, scene_path("cbox"), tmp_path, keys, {"res": 16})
    assert missing == []
    written = mi.load_file(xml).sensors()[0]
    np.testing.assert_allclose(
        np.array(written.world_transform().matrix).ravel(), expected, atol=1e-5
    )
    assert abs(mi.traverse(written)["x_fov"][0] - fov) < 1e-4 and abs(fov - 41.3) < 1e-4
