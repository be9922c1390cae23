"""The benchmark suite (``pathdiff.bench``): problems, references and one tiny run."""

from __future__ import annotations

import numpy as np
import pytest

from pathdiff.bench import make_references as mr
from pathdiff.bench import problems as sp

RES = 8


def test_problem_list():
    names = [p.name for p in sp.PROBLEMS]
    assert len(names) >= 12 and len(set(names)) == len(names)
    assert all(p.scene_path.is_file() for p in sp.PROBLEMS)
    assert any(p.visibility for p in sp.PROBLEMS) and any(not p.visibility for p in sp.PROBLEMS)
    assert "mitsuba:prb" in sp.estimators() and "prb" in sp.estimators()


@pytest.mark.parametrize("p", sp.PROBLEMS, ids=lambda p: p.name)
def test_param_spec_resolves(pd, p):
    scene = sp.load(p, RES)
    for fd in (False, True):
        spec = sp.resolve(p, scene, fd=fd)
        spec.bind(theta=0.0)
        spec.reset()


@pytest.mark.parametrize("p", sp.PROBLEMS, ids=lambda p: p.name)
def test_reference_matches_settings(pd, p):
    ref = mr.load_reference(p)
    st = ref["settings"]
    expected = mr.settings(p, st["res"], st["spp"], st["seeds"], st["target_spp"])
    for key in ("problem", "scene", "spec", "h", "opts", "target", "seed0", "integrator"):
        assert st[key] == expected[key], key
    shape = (st["res"], st["res"], 3)
    assert ref["mean"].shape == ref["se"].shape == ref["target_image"].shape == shape
    assert ref["stats"].shape[0] == st["seeds"]
    assert np.isfinite(ref["mean"]).all() and np.abs(ref["mean"]).sum() > 0


def test_camera_motion_equals_scene_motion(pd):
    """The estimators' camera ParamSpec (scene moved by −θ) has the camera's derivative."""
    p = sp.problem("camera_translate")
    scene = sp.load(p, RES)
    a, b = (
        pd.finite_difference(scene, sp.resolve(p, scene, fd=fd), h=p.h, spp=64, seed=3, **p.opts)
        for fd in (True, False)
    )
    assert np.abs(a).sum() > 0
    np.testing.assert_allclose(a, b, atol=1e-3 * np.abs(a).max())


def test_bench_produces_a_row(tmp_path):
    from pathdiff.cli import main

    args = ["--problems", "area_light", "--estimators", "prb", "--spp", "2", "--seeds", "2"]
    args += ["--opt-iters", "2", "--opt-spp", "2", "--out", str(tmp_path)]
    assert main(["bench", *args]) == 0
    table = (tmp_path / "table.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| area_light | prb |"))
    assert "n/a" not in row
    assert (tmp_path / "errors.png").is_file() and (tmp_path / "optimization.png").is_file()


def test_bench_keeps_an_earlier_run_and_checks_names(tmp_path, capsys):
    from pathdiff.cli import main

    (tmp_path / "table.md").write_text("earlier run")
    assert main(["bench", "--problems", "area_light", "--out", str(tmp_path)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "table.md").read_text() == "earlier run"
    assert main(["bench", "--problems", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown problem(s) nope" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_real_camera_agrees_with_the_scene_motion(pd):
    """The suite's camera problem: pathdiff's camera ParamSpec and the equivalent motion of
    the whole scene (the stand-in for estimators that cannot move the camera) give the same
    edge derivative on a scene lit only by meshes."""
    from pathdiff.stats import compare

    p = sp.problem("camera_translate")
    scene = sp.load(p, 16)
    real = sp.resolve(p, scene, estimator="edge")
    shift = sp.resolve(p, scene, estimator="mitsuba:prb")
    assert real.kind == "camera" and shift.kind == "geometry"
    a = [pd.derivative(scene, real, "edge", spp=32, seed=s) for s in range(4)]
    b = [pd.derivative(scene, shift, "edge", spp=32, seed=10 + s) for s in range(4)]
    r = compare(a, b, tiles=2)
    assert abs(r.b_mean[0]) > 4 * r.b_se[0]
    assert r.passed, r.z
