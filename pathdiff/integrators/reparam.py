"""``pathdiff_reparam``: interior term with reparameterized (warped) secondary integrals."""

from __future__ import annotations

import warnings
from functools import partial

import drjit as dr
import mitsuba as mi
import numpy as np

from .base import PathLoopIntegrator, Terms
from .edge import camera_moves
from .edges import NONE, EdgeTables, StaticEdges
from .primary import PrimaryEdges
from .sampling import RNGSampler
from .shadows import delta_lights

#: exponent γ of the harmonic kernel ``(D + B)^−γ``
GAMMA = 3.0
#: auxiliary samples with a kernel distance ``D + B`` below this get no weight
MIN_DISTANCE = 1e-4
#: angular width, in vMF widths ``1/sqrt(κ)``, over which the boundary test ``B`` rises to 1
BOUNDARY_WIDTH = 10.0
#: cap on ``κ(1 − cos)``: the kernel is negligible beyond it and ``exp`` must not overflow
MAX_EXPONENT = 15.0


class ReparamIntegrator(PathLoopIntegrator):
    """Interior term after a change of variables that makes visibility edges static
    (Loubet et al. 2019; warp-field form of Bangaru et al. 2020), primary edges sampled.

    **Secondary integrals** (BSDF sampling at every vertex, emitter sampling for NEE). A
    direction ``ω`` sampled with a detached density ``q`` is replaced by
    ``ω' = normalize(ω + V)`` and the integrand by ``f(ω') · (1 + div V) / q(ω)``, where ``V``
    (value 0, derivative the warp velocity) is a kernel-weighted mean of the motion of
    ``M = aux_rays`` auxiliary directions ``ω_i ~ vMF(ω, κ)`` drawn from an independent RNG:

    .. math:: V = \\frac{\\sum_i w_i \\, ∂v_i}{\\sum_i w_i}, \\quad
              \\operatorname{div} V = \\frac{\\sum_i ∇w_i · ∂v_i - V · \\sum_i ∇w_i}{\\sum_i w_i},
              \\quad w_i = \\frac{(D_i + B_i)^{-γ}}{\\mathrm{vMF}(ω_i)},

    with ``v_i = normalize(x_i − o)`` towards the aux ray's hit ``x_i``, followed as a material
    point of its mesh (``∂v_i = 0`` on a miss), ``D_i = exp(κ(1 − ω·ω_i)) − 1``, ``γ = 3`` and
    the boundary test ``B_i = min(1, φ_i sqrt(κ) / 10)``, where ``φ_i`` is the angle (seen from
    the ray origin ``o``) between ``x_i`` and the nearest *discontinuity* edge of its triangle:
    open edges, creases (flat shading, or split vertices whose normals or UVs differ) and
    silhouettes as seen from ``o`` (the classification of :mod:`.edges`, shared with edge
    sampling); ``B = 1`` on a miss. Near an edge the aux rays hitting close to
    it dominate, so ``V`` takes the edge's velocity there and decays smoothly away from it; the
    boundary term is thereby absorbed into the interior term of the warped integral.
    ``∇w_i = γκ e^{κ(1−ω·ω_i)} (D_i + B_i)^{−1} w_i (ω_i − (ω·ω_i) ω)``. Aux directions come in
    antithetic pairs mirrored about ``ω``. The shadow ray of NEE is warped from the attached
    shading point and its visibility is the detached sample's (constant in the warped
    variables, so the warped ray is not traced).

    **Primary visibility** (the pixel integral) is *not* reparameterized: with a box pixel
    filter the warp would drag each pixel's footprint along with the geometry (on a moving
    object ``V`` is the object's own motion, so pixels crossed by creases or silhouettes
    would lose their whole boundary term). Camera rays stay ray-attached as in
    ``pathdiff_prb`` and the image-plane boundary term is edge sampled exactly as in
    ``pathdiff_edge`` (``edge_samples``, ``primary``). Each integral is therefore handled by
    one strategy only.

    Biased but consistent: with finite ``κ`` the warp spreads an edge's motion over a lobe
    of angular radius ~``1/sqrt(κ)`` and with finite ``M`` the ratio ``V`` is biased; the bias
    vanishes as ``κ, M → ∞`` while the variance grows with ``κ`` (docs/estimators/reparam.md).
    Measured at the defaults ``kappa = 1e4``, ``aux_rays = 16`` (rounded up to even): the
    secondary term is 8 ± 3 % low on the shadow scene. Other options: ``edge_samples``,
    ``primary`` (as in ``pathdiff_edge``).

    **A moving camera** moves its first hits: the rays leaving them start at the attached
    hits (re-found along the attached camera ray, :meth:`PathLoopIntegrator._intersect`), so
    their warp sees the static edges move relative to the sliding hit.

    Limits: only meshes whose vertex positions carry derivatives move (analytic shapes and
    instances must be static and are never boundaries in ``B``); emitters must not move (warned);
    shading-point motion is followed within one vertex (NEE rays start at the attached
    vertex) but, unlike ``pathdiff_prb``, not into the next bounce (no moving-vertex factors,
    except from a moving camera's hits; warned); delta lights' shadows are not warped
    (warned); ideal specular chains are not warped; the warp of the two MIS strategies uses
    independent aux rays (the MIS weights are detached, which is unbiased only in expectation
    over the aux rays).
    """

    follows_camera_hits = True

    def __init__(self, props: mi.Properties):
        super().__init__(props)
        self.kappa = props.get("kappa", 1e4)
        self.aux_rays = props.get("aux_rays", 16)
        self.edges = EdgeTables(props.get("crease_rule", ""), static=False)
        self.primary = PrimaryEdges(props)
        self.options.update(**self.primary.options(), kappa=self.kappa, aux_rays=self.aux_rays)

    def terms(self, scene: mi.Scene, sensor: mi.Sensor | None = None) -> Terms:
        """The warp of secondary rays (when meshes move), primary edges in the image."""
        camera = camera_moves(scene, sensor)
        edges = self.edges.edge_set(scene, camera, self.plugin, analytic=False)
        warp = None
        if (edges.meshes or camera) and delta_lights(scene):
            names = ", ".join(repr(e.id() or e.class_name()) for e in delta_lights(scene))
            moving = "moving meshes" if edges.meshes else "meshes, seen by a moving camera,"
            warnings.warn(
                f"pathdiff_reparam: delta lights ({names}) have no area to warp: the shadows "
                f"they cast of {moving} are not differentiated (use pathdiff_edge or "
                "pathdiff_psdr)",
                stacklevel=3,
            )
        if edges.meshes:
            _warn_moving_geometry(edges.meshes)
        if edges.meshes or camera:  # a moving camera moves its hits: warp the rays from them
            shapes = scene.shapes()
            meshes = [s for s in shapes if s.is_mesh()]
            table = self.edges.combined(meshes)
            offset = np.full(len(shapes), NONE, dtype=np.uint32)
            mesh_index = {id(m): k for k, m in enumerate(meshes)}
            for i, shape in enumerate(shapes):
                if id(shape) in mesh_index:
                    offset[i] = table.face_offset[mesh_index[id(shape)]]
            moving = {id(m) for m in edges.meshes}
            warped = [(i, s) for i, s in enumerate(shapes) if id(s) in moving]
            warp = Warp(self.kappa, self.aux_rays, table, mi.UInt32(offset), warped)
        return Terms(warp=warp, boundary=[partial(self.primary.image, edges=edges, loop=self)])


