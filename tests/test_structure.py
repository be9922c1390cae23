"""The estimators' per-render additions are an explicit value (issue 12.4).

``sample()`` in a derivative mode used to read state that only ``render_forward`` /
``render_backward`` set (edge tables, the warp's face tables), so calling it on a fresh
integrator silently dropped the boundary terms of the loop. Now the loop takes a
:class:`~pathdiff.integrators.base.Terms` value and builds it from the scene when none is
given. These tests drive the loop directly.
"""

from __future__ import annotations

import drjit as dr
import mitsuba as mi
import numpy as np
import pytest
from conftest import load_case

from pathdiff.integrators.base import Terms
from pathdiff.render import bind_tangent

RES = 16


def _replay(pd, scene, integ, **terms) -> np.ndarray:
    """Forward-mode replay of the shared loop alone (no boundary images): dI/dθ per sample,
    with ``occluder.translate.x`` as θ; ``terms`` passed through to ``sample()``."""
    spec = pd.resolve_param(scene, "occluder.translate.x")
    sensor = scene.sensors()[0]
    try:
        bind_tangent(spec)
        with dr.suspend_grad():
            sampler, _ = integ.prepare(sensor, 5, 4)
            ray, _, _ = integ.sample_rays(scene, sensor, sampler)
            L, _, _, _ = integ.sample(dr.ADMode.Primal, scene, sampler.clone(), ray)
            δL, _, _, _ = integ.sample(dr.ADMode.Forward, scene, sampler, ray, state_in=L, **terms)
        return np.array(δL)
    finally:
        spec.reset()


@pytest.mark.parametrize("name", ["pathdiff_edge", "pathdiff_reparam"])
def test_sample_builds_its_own_terms(pd, tmp_path_factory, name):
    """A fresh integrator's derivative ``sample()`` equals the one given its terms
    explicitly, and differs from the interior term alone (the shadow's boundary term is in
    the loop: a vertex term for ``edge``, the warp for ``reparam``)."""
    scene = load_case(pd, "shadow", tmp_path_factory, res=RES)
    fresh = _replay(pd, scene, mi.load_dict({"type": name, "max_depth": 3}))
    integ = mi.load_dict({"type": name, "max_depth": 3})
    spec = pd.resolve_param(scene, "occluder.translate.x")
    θ = mi.Float(0.0)
    dr.enable_grad(θ)
    try:
        spec.bind(theta=θ)
        terms = integ.terms(scene)
    finally:
        spec.reset()
    assert terms.vertex is not None or terms.warp is not None
    explicit = _replay(pd, scene, integ, terms=terms)
    interior = _replay(pd, scene, integ, terms=Terms())
    np.testing.assert_allclose(fresh, explicit, rtol=1e-5, atol=1e-7)
    assert np.abs(fresh - interior).sum() > 0.05 * np.abs(interior).sum()


def test_terms_follow_the_scene(pd, tmp_path_factory):
    """Nothing moves: no vertex term, no warp, the boundary images are empty."""
    scene = load_case(pd, "shadow", tmp_path_factory, res=RES)
    for name in ("pathdiff_edge", "pathdiff_psdr", "pathdiff_reparam"):
        terms = mi.load_dict({"type": name}).terms(scene)
        assert terms.vertex is None and terms.warp is None
        assert terms.boundary_image(scene, scene.sensors()[0], 0, 1) is None
