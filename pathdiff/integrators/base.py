"""The one path loop shared by every pathdiff integrator.

A unidirectional path tracer with next-event estimation (NEE), multiple importance sampling
(MIS, power 1 / balance heuristic) and Russian roulette. The same ``@dr.syntax`` loop runs in
three regimes, chosen by the AD mode and the integrator:

* **primal** (``mode == Primal``): plain path tracing under ``dr.suspend_grad``; returns the
  radiance ``L`` of each camera sample (also handed to the replay as its state).
* **replay** (``Forward``/``Backward`` with the primal ``L`` as ``state_in``): path replay
  backpropagation. The path is traced again with the same random numbers; loop state stays
  detached and at each vertex the *attached* local contribution

  .. math:: L_o = L_e + L_{dir} + L_{rem} \\, \\frac{f_s}{\\operatorname{detach}(f_s)}

  is differentiated within the iteration (``dr.forward_to`` / ``dr.backward_from(δL·Lo)``),
  where ``L_rem`` is the radiance the primal path gathered after this vertex.
* **attached** (``self.attached``): the loop is run with gradients enabled and the AD graph
  spans all iterations (the ``pathdiff_ad`` baseline; memory grows with depth).

Sampling is detached in every regime: directions do not depend on θ, so only the integrand
values ``f/pdf`` (with a detached pdf) are differentiated. Subclasses pick the regime and add
boundary terms around this loop; they never copy it.
"""

from __future__ import annotations

import drjit as dr
import mitsuba as mi
from mitsuba.ad.integrators.common import RBIntegrator

from .camera import PinholeCamera
from .camera import attached as camera_attached


def _relative(f: mi.Spectrum) -> mi.Spectrum:
    """Value 1, derivative ∂f/f (0 where f vanishes)."""
    return dr.replace_grad(mi.Spectrum(1), dr.select(dr.detach(f) != 0, f / dr.detach(f), 0))


def mis_weight(pdf_a: mi.Float, pdf_b: mi.Float) -> mi.Float:
    """Balance heuristic ``pdf_a / (pdf_a + pdf_b)``, 0 where both vanish."""
    total = pdf_a + pdf_b
    return dr.detach(dr.select(total > 0, pdf_a / total, 0))


#: ``max_depth = -1`` (unbounded) as Mitsuba stores it (a uint32)
UNBOUNDED_DEPTH = 0xFFFFFFFF
#: smallest |cos| between the bent shading normal and the viewing direction
BEND_EPS = 1e-3


def face_viewer(
    si: mi.SurfaceInteraction3f, d: mi.Vector3f
) -> tuple[mi.SurfaceInteraction3f, mi.Bool]:
    """A copy of ``si`` (seen along ``d``, from the camera's side of the path) whose shading
    frame faces the same side as the geometric normal: ``sign(n_s·d) = sign(n_g·d)`` with
    ``|n_s·d| ≥ ε``; ``si.wi`` keeps its world direction. Also returns where it bent.

    An interpolated normal can face away from a viewer who sees the surface's front
    (near smooth silhouettes); BSDFs are black there, and the border of that band is a
    discontinuity inside triangles that no edge sampler sees. Removing the normal's
    component along ``d`` beyond the margin, ``n_s ← n_s − (n_s·d − s ε) d`` with
    ``s = sign(n_g·d)``, is continuous (identity at the margin) and differentiable, so the
    integrand has no such discontinuity. Faceted surfaces only change at grazing
    ``|cos| < ε``.
    """
    si = type(si)(si)
    wi = si.to_world(si.wi)
    n = si.sh_frame.n
    α = dr.dot(n, d)
    s = dr.sign(dr.dot(si.n, d))
    bend = si.is_valid() & (s * α < BEND_EPS)
    n_b = dr.normalize(n - (α - s * BEND_EPS) * d)
    t = dr.normalize(si.sh_frame.s - dr.dot(si.sh_frame.s, n_b) * n_b)
    frame = mi.Frame3f(t, dr.cross(n_b, t), n_b)
    si.sh_frame = dr.select(bend, frame, si.sh_frame)
    si.wi = dr.select(bend, si.to_local(wi), si.wi)
    return si, bend


