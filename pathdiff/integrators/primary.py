"""The primary (image-plane) boundary term by edge sampling, a part the boundary estimators
compose (``pathdiff_edge``, ``pathdiff_psdr``, ``pathdiff_reparam``).

The pixel integral ``I_j = ∫ W_j(x) L(x) dx`` jumps across the projections of silhouette
edges. Reynolds' theorem gives the boundary term ``∫_Γ W_j(x) (L⁻ − L⁺) V_n dℓ`` with
``V_n = n·∂x`` the normal velocity of the projected edge (``n`` towards the "+" side). Edges
are picked ∝ projected length (stratified over the batch, neighbouring samples on nearby
edges: coherent rays), a point ``x`` uniformly on the edge; ``L± = L(x ± ε n)`` is the
primal radiance of camera rays just beside it (full path tracing, shared random numbers) and
``V_n`` comes from AD through the projection of the attached endpoints (the attached camera
pose and fov when the camera moves). The sample is splatted through the film's reconstruction
filter (:meth:`PrimaryEdges.splat`); ``sample_border`` is honoured.

Options: ``primary`` (default true), ``edge_samples`` (samples per pixel, default the render's
spp) and ``pixel_splat`` (true: one pixel whatever the filter; the pre-issue-14 behaviour, a
negative control for the tests). Limits: pinhole perspective sensors; no crop window
(warned); edges partly behind the camera are skipped.
"""

from __future__ import annotations

import warnings

import drjit as dr
import mitsuba as mi
import numpy as np

from .camera import PinholeCamera
from .camera import attached as camera_attached
from .edges import EdgeSet
from .sampling import RNGSampler

#: offset (pixels) of the two primary rays on either side of an edge point
EPS_PIXEL = 1e-3


class PrimaryEdges:
    """Image-plane edge sampling; the rays beside each edge are traced by the primal
    ``sample`` of the integrator ``loop`` given per call (a part holds no reference to its
    integrator: Python-derived Mitsuba plugins must not sit in reference cycles). Also the
    film splat shared with path-space boundary terms."""

    def __init__(self, props: mi.Properties):
        self.enabled = props.get("primary", True)
        self.edge_samples = props.get("edge_samples", 0)
        self.pixel_splat = props.get("pixel_splat", False)
        self._norm_key = None

    def options(self) -> dict:
        """The options as users write them (for ``to_string``)."""
        return {"edge_samples": self.edge_samples, "primary": self.enabled}

    def samples_per_pixel(self, spp: int, sensor: mi.Sensor) -> int:
        """Boundary samples per pixel: ``edge_samples``, else the render's, else the sensor's."""
        return self.edge_samples or spp or sensor.sampler().sample_count()

    def image(
        self, scene: mi.Scene, sensor: mi.Sensor, seed: int, spp: int, edges: EdgeSet, loop
    ) -> mi.TensorXf | None:
        """Attached zero-valued image whose derivative is the primary boundary term."""
        tables = edges.primary
        if not self.enabled or not tables:
            return None
        film = sensor.film()
        W, H = film.crop_size()
        _warn_film(film)
        box = self.pixel_splat or film.rfilter().radius() <= 0.5 + 1e-6
        border = 0 if box or not film.sample_border() else int(film.rfilter().border_size())
        N = W * H * self.samples_per_pixel(spp, sensor)
        c = sensor.world_transform() @ mi.Point3f(0)
        project = self.projector(sensor)
        image = dr.zeros(mi.Float, W * H * 3)
        for i, table in enumerate(tables):
            with dr.suspend_grad():
                g = table.geometry()
                a, front_a = project(g.v0)
                b, front_b = project(g.v1)
                seen = front_a & front_b & g.candidate(c) & edges.primary_keep[i]
                w = dr.select(seen, dr.norm(b - a), 0)
                rng = RNGSampler(mi.PCG32(N, dr.opaque(mi.UInt64, seed << 8 | i)))
                idx, _, pmf = mi.DiscreteDistribution(w).sample_reuse_pmf(rng.next_1d_sorted())
                t = rng.next_1d()
                a, b = dr.gather(mi.Point2f, a, idx), dr.gather(mi.Point2f, b, idx)
                x = dr.lerp(a, b, t)
                length = dr.norm(b - a)
                n = mi.Vector2f(a.y - b.y, b.x - a.x) / length
                lo, hi = -border, mi.ScalarPoint2f(W + border, H + border)
                inside = (x.x >= lo) & (x.y >= lo) & (x.x < hi.x) & (x.y < hi.y) & (pmf > 0)
                L_plus = self.camera_radiance(
                    loop, scene, sensor, x + EPS_PIXEL * n, rng.copy(), inside
                )
                L_minus = self.camera_radiance(loop, scene, sensor, x - EPS_PIXEL * n, rng, inside)
                # pmf is NaN when no edge of the table can be seen: select, never multiply
                weight = dr.select(inside, (L_minus - L_plus) * length / (pmf * N), 0)
                n = dr.select(inside, n, 0)  # no NaN on rejected lanes, even times 0
            g = table.geometry(idx)
            x_att = dr.lerp(project(g.v0)[0], project(g.v1)[0], t)
            Vn = dr.dot(n, x_att - dr.detach(x_att))
            self.splat(film, image, x, weight * Vn, inside)
        return mi.TensorXf(image, shape=(H, W, 3))

    @staticmethod
    def projector(sensor: mi.Sensor):
        """``project(p) -> (film position in pixels, in front of the near plane)`` of world
        points ``p``, attached to ``p`` and (when the camera moves) to the camera's pose/fov."""
        camera = PinholeCamera.of(sensor) if camera_attached(sensor) else None
        to_world = sensor.world_transform()
        c = to_world @ mi.Point3f(0)
        forward = to_world @ mi.Vector3f(0, 0, 1)
        near = sensor.near_clip()

        def project(p: mi.Point3f) -> tuple[mi.Point2f, mi.Bool]:
            if camera is not None:  # attached pose and fov
                return camera.project(p)
            it = dr.zeros(mi.Interaction3f, dr.width(p))
            it.p = p
            ds, _ = sensor.sample_direction(it, mi.Point2f(0))
            return ds.uv, dr.dot(dr.detach(p) - c, forward) > near

        return project

    def camera_radiance(
        self,
        loop,
        scene: mi.Scene,
        sensor: mi.Sensor,
        x: mi.Point2f,
        rng: RNGSampler,
        active: mi.Bool,
    ) -> mi.Spectrum:
        """Primal radiance of the camera ray through film position ``x`` (pixels)."""
        size = mi.ScalarVector2f(sensor.film().crop_size())
        ray, w = sensor.sample_ray(0.0, 0.5, x / size, mi.Point2f(0.5), active)
        L, _, _, _ = loop.sample(dr.ADMode.Primal, scene, rng, mi.Ray3f(ray), active=active)
        return L * w

    # ---- Splatting into the film ---------------------------------------------------------------
    def splat(
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
        """``1 / ∫_D f(c − x) dx`` per pixel column and row (cached per film; computed once on
        the host from the filter's profile)."""
        key = (id(film), tuple(film.crop_size()), border, str(film.rfilter()))
        if self._norm_key != key:
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


def _warn_film(film: mi.Film) -> None:
    """One warning line for the film features the primary term does not handle: a crop
    window (boundary samples are placed on the full film)."""
    if list(film.crop_offset()) != [0, 0] or list(film.crop_size()) != list(film.size()):
        warnings.warn(
            "pathdiff: the primary boundary term ignores the film's crop window", stacklevel=4
        )
