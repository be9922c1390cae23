"""``pathdiff_ad``: attached automatic differentiation through the path loop."""

from __future__ import annotations

from mitsuba.ad.integrators.common import ADIntegrator

from .base import UNBOUNDED_DEPTH, PathLoopIntegrator


class ADPathIntegrator(PathLoopIntegrator):
    """Interior derivative term by plain AD through the whole path (the baseline).

    The path loop runs once with gradients enabled and the AD graph spans all bounces, so
    forward and reverse mode differentiate exactly the primal estimator with detached
    sampling. It estimates the same quantity as ``pathdiff_prb`` (same random numbers give
    the same derivative), but memory grows linearly with ``max_depth``, which must be
    finite. No visibility (boundary) term.
    """

    attached = True
    render_forward = ADIntegrator.render_forward
    render_backward = ADIntegrator.render_backward

    def __init__(self, props):
        super().__init__(props)
        if self.max_depth == UNBOUNDED_DEPTH:
            raise ValueError("pathdiff_ad needs a finite max_depth (its memory grows with depth)")
