"""What an estimator adds to the shared path loop for one derivative render: :class:`Terms`.

Built per render by ``PathLoopIntegrator.terms(scene, sensor)`` and handed to the loop and
the render passes as a value (never stored on the integrator), so that ``sample()`` does not
depend on which render ran before it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import mitsuba as mi

from .sampling import RNGSampler


class Warp(Protocol):
    """Reparameterization of the secondary rays of the replay."""

    def __call__(
        self, scene: mi.Scene, rng: RNGSampler, ray: mi.Ray3f, depth: mi.UInt32, active: mi.Bool
    ) -> tuple[mi.Ray3f, mi.Float]:
        """The attached ray (same value as the detached ``ray``) and the Jacobian determinant
        of the warp (value 1). ``depth == 0`` marks camera rays."""


class VertexTerm(Protocol):
    """An extra attached, zero-valued contribution at each path vertex of the replay."""

    def __call__(
        self,
        scene: mi.Scene,
        si: mi.SurfaceInteraction3f,
        bsdf: mi.BSDF,
        β: mi.Spectrum,
        depth: mi.UInt32,
        rng: RNGSampler,
        active: mi.Bool,
    ) -> mi.Spectrum:
        """``β``: detached throughput up to ``si``; ``depth``: 0 for a camera hit; ``rng``:
        independent of the path's sampler."""


#: an attached zero-valued image whose derivative is a boundary term, or None
Boundary = Callable[[mi.Scene, mi.Sensor, int, int], "mi.TensorXf | None"]


def vertex_terms(*terms: VertexTerm | None) -> VertexTerm | None:
    """The sum of several vertex terms (``None`` entries skipped; ``None`` if all are)."""
    terms = [t for t in terms if t is not None]
    if len(terms) <= 1:
        return terms[0] if terms else None

    def total(scene, si, bsdf, β, depth, rng, active) -> mi.Spectrum:
        out = terms[0](scene, si, bsdf, β, depth, rng, active)
        for term in terms[1:]:
            out += term(scene, si, bsdf, β, depth, rng, active)
        return out

    return total


@dataclass
class Terms:
    """What one derivative render adds to the shared loop (built per render, never stored).

    ``warp``: reparameterization of BSDF and shadow rays (``pathdiff_reparam``);
    ``vertex``: secondary boundary term at each replay vertex (``pathdiff_edge``, ``psdr``);
    ``boundary``: images estimated outside the loop (primary edges, path-space segments),
    called as ``b(scene, sensor, seed, spp)``.
    """

    warp: Warp | None = None
    vertex: VertexTerm | None = None
    boundary: list[Boundary] = field(default_factory=list)

    def boundary_image(
        self, scene: mi.Scene, sensor: mi.Sensor, seed: int, spp: int
    ) -> mi.TensorXf | None:
        """Sum of the boundary images (attached, zero-valued), ``None`` if there are none."""
        images = [b for b in (f(scene, sensor, seed, spp) for f in self.boundary) if b is not None]
        return sum(images[1:], images[0]) if images else None
