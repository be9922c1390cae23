"""``pathdiff_path``: the primal path tracer."""

from __future__ import annotations

import mitsuba as mi

from .base import PathLoopIntegrator


class PathIntegrator(PathLoopIntegrator):
    """Unidirectional path tracing with NEE, MIS and Russian roulette (primal only).

    Estimates ``I_j = ∫ W_j(x) L(x) dx`` with every emitter type Mitsuba offers (area, point,
    spot, directional, constant, envmap) and any BSDF. It computes no derivatives: use
    ``pathdiff_prb`` (interior term) or a boundary estimator for gradients.
    """

    def render_forward(self, *args, **kwargs) -> mi.TensorXf:
        raise RuntimeError("pathdiff_path is primal-only; use pathdiff_prb or pathdiff_ad")

    render_backward = render_forward
