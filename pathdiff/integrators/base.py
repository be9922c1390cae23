"""The one path loop shared by every pathdiff integrator.

A unidirectional path tracer with next-event estimation (NEE), multiple importance sampling
(MIS, power 1 / balance heuristic) and Russian roulette. The same ``@dr.syntax`` loop runs in
three regimes, chosen by the AD mode and the integrator:

* **primal** (``mode == Primal``): plain path tracing under ``dr.suspend_grad``; returns the
  radiance ``L`` of each camera sample (also handed to the replay as its state).
* **replay** (``Forward``/``Backward`` with the primal ``L`` as ``state_in``): path replay
  backpropagation. The path is traced again with the same random numbers; loop state stays
  detached and at each vertex the *attached* local contribution

  .. math:: L_o = r_{in} \\big(L_e + L_{dir} + r_{out} L_{rem}\\big), \\qquad
            r = \\frac{f_s}{\\operatorname{detach}(f_s)}

  is differentiated within the iteration (``dr.forward_to`` / ``dr.backward_from(δL·Lo)``),
  where ``L_rem`` is the radiance the primal path gathered after this vertex and ``r_out``
  the BSDF ratio of the sampled outgoing direction. With a warp (reparameterized rays) the
  BSDF ratio is taken on the incoming side instead: ``r_in`` is the previous vertex's BSDF
  along the warped ray that reached this one, times the warp's Jacobian determinant, and
  ``r_out = 1``.
* **attached** (``self.attached``): the loop is run with gradients enabled and the AD graph
  spans all iterations (the ``pathdiff_ad`` baseline; memory grows with depth).

Sampling is detached in every regime: directions do not depend on θ, so only the integrand
values ``f/pdf`` (with a detached pdf) are differentiated.

**Moving vertices.** When shapes (or the camera) move, each vertex ``x_k`` is differentiated
for its own motion with its neighbours held fixed in space: ``x_k`` slides along the
(detached) ray that found it, so the factors before it (``f_{k-1}`` along a fixed direction,
the solid-angle measure) do not change, and the path after it is measured in area at the
fixed next vertex ``x_{k+1}``:

.. math:: r_{out} = \\frac{f_s(x_k; ω_{in}, \\widehat{x_{k+1} − x_k})\\, G(x_k, x_{k+1})}
          {\\operatorname{detach}(\\cdot)}, \\qquad G = \\frac{|n_{k+1}·ω|}{|x_{k+1} − x_k|^2}

(not through a delta lobe, and not towards the background: a fixed direction there), while
at ``x_{k+1}`` the incoming direction follows ``x_k``'s motion (``x_k`` re-derived attached
from its preliminary intersection, ``x_{k+1}`` held fixed). NEE likewise holds its emitter
sample fixed while ``x_k`` moves; the emitter's own motion is taken along the shadow ray (a
textured emitter's texture slides). Summed over vertices, these partial derivatives are the
total derivative of the path's contribution without differentiating through the chain of
later vertices, so memory stays independent of depth; the boundary terms measure the motion
of discontinuities relative to the same fixed neighbours (:func:`.secondary.fixed_share`).
Off (``moving_vertices=false``), a moving vertex's successors ignore that it moved: biased
(warned at run time), a negative control for the tests, and a lower-variance choice for
camera poses: under the convention every camera hit moves and its indirect light changes
through ``G(x_1, x_2)``, whose relative derivative grows like ``1/r`` (docs/gradients.md).

What an estimator adds is an explicit per-render value, :class:`Terms`, built by
:meth:`PathLoopIntegrator.terms` from the scene and handed to the loop: a warp of secondary
rays, an extra zero-valued term at each replay vertex, and boundary images estimated outside
the loop. Estimators compose these parts; they never copy the loop.
"""

from __future__ import annotations

import warnings

import drjit as dr
import mitsuba as mi
from mitsuba.ad.integrators.common import ADIntegrator, RBIntegrator

from .camera import PinholeCamera
from .camera import attached as camera_attached
from .edges import moving_analytic_shapes, moving_meshes
from .sampling import RNGSampler, face_viewer, mis_weight, relative
from .terms import Terms

#: ``max_depth = -1`` (unbounded) as Mitsuba stores it (a uint32)
UNBOUNDED_DEPTH = 0xFFFFFFFF

