"""Secondary boundary term by edge sampling at shading points (Li et al. 2018), a part the
boundary estimators compose (``pathdiff_edge`` at every vertex, ``pathdiff_psdr`` beyond its
path-space depths).

At a path vertex ``p`` of the replay, the direction integral of ``f_s L_i`` jumps across the
directions of visibility edges. An edge ``(v0, v1)`` is picked ∝ length (``pmf``), a point
``y = v0 + t(v1 − v0)``, ``ω = (y − p)/|y − p|`` and ``m = (v0 − p) × (v1 − p)``; the term is

.. math:: β f_s(ω) (L^+ − L^-) \\frac{∂(ω·m)}{|m|} \\frac{|dω/dt|}{\\mathrm{pmf}}, \\qquad
          |dω/dt| = \\frac{|(I − ωω^T)(v_1 − v_0)|}{|y − p|}

with ``L±`` the incident radiance along ``ω ± ε m/|m|`` (:func:`side_rays`; shadows of moving
occluders, occlusion of indirect light). Edges of moving meshes move; with ``static_edges``,
at vertices on a moving mesh (a moving receiver, or any camera hit when the camera moves)
the static edges move relative to ``p`` too: ``p`` is attached, so ``∂(ω·m)`` includes the
vertex's own motion. That part of the velocity is not the whole story for the emission at
the side rays' first hits: NEE holds its sample fixed on the emitter; :func:`nee_share`
removes the difference. Option: ``secondary`` (default true). Limits: shadows of delta
lights (point, spot) have no directions to sample here (see :mod:`.shadows`).
"""

from __future__ import annotations

import drjit as dr
import mitsuba as mi

from .edges import EdgeSet, StaticEdges
from .sampling import mis_weight

#: angular offset (radians) of the two side rays on either side of an edge direction
EPS_ANGLE = 1e-4


def side_rays(
    si: mi.SurfaceInteraction3f, ω: mi.Vector3f, y: mi.Point3f, n_hat: mi.Vector3f
) -> list[mi.Ray3f]:
    """The rays from ``si`` through ``y ± δ n_hat`` (``δ = ε |y − si.p|``): just on the "+" and
    the "−" side of an edge through ``y``. Aiming at points, not directions, keeps the ray
    origin's offset off the surface from cancelling ``δ``."""
    δ = EPS_ANGLE * dr.norm(y - si.p)
    rays = []
    for sign in (1, -1):
        ray = si.spawn_ray(ω)
        ray.d = dr.normalize(y + sign * δ * n_hat - ray.o)
        rays.append(ray)
    return rays


def nee_share(
    scene: mi.Scene,
    si: mi.SurfaceInteraction3f,
    bsdf: mi.BSDF,
    ray: mi.Ray3f,
    r_e: mi.Float,
    active: mi.Bool,
) -> mi.Spectrum:
    """``w_em (r_e / r_L) Le`` of the first hit along ``ray`` (detached): the share of a
    boundary's jump in emission that does not follow the vertex's own motion.

    NEE holds its sample fixed on the emitter (area measure) and gets MIS weight ``w_em``.
    When the vertex ``p`` moves by ``ṗ``, a boundary through an edge at distance ``r_e`` moves
    on the sphere of directions at ``n_hat·ṗ / r_e``, but across a fixed emitter point at
    distance ``r_L`` only at ``n_hat·ṗ (1/r_e − 1/r_L)``: NEE's share of the jump ``Le`` is
    therefore counted with the factor ``1 − r_e/r_L`` for the part of the velocity due to
    ``ṗ``. On an emitter's own outline ``r_L = r_e`` (only the BSDF-sampled share jumps); an
    infinite emitter has ``r_L = ∞`` (no correction)."""
    hit = scene.ray_intersect(ray, active)
    valid = active & hit.is_valid()
    ds = mi.DirectionSample3f(scene, si=hit, ref=si)
    Le = ds.emitter.eval(hit, valid)
    em_pdf = scene.pdf_emitter_direction(si, ds, valid)
    bsdf_pdf = bsdf.pdf(mi.BSDFContext(), si, si.to_local(ray.d), valid)
    nee = mi.has_flag(bsdf.flags(), mi.BSDFFlags.Smooth)
    w_em = dr.select(nee, mis_weight(em_pdf, bsdf_pdf), 0)
    return dr.select(valid, w_em * (r_e / hit.t) * Le, 0)


