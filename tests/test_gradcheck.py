"""``pathdiff gradcheck``: a right gradient passes, a missing boundary term fails.

The negative control is ``prb`` on a shadow occluder's translation: ``prb`` has no visibility
term, so it misses the moving shadow and silhouette that the finite differences see.
"""

from __future__ import annotations

import json

import matplotlib.image
import numpy as np
import pytest
from conftest import scene_path

from pathdiff import cli
from pathdiff.gradcheck import GEOMETRY_STEP, MAX_EDGE_MOTION_PX, default_step, gradcheck

FAST = ["--spp", "32", "--fd-spp", "128", "--seeds", "4", "--fd-seeds", "8"]


def test_right_gradient_passes(pd):
    scene = pd.load_scene(scene_path("cbox"), res=16)
    (result,) = gradcheck(scene, ["red.reflectance.value"], spp=32, fd_spp=128)
    c = result.comparison
    assert abs(c.b_mean[0]) > 10 * c.b_se[0], "FD not significant: the check would be vacuous"
    assert result.passed, f"z = {c.z}, threshold {c.threshold:.2f}"
    assert result.rel_error < 0.05
    assert result.ad_mean.shape == result.fd_se.shape == (16, 16, 3)
    assert 0 < result.floor < 1e-2 * np.abs(c.b_mean).max()


def test_default_steps(pd):
    scene = pd.load_scene(scene_path("shadow"), res=24)
    light = pd.resolve_param(scene, "light.emitter.radiance.value")
    assert default_step(scene, light) == pytest.approx(0.4)  # 1e-2 x radiance 40
    for motion in ("translate.x", "rotate.y", "scale"):
        spec = pd.resolve_param(scene, f"occluder.{motion}")
        h = default_step(scene, spec)
        assert 0 < h <= GEOMETRY_STEP[motion.split(".")[0]]
    # at a higher resolution, the 0.05 px rule shrinks the translation step
    fine = pd.load_scene(scene_path("shadow"), res=256)
    spec = pd.resolve_param(fine, "occluder.translate.x")
    assert default_step(fine, spec) < GEOMETRY_STEP["translate"] * 24 / 256 * 1.01
    assert MAX_EDGE_MOTION_PX == 0.05


def test_cli_pass_writes_panel(tmp_path, capsys):
    argv = ["gradcheck", scene_path("cbox"), "--param", "red.reflectance.value"]
    code = cli.main([*argv, "--res", "16", *FAST, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "red.reflectance.value" in out and "PASS" in out
    panel = matplotlib.image.imread(tmp_path / "gradcheck_red.reflectance.value.png")
    assert panel.ndim == 3 and panel.shape[0] > 100 and panel.shape[1] > 300
    assert panel[..., :3].std() > 0.05  # not a blank image


def test_cli_fails_without_boundary_term(tmp_path, capsys):
    argv = ["gradcheck", scene_path("shadow"), "--param", "occluder.translate.x", "--json"]
    argv += ["--integrator", "prb", "--res", "24", "--spp", "32", "--fd-spp", "512"]
    code = cli.main([*argv, "--out", str(tmp_path)])  # FD noise ~1/h: more FD samples
    (result,) = json.loads(capsys.readouterr().out)
    fd, fd_se = np.array(result["fd_stats"]), np.array(result["fd_stats_se"])
    assert np.abs(fd / fd_se).max() > 8, "FD ~0: the negative control would be vacuous"
    assert code == 1
    assert result["verdict"] == "FAIL" and result["max_abs_z"] > result["threshold"]
    assert (tmp_path / "gradcheck_occluder.translate.x.png").is_file()
    assert result["panel"].endswith("gradcheck_occluder.translate.x.png")


# ---- Verdicts: PASS only when decisive, INCONCLUSIVE when too noisy, FAIL with a hint --------
def _result(a, a_se, b, b_se, spp=16, kind="material", integrator="prb"):
    from pathdiff.gradcheck import GradcheckResult, _hint
    from pathdiff.stats import Comparison

    a, a_se, b, b_se = (np.atleast_1d(np.asarray(x, float)) for x in (a, a_se, b, b_se))
    z = (a - b) / np.maximum(np.hypot(a_se, b_se), 1e-9)
    c = Comparison(a, a_se, b, b_se, z, threshold=5.0)
    img = np.zeros((2, 2, 3))
    r = GradcheckResult("p", kind, integrator, 0.01, spp, 64, 4, 8, img, img, img, img, c, 1e-9)
    r.hint = _hint(r, integrator)
    return r


def test_verdicts_and_decisive_spp():
    assert _result(10.0, 0.1, 10.1, 0.1).verdict == "PASS"
    assert _result(15.0, 0.1, 10.0, 0.1).verdict == "FAIL"  # negative control: 50 % off
    noisy = _result(0.4, 2.7, 0.85, 6.1)  # the case: error bars wider than values
    assert noisy.passed and noisy.verdict == "INCONCLUSIVE"
    # standard errors shrink as 1/sqrt(spp): at decisive_spp the same values are decisive
    k = noisy.decisive_spp / noisy.spp
    assert noisy.decisive_spp > noisy.spp
    assert _result(0.4, 2.7 / k**0.5, 0.85, 6.1 / k**0.5, spp=noisy.decisive_spp).decisive
    assert _result(0.0, 0.0, 0.0, 0.0).verdict == "PASS"  # deterministic agreement on 0


def test_geometry_hint_for_interior_only_estimators():
    r = _result(0.4, 2.7, 0.85, 6.1, kind="geometry", integrator="mitsuba:prb")
    assert "--integrator edge" in r.hint
    assert _result(0.4, 2.7, 0.85, 6.1, kind="geometry", integrator="edge").hint is None
    assert _result(10.0, 0.1, 10.1, 0.1, kind="geometry", integrator="prb").hint is None


def test_prb_at_4_spp_on_geometry_does_not_pass(pd):
    """The issue's case: Mitsuba's prb at 4 spp on a moving box used to PASS (error bars
    wider than the values); now it is INCONCLUSIVE (or FAIL), with the boundary hint."""
    scene = pd.load_scene(scene_path("cbox"), res=16)
    (r,) = gradcheck(scene, ["short_box.translate.x"], "mitsuba:prb", spp=4, fd_spp=4)
    assert r.verdict in ("INCONCLUSIVE", "FAIL")
    assert r.hint and "edge" in r.hint
    if r.verdict == "INCONCLUSIVE":
        assert r.decisive_spp > 4


def test_progress_lines(pd):
    scene = pd.load_scene(scene_path("cbox"), res=8)
    lines = []
    gradcheck(scene, ["red.reflectance.value"], spp=8, fd_spp=16, progress=lines.append)
    assert lines[0] == "gradcheck [1/1] red.reflectance.value ..."
    assert lines[1].startswith("gradcheck [1/1] red.reflectance.value: PASS")
