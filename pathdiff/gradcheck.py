"""Check derivative estimators against finite differences, with error bars.

For each scalar parameter θ (a ParamSpec), :func:`gradcheck` renders ``seeds`` independent
forward-mode derivative images ``dI/dθ`` with the integrator under test (AD) and ``fd_seeds``
independent central differences of the primal ``path`` tracer with common random numbers
(FD, each run with its own seed). :func:`pathdiff.stats.compare` reduces every image to
scalar statistics (the channel-summed total and random-weight losses ``Σ_p w_p dI_p/dθ``,
which cannot cancel opposite silhouettes) and the check passes when every statistic agrees
within a Student-t threshold of the combined standard error (estimators.md §7.4).

Default steps ``h`` per parameter kind:

* materials, emitters, textures and any other key: ``1e-2 × max |value|`` over the
  parameter (``1e-2`` if it is all 0), so an albedo of 0.57 gets ``h = 0.0057`` and a
  radiance of 40 gets ``h = 0.4``;
* cameras (``SENSOR.translate|rotate|fov``): 0.002 world units, 0.05 degrees, 0.05 degrees;
* rigid motions (``SHAPE.translate|rotate|scale``): 0.01 world units, 0.5 degrees, 0.01,
  each reduced so that the mesh moves at most ``MAX_EDGE_MOTION_PX`` = 0.05 px on screen.
  The world motion per unit θ (1 for translation; the largest vertex distance r from the
  centroid times π/180 for rotation, r for scaling) is compared with the width of a pixel at
  the centroid's distance d from the camera, ``d · 2 tan(fov/2) / width``. This is an
  estimate: shadows cast on far receivers move more than their caster, so run an h-sweep.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import mitsuba as mi
import numpy as np

from .fd import finite_difference
from .render import derivative
from .scene import ParamSpec, resolve_param
from .stats import Comparison, compare, mean_se

#: interior-only estimators: no boundary term, so geometry derivatives miss visibility
INTERIOR_ONLY = ("prb", "pathdiff_prb", "ad", "pathdiff_ad", "mitsuba:prb", "mitsuba:ad",
                 "mitsuba:prb_basic", "mitsuba:direct_projective")  # fmt: skip
#: a PASS is decisive only if the check could have rejected an error of this relative size
DECISIVE_ERROR = 0.5
DEFAULT_SPP = 64
DEFAULT_FD_SPP = 256
REL_STEP = 1e-2
GEOMETRY_STEP = {"translate": 1e-2, "rotate": 0.5, "scale": 1e-2}
#: camera ParamSpecs: world units, degrees, degrees of horizontal fov
CAMERA_STEP = {"translate": 2e-3, "rotate": 0.05, "fov": 0.05}
MAX_EDGE_MOTION_PX = 0.05
#: absolute noise floor of the z-test, as a fraction of the RMS of the FD mean statistics
FLOOR_FRACTION = 1e-3


@dataclass
class GradcheckResult:
    """AD vs FD for one parameter: mean images ``(H, W, C)``, their per-pixel standard
    errors, the statistics comparison and the verdict."""

    name: str
    kind: str
    integrator: str
    h: float
    spp: int
    fd_spp: int
    seeds: int
    fd_seeds: int
    ad_mean: np.ndarray
    ad_se: np.ndarray
    fd_mean: np.ndarray
    fd_se: np.ndarray
    comparison: Comparison
    floor: float
    panel: str | None = None
    hint: str | None = None

    @property
    def ad_sum(self) -> float:
        return float(self.comparison.a_mean[0])

    @property
    def ad_sum_se(self) -> float:
        return float(self.comparison.a_se[0])

    @property
    def fd_sum(self) -> float:
        return float(self.comparison.b_mean[0])

    @property
    def fd_sum_se(self) -> float:
        return float(self.comparison.b_se[0])

    @property
    def rel_error(self) -> float:
        """``‖AD − FD‖ / ‖FD‖`` over all statistics (the sum and the random-weight losses,
        so opposite silhouettes cannot cancel); 0 if both are 0, inf if only FD is."""
        c = self.comparison
        diff, ref = np.linalg.norm(c.a_mean - c.b_mean), np.linalg.norm(c.b_mean)
        return float(diff / ref) if ref else (math.inf if diff else 0.0)

    @property
    def max_abs_z(self) -> float:
        return float(np.abs(self.comparison.z).max())

    @property
    def threshold(self) -> float:
        return self.comparison.threshold

    @property
    def passed(self) -> bool:
        return self.comparison.passed

    @property
    def power(self) -> float:
        """Largest ``|FD| / σ`` over the statistics (``σ``: combined standard error): how
        many error bars the strongest reference statistic stands from 0. ``inf`` when both
        sides are noise-free (deterministic agreement or disagreement)."""
        c = self.comparison
        sigma = np.hypot(c.a_se, c.b_se)
        if np.all(sigma <= self.floor):
            return math.inf
        return float(np.max(np.abs(c.b_mean) / np.maximum(sigma, self.floor)))

    @property
    def decisive(self) -> bool:
        """Whether the check could reject an estimator off by ``DECISIVE_ERROR`` (50 %) on
        its strongest statistic: ``DECISIVE_ERROR · |FD| > threshold · σ``."""
        return self.power * DECISIVE_ERROR > self.threshold

    @property
    def verdict(self) -> str:
        """FAIL (some statistic disagrees), PASS (all agree and the check was decisive) or
        INCONCLUSIVE (all agree within error bars too wide to tell a 50 % error)."""
        if not self.passed:
            return "FAIL"
        return "PASS" if self.decisive else "INCONCLUSIVE"

    @property
    def decisive_spp(self) -> int | None:
        """AD samples per pixel (FD's scaled alike) at which the check would be decisive:
        standard errors shrink as ``1/sqrt(spp)``. ``None`` if the reference is 0."""
        if self.decisive:
            return self.spp
        if self.power == 0:
            return None
        k = (self.threshold / (DECISIVE_ERROR * self.power)) ** 2
        return int(2 ** math.ceil(math.log2(self.spp * k * 1.2)))

    def to_dict(self) -> dict:
        """JSON-ready summary (no images); ``inf`` becomes ``None``."""
        c = self.comparison
        return {
            "spec": self.name,
            "kind": self.kind,
            "integrator": self.integrator,
            "h": self.h,
            "spp": self.spp,
            "fd_spp": self.fd_spp,
            "seeds": self.seeds,
            "fd_seeds": self.fd_seeds,
            "ad_sum": self.ad_sum,
            "ad_sum_se": self.ad_sum_se,
            "fd_sum": self.fd_sum,
            "fd_sum_se": self.fd_sum_se,
            "rel_error": None if math.isinf(self.rel_error) else self.rel_error,
            "ad_stats": c.a_mean.tolist(),
            "ad_stats_se": c.a_se.tolist(),
            "fd_stats": c.b_mean.tolist(),
            "fd_stats_se": c.b_se.tolist(),
            "z": c.z.tolist(),
            "max_abs_z": self.max_abs_z,
            "threshold": self.threshold,
            "floor": self.floor,
            "verdict": self.verdict,
            "decisive_spp": self.decisive_spp,
            "hint": self.hint,
            "panel": self.panel,
        }


def _pixel_footprint(scene: mi.Scene, point: np.ndarray) -> float:
    """World-space width of one pixel at the distance of ``point`` from the first sensor."""
    sensor = scene.sensors()[0]
    origin = np.array(sensor.world_transform().translation()).ravel()
    fov = float(np.array(mi.traverse(sensor)["x_fov"]).ravel()[0])
    width = sensor.film().crop_size()[0]
    return float(np.linalg.norm(point - origin)) * 2 * math.tan(math.radians(fov) / 2) / width


def default_step(scene: mi.Scene, spec: ParamSpec) -> float:
    """The finite-difference step ``h`` for ``spec`` (rules in the module docstring)."""
    if spec.kind == "camera":  # every edge in the image moves: small steps
        return CAMERA_STEP[re.search(r"\.(translate|rotate|fov)", spec.name).group(1)]
    m = re.search(r"\.(translate|rotate)\.[xyz]$|\.(scale)$", spec.name)
    positions = [k for k in spec.keys if k.endswith("vertex_positions")]
    if spec.kind == "geometry" and m and positions:
        motion = m.group(1) or m.group(2)
        P = np.array(spec.base[positions[0]], dtype=np.float64).reshape(-1, 3)
        centre = P.mean(0)
        radius = float(np.linalg.norm(P - centre, axis=1).max())
        speed = {"translate": 1.0, "rotate": radius * math.pi / 180, "scale": radius}[motion]
        limit = MAX_EDGE_MOTION_PX * _pixel_footprint(scene, centre) / max(speed, 1e-12)
        return min(GEOMETRY_STEP[motion], limit)
    scale = max(float(np.abs(np.array(spec.base[k])).max(initial=0)) for k in spec.keys)
    return REL_STEP * (scale or 1.0)


def check_param(
    scene: mi.Scene,
    spec: str | ParamSpec,
    integrator: str = "prb",
    spp: int | None = None,
    fd_spp: int | None = None,
    h: float | None = None,
    seeds: int = 4,
    fd_seeds: int = 8,
    alpha: float = 1e-3,
    seed: int = 0,
    **opts,
) -> GradcheckResult:
    """Gradcheck of one parameter (see :func:`gradcheck`)."""
    if min(seeds, fd_seeds) < 2:
        raise ValueError("gradcheck needs at least 2 seeds on each side for standard errors")
    if h is not None and h <= 0:
        raise ValueError(f"the finite-difference step must be positive, got h={h}")
    spec = resolve_param(scene, spec) if isinstance(spec, str) else spec
    spp = spp or DEFAULT_SPP
    fd_spp = fd_spp or DEFAULT_FD_SPP
    h = h or default_step(scene, spec)
    ad = [derivative(scene, spec, integrator, spp=spp, seed=seed + i, **opts) for i in range(seeds)]
    fd = [
        finite_difference(scene, spec, h=h, spp=fd_spp, seed=seed + seeds + i, **opts)
        for i in range(fd_seeds)
    ]
    # Absolute floor of the z-test: a statistic that is exactly 0 on both sides (se 0) must
    # not turn float noise into a huge z. 1e-3 of the FD statistics' RMS is far below the
    # Monte Carlo noise of any statistic that carries signal.
    floor = FLOOR_FRACTION * float(np.sqrt(np.mean(compare(ad, fd, alpha).b_mean ** 2)))
    (ad_mean, ad_se), (fd_mean, fd_se) = mean_se(ad), mean_se(fd)
    result = GradcheckResult(
        name=spec.name,
        kind=spec.kind,
        integrator=integrator,
        h=h,
        spp=spp,
        fd_spp=fd_spp,
        seeds=seeds,
        fd_seeds=fd_seeds,
        ad_mean=ad_mean,
        ad_se=ad_se,
        fd_mean=fd_mean,
        fd_se=fd_se,
        comparison=compare(ad, fd, alpha, floor=floor),
        floor=floor,
    )
    result.hint = _hint(result, integrator)
    return result


def _hint(r: GradcheckResult, integrator) -> str | None:
    """Advice for a result that is not a PASS."""
    if r.verdict == "PASS":
        return None
    name = integrator if isinstance(integrator, str) else type(integrator).__name__
    if r.kind in ("geometry", "camera") and name.lower() in INTERIOR_ONLY:
        return (
            f"{name} has no boundary (visibility) term, so moving geometry is missing its "
            "silhouette and shadow derivatives: try --integrator edge (or psdr, reparam)"
        )
    return None


def gradcheck(
    scene: mi.Scene,
    specs: Sequence[str | ParamSpec],
    integrator: str = "prb",
    spp: int | None = None,
    fd_spp: int | None = None,
    h: float | None = None,
    seeds: int = 4,
    fd_seeds: int = 8,
    alpha: float = 1e-3,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    **opts,
) -> list[GradcheckResult]:
    """Compare the derivative images of ``integrator`` with CRN finite differences.

    ``spp``/``fd_spp`` default to 64/256 samples per pixel at the scene's resolution, ``h``
    to :func:`default_step` per parameter. ``seeds`` AD runs (seeds ``seed, seed+1, ...``)
    and ``fd_seeds`` FD runs (the seeds after those) give means and standard errors;
    ``alpha`` is the family-wise false-alarm rate of the t-threshold. ``opts`` are
    integrator options (``max_depth=...``) applied to both AD and FD. ``progress`` is
    called with one line before and one after each parameter.
    """
    results, n = [], len(specs)
    for i, s in enumerate(specs, start=1):
        name = s if isinstance(s, str) else s.name
        if progress is not None:
            progress(f"gradcheck [{i}/{n}] {name} ...")
        t0 = time.perf_counter()
        r = check_param(scene, s, integrator, spp, fd_spp, h, seeds, fd_seeds, alpha, seed, **opts)
        if progress is not None:
            progress(f"gradcheck [{i}/{n}] {name}: {r.verdict} ({time.perf_counter() - t0:.1f} s)")
        results.append(r)
    return results