__all__ = ["UNBOUNDED_DEPTH", "PathLoopIntegrator", "RNGSampler", "Terms"]


class PathLoopIntegrator(RBIntegrator):
    """Base of the ``pathdiff_*`` plugins: options, the render passes and the shared loop.

    Options: ``max_depth`` (-1 = unbounded; 1 = emitters seen directly), ``rr_depth``
    (Russian roulette may end a path once it has found this many vertices, as in Mitsuba),
    ``hide_emitters`` (emitters seen directly by the camera are black), ``bend_normals``
    (default true: shading normals facing away from the viewer are bent back, see
    :func:`~.sampling.face_viewer`; false renders exactly as Mitsuba's ``path``) and
    ``moving_vertices`` (default true: the factors that follow moving path vertices, see the
    module docstring; false drops them, a negative control for the tests).
    """

    #: run the loop with attached state across iterations (``pathdiff_ad``)
    attached = False
    #: the rays leaving a moving camera's hits start at the attached hits (``pathdiff_reparam``)
    follows_camera_hits = False

    def __init__(self, props: mi.Properties):
        super().__init__(props)
        self.hide_emitters = props.get("hide_emitters", False)
        self.bend_normals = props.get("bend_normals", True)
        self.moving_vertices = props.get("moving_vertices", True)
        self.options = {
            "bend_normals": self.bend_normals,
            "moving_vertices": self.moving_vertices,
            "max_depth": props.get("max_depth", 6),
            "rr_depth": self.rr_depth,
            "hide_emitters": self.hide_emitters,
        }

    @property
    def plugin(self) -> str:
        """The plugin name users write (``pathdiff_edge``...), for messages."""
        from . import PLUGINS

        return next((n for n, c in PLUGINS.items() if type(self) is c), type(self).__name__)

    def to_string(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        return f"{type(self).__name__}[{opts}]"

    # ---- What the estimator adds (per render) --------------------------------------------------
    def terms(self, scene: mi.Scene, sensor: mi.Sensor | None = None) -> Terms:
        """The estimator's additions to the loop for a derivative render of ``scene`` seen by
        ``sensor`` (``None``: any of its sensors). Nothing for the interior term alone."""
        return Terms()

    # ---- Render passes: primal, replay, boundary images ---------------------------------------
    def render_forward(self, scene, params, sensor=0, seed=0, spp=0) -> mi.TensorXf:
        sensor = scene.sensors()[sensor] if isinstance(sensor, int) else sensor
        terms = self.terms(scene, sensor)
        grad = self._replay(dr.ADMode.Forward, scene, sensor, seed, spp, terms)
        with dr.resume_grad():
            B = terms.boundary_image(scene, sensor, seed, spp)
            if B is not None:  # B may not depend on θ (edges behind the camera): AllowNoGrad
                dr.forward_to(B, flags=dr.ADFlag.Default | dr.ADFlag.AllowNoGrad)
                grad = grad + dr.grad(B)
        return grad

    def render_backward(self, scene, params, grad_in, sensor=0, seed=0, spp=0) -> None:
        sensor = scene.sensors()[sensor] if isinstance(sensor, int) else sensor
        terms = self.terms(scene, sensor)
        self._replay(dr.ADMode.Backward, scene, sensor, seed, spp, terms, grad_in)
        with dr.resume_grad():
            B = terms.boundary_image(scene, sensor, seed, spp)
            if B is not None:
                loss = dr.sum(B * grad_in, axis=None)
                dr.backward_from(loss, flags=dr.ADFlag.Default | dr.ADFlag.AllowNoGrad)

    def _replay(
        self,
        mode: dr.ADMode,
        scene: mi.Scene,
        sensor: mi.Sensor,
        seed: int,
        spp: int,
        terms: Terms,
        grad_in: mi.TensorXf | None = None,
    ) -> mi.TensorXf | None:
        """Primal pass, then the replay with the same random numbers: the derivative image
        (forward mode) or gradients accumulated into the scene parameters (reverse mode)."""
        film = sensor.film()
        with dr.suspend_grad():
            sampler, spp = self.prepare(sensor, seed, spp, self.aov_names())
            ray, weight, pos = self.sample_rays(scene, sensor, sampler)
            L, valid, _, _ = self.sample(dr.ADMode.Primal, scene, sampler.clone(), ray)
            if mode == dr.ADMode.Forward:
                δL, valid, _, _ = self.sample(mode, scene, sampler, ray, state_in=L, terms=terms)
                return _develop(film, pos, ray, δL * weight, dr.select(valid, 1.0, 0.0), spp)
            δL = _adjoint_radiance(film, pos, ray, weight, grad_in, spp)
            self.sample(mode, scene, sampler, ray, δL=δL, state_in=L, terms=terms)
            dr.eval()
        return None

    def sample_rays(self, scene: mi.Scene, sensor: mi.Sensor, sampler: mi.Sampler):
        """Mitsuba's camera rays; where the sensor's pose/fov are registered as attached
        (:func:`pathdiff.integrators.camera.attach_camera`), re-derived from the same film
        positions with the attached pose and fov, so that the first intersection, and
        everything seen from it, follows the moving camera (same values)."""
        ray, weight, pos = super().sample_rays(scene, sensor, sampler)
        moving_camera = camera_attached(sensor)
        if not self.moving_vertices and (moving_camera or geometry_moves(scene)):
            warnings.warn(
                f"{self.plugin}: moving_vertices=false: the path after a moving vertex (a "
                "camera hit, a point on moving geometry) is differentiated as if that vertex "
                "had not moved, a bias (about 1 % of a tile in the indirect light of a moving "
                "camera's hits on the Cornell box; more through glass); chosen for its lower "
                "variance (docs/gradients.md)",
                stacklevel=4,
            )
        if moving_camera:
            with dr.resume_grad():
                ray = PinholeCamera.of(sensor).attach_ray(ray)
        return ray, weight, pos

    # ---- The loop -------------------------------------------------------------------------------
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
        terms: Terms | None = None,
        moves: bool | None = None,
        **kwargs,
    ) -> tuple[mi.Spectrum, mi.Bool, list, mi.Spectrum]:
        """Trace one path per lane (see the module docstring for the three regimes).

        ``max_depth`` overrides the integrator's (per lane, for nested estimates of incident
        radiance), and ``camera=False`` marks paths that do not start at the sensor, where
        ``hide_emitters`` does not apply. ``terms``: the estimator's additions for the replay
        (default: :meth:`terms` of ``scene``). ``moves``: whether path vertices can move (a
        shape or the camera carries derivatives; default: found from the scene), which turns
        on the moving-vertex factors of the replay (module docstring).
        """
        primal = mode == dr.ADMode.Primal
        attached = self.attached and not primal
        replay = not primal and not attached
        grad = not primal  # evaluate integrand values with gradients attached
        if replay and terms is None:
            terms = self.terms(scene)
        warp = terms.warp if replay else None
        vertex = terms.vertex if replay else None
        if moves is None:
            moves = grad and geometry_moves(scene)
        moves = bool(moves) and grad and warp is None and self.moving_vertices

        ctx = mi.BSDFContext()
        # an attached camera ray (moving camera, see sample_rays) is intersected attached at
        # depth 0 in the derivative passes; the loop state is detached
        with dr.resume_grad():
            moving = grad and (dr.grad_enabled(ray.o) or dr.grad_enabled(ray.d))
            ray_cam = mi.Ray3f(ray) if moving else None
            if ray_cam is not None and mode == dr.ADMode.Forward:
                # the loop is an isolated AD scope: push dθ into the ray before entering it
                dr.forward_to(ray_cam.o, ray_cam.d, flags=dr.ADFlag.ClearEdges)
        moves = moves or (ray_cam is not None and warp is None and self.moving_vertices)
        ray = mi.Ray3f(dr.detach(ray))
        depth = mi.UInt32(0)
        L = mi.Spectrum(0 if state_in is None or not replay else state_in)
        # forward-mode accumulator of the replay (no loop state where unused: a loop-invariant
        # state variable makes Dr.Jit record the loop body twice)
        δL_fwd = mi.Spectrum(0) if replay and mode == dr.ADMode.Forward else None
        β = mi.Spectrum(1)
        η = mi.Float(1)
        active = mi.Bool(active)
        valid = mi.Bool(False)
        prev_si = dr.zeros(mi.SurfaceInteraction3f if warp is not None else mi.Interaction3f)
        prev_bsdf_pdf = mi.Float(1)
        prev_bsdf_delta = mi.Bool(True)
        max_depth = self.max_depth if max_depth is None else max_depth
        extra = warp is not None or vertex is not None
        rng = RNGSampler.from_ray(ray) if extra else None
        # the next vertex is found at the end of each iteration (the camera's before the loop);
        # with moving vertices the previous one is kept to be re-derived attached
        pi = scene.ray_intersect_preliminary(ray, coherent=True, active=active)
        prev_pi, prev_ray = (pi, mi.Ray3f(ray)) if moves else (None, None)

        loop_mode = "evaluated" if attached else None  # AD across iterations needs unrolling
        # an attached camera ray captured by the loop keeps its derivatives only if grad is
        # enabled for it at the loop entry (only for it: anything else captured stays detached)
        cam_vars = [] if ray_cam is None else [ray_cam.o, ray_cam.d]
        # Dr.Jit records a loop body twice when a state variable comes out unchanged (to drop
        # it), and the Python tracing is a large part of a small render's time. Read-only
        # inputs are excluded, the rays' time (constant along a path) is the captured
        # ``time``, and for the sampler's constant increment the loop's invariant-variable
        # optimization is off when the body ends (on inside it, for nested loops).
        time = mi.Float(ray.time)
        if time.state == dr.VarState.Literal and not dr.flag(dr.JitFlag.SymbolicScope):
            dr.make_opaque(time)  # (a literal would be dropped as "unchanged" too)
        optimize = dr.flag(dr.JitFlag.OptimizeLoops)
        with (
            dr.resume_grad(*cam_vars, when=ray_cam is not None),
            dr.scoped_set_flag(dr.JitFlag.OptimizeLoops, optimize),
        ):
            while dr.hint(
                active, mode=loop_mode, label=f"pathdiff ({mode.name})", exclude=[max_depth, time]
            ):
                dr.set_flag(dr.JitFlag.OptimizeLoops, optimize)
                shade = active
                if dr.hint(not grad, mode="scalar"):  # the last vertex only counts if it emits
                    shade &= (depth + 1 < max_depth) | ~pi.is_valid() | pi.shape.is_emitter()
                si, ray_att, det, prev_att = self._intersect(
                    scene, pi, ray, ray_cam, warp, rng, depth, grad, shade, prev_si
                )
                if dr.hint(moves, mode="scalar"):
                    si = self._attach_wi(si, prev_pi, prev_ray, ray_cam, depth, active)
                Le = self._emission(
                    scene,
                    si,
                    prev_si,
                    prev_bsdf_pdf,
                    prev_bsdf_delta,
                    β,
                    depth,
                    camera,
                    grad,
                    active,
                )
                active_next = active & si.is_valid() & (depth + 1 < max_depth)
                valid |= active & pi.is_valid()
                bsdf = si.bsdf(ray)

                u_em, u1, u2 = sampler.next_2d(), sampler.next_1d(), sampler.next_2d()
                L_dir, bs, bsdf_weight = self._nee(
                    ctx,
                    scene,
                    si,
                    bsdf,
                    u_em,
                    u1,
                    u2,
                    β,
                    warp,
                    rng,
                    depth,
                    grad,
                    moves,
                    active_next,
                )
                ray_next = dr.detach(si).spawn_ray(dr.detach(si).to_world(bs.wo))
                ray_next.time = time

                # ---- Russian roulette, decided before the next ray is traced -----------------
                # (Mitsuba's convention: ``rr_depth`` counts the vertices found so far)
                η *= dr.detach(bs.eta)
                β_max = dr.max(dr.detach(β * bsdf_weight))
                rr_active = depth + 1 >= self.rr_depth
                rr_prob = dr.minimum(β_max * dr.square(η), 0.95)
                rr_continue = sampler.next_1d() < rr_prob
                traced = active_next & (~rr_active | rr_continue) & (β_max != 0)
                pi_next = scene.ray_intersect_preliminary(ray_next, active=traced)

                # ---- Differentiate this vertex ----------------------------------------------
                if dr.hint(grad, mode="scalar"):
                    with dr.resume_grad():
                        r_in, r_out = self._bsdf_ratios(
                            ctx,
                            si,
                            bsdf,
                            ray_next,
                            pi_next if moves else None,
                            bs,
                            prev_att,
                            ray_att,
                            det,
                            warp,
                            depth,
                            active,
                            active_next,
                        )
                        if dr.hint(attached, mode="scalar"):
                            L = L + Le + L_dir
                            β = β * bsdf_weight * r_out
                        else:
                            L_rem = L - dr.detach(Le) - dr.detach(L_dir)
                            Lo = r_in * (Le + L_dir + r_out * L_rem)
                            if dr.hint(vertex is not None, mode="scalar"):
                                Lo += vertex(scene, si, bsdf, β, depth, rng, active_next)
                            if dr.hint(mode == dr.ADMode.Backward, mode="scalar"):
                                dr.backward_from(δL * Lo)
                            else:
                                δL_fwd += dr.forward_to(Lo)
                            L = L_rem
                else:
                    L = L + Le + L_dir

                # ---- Loop update ------------------------------------------------------------
                if dr.hint(not attached, mode="scalar"):
                    β *= bsdf_weight
                β[rr_active] *= dr.rcp(rr_prob)
                active = traced

                if dr.hint(moves, mode="scalar"):
                    prev_pi, prev_ray = pi, ray
                prev_si = type(prev_si)(dr.detach(si))
                prev_bsdf_pdf = dr.detach(bs.pdf)
                prev_bsdf_delta = mi.has_flag(bs.sampled_type, mi.BSDFFlags.Delta)
                ray, pi = ray_next, pi_next
                depth += 1
                dr.set_flag(dr.JitFlag.OptimizeLoops, False)  # see above

        if dr.hint(replay and mode == dr.ADMode.Forward, mode="scalar"):
            return δL_fwd, valid, [], L
        return L, valid, [], L

    # ---- The loop's steps ---------------------------------------------------------------------
    def _intersect(self, scene, pi, ray, ray_cam, warp, rng, depth, grad, active, prev_si):
        """The vertex ``si`` found by ``pi`` (ray-attached in the derivative passes), the
        attached ray that reached it, the warp's Jacobian determinant (1 without a warp) and
        the previous vertex as the warp sees it: with a warp and a moving camera, rays leaving
        the camera's first hit start at that hit attached (re-found along the attached camera
        ray), so the warp and the BSDF there follow the camera's motion."""
        with dr.resume_grad(when=grad):
            ray_att, det, prev_att = ray, mi.Float(1), prev_si
            if ray_cam is not None:
                ray_att = dr.select(depth == 0, ray_cam, ray)
            if warp is not None:
                origin = ray
                if ray_cam is not None:
                    first = active & (depth == 1)
                    hit = scene.ray_intersect(ray_cam, mi.RayFlags.All, False, first)
                    if self.bend_normals:
                        hit, _ = face_viewer(hit, ray_cam.d)
                    origin = mi.Ray3f(ray)
                    origin.o = dr.select(first, hit.spawn_ray(ray.d).o, ray.o)
                    prev_att = dr.select(first, hit, prev_si)
                warped, det = warp(scene, rng, origin, depth, active)
                ray_att = dr.select(depth == 0, ray_att, warped)
            si = pi.compute_surface_interaction(ray_att, mi.RayFlags.All, active)
            if self.bend_normals:
                si, _ = face_viewer(si, ray_att.d)
        return si, ray_att, det, prev_att

    @staticmethod
    def _attach_wi(si, prev_pi, prev_ray, ray_cam, depth, active):
        """``si`` whose ``wi`` follows the previous vertex's own motion (same value): that
        vertex re-derived attached from its preliminary intersection, ray-attached along the
        ray that found it (the attached camera ray for the camera's hit), ``si`` held fixed."""
        with dr.resume_grad():
            ray = prev_ray if ray_cam is None else dr.select(depth == 1, ray_cam, prev_ray)
            x = prev_pi.compute_surface_interaction(ray, mi.RayFlags.Minimal, active & (depth > 0))
            wi = si.to_local(dr.normalize(x.p - dr.detach(si.p)))
            si = mi.SurfaceInteraction3f(si)
            si.wi = dr.replace_grad(si.wi, dr.select(depth > 0, wi, si.wi))
        return si

    def _emission(self, scene, si, prev_si, prev_pdf, prev_delta, β, depth, camera, grad, active):
        """Emission at ``si`` hit by the previous BSDF sample, MIS-weighted against NEE."""
        ds = mi.DirectionSample3f(scene, si=si, ref=mi.Interaction3f(prev_si))
        hit_emitter = active & (ds.emitter != None)  # noqa: E711 (per-lane pointer test)
        em_pdf = scene.pdf_emitter_direction(prev_si, ds, hit_emitter & ~prev_delta)
        w_bsdf = dr.select(prev_delta, 1, mis_weight(prev_pdf, em_pdf))
        if self.hide_emitters and camera:
            w_bsdf = dr.select(depth == 0, 0, w_bsdf)
        with dr.resume_grad(when=grad):
            return β * w_bsdf * ds.emitter.eval(si, hit_emitter)

    def _nee(self, ctx, scene, si, bsdf, u_em, u1, u2, β, warp, rng, depth, grad, moves, active):
        """Next-event estimation (detached sample, attached value) and the BSDF sample of the
        next direction (detached; one BSDF call for both in the primal pass):
        ``L_dir, bs, bsdf_weight``. The shadow ray is traced last, only where the sample
        contributes: about one light sample in eight falls below a diffuse surface's horizon
        in the Cornell box, and those rays are not traced."""
        active_em = active & mi.has_flag(bsdf.flags(), mi.BSDFFlags.Smooth)
        with dr.suspend_grad():  # detached sampling in every regime; visibility last
            ds, em_weight = scene.sample_emitter_direction(si, u_em, False, active_em)
        active_em &= ds.pdf != 0
        with dr.resume_grad(when=grad):
            if grad:
                ds, em_weight = self._attached_emitter_sample(
                    scene, si, ds, em_weight, warp, rng, depth, moves, active_em
                )
            wo = si.to_local(ds.d)
            if grad:
                bsdf_val, bsdf_pdf = bsdf.eval_pdf(ctx, si, wo, active_em)
            else:
                bsdf_val, bsdf_pdf, bs, bsdf_weight = bsdf.eval_pdf_sample(
                    ctx, si, wo, u1, u2, active
                )
            w_em = dr.select(ds.delta, 1, mis_weight(ds.pdf, bsdf_pdf))
            L_dir = β * w_em * bsdf_val * em_weight
        # the shadow ray only where the sample would contribute (not where the BSDF is black)
        with dr.suspend_grad():
            shadow = dr.detach(si).spawn_ray_to(ds.p)
            occluded = scene.ray_test(shadow, active_em & dr.any(dr.detach(L_dir) != 0))
        with dr.resume_grad(when=grad):
            L_dir = dr.select(occluded, 0, L_dir)
        if grad:
            with dr.suspend_grad():
                bs, bsdf_weight = bsdf.sample(ctx, si, u1, u2, active)
        return L_dir, bs, bsdf_weight

    def _attached_emitter_sample(self, scene, si, ds, em_weight, warp, rng, depth, moves, active):
        """The NEE sample's direction and weight, attached to the moving shading point.

        A finite emitter's sample is a fixed point: its direction and distance follow the
        shading point; an infinite emitter's is a fixed direction. An area emitter's sample is
        held fixed in area measure, so the geometry term ``G = |cos_l| / r²`` is
        differentiated; a delta emitter (point, spot, projector) has no area measure and its
        ``eval_direction()`` computes its own falloff from the attached point (adding ``G``
        would count a point light's ``1/r²`` twice). The emitter's own motion is taken along
        the (detached) shadow ray, as a BSDF sample's hit would be: with ``moves``, a textured
        area emitter is re-intersected there attached, so its texture slides under a moving
        emitter (an untextured one does not change along the ray: its outline's motion is a
        boundary term). With a warp, the shadow ray is warped from the attached vertex
        instead; its visibility is the detached sample's (constant in the warped variables),
        so the warped ray is not traced again."""
        finite = ~mi.has_flag(ds.emitter.flags(), mi.EmitterFlags.Infinite)
        slide = mi.Spectrum(1)
        if moves:  # (ds.uv stays detached: the projector re-derives it only then)
            textured = active & mi.has_flag(ds.emitter.flags(), mi.EmitterFlags.Surface)
            textured &= mi.has_flag(ds.emitter.flags(), mi.EmitterFlags.SpatiallyVarying)
            with dr.suspend_grad():
                shadow = si.spawn_ray_to(ds.p)
                shadow.maxt = dr.largest(mi.Float)
            hit = scene.ray_intersect(shadow, mi.RayFlags.All, False, textured)
            textured &= hit.is_valid() & (hit.shape == ds.emitter.get_shape())
            slide = dr.select(textured, relative(ds.emitter.eval(hit, textured)), 1)
        to_light = ds.p - si.p
        dist2 = dr.squared_norm(to_light)
        ds.d = dr.select(finite, to_light * dr.rsqrt(dist2), ds.d)
        ds.dist = dr.select(finite, dr.sqrt(dist2), ds.dist)
        if warp is None:
            G = dr.abs(dr.dot(ds.n, ds.d)) / dist2
            area = finite & ~ds.delta & (dr.detach(G) > 0)
            det = dr.select(area, relative(G), 1)
        else:
            shadow = si.spawn_ray(dr.detach(ds.d))
            ray_em, det = warp(scene, rng, shadow, depth + 1, active & ~ds.delta)
            ds.d = dr.select(ds.delta, ds.d, ray_em.d)
        value = scene.eval_emitter_direction(si, ds, active) * det * slide
        return ds, dr.replace_grad(em_weight, dr.select(ds.pdf != 0, value / ds.pdf, 0))

    def _bsdf_ratios(
        self,
        ctx,
        si,
        bsdf,
        ray,
        pi_next,
        bs,
        prev_si,
        ray_att,
        det,
        warp,
        depth,
        active,
        active_next,
    ):
        """``(r_in, r_out)``: value 1, derivative ``∂f/f`` of the BSDF on the incoming side
        (with a warp: the previous vertex's BSDF along the warped ray that reached ``si``, times
        the Jacobian determinant) or the outgoing side (along the sampled ``ray``).

        With moving vertices (``pi_next`` given) the next vertex ``x`` is held fixed in space
        while ``si`` moves: ``r_out = f(si → x) G(si, x)`` over its value, with
        ``G = |n_x·ω|/|x − si|²`` (the change from the direction to the area measure at ``x``).
        Not through a delta lobe or towards the background (a fixed direction there)."""
        if warp is not None:
            f = prev_si.bsdf().eval(ctx, prev_si, prev_si.to_local(ray_att.d), active & (depth > 0))
            return det * dr.select(depth > 0, relative(f), 1), mi.Spectrum(1)
        wo, J = ray.d, mi.Float(1)
        if pi_next is not None:
            with dr.suspend_grad():
                x = pi_next.compute_surface_interaction(ray, mi.RayFlags.Minimal, active_next)
            area = active_next & x.is_valid()
            area &= ~mi.has_flag(bs.sampled_type, mi.BSDFFlags.Delta)
            to_x = x.p - si.p
            dist2 = dr.squared_norm(to_x)
            ω = to_x * dr.rsqrt(dist2)
            G = dr.abs(dr.dot(x.n, ω)) / dist2
            wo = dr.replace_grad(wo, dr.select(area, ω, wo))
            J = dr.select(area & (dr.detach(G) > 0), relative(G), 1)
        f = bsdf.eval(ctx, si, si.to_local(wo), active_next)
        return mi.Spectrum(1), relative(f) * J


