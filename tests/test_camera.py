"""Camera pose and field-of-view derivatives (``pathdiff/integrators/camera.py``).

Unit tests: the attached camera rays equal Mitsuba's ``sensor.sample_ray`` in value (crop
window, principal point offset), projections equal ``sensor.sample_direction``, and their
derivatives equal finite differences of the moved real sensor. Gradient tests: each
estimator's derivative image for a camera motion against CRN finite differences of Mitsuba's
``path`` integrator rendering the moved real sensor (``to_world``/``x_fov`` updated), with
the tile statistics of :mod:`pathdiff.stats`.
"""

from __future__ import annotations

import drjit as dr
import mitsuba as mi
import numpy as np
import pytest
from conftest import scene_path

from pathdiff.integrators.camera import (
    PinholeCamera,
    attach_camera,
    attached,
    check_sensor,
    detach_camera,
)

#: camera motions: (kind, axis); rotations in degrees about the camera position (world axes)
MOTIONS = {
    "translate.x": ("translate", 0),
    "translate.y": ("translate", 1),
    "translate.z": ("translate", 2),
    "rotate.x": ("rotate", 0),
    "rotate.y": ("rotate", 1),
    "fov": ("fov", 0),
}


def camera_pose(sensor: mi.Sensor, motion: str, θ: mi.Float) -> tuple[mi.Transform4f, mi.Float]:
    """``to_world`` and ``x_fov`` of ``sensor`` moved by ``θ`` (attached if θ is)."""
    kind, axis = MOTIONS[motion]
    M0 = mi.Transform4f(sensor.world_transform())
    fov0 = mi.Float(mi.traverse(sensor)["x_fov"])
    e = [0.0, 0.0, 0.0]
    e[axis] = 1.0
    if kind == "translate":
        return mi.Transform4f().translate(mi.Vector3f(e) * θ) @ M0, fov0
    if kind == "rotate":
        c = M0 @ mi.Point3f(0)
        R = mi.Transform4f().translate(c) @ mi.Transform4f().rotate(mi.Vector3f(e), θ)
        return R @ mi.Transform4f().translate(-c) @ M0, fov0
    return M0, fov0 + θ


def move_sensor(sensor: mi.Sensor, motion: str, θ: float) -> dict:
    """Move the real sensor by ``θ``; returns what :func:`restore_sensor` needs."""
    params = mi.traverse(sensor)
    saved = {"to_world": mi.Transform4f(params["to_world"]), "x_fov": mi.Float(params["x_fov"])}
    to_world, x_fov = camera_pose(sensor, motion, mi.Float(θ))
    params["to_world"] = to_world
    params["x_fov"] = x_fov
    params.update()
    return saved


def restore_sensor(sensor: mi.Sensor, saved: dict) -> None:
    params = mi.traverse(sensor)
    for key, value in saved.items():
        params[key] = value
    params.update()


def camera_fd(
    scene: mi.Scene, motion: str, h: float, spp: int, seed: int, integrator: str = "path"
) -> np.ndarray:
    """CRN central difference of ``integrator`` (Mitsuba's ``path``) with the real sensor
    moved by ±h."""
    sensor = scene.sensors()[0]
    integ = mi.load_dict({"type": integrator, "max_depth": _max_depth(scene)})
    images = []
    for step in (h, -h):
        saved = move_sensor(sensor, motion, step)
        try:
            img = mi.render(scene, integrator=integ, spp=spp, seed=seed)
            images.append(np.array(img, dtype=np.float64))
        finally:
            restore_sensor(sensor, saved)
    return ((images[0] - images[1]) / (2 * h)).astype(np.float32)


def camera_derivative(
    pd, scene: mi.Scene, motion: str, integrator: str, spp: int, seed: int, **opts
) -> np.ndarray:
    """Forward-mode derivative image of ``integrator`` for the camera motion ``motion``."""
    from pathdiff.render import make_integrator

    sensor = scene.sensors()[0]
    integ = make_integrator(scene, integrator, **opts)
    θ = mi.Float(0.0)
    dr.enable_grad(θ)
    to_world, x_fov = camera_pose(sensor, motion, θ)
    dr.set_grad(θ, 1.0)
    dr.enqueue(dr.ADMode.Forward, θ)
    dr.traverse(dr.ADMode.Forward, dr.ADFlag.ClearEdges)
    attach_camera(sensor, to_world, x_fov)
    try:
        img = integ.render_forward(scene, params=θ, sensor=0, seed=seed, spp=spp)
        return np.array(img, dtype=np.float32)
    finally:
        detach_camera(sensor)


def _max_depth(scene: mi.Scene) -> int:
    text = str(scene.integrator())
    for part in text.replace("[", ",").replace("]", ",").split(","):
        if part.strip().startswith("max_depth="):
            return int(part.split("=")[1])
    return 6


