"""Finite differences with common random numbers: the independent reference for gradients."""

from __future__ import annotations

import drjit as dr
import mitsuba as mi
import numpy as np

from .render import make_integrator
from .scene import ParamSpec, resolve_param


def finite_difference(
    scene: mi.Scene,
    spec: str | ParamSpec,
    h: float = 1e-2,
    spp: int = 0,
    seed: int = 0,
    integrator: str | mi.Integrator | None = "path",
    sensor: int = 0,
    **opts,
) -> np.ndarray:
    """Central difference ``(I(θ+h) − I(θ−h)) / 2h`` with the same seed on both sides.

    The primal integrator (``path`` by default) renders both sides, so this is independent
    of the derivative estimators it checks.
    """
    spec = resolve_param(scene, spec) if isinstance(spec, str) else spec
    integ = make_integrator(scene, integrator, **opts)
    images = []
    try:
        with dr.suspend_grad():
            for step in (h, -h):
                spec.bind(theta=mi.Float(step))
                img = mi.render(scene, integrator=integ, spp=spp, seed=seed, sensor=sensor)
                images.append(np.array(img, dtype=np.float64))
    finally:
        spec.reset()
    return ((images[0] - images[1]) / (2 * h)).astype(np.float32)