def geometry_moves(scene: mi.Scene) -> bool:
    """Whether a shape of ``scene`` carries derivatives (a vertex can move)."""
    return bool(moving_meshes(scene) or moving_analytic_shapes(scene))


def _develop(film: mi.Film, pos, ray: mi.Ray3f, value: mi.Spectrum, alpha, spp: int):
    """Splat per-sample ``value`` at film positions ``pos`` and develop the image."""
    block = film.create_block()
    block.set_coalesce(block.coalesce() and spp >= 4)
    ADIntegrator._splat_to_block(
        block, film, pos, value=value, weight=1.0, alpha=alpha, aovs=[], wavelengths=ray.wavelengths
    )
    film.put_block(block)
    return film.develop()


def _adjoint_radiance(film: mi.Film, pos, ray: mi.Ray3f, weight, grad_in, spp: int):
    """``δL`` per sample: the image gradient ``grad_in`` pulled back through the film's
    splatting and weight division (reverse mode of :func:`_develop`)."""
    with dr.resume_grad():
        L = dr.full(mi.Spectrum, 1.0, dr.width(ray))
        dr.enable_grad(L)
        image = _develop(film, pos, ray, L * weight, 1.0, spp)
        dr.set_grad(image, grad_in)
        dr.enqueue(dr.ADMode.Backward, image)
        dr.traverse(dr.ADMode.Backward)
        δL = dr.grad(L)
    film.clear()
    return δL