class _VariantStruct(type):
    """Resolves ``DRJIT_STRUCT`` when Dr.Jit asks for it, so that it names the ``PCG32`` of
    the variant active then (not the one active when this module was imported)."""

    @property
    def DRJIT_STRUCT(cls) -> dict:  # noqa: N802 (Dr.Jit's name)
        return {"rng": mi.PCG32}


class RNGSampler(metaclass=_VariantStruct):
    """A per-lane PCG32 behind the ``next_1d``/``next_2d`` sampler interface.

    Loop state of the replay for estimators that need random numbers the primal pass does
    not draw (boundary samples); copying it replays the same numbers.
    """

    def __init__(self, rng: mi.PCG32 | None = None):
        self.rng = rng if rng is not None else mi.PCG32()

    @staticmethod
    def from_ray(ray: mi.Ray3f, salt: int = 0) -> RNGSampler:
        """Seed one generator per lane from the lane index and the (jittered) ray."""
        n = dr.width(ray.d)
        bits = dr.reinterpret_array(mi.UInt32, ray.d.x) ^ dr.reinterpret_array(mi.UInt32, ray.d.y)
        s0, s1 = mi.sample_tea_32(dr.arange(mi.UInt32, n) ^ mi.UInt32(salt), bits)
        return RNGSampler(mi.PCG32(n, mi.UInt64(s0) << 32 | mi.UInt64(s1)))

    def copy(self) -> RNGSampler:
        return RNGSampler(mi.PCG32(self.rng))

    def next_1d(self, active: mi.Bool = True) -> mi.Float:
        return self.rng.next_float32(active)

    def next_2d(self, active: mi.Bool = True) -> mi.Point2f:
        return mi.Point2f(self.rng.next_float32(active), self.rng.next_float32(active))