class SecondaryEdges:
    """The vertex term: :meth:`term` binds it to one render's :class:`EdgeSet` and to the
    integrator ``loop`` whose primal ``sample`` estimates the incident radiance ``L±``."""

    def __init__(self, props: mi.Properties):
        self.enabled = props.get("secondary", True)

    def options(self) -> dict:
        return {"secondary": self.enabled}

    def term(self, loop, edges: EdgeSet, min_depth: int = 0):
        """The vertex term of one render (``None`` if nothing moves), applied at path depths
        ``≥ min_depth``."""
        if not self.enabled or not (edges.moving or (edges.camera and edges.static)):
            return None

        def vertex_term(scene, si, bsdf, β, depth, rng, active) -> mi.Spectrum:
            active = active & (depth >= min_depth) if min_depth else active
            return self._term(loop, scene, edges, si, bsdf, β, depth, rng, active)

        return vertex_term

    def _term(self, loop, scene, edges, si, bsdf, β, depth, rng, active) -> mi.Spectrum:
        total = mi.Spectrum(0)
        receiver = active
        if edges.static:  # static edges move relative to a moving receiver or camera hit
            receiver = active & (edges.on_moving(si) | (edges.camera & (depth == 0)))
        for table, distr in edges.moving + edges.static:
            lanes = receiver if isinstance(table, StaticEdges) else active
            with dr.suspend_grad():
                weight, weight_nee, ω, idx, ok = self._sample(
                    loop, scene, si, bsdf, β, depth, rng, table, distr, lanes
                )
            g = table.geometry(idx, ok)
            α = dr.dot(ω, dr.cross(g.v0 - si.p, g.v1 - si.p))
            # the part of ∂α due to the vertex's own motion
            α_p = dr.dot(ω, dr.cross(dr.detach(g.v0) - si.p, dr.detach(g.v1) - si.p))
            term = weight * (α - dr.detach(α)) - weight_nee * (α_p - dr.detach(α_p))
            total += dr.select(ok, term, 0)
        return total

    def _sample(self, loop, scene, si, bsdf, β, depth, rng, table, distr, active):
        """Detached part of one edge sample: weight, weight of the NEE share (see
        :func:`nee_share`), direction, edge, validity."""
        p = si.p
        idx, _, pmf = distr.sample_reuse_pmf(rng.next_1d(active))
        t = rng.next_1d(active)
        g = table.geometry(idx, active)
        y = dr.lerp(g.v0, g.v1, t)
        dist = dr.norm(y - p)
        ω = (y - p) / dist
        m = dr.cross(g.v0 - p, g.v1 - p)
        m_len = dr.norm(m)
        own = table.adjacent(idx, si, active)
        ok = active & g.candidate(p) & ~own & (m_len > 0) & (pmf > 0)
        budget = mi.UInt32(loop.max_depth) - depth - 1
        L, S = [], []
        for ray, r in zip(side_rays(si, ω, y, m / m_len), (rng.copy(), rng)):
            Li, _, _, _ = loop.sample(
                dr.ADMode.Primal, scene, r, ray, active=ok, max_depth=budget, camera=False
            )
            L.append(Li)
            S.append(nee_share(scene, si, bsdf, ray, dist, ok))
        f = bsdf.eval(mi.BSDFContext(), si, si.to_local(ω), ok)
        e = g.v1 - g.v0
        dω_dt = dr.norm(e - ω * dr.dot(ω, e)) / dist
        # pmf is NaN when no edge of the table can be seen: select, never multiply
        w = dr.select(ok, β * f * dω_dt / (pmf * m_len), 0)
        return w * (L[0] - L[1]), w * (S[0] - S[1]), ω, idx, ok
