"""Measure one estimator on one problem: bias, relative RMSE, time, memory, optimization.

All derivatives are forward-mode images ``dI/dθ`` at θ = 0 (:func:`pathdiff.derivative`)
with ``seeds`` independent seeds at ``spp`` samples per pixel, after one warm-up call that
compiles the kernels. Against the stored FD reference (:mod:`.make_references`):

* **bias**: the summary statistics (image total + random-weight losses,
  :func:`pathdiff.stats.summary`) averaged over the seeds minus the reference's, reported as
  ``‖Δ‖ / ‖ref‖`` with a standard error (delta method) and as the largest ``|z|`` against
  the Student-t threshold of :func:`pathdiff.stats.threshold`;
* **rel. RMSE**: ``sqrt(mean_k ‖D_k − ref‖²) / ‖ref‖`` per image at the fixed spp;
* **time**: median wall time of one derivative (seeds 2…K; the first seed is the memory run);
* **peak memory**: Dr.Jit's allocation watermark during the first seed's derivative minus the
  memory in use before it (the allocator cache is flushed first: blocks served from the
  cache would not raise the watermark);
* **efficiency**: rel. MSE × time (lower is better);
* **optimization**: ``opt_iters`` Adam steps on θ from 0 towards the target θ with the loss
  gradient (:func:`pathdiff.gradient`, reverse mode) of the estimator; the final parameter
  error is ``|θ − target| / |target|``, through :func:`pathdiff.optimize` (which takes the
  suite-local ParamSpecs like any other).
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import drjit as dr
import mitsuba as mi
import numpy as np

import pathdiff as pd
from pathdiff.backend import jit_backend
from pathdiff.scene import ParamSpec
from pathdiff.stats import mean_se, random_weights, summary, threshold

from .main import NUMBERS
from .problems import Problem, caveat, resolve

MIB = 2**20
#: absolute noise floor of the z-test, as a fraction of the RMS of the reference statistics
FLOOR_FRACTION = 1e-3
SEED0 = 1000


@dataclass
class Settings:
    """Run settings shared by every pair."""

    spp: int = NUMBERS["spp"][0]
    seeds: int = NUMBERS["seeds"][0]
    opt_iters: int = NUMBERS["opt_iters"][0]
    opt_spp: int = NUMBERS["opt_spp"][0]


@dataclass
class Result:
    """One (problem, estimator) pair. ``status`` is ``ok`` or ``n/a``; ``note`` says why."""

    problem: str
    estimator: str
    status: str
    note: str = ""
    bias: float = math.nan
    bias_se: float = math.nan
    max_z: float = math.nan
    threshold: float = math.nan
    rel_rmse: float = math.nan
    time: float = math.nan
    peak_mib: float = math.nan
    opt_error: float = math.nan
    opt_trace: list[float] = field(default_factory=list)
    mean_image: np.ndarray | None = field(default=None, repr=False)

    @property
    def biased(self) -> bool:
        return self.max_z > self.threshold

    @property
    def efficiency(self) -> float:
        return self.rel_rmse**2 * self.time

    def to_dict(self) -> dict:
        """JSON-ready fields (no image)."""
        d = {k: v for k, v in asdict(self).items() if k != "mean_image"}
        d["efficiency"] = self.efficiency
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in d.items()}


def peak_memory(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    """``fn()`` and the rise of Dr.Jit's allocation watermark during it (MiB). The allocator
    cache is flushed first: cached blocks do not count towards the watermark."""
    gc.collect()
    dr.flush_malloc_cache()
    dr.detail.malloc_clear_statistics()
    in_use = dr.detail.malloc_watermark(jit_backend())
    out = fn()
    return out, (dr.detail.malloc_watermark(jit_backend()) - in_use) / MIB


def derivatives(
    scene: mi.Scene, spec: ParamSpec, estimator: str, s: Settings, opts: dict
) -> tuple[list[np.ndarray], list[float], float]:
    """``seeds`` derivative images, the timings of seeds 2…K and the peak memory (MiB)."""

    def run(seed: int) -> np.ndarray:
        return pd.derivative(scene, spec, estimator, spp=s.spp, seed=seed, **opts)

    run(SEED0 - 1)  # warm-up: tracing and kernel compilation
    first, peak = peak_memory(lambda: run(SEED0))
    images, times = [first], []
    for k in range(1, s.seeds):
        t0 = time.perf_counter()
        images.append(run(SEED0 + k))
        times.append(time.perf_counter() - t0)
    return images, times, peak


def bias(images: list[np.ndarray], ref_stats: np.ndarray) -> tuple[float, float, float, float]:
    """``(‖Δ‖/‖ref‖, its standard error, max |z|, threshold)`` of the summary statistics."""
    w = random_weights(images[0].shape)
    m, se = mean_se([summary(x, w) for x in images])
    r, r_se = mean_se(list(ref_stats))
    d, norm = m - r, np.linalg.norm(r)
    var = se**2 + r_se**2
    floor = FLOOR_FRACTION * np.sqrt(np.mean(r**2))
    z = d / np.sqrt(var + floor**2 + 1e-30)
    d_norm = np.linalg.norm(d)
    d_se = np.sqrt(np.sum((d / max(d_norm, 1e-30)) ** 2 * var))
    thr = threshold(len(r), len(images), len(ref_stats))
    return float(d_norm / norm), float(d_se / norm), float(np.abs(z).max()), thr


def optimize(
    p: Problem, scene: mi.Scene, spec: ParamSpec, target: np.ndarray, estimator: str, s: Settings
) -> list[float]:
    """θ before and after each of ``opt_iters`` steps of :func:`pathdiff.optimize` from θ = 0
    towards the target image, with the estimator's reverse-mode gradients. The learning rate
    starts at |target| / 2 and decays to |target| / 100 (cosine, second half), and Adam's
    β1 = 0.5 (less momentum than the usual 0.9, which overshoots in so few steps)."""
    try:
        res = pd.optimize(
            scene,
            [spec],
            [target],
            iters=s.opt_iters,
            lr=abs(p.target) / 2,
            lr_final=0.02,
            beta1=0.5,
            spp=s.opt_spp,
            seed=SEED0 + 100,
            loss=p.loss,
            integrator=estimator,
            integrator_options=dict(p.opts),
            progress=False,
        )
    finally:
        spec.reset()  # the scene as it was: the next estimator starts from the same place
    # values at the start of each iteration, then the final one
    return [float(θ) for θ in res.trajectory[spec.name][:, 0]] + [float(res.values[spec.name][0])]


def run_pair(p: Problem, scene: mi.Scene, ref: dict, estimator: str, s: Settings) -> Result:
    """Measure ``estimator`` on ``p`` (see the module docstring); errors become ``n/a``."""
    note = caveat(p, estimator)
    spec = resolve(p, scene, estimator=estimator)
    try:
        images, times, peak = derivatives(scene, spec, estimator, s, p.opts)
        trace = optimize(p, scene, spec, ref["target_image"], estimator, s) if s.opt_iters else []
    except Exception as e:  # an estimator that cannot handle the problem is reported, not fatal
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return Result(p.name, estimator, "n/a", f"{type(e).__name__}: {first[:120]}")
    b, b_se, max_z, thr = bias(images, ref["stats"])
    ref_mean = ref["mean"].astype(np.float64)
    errors = [np.sum((x - ref_mean) ** 2) for x in images]
    return Result(
        p.name,
        estimator,
        "ok",
        note,
        bias=b,
        bias_se=b_se,
        max_z=max_z,
        threshold=thr,
        rel_rmse=float(np.sqrt(np.mean(errors)) / np.linalg.norm(ref_mean)),
        time=statistics.median(times),
        peak_mib=peak,
        opt_error=abs(trace[-1] - p.target) / abs(p.target) if trace else math.nan,
        opt_trace=trace,
        mean_image=np.mean(images, axis=0).astype(np.float32),
    )