def _warn_moving_geometry(meshes: list[mi.Mesh]) -> None:
    """Say the two limits every scene with moving meshes hits (docstring, "Limits")."""
    lights = [m.id() or m.class_name() for m in meshes if m.emitter() is not None]
    if lights:
        warnings.warn(
            f"pathdiff_reparam: emitter {', '.join(map(repr, lights))} moves: the warp does "
            "not differentiate moving emitters (use pathdiff_edge or pathdiff_psdr)",
            stacklevel=4,
        )
    warnings.warn(
        "pathdiff_reparam: the light leaving a point on moving geometry is differentiated as "
        "if the point had not moved (no moving-vertex factors in the warped rays): biased "
        "where what it receives varies over its surface (textured emitters, glass, indirect "
        "light); pathdiff_edge and pathdiff_psdr have them",
        stacklevel=4,
    )


class Warp:
    """The warp of one render: ``warp(scene, rng, ray, depth, active)`` is the attached ray and
    the Jacobian determinant (see :class:`ReparamIntegrator`). ``table``: the edges of all
    meshes, ``face_offset``: per shape index, its first face in ``table`` (``NONE``: not a
    mesh), ``warped``: the moving meshes with their shape indices."""

    def __init__(
        self,
        kappa: float,
        aux_rays: int,
        table: StaticEdges,
        face_offset: mi.UInt32,
        warped: list[tuple[int, mi.Mesh]],
    ):
        self.kappa = kappa
        self.aux_rays = aux_rays
        self.table = table
        self.face_offset = face_offset
        self.warped = warped

    @dr.syntax
    def __call__(
        self, scene: mi.Scene, rng: RNGSampler, ray: mi.Ray3f, depth: mi.UInt32, active: mi.Bool
    ) -> tuple[mi.Ray3f, mi.Float]:
        """Warp the (detached) direction of ``ray``; identity for camera rays (depth 0) and,
        when no mesh moves (a moving camera), beyond the rays leaving the camera's hits."""
        active = mi.Bool(active) & (depth > 0)
        if not self.warped:  # only the camera moves: rays from its hits (depth 1) alone move
            active &= depth == 1
        ω = dr.detach(ray.d)
        frame = mi.Frame3f(ω)
        Z, Σw_dv, Σgrad, Σgrad_dv = mi.Float(0), mi.Vector3f(0), mi.Vector3f(0), mi.Float(0)
        pairs = (self.aux_rays + 1) // 2
        i = mi.UInt32(0)
        # Purely additive accumulation: reverse mode needs no stored loop state (-1).
        while dr.hint(active & (i < pairs), max_iterations=-1, exclude=[self, scene]):
            s = mi.warp.square_to_von_mises_fisher(rng.next_2d(), self.kappa)
            for sign in (1, -1):  # antithetic pair, mirrored about ω
                w, grad, dv = self._aux_ray(
                    scene, ray, frame, mi.Vector3f(sign * s.x, sign * s.y, s.z)
                )
                Z += w
                Σw_dv += w * dv
                Σgrad += grad
                Σgrad_dv += dr.dot(grad, dv)
            i += 1
        inv_Z = dr.select(Z > 0, dr.rcp(Z), 0)
        V = Σw_dv * inv_Z
        div = (Σgrad_dv - dr.dot(V, Σgrad)) * inv_Z
        ray_att = mi.Ray3f(ray)
        ray_att.d = dr.normalize(ω + V)
        return ray_att, 1 + div

    def _aux_ray(
        self, scene: mi.Scene, ray: mi.Ray3f, frame: mi.Frame3f, s: mi.Vector3f
    ) -> tuple[mi.Float, mi.Vector3f, mi.Vector3f]:
        """Weight ``w_i``, its gradient ``∇w_i`` (tangent at ``ω``) and the attached motion
        ``∂v_i`` (value 0) of the aux ray along ``s`` (in the frame of ``ω``)."""
        κ = self.kappa
        o = dr.detach(ray.o)
        ω_i = frame.to_world(s)
        x = dr.minimum(κ * (dr.square(s.x) + dr.square(s.y)) / (1 + s.z), MAX_EXPONENT)
        pi = scene.ray_intersect_preliminary(mi.Ray3f(o, ω_i), coherent=False)
        dist = dr.maximum(dr.exp(x) - 1 + self._boundary(pi, o, ω_i), MIN_DISTANCE)
        # exp(κ(1 − ω·ω_i)) (D_i + B_i)^−γ divided by its largest possible value
        w = dr.exp(x - GAMMA * dr.log(dist / MIN_DISTANCE))
        grad = (w * GAMMA * κ * dr.exp(x) / dist) * frame.to_world(mi.Vector3f(s.x, s.y, 0))
        v = dr.select(pi.is_valid(), dr.normalize(self._hit_point(pi, o, ω_i) - ray.o), ω_i)
        return w, grad, v - dr.detach(v)

    def _hit_point(self, pi: mi.PreliminaryIntersection3f, o: mi.Point3f, d: mi.Vector3f):
        """Hit position, attached as a material point of the moving meshes (barycentric
        coordinates held fixed), detached elsewhere."""
        p = o + pi.t * d
        u, v = pi.prim_uv.x, pi.prim_uv.y
        for index, mesh in self.warped:
            hit = pi.is_valid() & (pi.shape_index == index)
            face = dr.gather(mi.Vector3u, mesh.faces_buffer(), pi.prim_index, hit)
            corner = [
                dr.gather(mi.Point3f, mesh.vertex_positions_buffer(), face[k], hit)
                for k in range(3)
            ]
            p = dr.select(hit, corner[0] * (1 - u - v) + corner[1] * u + corner[2] * v, p)
        return p

    def _boundary(
        self, pi: mi.PreliminaryIntersection3f, o: mi.Point3f, d: mi.Vector3f
    ) -> mi.Float:
        """Boundary test ``B = min(1, φ/φ0)``: ``φ`` is the angle, seen from ``o``, between the
        hit and the nearest discontinuity edge of its triangle (open edges, creases, and
        silhouettes as seen from ``o``); 1 on misses."""
        offset = dr.gather(mi.UInt32, self.face_offset, pi.shape_index, pi.is_valid())
        mesh = pi.is_valid() & (offset != NONE)
        face = offset + pi.prim_index
        φ = mi.Float(dr.inf)
        for k in range(3):
            edge = dr.gather(mi.UInt32, self.table.face_edges, 3 * face + k, mesh)
            ok = mesh & (edge != NONE)
            g = self.table.geometry(edge, ok)
            m = dr.cross(g.v0 - o, g.v1 - o)
            m2 = dr.squared_norm(m)
            sin_φ = dr.select(m2 > 0, dr.abs(dr.dot(d, m)) * dr.rsqrt(m2), 0)
            φ = dr.select(ok & g.candidate(o), dr.minimum(φ, sin_φ), φ)
        return dr.select(mesh, dr.minimum(φ * dr.sqrt(self.kappa) / BOUNDARY_WIDTH, 1), 1)