# ---- Unit tests: rays, projections and their derivatives -------------------------------------
def _sensor(**kw) -> mi.Sensor:
    film = {"type": "hdrfilm", "width": 16, "height": 12, "rfilter": {"type": "gaussian"}}
    film.update(kw.pop("film", {}))
    return mi.load_dict(
        {
            "type": "perspective",
            "fov": 40,
            "to_world": mi.ScalarTransform4f().look_at([1, 2, 3], [0, 0.2, 0], [0, 1, 0]),
            "film": film,
            **kw,
        }
    )


SENSORS = {
    "plain": {},
    "crop+principal": dict(
        principal_point_offset_x=0.1,
        principal_point_offset_y=-0.2,
        film=dict(crop_offset_x=3, crop_offset_y=2, crop_width=9, crop_height=7),
    ),
}


def _positions(n: int = 64) -> mi.Point2f:
    return mi.Point2f(np.random.default_rng(3).random((2, n)) * 1.4 - 0.2)


@pytest.mark.parametrize("kind", SENSORS)
def test_rays_and_projection_match_sensor(kind):
    sensor = _sensor(**SENSORS[kind])
    crop = mi.ScalarVector2f(sensor.film().crop_size())
    pos = _positions()
    ref, _ = sensor.sample_ray(0.0, 0.5, pos, mi.Point2f(0.5))
    cam = PinholeCamera.of(sensor)
    ray = cam.ray(pos * crop)
    assert np.allclose(np.array(ray.o), np.array(ref.o), atol=1e-5)
    assert np.allclose(np.array(ray.d), np.array(ref.d), atol=1e-5)
    p = ref.o + 2.5 * ref.d
    x, front = cam.project(p)
    it = dr.zeros(mi.Interaction3f, dr.width(p))
    it.p = p
    ds, _ = sensor.sample_direction(it, mi.Point2f(0))
    assert np.allclose(np.array(x), np.array(ds.uv), atol=1e-3)
    assert np.allclose(np.array(x), np.array(pos * crop), atol=1e-3)
    assert np.all(np.array(front))


def test_unregistered_camera_rays_are_untouched():
    sensor = _sensor()
    ray, _ = sensor.sample_ray(0.0, 0.5, _positions(), mi.Point2f(0.5))
    assert not attached(sensor)
    assert PinholeCamera.of(sensor).attach_ray(ray) is ray
    attach_camera(sensor, sensor.world_transform(), mi.traverse(sensor)["x_fov"])
    assert attached(sensor)
    detach_camera(sensor)
    assert not attached(sensor)


@pytest.mark.parametrize("motion", list(MOTIONS))
@pytest.mark.parametrize("kind", SENSORS)
def test_ray_and_projection_derivatives_match_fd(kind, motion):
    """dray/dθ (film position held fixed) and d(film position)/dθ of fixed world points
    equal central differences of the moved real sensor."""
    sensor = _sensor(**SENSORS[kind])
    pos = _positions()
    with dr.suspend_grad():
        ray, _ = sensor.sample_ray(0.0, 0.5, pos, mi.Point2f(0.5))
        p = ray.o + 2.5 * ray.d
    h = 1e-3 if MOTIONS[motion][0] == "translate" else 1e-2

    def fd(fn):
        out = []
        for step in (h, -h):
            saved = move_sensor(sensor, motion, step)
            try:
                out.append(fn())
            finally:
                restore_sensor(sensor, saved)
        return (out[0] - out[1]) / (2 * h)

    def rays():
        r, _ = sensor.sample_ray(0.0, 0.5, pos, mi.Point2f(0.5))
        return np.concatenate([np.array(r.o), np.array(r.d)])

    def film():
        it = dr.zeros(mi.Interaction3f, dr.width(p))
        it.p = p
        ds, _ = sensor.sample_direction(it, mi.Point2f(0))
        return np.array(ds.uv)

    fd_ray, fd_film = fd(rays), fd(film)

    θ = mi.Float(0.0)
    dr.enable_grad(θ)
    attach_camera(sensor, *camera_pose(sensor, motion, θ))
    try:
        cam = PinholeCamera.of(sensor)
        att = cam.attach_ray(ray)
        x, _ = cam.project(p)
        dr.forward(θ, dr.ADFlag.ClearVertices)
        ad_ray = np.concatenate([np.array(dr.grad(att.o)), np.array(dr.grad(att.d))])
        ad_film = np.array(dr.grad(x))
    finally:
        detach_camera(sensor)
    assert np.allclose(np.array(att.d), np.array(ray.d), atol=1e-5)  # same value
    scale = max(np.abs(fd_ray).max(), 1e-3)
    assert np.allclose(ad_ray, fd_ray, atol=2e-3 * scale), np.abs(ad_ray - fd_ray).max()
    scale = max(np.abs(fd_film).max(), 1e-3)
    assert np.allclose(ad_film, fd_film, atol=2e-3 * scale), np.abs(ad_film - fd_film).max()
    assert np.abs(fd_ray).max() > 0  # the motion does move the rays


