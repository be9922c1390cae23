"""``pathdiff_edge``: interior term by path replay plus edge-sampled boundary terms."""

from __future__ import annotations

import warnings

import drjit as dr
import mitsuba as mi
import numpy as np

from .base import RNGSampler, mis_weight
from .camera import PinholeCamera
from .camera import attached as camera_attached
from .edges import MeshEdges, StaticEdges, moving_analytic_shapes, moving_meshes
from .prb import PRBIntegrator

#: offset (pixels) of the two primary rays on either side of an edge point
EPS_PIXEL = 1e-3
#: angular offset (radians) of the two secondary rays on either side of an edge direction
EPS_ANGLE = 1e-4


class EdgeIntegrator(PRBIntegrator):
    """Interior term (``pathdiff_prb``) plus the boundary term by edge sampling (Li et al. 2018).

    Reynolds' theorem splits the derivative of an integral whose integrand jumps across a
    moving curve Γ into the interior term and ``∫_Γ (f⁻ − f⁺) V_n dℓ``, with ``n`` pointing to
    the "+" side and ``V_n`` the normal velocity of Γ. Points on Γ are sampled on mesh edges:

    * **primary** (image plane): edges projected to the film, picked ∝ projected length;
      ``f± = L(x ± ε n)`` is the radiance of camera rays just beside the edge (full path
      tracing, shared random numbers), ``V_n = n · ∂x`` comes from AD through the projection
      of the attached endpoints; the sample is splatted through the film's reconstruction
      filter (the pixel it falls in for a box filter; ``sample_border`` honoured).
    * **secondary** (sphere of directions at each path vertex ``p`` of the replay): an edge
      ``(v0, v1)`` picked ∝ length, ``y = v0 + t(v1 − v0)``, ``ω = (y − p)/|y − p|``,
      ``m = (v0 − p) × (v1 − p)``; the term is ``β f_s(ω) (L⁺ − L⁻) ∂(ω·m)/|m| |dω/dt| / pmf``
      with ``|dω/dt| = |(I − ωωᵀ)(v1 − v0)| / |y − p|`` and ``L±`` the incident radiance along
      ``ω ± ε m/|m|`` (shadows of moving occluders, occlusion of indirect light).

    Primary samples come from the edges of meshes whose vertex positions carry derivatives,
    secondary ones too and, with ``static_edges`` (default true), at vertices on a moving
    mesh (a moving receiver) also from one table of all static edges: ``p`` is attached, so
    ``∂(ω·m)`` includes the vertex's own motion (a static occluder's shadow sliding over a
    moving surface). That part of the velocity is not the whole story for the emission at
    the side rays' first hits: NEE (MIS weight ``w_em``) holds its sample fixed on the
    emitter, where the boundary moves only by the factor ``1 − r_e/r_L`` (edge and emitter
    at distances ``r_e``, ``r_L``); :meth:`nee_share` removes the difference. Parameters:
    ``edge_samples`` (primary boundary samples per pixel; default: the render's spp),
    ``primary`` / ``secondary`` (enable each term); ``crease_rule=legacy`` and
    ``pixel_splat`` restore the pre-issue-14 crease rule and one-pixel splat (negative controls
    for the tests). Candidate edges: see :mod:`.edges` (split normals and UV seams are
    creases). Limits: pinhole perspective sensors, no crop window (warned); edges partly
    behind the camera are skipped; moving emitters are not supported; shadows of delta lights
    are not sampled.
    """

    def __init__(self, props: mi.Properties):
        super().__init__(props)
        self.edge_samples = props.get("edge_samples", 0)
        self.primary = props.get("primary", True)
        self.secondary = props.get("secondary", True)
        self.static_edges = props.get("static_edges", True)
        # "legacy": creases from has_vertex_normals() only (negative control for the tests)
        self.crease_rule = props.get("crease_rule", "")
        # true: splat primary samples into one pixel whatever the film's filter (the old
        # behaviour, a negative control for the tests)
        self.pixel_splat = props.get("pixel_splat", False)
        self.options.update(
            edge_samples=self.edge_samples,
            primary=self.primary,
            secondary=self.secondary,
            static_edges=self.static_edges,
        )
        self._tables: dict[int, MeshEdges] = {}
        self._edges: list[tuple[MeshEdges, mi.DiscreteDistribution]] = []
        self._moving: list[mi.Mesh] = []
        self._static: list[tuple[StaticEdges, mi.DiscreteDistribution]] = []
        self._static_cache: StaticEdges | None = None
        self._camera = False

    # ---- Edge tables -----------------------------------------------------------------------
    def prepare_edges(self, scene: mi.Scene, camera: bool = False) -> list[MeshEdges]:
        """Edge tables of the moving meshes with their length-weighted distributions and,
        for moving receivers, one table of all static edges (at their current positions).
        ``camera``: the camera moves, so every camera hit is a moving receiver."""
        self._camera = camera
        self._moving = moving_meshes(scene)
        for shape in moving_analytic_shapes(scene):
            warnings.warn(
                f"{self.plugin}: shape {shape.id() or shape.class_name()!r} "
                f"({shape.class_name()}) moves, but analytic shapes have no boundary term here: "
                "its silhouette and shadow derivatives are missing (use a triangle mesh)",
                stacklevel=3,
            )
        tables = [self._table(mesh) for mesh in self._moving]
        static = [s for s in scene.shapes() if s.is_mesh() and s not in self._moving]
        with dr.suspend_grad():
            self._edges = []
            for t in tables:
                w = t.geometry().weight()
                if dr.sum(w)[0] > 0:
                    self._edges.append((t, mi.DiscreteDistribution(w)))
            self._static = []
            if self.static_edges and (tables or camera) and static:
                table = self._static_table(static)
                w = table.geometry().weight()
                if dr.sum(w)[0] > 0:
                    self._static.append((table, mi.DiscreteDistribution(w)))
        return tables

    def _table(self, mesh: mi.Mesh) -> MeshEdges:
        if id(mesh) not in self._tables or self._tables[id(mesh)].mesh is not mesh:
            self._tables[id(mesh)] = MeshEdges(mesh, self.crease_rule)
        return self._tables[id(mesh)]

    def _static_table(self, meshes: list[mi.Mesh]) -> StaticEdges:
        """The table of ``meshes``' edges: indices kept while the set of static meshes stays
        the same, positions refreshed."""
        tables = [self._table(mesh) for mesh in meshes]
        cached = self._static_cache
        if cached is None or [id(t) for t in cached.tables] != [id(t) for t in tables]:
            self._static_cache = StaticEdges(tables)
        else:
            cached.refresh()
        return self._static_cache

    def on_moving(self, si: mi.SurfaceInteraction3f) -> mi.Bool:
        """Whether ``si`` lies on a moving mesh (static edges move relative to it)."""
        moving = mi.Bool(False)
        for mesh in self._moving:
            moving |= si.shape == mi.ShapePtr(mesh)
        return moving

    # ---- Render passes: interior (+ secondary in the replay) + primary ----------------------
    def _camera_moves(self, scene: mi.Scene, sensor) -> bool:
        return camera_attached(scene.sensors()[sensor] if isinstance(sensor, int) else sensor)

    def render_forward(self, scene, params, sensor=0, seed=0, spp=0) -> mi.TensorXf:
        self.prepare_edges(scene, self._camera_moves(scene, sensor))
        grad = super().render_forward(scene, params, sensor, seed, spp)
        with dr.resume_grad():
            B = self.boundary(scene, sensor, seed, spp)
            if B is not None:  # one traversal (it clears the parameters' input gradients);
                # B may not depend on θ (edges behind the camera): AllowNoGrad
                dr.forward_to(B, flags=dr.ADFlag.Default | dr.ADFlag.AllowNoGrad)
                grad = grad + dr.grad(B)
        return grad

    def render_backward(self, scene, params, grad_in, sensor=0, seed=0, spp=0) -> None:
        self.prepare_edges(scene, self._camera_moves(scene, sensor))
        super().render_backward(scene, params, grad_in, sensor, seed, spp)
        with dr.resume_grad():
            B = self.boundary(scene, sensor, seed, spp)
            if B is not None:
                dr.backward_from(
                    dr.sum(B * grad_in, axis=None), flags=dr.ADFlag.Default | dr.ADFlag.AllowNoGrad
                )

    def has_vertex_term(self) -> bool:
        return self.secondary and bool(self._edges or (self._camera and self._static))

    def boundary(
        self, scene: mi.Scene, sensor: int | mi.Sensor, seed: int, spp: int
    ) -> mi.TensorXf | None:
        """Attached zero-valued image of the boundary terms estimated outside the replay."""
        return self.primary_boundary(scene, sensor, seed, spp)

    # ---- Primary visibility ------------------------------------------------------------------
    def primary_boundary(
        self, scene: mi.Scene, sensor: int | mi.Sensor, seed: int, spp: int
    ) -> mi.TensorXf | None:
        """Attached zero-valued image whose derivative is the primary boundary term."""
        if isinstance(sensor, int):
            sensor = scene.sensors()[sensor]
        tables = [t for t, _ in self._edges]
        camera = PinholeCamera.of(sensor) if camera_attached(sensor) else None
        if camera is not None:  # a moving camera moves every edge in the image
            tables = [self._table(m) for m in scene.shapes() if m.is_mesh()]
        if not self.primary or not tables:
            return None
        film = sensor.film()
        W, H = film.crop_size()
        _warn_film(film)
        box = self.pixel_splat or film.rfilter().radius() <= 0.5 + 1e-6
        border = 0 if box or not film.sample_border() else int(film.rfilter().border_size())
        spp = self.edge_samples or spp or sensor.sampler().sample_count()
        N = W * H * spp
        to_world = sensor.world_transform()
        c = to_world @ mi.Point3f(0)
        forward = to_world @ mi.Vector3f(0, 0, 1)
        near = sensor.near_clip()

        def project(p):
            if camera is not None:  # attached pose and fov
                return camera.project(p)
            it = dr.zeros(mi.Interaction3f, dr.width(p))
            it.p = p
            ds, _ = sensor.sample_direction(it, mi.Point2f(0))
            return ds.uv, dr.dot(dr.detach(p) - c, forward) > near

        image = dr.zeros(mi.Float, W * H * 3)
        for i, table in enumerate(tables):
            with dr.suspend_grad():
                g = table.geometry()
                a, front_a = project(g.v0)
                b, front_b = project(g.v1)
                w = dr.select(front_a & front_b & g.candidate(c), dr.norm(b - a), 0)
                if dr.sum(w)[0] == 0:
                    continue
                rng = RNGSampler(mi.PCG32(N, dr.opaque(mi.UInt64, seed << 8 | i)))
                idx, _, pmf = mi.DiscreteDistribution(w).sample_reuse_pmf(rng.next_1d())
                t = rng.next_1d()
                a, b = dr.gather(mi.Point2f, a, idx), dr.gather(mi.Point2f, b, idx)
                x = dr.lerp(a, b, t)
                length = dr.norm(b - a)
                n = mi.Vector2f(a.y - b.y, b.x - a.x) / length
                lo, hi = -border, mi.ScalarPoint2f(W + border, H + border)
                inside = (x.x >= lo) & (x.y >= lo) & (x.x < hi.x) & (x.y < hi.y) & (pmf > 0)
                L_plus = self.camera_radiance(scene, sensor, x + EPS_PIXEL * n, rng.copy(), inside)
                L_minus = self.camera_radiance(scene, sensor, x - EPS_PIXEL * n, rng, inside)
                weight = (L_minus - L_plus) * length / (pmf * N)
            g = table.geometry(idx)
            x_att = dr.lerp(project(g.v0)[0], project(g.v1)[0], t)
            Vn = dr.dot(n, x_att - dr.detach(x_att))
            self._splat(film, image, x, weight * Vn, inside)
        return mi.TensorXf(image, shape=(H, W, 3))

    def _splat(
        self,
        film: mi.Film,
        image: mi.Float,
        x: mi.Point2f,
        value: mi.Spectrum,
        active: mi.Bool,
    ) -> None:
        """Add ``value`` (per unit film area) at film position ``x`` (pixels) to ``image``:
        into the pixel containing ``x`` for a box filter (or ``pixel_splat``), else through
        the film's reconstruction filter (:meth:`_splat_filtered`)."""
        if self.pixel_splat or film.rfilter().radius() <= 0.5 + 1e-6:
            W = film.crop_size()[0]
            pixel = mi.UInt32(dr.floor(x.y)) * W + mi.UInt32(dr.floor(x.x))
            for ch in range(3):
                dr.scatter_reduce(dr.ReduceOp.Add, image, value[ch], 3 * pixel + ch, active)
        else:
            self._splat_filtered(film, image, x, value, active)

    def _splat_filtered(self, film, image, x, value, active) -> None:
        """Splat ``value`` at film position ``x`` through the film's reconstruction filter
        ``f``: pixel ``c`` receives ``f(c − x) / ∫_D f(c − x') dx'``, the weight the film's
        normalized splatting gives a sample there (``D``: the sampled film area, enlarged
        by the filter's border with ``sample_border``)."""
        W, H = film.crop_size()
        rfilter = film.rfilter()
        R = int(np.ceil(rfilter.radius() + 0.5))
        border = int(rfilter.border_size()) if film.sample_border() else 0
        norm_x, norm_y = self._filter_norms(film, border)
        base = mi.Point2i(dr.floor(x))
        for dy in range(-R, R + 1):
            py = base.y + dy
            in_y = (py >= 0) & (py < H)
            fy = rfilter.eval(mi.Float(py) + 0.5 - x.y)
            fy *= dr.gather(mi.Float, norm_y, mi.UInt32(py), in_y)
            for dx in range(-R, R + 1):
                px = base.x + dx
                ok = active & (px >= 0) & (px < W) & in_y
                w = fy * rfilter.eval(mi.Float(px) + 0.5 - x.x)
                w *= dr.gather(mi.Float, norm_x, mi.UInt32(px), ok)
                pixel = mi.UInt32(py * W + px)
                for ch in range(3):
                    dr.scatter_reduce(dr.ReduceOp.Add, image, w * value[ch], 3 * pixel + ch, ok)

    def _filter_norms(self, film, border: int) -> tuple[mi.Float, mi.Float]:
        """``1 / ∫_D f(c − x) dx`` per pixel column and row (cached per film)."""
        key = (id(film), tuple(film.crop_size()), border, str(film.rfilter()))
        if getattr(self, "_norm_key", None) != key:
            r = film.rfilter().radius()
            t = (np.arange(4096) + 0.5) / 4096 * 2 * r - r  # offsets c − x in (−r, r)
            f = np.array(film.rfilter().eval(mi.Float(t)), dtype=np.float64) * (2 * r / 4096)
            norms = []
            for n in film.crop_size():
                c = np.arange(n) + 0.5
                xs = c[:, None] - t[None, :]
                inside = (xs >= -border) & (xs < n + border)
                norms.append(
                    mi.Float((1 / np.maximum((f * inside).sum(1), 1e-12)).astype(np.float32))
                )
            self._norm_key, self._norms = key, tuple(norms)
        return self._norms

    def camera_radiance(
        self, scene: mi.Scene, sensor: mi.Sensor, x: mi.Point2f, rng: RNGSampler, active: mi.Bool
    ) -> mi.Spectrum:
        """Primal radiance of the camera ray through film position ``x`` (pixels)."""
        size = mi.ScalarVector2f(sensor.film().crop_size())
        ray, w = sensor.sample_ray(0.0, 0.5, x / size, mi.Point2f(0.5), active)
        L, _, _, _ = self.sample(dr.ADMode.Primal, scene, rng, mi.Ray3f(ray), active=active)
        return L * w

    # ---- Secondary visibility (called at every vertex of the replay) ------------------------
    def vertex_term(self, scene, si, bsdf, β, depth, rng, active) -> mi.Spectrum:
        total = mi.Spectrum(0)
        receiver = active
        if self._static:  # static edges move relative to a moving receiver or camera hit
            receiver = active & (self.on_moving(si) | (self._camera & (depth == 0)))
        for table, distr in self._edges + self._static:
            lanes = receiver if isinstance(table, StaticEdges) else active
            with dr.suspend_grad():
                weight, weight_nee, ω, idx, ok = self._secondary_sample(
                    scene, si, bsdf, β, depth, rng, table, distr, lanes
                )
            g = table.geometry(idx, ok)
            α = dr.dot(ω, dr.cross(g.v0 - si.p, g.v1 - si.p))
            # the part of ∂α due to the vertex's own motion
            α_p = dr.dot(ω, dr.cross(dr.detach(g.v0) - si.p, dr.detach(g.v1) - si.p))
            term = weight * (α - dr.detach(α)) - weight_nee * (α_p - dr.detach(α_p))
            total += dr.select(ok, term, 0)
        return total

    def nee_share(
        self,
        scene: mi.Scene,
        si: mi.SurfaceInteraction3f,
        bsdf: mi.BSDF,
        ray: mi.Ray3f,
        r_e: mi.Float,
        active: mi.Bool,
    ) -> mi.Spectrum:
        """``w_em (r_e / r_L) Le`` of the first hit along ``ray`` (detached): the share of a
        boundary's jump in emission that does not follow the vertex's own motion.

        NEE holds its sample fixed on the emitter (area measure) and gets MIS weight
        ``w_em``. When the vertex ``p`` moves by ``ṗ``, a boundary through an edge at
        distance ``r_e`` moves on the sphere of directions at ``n_hat·ṗ / r_e``, but across a
        fixed emitter point at distance ``r_L`` only at ``n_hat·ṗ (1/r_e − 1/r_L)``: NEE's share
        of the jump ``Le`` is therefore counted with the factor ``1 − r_e/r_L`` for the part
        of the velocity due to ``ṗ``. On an emitter's own outline ``r_L = r_e`` (only the
        BSDF-sampled share jumps); an infinite emitter has ``r_L = ∞`` (no correction)."""
        hit = scene.ray_intersect(ray, active)
        valid = active & hit.is_valid()
        ds = mi.DirectionSample3f(scene, si=hit, ref=si)
        Le = ds.emitter.eval(hit, valid)
        em_pdf = scene.pdf_emitter_direction(si, ds, valid)
        bsdf_pdf = bsdf.pdf(mi.BSDFContext(), si, si.to_local(ray.d), valid)
        nee = mi.has_flag(bsdf.flags(), mi.BSDFFlags.Smooth)
        w_em = dr.select(nee, mis_weight(em_pdf, bsdf_pdf), 0)
        return dr.select(valid, w_em * (r_e / hit.t) * Le, 0)

    def _secondary_sample(self, scene, si, bsdf, β, depth, rng, table, distr, active):
        """Detached part of one secondary edge sample: weight, weight of the NEE share
        (see :meth:`nee_share`), direction, edge, validity."""
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
        n_hat = m / m_len
        budget = mi.UInt32(self.max_depth) - depth - 1
        L, S = [], []
        for sign, r in ((1, rng.copy()), (-1, rng)):
            ray = si.spawn_ray(ω)  # aim at y ± δ n_hat: the origin's offset must not cancel δ
            ray.d = dr.normalize(y + sign * EPS_ANGLE * dist * n_hat - ray.o)
            Li, _, _, _ = self.sample(
                dr.ADMode.Primal, scene, r, ray, active=ok, max_depth=budget, camera=False
            )
            L.append(Li)
            S.append(self.nee_share(scene, si, bsdf, ray, dist, ok))
        f = bsdf.eval(mi.BSDFContext(), si, si.to_local(ω), ok)
        e = g.v1 - g.v0
        dω_dt = dr.norm(e - ω * dr.dot(ω, e)) / dist
        w = β * f * dω_dt / (pmf * m_len)
        return w * (L[0] - L[1]), w * (S[0] - S[1]), ω, idx, ok


def _warn_film(film: mi.Film) -> None:
    """One warning line for the film features the primary term does not handle: a crop
    window (boundary samples are placed on the full film)."""
    if list(film.crop_offset()) != [0, 0] or list(film.crop_size()) != list(film.size()):
        warnings.warn(
            "pathdiff: the primary boundary term ignores the film's crop window", stacklevel=3
        )
