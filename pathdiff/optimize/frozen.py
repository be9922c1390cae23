"""Frozen iterations: the render, loss and backward pass of an iteration recorded once and
replayed (Dr.Jit's ``@dr.freeze``).

Tracing an iteration (the Python code of the path loop, the estimator's terms, the loss)
costs time on every iteration even when every kernel comes from the cache. ``dr.freeze``
records the kernels one call launches and replays them for later calls with compatible
inputs, skipping the tracing. The inputs that change between iterations are passed as
arguments so the recording sees them: the scene, each variable's latent value (whose
gradient the replay writes; not the optimizer, whose learning rate is a Python float that
changes every iteration of the decay), the targets' tensors at the current film size,
the seeds (as ``mi.UInt32``, so a new seed does not mean a new recording) and the spp. A
new stage of a schedule (another film size or spp) records once more.

When freezing cannot apply, the iteration runs unfrozen with the same seeds, so the results
are the same either way:

* ``freeze="off"``;
* variables that move geometry or the camera: the scene's acceleration structure is rebuilt
  on the host when vertices move, which a recording cannot replay;
* textures: replaying a recording that updates a bitmap texture crashes Dr.Jit 1.5 (a
  segmentation fault within ten iterations of the textured example);
* a loss given as a Python callable: its Python code runs only while recording, so any
  state it keeps (or a host read) would not be replayed;
* ParamSpec variables (their base values live in the spec, outside the recorded inputs)
  and estimators other than ``prb``/``ad`` (the boundary estimators keep host-built edge
  tables between renders): a failed recording can leave Dr.Jit 1.5 in a state that crashes
  a later call, so these are not tried;
* the first call fails to record (some plugin reads a value back to the host): one warning
  naming the reason, then the unfrozen iteration.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Callable
from contextlib import contextmanager

import drjit as dr
import mitsuba as mi

from ..targets import film_size
from .setup import moves_geometry

#: estimators whose replay holds no state between renders (the boundary estimators keep edge
#: tables, built on the host, that a recording would capture without seeing them change)
FREEZABLE = ("pathdiff_prb", "pathdiff_ad", "pathdiff_path")


def reason_not_to_freeze(p) -> str | None:
    """Why the iterations of ``p`` run unfrozen (``None``: they are frozen)."""
    if p.cfg.freeze == "off":
        return "freeze=off"
    moving = moves_geometry(p.vars)
    if moving:
        return f"{moving[0]} moves geometry or the camera"
    textures = [v.name for v in p.vars if any(isinstance(p.params[k], mi.TensorXf) for k in v.keys)]
    if textures:  # measured: the replay segfaults within 10 iterations (textured example)
        return f"{textures[0]} is a texture (Dr.Jit 1.5's replay crashes on bitmap updates)"
    if callable(p.cfg.loss):  # its Python code would run only while recording
        return "the loss is a Python callable"
    specs = [v.name for v in p.vars if v.kind == "spec"]
    if specs:  # a ParamSpec's base values live in the spec, not in the recorded inputs
        return f"{specs[0]} is a ParamSpec"
    plugin = getattr(p.integ, "plugin", type(p.integ).__name__)
    if plugin not in FREEZABLE:
        return f"the estimator {plugin} is not frozen"
    return None


def wrap(p, body: Callable) -> Callable:
    """``iteration(views, seeds, spp) -> (loss, images)``: ``body(p, views, seeds, spp)``,
    frozen where it can be."""
    if reason_not_to_freeze(p) is not None:
        return lambda views, seeds, spp: body(p, views, seeds, spp)
    return FrozenIteration(p, body)


class FrozenIteration:
    """``body`` under ``dr.freeze``, with a one-time fallback to the plain call."""

    def __init__(self, p, body: Callable):
        self.p, self.body = p, body
        self.failed: str | None = None
        self.last: tuple | None = None  # the inputs' shape of the last call
        self.replayed = False  # a frozen call has succeeded

        def frozen(scene, latents, tensors, seeds, spp, views):
            return body(p, list(views), seeds, spp)

        self.fn = dr.freeze(frozen, warn_after=64, auto_opaque=False)

    @property
    def recordings(self) -> int:
        return self.fn.n_recordings

    def __call__(self, views: list[int], seeds: list[int], spp: int):
        if self.failed is not None:
            return self.body(self.p, views, seeds, spp)
        p = self.p
        tensors = [p.targets[v].tensors(*film_size(p.scene, p.targets[v].sensor)) for v in views]
        args = (
            p.scene, [v.latent for v in p.vars], tensors, [mi.UInt32(s) for s in seeds], spp,
            tuple(views),
        )  # fmt: skip
        key = (spp, tuple(views), tuple(t[0].shape for t in tensors))
        try:
            with _no_gc(collect=key != self.last):  # a new key records
                self.last = key
                out = self.fn(*args)
            self.replayed = True
            return out
        except RuntimeError as e:
            if self.replayed:  # it ran frozen before: a real error, not a limit
                raise
            self.failed = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            warnings.warn(
                f"the iteration cannot be frozen here ({self.failed}); running unfrozen",
                stacklevel=3,
            )
            for v in p.vars:
                v.discard_grad()
            return self.body(p, views, seeds, spp)


@contextmanager
def _no_gc(collect: bool):
    """No garbage collection while a frozen function records or replays: an unrelated
    Dr.Jit object freed by the collector in the middle of a recording (one holding host
    memory) aborts the process ("enqueue_host_func(): this function cannot be recorded",
    seen with two scenes in one process). Before a call that may record, collect first (a
    full collection costs tens of milliseconds: not before every replay)."""
    enabled = gc.isenabled()
    if collect:
        gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
