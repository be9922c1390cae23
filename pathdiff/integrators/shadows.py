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
``delta_shadows`` (default true). Limits: the shadow must be seen directly by the camera
(shadows seen in reflections or lighting other surfaces indirectly are missed: a warning
says so when the path is deeper than one bounce); moving lights are not differentiated.
"""

from __future__ import annotations

import warnings

import drjit as dr
import mitsuba as mi

from .edges import EdgeSet, StaticEdges
from .primary import EPS_PIXEL, PrimaryEdges
from .sampling import RNGSampler

#: stream (PCG32 ``initseq``) of the shadow samples, apart from the other boundary samples
STREAM = 0x5851F42D4C957F2D
#: step (relative to the distance from the camera) of the central difference giving the
#: image-plane tangent of the shadow curve
TANGENT_STEP = 1e-4


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
        if not self.enabled or not lights or not edges.moving:
            return None
        if loop.max_depth > 2:
            names = ", ".join(repr(e.id() or e.class_name()) for e in lights)
            warnings.warn(
                f"{loop.plugin}: the shadows that delta lights ({names}) cast of moving meshes "
                "are differentiated where the camera sees them, not in reflections or in the "
                "light they reflect onwards (max_depth > 2)",
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
        with dr.suspend_grad():
            idx, _, pmf = distr.sample_reuse_pmf(rng.next_1d())
            t = rng.next_1d()
            g = table.geometry(idx)
            e = g.v1 - g.v0
            y = dr.lerp(g.v0, g.v1, t)
            it = dr.zeros(mi.Interaction3f, dr.width(y))
            it.p = y
            ds, spec = light.sample_direction(it, mi.Point2f(0.5), pmf > 0)
            ok = (pmf > 0) & (ds.pdf > 0) & dr.any(spec != 0) & g.candidate(ds.p)
            # y must see the light, and the ray continues beyond y to the receiver x
            offset = (1 + dr.max(dr.abs(y))) * mi.math.RayEpsilon * 10
            to_light = mi.Ray3f(y + offset * ds.d, ds.d, ds.dist * (1 - 1e-4) - offset)
            ok &= ~scene.ray_test(to_light, ok)
            si = scene.ray_intersect(mi.Ray3f(y - offset * ds.d, -ds.d), ok)
            ok &= si.is_valid() & ~table.adjacent(idx, si, ok)
            if isinstance(table, StaticEdges):
                ok &= edges.on_moving(si)
            u = -ds.d  # along the light's rays
            n = si.n
            n_u = dr.dot(n, u)
            ok &= dr.abs(n_u) > 1e-6
            finite = not mi.has_flag(light.flags(), mi.EmitterFlags.DeltaDirection)
            s = si.t / ds.dist + 1 if finite else 1  # |x − l| / |y − l|
            dx_dt = s * (e - u * dr.dot(n, e) / n_u)
            x = si.p
            a, front = project(x)
            c = sensor.world_transform() @ mi.Point3f(0)
            h = TANGENT_STEP * dr.norm(x - c) / dr.maximum(dr.norm(dx_dt), 1e-12)
            p_plus, _ = project(x + h * dx_dt)
            p_minus, _ = project(x - h * dx_dt)
            tangent = (p_plus - p_minus) / (2 * h)
            length = dr.norm(tangent)
            ok &= front & (length > 0)
            n_img = mi.Vector2f(-tangent.y, tangent.x) / length
            inside = ok & (a.x >= 0) & (a.y >= 0) & (a.x < W) & (a.y < H)
            radiance = primary.camera_radiance
            L_plus = radiance(loop, scene, sensor, a + EPS_PIXEL * n_img, rng.copy(), inside)
            L_minus = radiance(loop, scene, sensor, a - EPS_PIXEL * n_img, rng, inside)
            weight = dr.select(inside, (L_minus - L_plus) * length / (pmf * N), 0)
            n_img = dr.select(inside, n_img, 0)  # no NaN on rejected lanes, even times 0
        x_att = self._attached_point(scene, sensor, light, table, idx, t, si, inside)
        a_att, _ = project(x_att)
        Vn = dr.select(inside, dr.dot(n_img, a_att - dr.detach(a_att)), 0)
        primary.splat(film, image, a, weight * Vn, inside)

    def _attached_point(self, scene, sensor, light, table, idx, t, si, active) -> mi.Point3f:
        """The shadow-curve point ``x(t)`` with derivatives: the attached edge point, cast
        from the light onto the receiver's plane as the camera sees it (ray-attached)."""
        g = table.geometry(idx, active)
        y = dr.lerp(g.v0, g.v1, t)
        with dr.suspend_grad():
            c = sensor.world_transform() @ mi.Point3f(0)
            ray = mi.Ray3f(c, dr.normalize(si.p - c))
        hit = scene.ray_intersect(ray, mi.RayFlags.All, False, active)
        same = hit.is_valid() & (hit.shape == si.shape) & (hit.prim_index == si.prim_index)
        plane_p = dr.select(same, hit.p, dr.detach(si.p))
        plane_n = dr.select(same, hit.n, dr.detach(si.n))
        it = dr.zeros(mi.Interaction3f, dr.width(y))
        it.p = y
        ds, _ = light.sample_direction(it, mi.Point2f(0.5), active)
        u = -ds.d
        # rejected lanes: finite partial derivatives (a NaN times a zero adjoint is a NaN)
        n_u = dr.dot(plane_n, u)
        n_u = dr.select(active & (dr.abs(dr.detach(n_u)) > 1e-8), n_u, 1)
        λ = dr.select(active, dr.dot(plane_n, plane_p - y) / n_u, 0)
        return y + λ * u
