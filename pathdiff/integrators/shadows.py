"""Shadows of delta lights seen by the camera: a boundary part composed by ``pathdiff_edge``
and ``pathdiff_psdr``.

A delta light (point, spot, projector: a position ``l``; directional: a direction) lights a
receiver point ``x`` only if the segment ``x → l`` is free, so the pixel integral jumps across
the *shadow curve*: the occluder's silhouette edges as seen from the light, cast onto the
receivers. Neither the image-plane edge sampler (edges of meshes) nor shading-point edge
sampling (the light is a single direction there) sees that curve; it is sampled here as a
boundary segment from the light through an edge point:

1. an edge ``(v0, v1)`` ∝ length (``pmf``), ``y = v0 + t (v1 − v0)``, ``t ~ U[0, 1]``; the edge
   must be a silhouette (or crease, open edge) seen from the light and ``y`` must see the
   light;
2. ``x``: the first hit beyond ``y`` on the ray from the light through ``y``;
3. the curve through ``x`` on the receiver's tangent plane, ``x(t) = l + s(t) (y(t) − l)``
   with ``s = n·(x − l) / n·(y − l)`` (directional light: ``x = y + λ u``, ``u`` the light's
   direction), has the tangent ``dx/dt = s (e − u (n·e)/(n·u))`` (``u = y − l``,
   ``e = v1 − v0``); projected to the film it is the image curve ``x_img(t)`` with tangent
   ``dx_img/dt`` and unit normal ``n_img``;
4. the boundary term ``∫ (L⁻ − L⁺) V_n dℓ`` of the pixel integral is estimated by
   ``(L⁻ − L⁺) |dx_img/dt| V_n / (pmf N)`` with ``L± = L(x_img ± ε n_img)`` (camera rays, full
   path tracing, shared random numbers, as for mesh edges) and
   ``V_n = n_img · ∂x_img``, where ``x_img`` is the projection of the attached ``x(t)``: the
   edge point ``y`` and the receiver's plane (the ray-attached hit of the camera ray, so a
   moving receiver moves the shadow on it) carry the derivatives; splatted through the
   film's filter.

Edges of moving meshes are sampled, and with ``static_edges`` also the static edges whose
shadow falls on a moving mesh (a moving receiver under a static occluder). Option
``delta_shadows`` (default true).

Shadows seen from path vertices (in glossy reflections, and the light a shadowed region
reflects onwards) are a vertex term of the replay (:meth:`DeltaShadows.term`): at a vertex
``p`` the direction integral jumps across the directions ``ω = (x − p)/|x − p|`` of the
shadow curve; with the same cast point ``x`` (visible from ``p``), the term is
``β f_s(p, ω) (L⁻ − L⁺) |dω/dt| V_n / pmf`` with ``|dω/dt| = |(I − ωωᵀ) dx/dt| / |x − p|``,
``L±`` the light's direct radiance reflected at ``x`` towards ``p`` times the light's
visibility from the points beside the curve, and ``V_n`` the motion of ``ω`` (attached
``x``, receiver plane ray-attached from the attached ``p``).

Limits: shadows seen through ideal specular surfaces are missed (warned); moving lights are
not differentiated.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import drjit as dr
import mitsuba as mi

from .edges import EdgeSet, StaticEdges
from .primary import EPS_PIXEL, PrimaryEdges
from .sampling import RNGSampler, face_viewer

#: stream (PCG32 ``initseq``) of the shadow samples, apart from the other boundary samples
STREAM = 0x5851F42D4C957F2D
#: step (relative to the distance from the camera) of the central difference giving the
#: image-plane tangent of the shadow curve
TANGENT_STEP = 1e-4
#: offset of the two points beside a shadow curve, relative to the viewer's distance: the
#: light's visibility from points closer to the curve is below ray-intersection precision
#: (at 1e-4 the shadow went unseen, measured)
EPS_SIDE = 1e-3


def delta_lights(scene: mi.Scene) -> list[mi.Emitter]:
    """The scene's emitters with a delta position or direction (point, spot, projector,
    directional)."""
    flags = mi.EmitterFlags.DeltaPosition | mi.EmitterFlags.DeltaDirection
    return [e for e in scene.emitters() if (e.flags() & flags) != 0]


class DeltaShadows:
    """The camera-seen shadow curves of delta lights (module docstring)."""

    def __init__(self, props: mi.Properties):
        self.enabled = props.get("delta_shadows", True)

    def options(self) -> dict:
        return {"delta_shadows": self.enabled}

    def image(
        self,
        scene: mi.Scene,
        sensor: mi.Sensor,
        seed: int,
        spp: int,
        edges: EdgeSet,
        loop,
        primary: PrimaryEdges,
    ) -> mi.TensorXf | None:
        """Attached zero-valued image whose derivative is the shadow-curve boundary term."""
        lights = delta_lights(scene)
        tables = edges.moving + edges.static
        if not self.enabled or not lights or not (edges.moving or edges.camera):
            return None
        projectors = [e for e in lights if e.class_name() == "Projector"]
        if projectors:
            names = ", ".join(repr(e.id() or e.class_name()) for e in projectors)
            warnings.warn(
                f"{loop.plugin}: projector {names}: the border of its frustum and the edges of "
                "its texels on moving surfaces are not differentiated (only its shadows)",
                stacklevel=4,
            )
        specular = [s for s in scene.shapes() if _has_delta_lobe(s)]
        if specular:
            names = ", ".join(repr(e.id() or e.class_name()) for e in lights)
            warnings.warn(
                f"{loop.plugin}: the shadows that delta lights ({names}) cast of moving meshes "
                "are missed where they are seen through ideal specular surfaces "
                f"({', '.join(repr(s.id() or s.class_name()) for s in specular)})",
                stacklevel=4,
            )
        film = sensor.film()
        W, H = film.crop_size()
        N = W * H * primary.samples_per_pixel(spp, sensor)
        project = primary.projector(sensor)
        image = dr.zeros(mi.Float, W * H * 3)
        for k, light in enumerate(lights):
            for i, (table, distr) in enumerate(tables):
                salt = seed << 12 | k << 6 | i
                rng = RNGSampler(mi.PCG32(N, dr.opaque(mi.UInt64, salt), mi.UInt64(STREAM)))
                args = (scene, sensor, light, edges, table, distr, rng, N, project, loop, primary)
                self._splat_table(image, *args)
        return mi.TensorXf(image, shape=(H, W, 3))

    def _splat_table(
        self, image, scene, sensor, light, edges, table, distr, rng, N, project, loop, primary
    ) -> None:
        """``N`` shadow samples on the edges of ``table`` cast by ``light``."""
        film = sensor.film()
        W, H = film.crop_size()
        c = sensor.world_transform() @ mi.Point3f(0)
        with dr.suspend_grad():
            sp = self._cast(scene, light, edges, table, distr, rng, True, batch=True)
            x = sp.si.p
            a, front = project(x)
            h = TANGENT_STEP * dr.norm(x - c) / dr.maximum(dr.norm(sp.dx_dt), 1e-12)
            p_plus, _ = project(x + h * sp.dx_dt)
            p_minus, _ = project(x - h * sp.dx_dt)
            tangent = (p_plus - p_minus) / (2 * h)
            length = dr.norm(tangent)
            n_img = mi.Vector2f(-tangent.y, tangent.x) / length
            inside = sp.ok & front & (length > 0)
            inside &= (a.x >= 0) & (a.y >= 0) & (a.x < W) & (a.y < H)
            # the camera rays beside the curve land EPS_SIDE |x − c| from it on the receiver
            # (at least): closer, the light's visibility from them is below ray precision
            px_per_unit = length / dr.maximum(dr.norm(sp.dx_dt), 1e-12)
            ε = dr.maximum(EPS_PIXEL, EPS_SIDE * dr.norm(x - c) * px_per_unit)
            radiance = primary.camera_radiance
            L_plus = radiance(loop, scene, sensor, a + ε * n_img, rng.copy(), inside)
            L_minus = radiance(loop, scene, sensor, a - ε * n_img, rng, inside)
            weight = dr.select(inside, (L_minus - L_plus) * length / (sp.pmf * N), 0)
            n_img = dr.select(inside, n_img, 0)  # no NaN on rejected lanes, even times 0
        x_att = self._attached_point(scene, light, table, sp, mi.Point3f(c), inside)
        a_att, _ = project(x_att)
        Vn = dr.select(inside, dr.dot(n_img, a_att - dr.detach(a_att)), 0)
        primary.splat(film, image, a, weight * Vn, inside)

    def _cast(
        self, scene, light, edges, table, distr, rng, active, batch: bool = False
    ) -> ShadowPoint:
        """Sample an edge point ``y`` and cast it from ``light`` onto the receiver ``x``
        (detached): the shadow-curve point and its tangent ``dx/dt``. ``batch``: the lanes are
        independent samples of one image term, the edge picks stratified over them
        (:meth:`.RNGSampler.next_1d_sorted`: coherent rays)."""
        u = rng.next_1d_sorted() if batch else rng.next_1d(active)
        idx, _, pmf = distr.sample_reuse_pmf(u)
        t = rng.next_1d(active)
        g = table.geometry(idx, active)
        e = g.v1 - g.v0
        y = dr.lerp(g.v0, g.v1, t)
        it = dr.zeros(mi.Interaction3f, dr.width(y))
        it.p = y
        ok = mi.Bool(active) & (pmf > 0)
        ds, spec = light.sample_direction(it, mi.Point2f(0.5), ok)
        ok &= (ds.pdf > 0) & dr.any(spec != 0) & g.candidate(ds.p)
        # y must see the light, and the ray continues beyond y to the receiver x
        offset = (1 + dr.max(dr.abs(y))) * mi.math.RayEpsilon * 10
        to_light = mi.Ray3f(y + offset * ds.d, ds.d, ds.dist * (1 - 1e-4) - offset)
        ok &= ~scene.ray_test(to_light, ok)
        si = scene.ray_intersect(mi.Ray3f(y - offset * ds.d, -ds.d), ok)
        ok &= si.is_valid() & ~table.adjacent(idx, si, ok)
        if isinstance(table, StaticEdges):  # a static shadow moves on a moving receiver,
            ok &= edges.on_moving(si) | edges.camera  # or in the image of a moving camera
        u = -ds.d  # along the light's rays
        n_u = dr.dot(si.n, u)
        ok &= dr.abs(n_u) > 1e-6
        finite = not mi.has_flag(light.flags(), mi.EmitterFlags.DeltaDirection)
        s = si.t / ds.dist + 1 if finite else 1  # |x − l| / |y − l|
        dx_dt = s * (e - u * dr.dot(si.n, e) / n_u)
        return ShadowPoint(idx, pmf, t, si, dx_dt, ok)

    def _attached_point(self, scene, light, table, sp: ShadowPoint, origin, active):
        """The shadow-curve point ``x(t)`` with derivatives: the attached edge point, cast
        from the light onto the receiver's plane as seen from ``origin`` (ray-attached: the
        camera centre, or an attached path vertex)."""
        g = table.geometry(sp.idx, active)
        y = dr.lerp(g.v0, g.v1, sp.t)
        d = dr.normalize(dr.detach(sp.si.p) - dr.detach(origin))
        hit = scene.ray_intersect(mi.Ray3f(origin, d), mi.RayFlags.All, False, active)
        same = hit.is_valid() & (hit.shape == sp.si.shape) & (hit.prim_index == sp.si.prim_index)
        plane_p = dr.select(same, hit.p, dr.detach(sp.si.p))
        plane_n = dr.select(same, hit.n, dr.detach(sp.si.n))
        it = dr.zeros(mi.Interaction3f, dr.width(y))
        it.p = y
        ds, _ = light.sample_direction(it, mi.Point2f(0.5), active)
        u = -ds.d
        # rejected lanes: finite partial derivatives (a NaN times a zero adjoint is a NaN)
        n_u = dr.dot(plane_n, u)
        n_u = dr.select(active & (dr.abs(dr.detach(n_u)) > 1e-8), n_u, 1)
        λ = dr.select(active, dr.dot(plane_n, plane_p - y) / n_u, 0)
        return y + λ * u

    # ---- Shadows seen from path vertices (the replay's vertex term) ---------------------------
    def term(self, loop, scene: mi.Scene, edges: EdgeSet):
        """The vertex term of one render: at a path vertex ``p``, the direction integral jumps
        across the directions of shadow curves; ``None`` if paths are too short to see a
        shadow from a vertex (``max_depth ≤ 2``) or nothing moves."""
        lights = delta_lights(scene)
        if not self.enabled or not lights or not edges.moving or loop.max_depth <= 2:
            return None
        tables = edges.moving + edges.static

        def vertex_term(scene, si, bsdf, β, depth, rng, active) -> mi.Spectrum:
            total = mi.Spectrum(0)
            active = active & (depth + 2 < loop.max_depth)  # x, one bounce on, does NEE
            for light in lights:
                for table, distr in tables:
                    total += self._vertex_sample(
                        loop, scene, edges, light, table, distr, si, bsdf, β, rng, active
                    )
            return total

        return vertex_term

    def _vertex_sample(self, loop, scene, edges, light, table, distr, si, bsdf, β, rng, active):
        """One shadow-curve sample seen from the vertex ``si``: the boundary term
        ``β f_s(ω) (L⁻ − L⁺) |dω/dt| V_n / pmf`` of its direction integral, where ``L±`` is the
        delta light's direct radiance reflected at ``x`` towards ``si`` on either side."""
        with dr.suspend_grad():
            sp = self._cast(scene, light, edges, table, distr, rng, active)
            x, p = sp.si.p, si.p
            dist = dr.norm(x - p)
            ω = (x - p) / dist
            ok = sp.ok & (dist > 0)
            ok &= ~scene.ray_test(si.spawn_ray_to(x - ω * (mi.math.RayEpsilon * dist)), ok)
            # the delta light's radiance reflected at x towards p, on either side of the curve
            si_x = mi.SurfaceInteraction3f(sp.si)
            si_x.wi = si_x.to_local(-ω)
            if loop.bend_normals:
                si_x, _ = face_viewer(si_x, ω)
            m_x = dr.normalize(dr.cross(sp.si.n, sp.dx_dt))  # in the receiver's plane
            it = dr.zeros(mi.Interaction3f, dr.width(x))
            it.p, it.n = x, sp.si.n
            ds, spec = light.sample_direction(it, mi.Point2f(0.5), ok)
            f_x = si_x.bsdf().eval(mi.BSDFContext(), si_x, si_x.to_local(ds.d), ok)
            Le = f_x * spec
            δ = EPS_SIDE * dist
            lit = []
            for sign in (1, -1):
                it_s = mi.Interaction3f(it)
                it_s.p = x + sign * δ * m_x
                ds_s, _ = light.sample_direction(it_s, mi.Point2f(0.5), ok)
                lit.append(~scene.ray_test(it_s.spawn_ray_to(ds_s.p), ok) & (ds_s.pdf > 0))
            ΔV = mi.Float(dr.select(lit[1], 1.0, 0.0)) - dr.select(lit[0], 1.0, 0.0)
            t_ω = (sp.dx_dt - ω * dr.dot(ω, sp.dx_dt)) / dist
            length = dr.norm(t_ω)
            n_ω = dr.normalize(dr.cross(ω, t_ω))
            n_ω = dr.select(dr.dot(n_ω, m_x) < 0, -n_ω, n_ω)  # towards x + δ m_x
            f_p = bsdf.eval(mi.BSDFContext(), si, si.to_local(ω), ok)
            ok &= (length > 0) & (ΔV != 0)
            weight = dr.select(ok, β * f_p * Le * ΔV * length / sp.pmf, 0)
            n_ω = dr.select(ok, n_ω, 0)  # no NaN on rejected lanes, even times 0
        x_att = self._attached_point(scene, light, table, sp, si.p, ok)
        to_x = dr.select(ok, x_att - si.p, ω)
        ω_att = to_x * dr.rsqrt(dr.squared_norm(to_x))
        return dr.select(ok, weight * dr.dot(n_ω, ω_att - dr.detach(ω_att)), 0)


@dataclass
class ShadowPoint:
    """A detached point ``x`` of a shadow curve, cast from edge ``idx`` at parameter ``t``."""

    idx: mi.UInt32
    pmf: mi.Float
    t: mi.Float
    si: mi.SurfaceInteraction3f  # the receiver at x
    dx_dt: mi.Vector3f  # tangent of the curve in the receiver's plane
    ok: mi.Bool


def _has_delta_lobe(shape: mi.Shape) -> bool:
    bsdf = shape.bsdf()
    return bsdf is not None and mi.has_flag(bsdf.flags(), mi.BSDFFlags.Delta)