class PathLoopIntegrator(RBIntegrator):
    """Base of the ``pathdiff_*`` plugins: options and the shared path loop.

    Options: ``max_depth`` (-1 = unbounded; 1 = emitters seen directly), ``rr_depth``
    (depth at which Russian roulette starts), ``hide_emitters`` (emitters seen directly
    by the camera are black) and ``bend_normals`` (default true: shading normals facing
    away from the viewer are bent back, see :func:`face_viewer`; false renders exactly as
    Mitsuba's ``path``).
    """

    #: run the loop with attached state across iterations (``pathdiff_ad``)
    attached = False

    def __init__(self, props: mi.Properties):
        super().__init__(props)
        self.hide_emitters = props.get("hide_emitters", False)
        self.bend_normals = props.get("bend_normals", True)
        self.options = {
            "bend_normals": self.bend_normals,
            "max_depth": props.get("max_depth", 6),
            "rr_depth": self.rr_depth,
            "hide_emitters": self.hide_emitters,
        }

    def sample_rays(self, scene: mi.Scene, sensor: mi.Sensor, sampler: mi.Sampler):
        """Mitsuba's camera rays; where the sensor's pose/fov are registered as attached
        (:func:`pathdiff.integrators.camera.attach_camera`), re-derived from the same film
        positions with the attached pose and fov, so that the first intersection, and
        everything seen from it, follows the moving camera (same values)."""
        ray, weight, pos = super().sample_rays(scene, sensor, sampler)
        if camera_attached(sensor):
            with dr.resume_grad():
                ray = PinholeCamera.of(sensor).attach_ray(ray)
        return ray, weight, pos

    def reparameterizes(self) -> bool:
        """Whether the replay reparameterizes its rays with :meth:`reparam_ray`."""
        return False

    def reparam_ray(
        self, scene: mi.Scene, rng: RNGSampler, ray: mi.Ray3f, depth: mi.UInt32, active: mi.Bool
    ) -> tuple[mi.Ray3f, mi.Float]:
        """Reparameterize ``ray`` (detached) so that visibility discontinuities stay fixed in
        the sample space: returns the attached ray (same value) and the Jacobian
        determinant of the warp (value 1). ``depth == 0`` marks camera rays; the caller
        traces the result, and also uses this for shadow rays. Identity by default."""
        return ray, mi.Float(1)

    def has_vertex_term(self) -> bool:
        """Whether :meth:`vertex_term` contributes (checked once per replay)."""
        return False

    def vertex_term(
        self,
        scene: mi.Scene,
        si: mi.SurfaceInteraction3f,
        bsdf: mi.BSDF,
        β: mi.Spectrum,
        depth: mi.UInt32,
        rng: RNGSampler,
        active: mi.Bool,
    ) -> mi.Spectrum | None:
        """Extra attached, zero-valued contribution at a path vertex during the replay.

        Boundary estimators add their secondary-visibility term here. ``β`` is the detached
        throughput up to ``si``, ``depth`` its depth (0 = seen by the camera) and ``rng`` is
        independent of the path's sampler. ``None`` (the default) means no term.
        """
        return None

    @property
    def plugin(self) -> str:
        """The plugin name users write (``pathdiff_edge``...), for messages."""
        from . import PLUGINS

        return next((n for n, c in PLUGINS.items() if type(self) is c), type(self).__name__)

    def to_string(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        return f"{type(self).__name__}[{opts}]"

    @dr.syntax
    def sample(
        self,
        mode: dr.ADMode,
        scene: mi.Scene,
        sampler: mi.Sampler,
        ray: mi.Ray3f,
        δL: mi.Spectrum | None = None,
        state_in: mi.Spectrum | None = None,
        active: mi.Bool = True,
        max_depth: int | mi.UInt32 | None = None,
        camera: bool = True,
        **kwargs,
    ) -> tuple[mi.Spectrum, mi.Bool, list, mi.Spectrum]:
        """Trace one path per lane (see the module docstring for the three regimes).

        ``max_depth`` overrides the integrator's (per lane, for nested estimates of incident
        radiance), and ``camera=False`` marks paths that do not start at the sensor, where
        ``hide_emitters`` does not apply.
        """
        primal = mode == dr.ADMode.Primal
        attached = self.attached and not primal
        replay = not primal and not attached
        grad = not primal  # evaluate integrand values with gradients attached

        ctx = mi.BSDFContext()
        # an attached camera ray (moving camera, see sample_rays) is intersected attached at
        # depth 0 in the derivative passes; the loop state is detached
        with dr.resume_grad():
            moving = grad and (dr.grad_enabled(ray.o) or dr.grad_enabled(ray.d))
            ray_cam = mi.Ray3f(ray) if moving else None
            if ray_cam is not None and mode == dr.ADMode.Forward:
                # the loop is an isolated AD scope: push dθ into the ray before entering it
                dr.forward_to(ray_cam.o, ray_cam.d, flags=dr.ADFlag.ClearEdges)
        ray = mi.Ray3f(dr.detach(ray))
        depth = mi.UInt32(0)
        L = mi.Spectrum(0 if state_in is None or not replay else state_in)
        δL_fwd = mi.Spectrum(0)  # forward-mode accumulator of the replay
        β = mi.Spectrum(1)
        η = mi.Float(1)
        active = mi.Bool(active)
        valid = mi.Bool(False)
        reparam = replay and self.reparameterizes()
        prev_si = dr.zeros(mi.SurfaceInteraction3f if reparam else mi.Interaction3f)
        prev_bsdf_pdf = mi.Float(1)
        prev_bsdf_delta = mi.Bool(True)
        max_depth = self.max_depth if max_depth is None else max_depth
        has_vertex_term = replay and self.has_vertex_term()
        rng = RNGSampler.from_ray(ray) if has_vertex_term or reparam else RNGSampler()

        loop_mode = "evaluated" if attached else None  # AD across iterations needs unrolling
        # an attached camera ray captured by the loop keeps its derivatives only if grad is
        # enabled for it at the loop entry (only for it: anything else captured stays detached)
        cam_vars = [] if ray_cam is None else [ray_cam.o, ray_cam.d]
        with dr.resume_grad(*cam_vars, when=ray_cam is not None):
            while dr.hint(active, mode=loop_mode, label=f"pathdiff ({mode.name})"):
                # ---- Intersection (ray-attached in the derivative passes) -------------------
                with dr.resume_grad(when=grad):
                    ray_att, det = ray, mi.Float(1)
                    if dr.hint(ray_cam is not None, mode="scalar"):
                        ray_att = dr.select(depth == 0, ray_cam, ray)
                    if dr.hint(reparam, mode="scalar"):
                        ray_att, det = self.reparam_ray(scene, rng, ray, depth, active)
                    si = scene.ray_intersect(
                        ray_att, ray_flags=mi.RayFlags.All, coherent=depth == 0, active=active
                    )
                    if dr.hint(self.bend_normals, mode="scalar"):
                        si, _ = face_viewer(si, ray_att.d)

                # ---- Emission hit by the previous BSDF sample, MIS against NEE -------------
                ds = mi.DirectionSample3f(scene, si=si, ref=mi.Interaction3f(prev_si))
                hit_emitter = active & (ds.emitter != None)  # noqa: E711 (per-lane pointer test)
                em_pdf = scene.pdf_emitter_direction(prev_si, ds, hit_emitter & ~prev_bsdf_delta)
                w_bsdf = dr.select(prev_bsdf_delta, 1, mis_weight(prev_bsdf_pdf, em_pdf))
                if dr.hint(self.hide_emitters and camera, mode="scalar"):
                    w_bsdf = dr.select(depth == 0, 0, w_bsdf)
                with dr.resume_grad(when=grad):
                    Le = β * w_bsdf * ds.emitter.eval(si, hit_emitter)

                active_next = active & si.is_valid() & (depth + 1 < max_depth)
                valid |= active & si.is_valid()
                bsdf = si.bsdf(ray)

                # ---- Next-event estimation (detached sample, attached value) ---------------
                active_em = active_next & mi.has_flag(bsdf.flags(), mi.BSDFFlags.Smooth)
                with dr.suspend_grad():  # detached sampling in every regime
                    ds, em_weight = scene.sample_emitter_direction(
                        si, sampler.next_2d(), True, active_em
                    )
                active_em &= ds.pdf != 0
                with dr.resume_grad(when=grad):
                    if dr.hint(grad, mode="scalar"):
                        # A finite emitter's sample is a fixed point: its direction and distance
                        # follow the moving shading point. An infinite emitter's is a fixed
                        # direction.
                        finite = ~mi.has_flag(ds.emitter.flags(), mi.EmitterFlags.Infinite)
                        to_light = ds.p - si.p
                        dist2 = dr.squared_norm(to_light)
                        ds.d = dr.select(finite, to_light * dr.rsqrt(dist2), ds.d)
                        ds.dist = dr.select(finite, dr.sqrt(dist2), ds.dist)
                        det_em = mi.Float(1)
                        if dr.hint(not reparam, mode="scalar"):
                            # An area emitter's sample is held fixed in area measure while the
                            # shading point moves: differentiate the geometry term
                            # G = |cos_l| / r^2. A delta emitter (point, spot, projector) has no
                            # area measure: its eval_direction() computes its own falloff from the
                            # attached shading point and ds.d/ds.dist, so there is nothing to add
                            # (adding G counted a point light's 1/r^2 twice).
                            G = dr.abs(dr.dot(ds.n, ds.d)) / dist2
                            area = finite & ~ds.delta & (dr.detach(G) > 0)
                            det_em = dr.select(area, _relative(G), 1)
                        if dr.hint(reparam, mode="scalar"):
                            # Warp the shadow ray (from the attached vertex). Its visibility is
                            # the detached sample's (ds.pdf = 0 if occluded): in the warped
                            # variables it is locally constant, so the ray is not traced again.
                            ray_em, det_em = self.reparam_ray(
                                scene,
                                rng,
                                si.spawn_ray(dr.detach(ds.d)),
                                depth + 1,
                                active_em & ~ds.delta,
                            )
                            ds.d = dr.select(ds.delta, ds.d, ray_em.d)
                        em_val = scene.eval_emitter_direction(si, ds, active_em) * det_em
                        em_weight = dr.replace_grad(
                            em_weight, dr.select(ds.pdf != 0, em_val / ds.pdf, 0)
                        )
                    wo = si.to_local(ds.d)

                    u1, u2 = sampler.next_1d(), sampler.next_2d()
                    if dr.hint(grad, mode="scalar"):
                        bsdf_val, bsdf_pdf = bsdf.eval_pdf(ctx, si, wo, active_em)
                    else:  # primal: one BSDF call evaluates NEE and samples the next direction
                        bsdf_val, bsdf_pdf, bs, bsdf_weight = bsdf.eval_pdf_sample(
                            ctx, si, wo, u1, u2, active_next
                        )
                    w_em = dr.select(ds.delta, 1, mis_weight(ds.pdf, bsdf_pdf))
                    L_dir = β * w_em * bsdf_val * em_weight

                # ---- BSDF sampling (detached) ---------------------------------------------
                if dr.hint(grad, mode="scalar"):
                    with dr.suspend_grad():
                        bs, bsdf_weight = bsdf.sample(ctx, si, u1, u2, active_next)
                ray = dr.detach(si).spawn_ray(dr.detach(si).to_world(bs.wo))

                # ---- Differentiate this vertex --------------------------------------------
                if dr.hint(grad, mode="scalar"):
                    with dr.resume_grad():
                        if dr.hint(reparam, mode="scalar"):
                            # The BSDF of the previous vertex along the reparameterized ray that
                            # reached this one, times the warp's Jacobian determinant.
                            f = prev_si.bsdf().eval(
                                ctx, prev_si, prev_si.to_local(ray_att.d), active & (depth > 0)
                            )
                            ratio = det * dr.select(depth > 0, _relative(f), 1)
                            Lo = Le + L_dir + L * ratio
                            L = L - dr.detach(Le) - dr.detach(L_dir)
                        else:
                            f = bsdf.eval(ctx, si, si.to_local(ray.d), active_next)
                            ratio = _relative(f)
                        if dr.hint(attached, mode="scalar"):
                            L = L + Le + L_dir
                            β = β * bsdf_weight * ratio
                        elif dr.hint(not reparam, mode="scalar"):
                            L = L - dr.detach(Le) - dr.detach(L_dir)
                            Lo = Le + L_dir + L * ratio
                        if dr.hint(replay, mode="scalar"):
                            if dr.hint(has_vertex_term, mode="scalar"):
                                Lo += self.vertex_term(scene, si, bsdf, β, depth, rng, active_next)
                            if dr.hint(mode == dr.ADMode.Backward, mode="scalar"):
                                dr.backward_from(δL * Lo)
                            else:
                                δL_fwd += dr.forward_to(Lo)
                else:
                    L = L + Le + L_dir

                # ---- Russian roulette and loop update ---------------------------------------
                if dr.hint(not attached, mode="scalar"):
                    β *= bsdf_weight
                η *= dr.detach(bs.eta)
                β_max = dr.max(dr.detach(β))
                rr_active = depth >= self.rr_depth
                rr_prob = dr.minimum(β_max * dr.square(η), 0.95)
                β[rr_active] *= dr.rcp(rr_prob)
                rr_continue = sampler.next_1d() < rr_prob
                active = active_next & (~rr_active | rr_continue) & (β_max != 0)

                prev_si = type(prev_si)(dr.detach(si))
                prev_bsdf_pdf = dr.detach(bs.pdf)
                prev_bsdf_delta = mi.has_flag(bs.sampled_type, mi.BSDFFlags.Delta)
                depth += 1

        if dr.hint(replay and mode == dr.ADMode.Forward, mode="scalar"):
            return δL_fwd, valid, [], L
        return L, valid, [], L
