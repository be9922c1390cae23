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
vertex's own motion. That part of the velocity is not the whole story for the radiance from
the side rays' first hits, which the replay holds fixed in space while ``p`` moves:
:func:`fixed_share` removes the difference.

**Resampled edge picks.** Picked ∝ length alone, most samples land on edges that cannot be a
boundary as seen from ``p`` (on a closed mesh only its silhouette from ``p`` is) or that lie
outside a glossy lobe. ``edge_candidates = K`` draws ``K`` candidates ``(e_j, t_j)`` ∝ length
and keeps one ∝ ``w_j = p̂_j / pmf_j`` (resampled importance sampling, Talbot et al. 2005;
streamed, one candidate held at a time), with the cheap target
``p̂ = max_c f_s(ω) |dω/dt| / |y − p|`` (``|cos θ|`` for ``f_s`` where the BSDF has no glossy
lobe: no BSDF call per candidate there), 0 on edges that are no boundary from ``p`` and on
the vertex's own faces, where the term is 0 anyway. The kept sample is weighted
``(Σ_j w_j / K) / p̂`` in place of ``1/pmf``: unbiased, because ``p̂ > 0`` wherever the term
is not 0; the side rays (the expensive part) are traced once. ``K = 1`` is the plain pick.

Options: ``secondary`` (default true), ``edge_candidates`` (default 8). Limits: shadows of
delta lights (point, spot) have no directions to sample here (see :mod:`.shadows`).
"""

from __future__ import annotations

import drjit as dr
import mitsuba as mi

from .edges import EdgeGeometry, EdgeSet, StaticEdges
from .sampling import RNGSampler

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


def fixed_share(scene: mi.Scene, ray: mi.Ray3f, r_e: mi.Float, active: mi.Bool) -> mi.Float:
    """``r_e / r`` for the first hit of ``ray`` at distance ``r`` (0 if it leaves the scene):
    the factor of a side ray's radiance in the part of the boundary's motion that is due to
    the vertex's own motion.

    The replay holds the vertex after a moving vertex ``p`` fixed in space (module docstring
    of :mod:`.base`; NEE likewise holds its emitter sample). When ``p`` moves by ``ṗ``, the
    boundary through an edge at distance ``r_e`` moves on the sphere of directions at
    ``n_hat·ṗ / r_e``, but across a fixed point at distance ``r`` only at
    ``n_hat·ṗ (1/r_e − 1/r)``: the radiance arriving from that point counts with the factor
    ``1 − r_e/r`` for that part of the velocity. Background (an infinite emitter) is a fixed
    direction: no correction."""
    hit = scene.ray_intersect(ray, mi.RayFlags.Minimal, False, active)
    return dr.select(active & hit.is_valid(), r_e / hit.t, 0)


class SecondaryEdges:
    """The vertex term: :meth:`term` binds it to one render's :class:`EdgeSet` and to the
    integrator ``loop`` whose primal ``sample`` estimates the incident radiance ``L±``."""

    def __init__(self, props: mi.Properties):
        self.enabled = props.get("secondary", True)
        k = props.get("edge_candidates", 8)
        if k != int(k) or k < 1:
            raise ValueError(f"edge_candidates must be an integer >= 1, got {k}")
        self.candidates = int(k)

    def options(self) -> dict:
        return {"secondary": self.enabled, "edge_candidates": self.candidates}

    def term(self, loop, edges: EdgeSet, min_depth: int = 0, glossy: bool = False):
        """The vertex term of one render (``None`` if nothing moves), applied at path depths
        ``≥ min_depth`` and, with ``glossy``, also below at vertices whose BSDF has a glossy
        lobe (``pathdiff_psdr`` leaves those to this term)."""
        if not self.enabled or not (edges.moving or (edges.camera and edges.static)):
            return None

        # every edge's detached geometry and flags, once per render: a candidate then costs
        # five gathers instead of a table's full (attached) geometry
        edge_arrays = {}
        if self.candidates > 1:
            edge_arrays = {id(t): _all_edges(t) for t, _ in edges.moving + edges.static}

        def vertex_term(scene, si, bsdf, β, depth, rng, active) -> mi.Spectrum:
            if min_depth:
                here = depth >= min_depth
                if glossy:
                    here |= mi.has_flag(bsdf.flags(), mi.BSDFFlags.Glossy)
                active = active & here
            return self._term(loop, scene, edges, edge_arrays, si, bsdf, β, depth, rng, active)

        return vertex_term

    def _term(self, loop, scene, edges, edge_arrays, si, bsdf, β, depth, rng, active):
        total = mi.Spectrum(0)
        receiver = active
        if edges.static:  # static edges move relative to a moving receiver or camera hit
            receiver = active & (edges.on_moving(si) | (edges.camera & (depth == 0)))
        for table, distr in edges.moving + edges.static:
            lanes = receiver if isinstance(table, StaticEdges) else active
            with dr.suspend_grad():
                weight, weight_fixed, ω, idx, ok = self._sample(
                    loop, scene, si, bsdf, β, depth, rng, table, distr, lanes,
                    edge_arrays.get(id(table)),
                )  # fmt: skip
            g = table.geometry(idx, ok)
            α = dr.dot(ω, dr.cross(g.v0 - si.p, g.v1 - si.p))
            # the part of ∂α due to the vertex's own motion
            α_p = dr.dot(ω, dr.cross(dr.detach(g.v0) - si.p, dr.detach(g.v1) - si.p))
            term = weight * (α - dr.detach(α)) - weight_fixed * (α_p - dr.detach(α_p))
            total += dr.select(ok, term, 0)
        return total

    def _sample(self, loop, scene, si, bsdf, β, depth, rng, table, distr, active, edge_arrays):
        """Detached part of one edge sample: weight, weight of the share that does not follow
        the vertex's own motion (:func:`fixed_share`), direction, edge, validity.
        ``edge_arrays``: :func:`_all_edges` of ``table`` (``None`` for the plain pick)."""
        p = si.p
        ctx = mi.BSDFContext()
        # the BSDF's lobe enters the target only where it is glossy (elsewhere |cos θ|: no
        # BSDF call per candidate)
        glossy = mi.has_flag(bsdf.flags(), mi.BSDFFlags.Glossy)
        # streamed resampling over K candidates (module docstring): the kept one and Σ w_j
        idx, t, p_hat, w_sum = mi.UInt32(0), mi.Float(0), mi.Float(0), mi.Float(0)
        for k in range(self.candidates):
            idx_k, _, pmf_k = distr.sample_reuse_pmf(rng.next_1d(active))
            t_k = rng.next_1d(active)
            g = table.geometry(idx_k, active) if edge_arrays is None else edge_arrays(idx_k, active)
            y = dr.lerp(g.v0, g.v1, t_k)
            ω_k = dr.normalize(y - p)
            wo = si.to_local(ω_k)
            # pmf is NaN when no edge of the table can be seen: select, never divide
            seen = active & (pmf_k > 0) & g.candidate(p) & ~table.adjacent(idx_k, si, active)
            lobe = dr.abs(mi.Frame3f.cos_theta(wo))
            if self.candidates > 1:
                lobe = dr.select(glossy, dr.max(bsdf.eval(ctx, si, wo, seen & glossy)), lobe)
            p_hat_k = dr.select(seen, lobe * _dω_dt(g, y, p, ω_k) / dr.norm(y - p), 0)
            w_k = dr.select(p_hat_k > 0, p_hat_k / pmf_k, 0)
            w_sum += w_k
            take = w_k > 0
            if k > 0:
                take &= rng.next_1d(active) * w_sum < w_k
            idx, t = dr.select(take, idx_k, idx), dr.select(take, t_k, t)
            p_hat = dr.select(take, p_hat_k, p_hat)
        g = table.geometry(idx, active)
        y = dr.lerp(g.v0, g.v1, t)
        dist = dr.norm(y - p)
        ω = (y - p) / dist
        m = dr.cross(g.v0 - p, g.v1 - p)
        m_len = dr.norm(m)
        ok = active & (p_hat > 0) & (m_len > 0)
        budget = mi.UInt32(loop.max_depth) - depth - 1

        def sides(pcg):
            """``L⁺ − L⁻`` and its fixed share (the side rays: the expensive part), with the
            same random numbers on both sides; returns the generator after the "−" side."""
            plus, minus = RNGSampler(mi.PCG32(pcg)), RNGSampler(pcg)
            L, S = [], []
            for ray, r in zip(side_rays(si, ω, y, m / m_len), (plus, minus)):
                Li, _, _, _ = loop.sample(
                    dr.ADMode.Primal, scene, r, ray, active=ok, max_depth=budget, camera=False
                )
                L.append(Li)
                S.append(fixed_share(scene, ray, dist, ok) * Li)
            return minus.rng, L[0] - L[1], S[0] - S[1]

        # a symbolic branch: packets without a sample (nothing is a boundary from their
        # vertices, e.g. on a lone convex mesh) skip the side rays altogether
        rng.rng, ΔL, ΔS = dr.if_stmt(
            (rng.rng,), ok, sides, lambda pcg: (pcg, mi.Spectrum(0), mi.Spectrum(0))
        )
        f = bsdf.eval(ctx, si, si.to_local(ω), ok)
        # 1/pmf of the plain pick becomes (Σ w_j / K) / p̂ (resampling)
        w = dr.select(ok, β * f * _dω_dt(g, y, p, ω) * w_sum / (self.candidates * p_hat * m_len), 0)
        return w * ΔL, w * ΔS, ω, idx, ok


def _all_edges(table):
    """``gather(idx, active)`` of the detached geometry of the edges ``idx`` of ``table``, from
    arrays over all its edges evaluated now (once per render)."""
    with dr.suspend_grad():
        g = table.geometry()
        v0, v1, nA, nB = (dr.ravel(dr.detach(x)) for x in (g.v0, g.v1, g.nA, g.nB))
        flags = g.always | g.crease  # candidates from everywhere
        keep = mi.Bool(g.keep) if isinstance(g.keep, bool) else g.keep
        dr.eval(v0, v1, nA, nB, flags, keep)

    def gather(idx: mi.UInt32, active: mi.Bool) -> EdgeGeometry:
        return EdgeGeometry(
            v0=dr.gather(mi.Point3f, v0, idx, active),
            v1=dr.gather(mi.Point3f, v1, idx, active),
            nA=dr.gather(mi.Vector3f, nA, idx, active),
            nB=dr.gather(mi.Vector3f, nB, idx, active),
            always=dr.gather(mi.Bool, flags, idx, active),
            smooth=True,
            keep=keep if dr.width(keep) == 1 else dr.gather(mi.Bool, keep, idx, active),
        )

    return gather


def _dω_dt(g, y: mi.Point3f, p: mi.Point3f, ω: mi.Vector3f) -> mi.Float:
    """``|dω/dt|`` of the direction from ``p`` to the edge point ``y = v0 + t(v1 − v0)``."""
    e = g.v1 - g.v0
    return dr.norm(e - ω * dr.dot(ω, e)) / dr.norm(y - p)
