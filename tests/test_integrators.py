"""The primal path tracer against Mitsuba's own ``path`` on every bundled scene.

Mitsuba's BSDFs are black where an interpolated normal faces away from the viewer; the
comparisons turn pathdiff's normal bending off to match (``bend_normals=False``)."""

from __future__ import annotations

import mitsuba as mi
import numpy as np
import pytest
from conftest import SCENES, scene_path

from pathdiff.stats import mean_se, z_scores


def test_plugins_load_from_xml(pd):
    for name in ("path", "prb", "ad"):
        scene = mi.load_string(
            f"""<scene version="3.0.0">
                  <integrator type="pathdiff_{name}">
                    <integer name="max_depth" value="3"/>
                    <boolean name="hide_emitters" value="true"/>
                  </integrator>
                </scene>"""
        )
        integ = scene.integrator()
        assert type(integ).__name__ in {"PathIntegrator", "PRBIntegrator", "ADPathIntegrator"}
        assert integ.options["max_depth"] == 3 and integ.options["hide_emitters"] is True


def test_ad_needs_finite_depth(pd):
    with pytest.raises(Exception, match="finite max_depth"):
        mi.load_dict({"type": "pathdiff_ad", "max_depth": -1})


def _renders(pd, scene, integrator, seeds, spp, **opts):
    return [pd.render(scene, integrator=integrator, spp=spp, seed=s, **opts) for s in seeds]


@pytest.mark.parametrize("name", SCENES)
def test_path_matches_mitsuba_means(pd, name):
    """Per-channel image means agree within 4 standard errors (independent seeds)."""
    scene = pd.load_scene(scene_path(name), res=16)
    ours = [r.mean((0, 1)) for r in _renders(pd, scene, "path", range(8), 64, bend_normals=False)]
    ref = [r.mean((0, 1)) for r in _renders(pd, scene, "mitsuba:path", range(100, 108), 64)]
    m, _ = mean_se(ref)
    assert np.all(m > 0), "the scene renders black: the comparison would be vacuous"
    z = z_scores(ours, ref)
    assert np.all(np.abs(z) < 4), f"{name}: channel z-scores {z}"


@pytest.mark.parametrize("name", SCENES)
def test_path_matches_mitsuba_per_pixel(pd, name):
    """Per-pixel means at 16x16: at most 1% of pixel channels beyond 4 standard errors."""
    scene = pd.load_scene(scene_path(name), res=16)
    ours = _renders(pd, scene, "path", range(8), 256, bend_normals=False)
    ref = _renders(pd, scene, "mitsuba:path", range(100, 108), 256)
    z = z_scores(ours, ref, floor=1e-4)
    frac = np.mean(np.abs(z) > 4)
    assert frac <= 0.01, (
        f"{name}: {frac:.1%} of pixel channels beyond 4 se (max |z| {np.abs(z).max():.1f})"
    )


def test_hide_emitters(pd):
    scene = pd.load_scene(scene_path("silhouette"), res=16)
    shown = pd.render(scene, integrator="path", spp=16, max_depth=1)
    hidden = pd.render(scene, integrator="path", spp=16, max_depth=1, hide_emitters=True)
    assert shown.max() > 0 and hidden.max() == 0
