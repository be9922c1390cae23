"""Coarse-to-fine meshes (issue 19): ``--upsample`` subdivides the optimized mesh at each new
``--schedule`` stage, per-stage learning rates, each stage's mesh written, runs resume across
a subdivision; and the mesh utilities (:mod:`pathdiff.meshes`)."""

from __future__ import annotations

import mitsuba as mi
import numpy as np
import pytest

from pathdiff.inputs import InputError
from pathdiff.meshes import chamfer, normal_consistency, read_ply, subdivide, vertex_normals

T = mi.ScalarTransform4f


def _octahedron() -> tuple[np.ndarray, np.ndarray]:
    v = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    f = np.array(
        [[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]]
    )
    return v, f


def test_subdivide_keeps_a_closed_surface_in_place():
    v, f = _octahedron()
    v2, f2, _ = subdivide(v, f)
    assert len(f2) == 4 * len(f) and len(v2) == len(v) + 12  # one midpoint per edge
    edges: dict = {}
    for tri in f2:
        for a, b in zip(tri, np.roll(tri, -1)):
            key = (min(a, b), max(a, b))
            edges[key] = edges.get(key, 0) + 1
    assert set(edges.values()) == {2}  # still closed
    # every new vertex lies on the old surface |x| + |y| + |z| = 1; normals still outward
    np.testing.assert_allclose(np.abs(v2).sum(1), 1, atol=1e-12)
    assert ((vertex_normals(v2, f2) * v2).sum(1) > 0).all()
    _, _, uv = subdivide(v, f, np.arange(12.0).reshape(6, 2))
    assert uv.shape == (18, 2)


def test_mesh_errors():
    v, f = _octahedron()
    assert chamfer(v, v) == 0 and normal_consistency(v, f, v, f) == pytest.approx(1)
    assert chamfer(v, 1.1 * v) == pytest.approx(0.1)
    v2, f2, _ = subdivide(v, f)  # (the octahedron's own vertex normals are the axes)
    assert normal_consistency(v2, f2, v2 * [1, 1, 0.2], f2) < 0.95


def _scene(mesh: str) -> mi.Scene:
    def view(origin):
        return {
            "type": "perspective", "fov": 40,
            "to_world": T().look_at(origin=origin, target=[0, 0, 0], up=[0, 0, 1]),
            "film": {"type": "hdrfilm", "width": 16, "height": 16, "rfilter": {"type": "box"},
                     "pixel_format": "rgb"},
        }  # fmt: skip

    return mi.load_dict(
        {
            "type": "scene",
            "integrator": {"type": "pathdiff_path", "max_depth": 1},
            "v0": view([0, -4, 0.5]),
            "v1": view([3, 3, 1.5]),
            "mesh": {"type": "ply", "filename": mesh},
            "env": {"type": "constant", "radiance": {"type": "rgb", "value": 1.0}},
        }
    )


@pytest.fixture(scope="module")
def problem(pd, tmp_path_factory):
    """A coarse octahedron to be fitted to the silhouettes of a squashed one."""
    d = tmp_path_factory.mktemp("upsample")
    v, f = _octahedron()
    for name, verts in (("start", 0.8 * v), ("truth", v * [1.0, 0.7, 0.6])):
        m = mi.Mesh(name, len(verts), len(f))
        p = mi.traverse(m)
        p["vertex_positions"] = mi.Float(verts.ravel().astype(np.float32))
        p["faces"] = mi.UInt32(f.ravel().astype(np.uint32))
        p.update()
        m.write_ply(str(d / f"{name}.ply"))
    truth = _scene(str(d / "truth.ply"))
    targets = []
    for k in range(2):
        targets.append(d / f"target{k}.exr")
        pd.images.write_image(targets[-1], pd.render(truth, "path", spp=64, sensor=k))
    return d, targets


def _run(pd, problem, out, **kw):
    d, targets = problem
    settings = dict(
        iters=6, spp=2, lr=0.02, schedule="8:2,16:2:0.5", upsample=True, loss="l1",
        integrator="edge", progress=False, truth={"mesh.vertex_positions": d / "truth.ply"},
    )  # fmt: skip
    settings.update(kw)
    scene = _scene(str(d / "start.ply"))
    r = pd.optimize(scene, ["mesh.vertex_positions"], targets, out_dir=out, **settings)
    return scene, r


def test_upsample_subdivides_at_each_stage_and_writes_the_meshes(pd, problem, tmp_path):
    scene, r = _run(pd, problem, tmp_path / "run")
    mesh = next(s for s in scene.shapes() if s.id() == "mesh")
    assert mesh.face_count() == 4 * 8
    assert r.values["mesh.vertex_positions"].size == 3 * mesh.vertex_count()
    files = {p.name: read_ply(str(p)) for p in (tmp_path / "run").glob("mesh_*.ply")}
    assert sorted(files) == ["mesh_final.ply", "mesh_stage0.ply", "mesh_stage1.ply"]
    assert len(files["mesh_stage0.ply"][1]) == 8 and len(files["mesh_stage1.ply"][1]) == 32
    assert np.isfinite(r.errors["mesh.vertex_positions"]).all()


def test_resume_across_a_subdivision_retraces_the_run(pd, problem, tmp_path):
    _, full = _run(pd, problem, tmp_path / "full")

    def stop(it, loss):
        if it == 3:  # in the second stage: the checkpoint holds the subdivided mesh
            raise KeyboardInterrupt

    _, part = _run(pd, problem, tmp_path / "a", callback=stop, checkpoint_every=1)
    assert part.stop_reason == "interrupted" and part.iterations == 4
    _, rest = _run(pd, problem, tmp_path / "a", resume=True)
    np.testing.assert_allclose(rest.losses, full.losses, rtol=1e-5)
    np.testing.assert_allclose(
        rest.values["mesh.vertex_positions"], full.values["mesh.vertex_positions"], rtol=1e-4
    )


def test_stage_learning_rate_factor(pd, problem, tmp_path):
    """The third field of a stage scales the step: a factor of 0 would freeze the mesh, a
    tiny one nearly does (the second stage's positions barely move)."""
    _, r = _run(pd, problem, tmp_path / "slow", schedule="8:2,16:2:1e-6", upsample=False)
    traj = r.trajectory["mesh.vertex_positions"][:, 0]  # mean of the positions per iteration
    assert abs(traj[-1] - traj[3]) < 1e-5 < abs(traj[2] - traj[0])


@pytest.mark.parametrize(
    "kw,message",
    [
        (dict(schedule=None), "give a --schedule of 2\\+ stages"),
        (dict(schedule="8:2"), "give a --schedule of 2\\+ stages"),
        (dict(lambda_=0.0), "--upsample subdivides optimized meshes"),
        (dict(schedule="8:2:0,16:2"), "lr > 0"),
        (dict(schedule="8:2:x"), "RES:SPP\\[:LR\\]"),
    ],
)
def test_bad_upsample_settings(pd, problem, tmp_path, kw, message):
    with pytest.raises(InputError, match=message):
        _run(pd, problem, tmp_path / "bad", **kw)
    assert not (tmp_path / "bad").exists()