def test_non_pinhole_sensors_are_refused():
    ortho = mi.load_dict({"type": "orthographic", "id": "ortho_cam"})
    with pytest.raises(ValueError, match="ortho_cam.*pinhole"):
        check_sensor(ortho, "pathdiff_edge")
    check_sensor(_sensor(), "pathdiff_edge")  # a perspective sensor is accepted


# ---- Gradient tests against FD of the moved real sensor --------------------------------------
RES = 24
#: scene, its options, camera motion, FD step
SCENE_CASES = {
    # area light, meshes only (cbox walls, two boxes), direct light, and with one bounce more
    # (indirect light at sliding camera hits)
    "cbox": ("cbox", {"max_depth": 2}),
    "cbox_bounce": ("cbox", {"max_depth": 3}),
    # environment map seen directly around two spheres on a floor
    "glossy": ("glossy", {"max_depth": 2}),
}
STEP = {"translate": 2e-3, "rotate": 0.05, "fov": 0.05}
_FD_CACHE: dict = {}


def _load(pd, name: str):
    path, opts = SCENE_CASES[name]
    return pd.load_scene(scene_path(path), res=RES, **opts)


def _fd_runs(pd, name: str, motion: str, runs: int = 8, spp: int = 256) -> list[np.ndarray]:
    key = (name, motion, runs, spp)
    if key not in _FD_CACHE:
        scene = _load(pd, name)
        h = STEP[MOTIONS[motion][0]]
        _FD_CACHE[key] = [camera_fd(scene, motion, h, spp, 100 + s) for s in range(runs)]
    return _FD_CACHE[key]


def _check(pd, name, motion, integrator, tiles=4, spp=64, **opts):
    """8 AD seeds (a standard error with 7 degrees of freedom, as in ``assert_matches_fd``) at
    64 spp: the narrow penumbrae seen from moving camera hits make the secondary samples
    heavy-tailed (cbox: one sample in 16 x 16 spp carried a tile; unbiased at 256 spp)."""
    from pathdiff.stats import compare

    scene = _load(pd, name)
    ad = [camera_derivative(pd, scene, motion, integrator, spp, s, **opts) for s in range(8)]
    fd = _fd_runs(pd, name, motion)
    power = compare(ad, fd, tiles=4)  # FD must be significant somewhere, tiles included
    significant = abs(power.b_mean) > 4 * power.b_se
    assert significant[1:].any(), "FD is not significant: the comparison would be vacuous"
    return compare(ad, fd, tiles=tiles)


#: known failures. Fixed: psdr's K = 1 term missed shadow boundaries at camera
#: hits; edge on cbox sampled the walls' shared edges twice; with one bounce (cbox_bounce) the
#: vertex after a moving camera hit was found from a detached origin and nothing followed the
#: hit (tiles off by ~0.2 of ~20, z 5-8, in edge and psdr) until the moving-vertex factors of
#: issue 13.2 (pathdiff/integrators/base.py).
#: Open: glossy, camera translate.x / rotate.y, edge and psdr: tiles near the bottom of the
#: image (the near floor) off at z 5-9, also at the commit before 13.2; prb shows the same
#: residual (AD about +0.005 per pixel where FD is about 0): an interior-term bias on the floor
#: seen by a moving camera, not diagnosed (docs/gradients.md, camera table).
_GLOSSY = "interior-term residual on the near floor under camera motion (not diagnosed)"
KNOWN: dict = {
    ("glossy", motion, integrator): _GLOSSY
    for motion in ("translate.x", "rotate.y")
    for integrator in ("edge", "psdr")
}
#: more samples where the estimate is heavy-tailed: edge, glossy fov (the sun's penumbrae are
#: narrow; seen from camera hits that slide, their edge samples carry large weights: a tile
#: at z -6.7 with 8 x 64 spp agrees at 8 x 128, z -0.2)
#: cbox rotate.y edge: with the lane-sorted primary picks one tile of seeds 0-7 came out at
#: z -6.0 (8 x 64 spp); the same seeds at 8 x 128: -2.1; seeds 100-115 and 200-207 at 64 spp:
#: that tile -0.8 and +0.4, every tile |z| < 4. A tail event, not a bias.
SPP = {("glossy", "fov", "edge"): 128, ("cbox", "rotate.y", "edge"): 128}
GRADIENT_CASES = [
    pytest.param(
        name, motion, integrator,
        marks=pytest.mark.xfail(reason=KNOWN[name, motion, integrator], strict=False)
        if (name, motion, integrator) in KNOWN else (),
    )
    for name in SCENE_CASES
    for motion in (("rotate.y",) if name == "cbox_bounce" else ("translate.x", "rotate.y", "fov"))
    for integrator in ("edge", "psdr", "reparam")
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name,motion,integrator", GRADIENT_CASES)
def test_camera_gradient_matches_fd(pd, name, motion, integrator):
    # reparam is biased by design (its kernel spreads an edge's motion): 64 aux rays shrink
    # that bias below the tiles' noise (whole-image statistics alone passed the old code)
    opts = {"aux_rays": 64} if integrator == "reparam" else {}
    spp = SPP.get((name, motion, integrator), 64)
    result = _check(pd, name, motion, integrator, spp=spp, **opts)
    assert result.passed, f"z = {result.z.round(2)}, threshold {result.threshold:.2f}"


# ---- Edges two meshes share ------------------------------------------------------------------
def _corner(tmp_path) -> mi.Scene:
    """A floor and a back wall, separate meshes sharing the edge where they meet (as the walls
    of a box built from quads), under a uniform sky; the camera looks at that edge."""
    from test_delta_shadows import _quad

    floor = [[-1, 0, -1], [1, 0, -1], [1, 0, 1], [-1, 0, 1]]
    wall = [[-1, 0, -1], [-1, 2, -1], [1, 2, -1], [1, 0, -1]]
    grey = {"type": "diffuse", "reflectance": {"type": "rgb", "value": 0.8}}
    red = {"type": "diffuse", "reflectance": {"type": "rgb", "value": [0.6, 0.1, 0.1]}}
    return mi.load_dict({
        "type": "scene",
        "integrator": {"type": "pathdiff_path", "max_depth": 2},
        "sensor": {
            "type": "perspective", "fov": 40,
            "to_world": mi.ScalarTransform4f().look_at([0, 1.2, 2.5], [0, 0.3, -1], [0, 1, 0]),
            "film": {"type": "hdrfilm", "width": 16, "height": 16, "rfilter": {"type": "box"}},
        },
        "sky": {"type": "constant", "radiance": {"type": "rgb", "value": 1.0}},
        "floor": {"type": "ply", "filename": _quad(tmp_path / "floor.ply", floor), "bsdf": grey},
        "wall": {"type": "ply", "filename": _quad(tmp_path / "wall.ply", wall), "bsdf": red},
    }, optimize=False)  # fmt: skip


def test_shared_edges_found_once(pd, tmp_path):
    """The Cornell box's walls share 8 edges (12 of a cube, less the 4 of its open front): one
    copy of each is sampled; meshes that move apart get both copies back."""
    from pathdiff.integrators.edges import EdgeTables

    scene = pd.load_scene(scene_path("cbox"), res=8)
    tables = EdgeTables()
    meshes = [tables.table(m) for m in scene.shapes()]
    twins = tables.twins(meshes)
    dropped = sum(int(dr.count(~twins.keep(k))[0]) for k in range(len(meshes)))
    assert dropped == 8
    static = tables.combined(list(scene.shapes()))
    assert int(dr.count(~static.keep)[0]) == 8
    params = mi.traverse(scene)
    params["left.vertex_positions"] = params["left.vertex_positions"] - 0.1
    params.update()
    left = [s.id() for s in scene.shapes()].index("left")
    assert bool(dr.all(twins.keep(left)))


@pytest.mark.parametrize("once", [True, False])
def test_shared_edge_counted_once(pd, tmp_path, monkeypatch, once):
    """A moving camera sees the edge two meshes share as one image curve. Measured (16², row
    sums along the edge): FD -3.9, AD -4.0; negative control (``once=False``, the old
    behaviour: each mesh's copy sampled) -7.6."""
    from pathdiff.integrators import edges
    from pathdiff.stats import compare

    if not once:
        every = lambda self, k: dr.full(mi.Bool, True, self.tables[k].count)  # noqa: E731
        monkeypatch.setattr(edges.Twins, "keep", every)
    scene = _corner(tmp_path)
    ad = [camera_derivative(pd, scene, "rotate.x", "edge", 16, s) for s in range(8)]
    fd = [camera_fd(scene, "rotate.x", STEP["rotate"], 128, 100 + s) for s in range(8)]
    result = compare(ad, fd, tiles=4)
    assert abs(result.b_mean[0]) > 4 * result.b_se[0], "FD is not significant"
    assert result.passed == once, f"z = {result.z.round(2)}, threshold {result.threshold:.2f}"
