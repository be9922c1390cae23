"""The optimization loop: one iteration as small named steps, and the run around them.

An iteration first *evaluates* (bind, render each view, fit exposure, keep frames, mask,
loss, one backward pass, NaN check), which changes nothing but gradients, then *commits*
(each variable steps, or the step is skipped, and the history grows) as one transaction:
if anything raises during the commit, every variable and the history are rolled back, so
the state is always that of a whole number of iterations and a checkpoint is always valid.

:func:`scene_guard` restores the scene (film sizes, parameters detached from the latent
values) when the loop ends, whatever ends it (done, Ctrl-C or any exception).
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import drjit as dr
import mitsuba as mi
import numpy as np

from .. import runs
from ..render import diff_render
from ..targets import film_size, photo_response
from ..variables import MeshVariable, bind, param_error
from . import frozen
from .distributed import Group
from .result import MAX_COLUMNS
from .setup import Plan

#: the group of a run in one process
SINGLE = Group()


@dataclass
class History:
    """What the run has done so far (restored from a checkpoint on ``--resume``)."""

    initial: dict[str, np.ndarray]
    losses: list[float] = field(default_factory=list)
    rows: list[list[float]] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    elapsed: float = 0.0


@dataclass
class Evaluation:
    """One iteration's loss and the names of variables with non-finite gradients."""

    loss: float
    bad: list[str]


# ---- Stages (coarse to fine) ---------------------------------------------------------------
def set_film(scene: mi.Scene, sensor: int, width: int, height: int) -> None:
    sp = mi.traverse(scene.sensors()[sensor])
    sp["film.size"] = sp["film.crop_size"] = mi.ScalarVector2u(width, height)
    sp.update()


def stage(p: Plan, it: int) -> int:
    """Index of iteration ``it``'s stage of the schedule (0 without one)."""
    if not p.schedule:
        return 0
    return min(max(it, 0) * len(p.schedule) // p.cfg.iters, len(p.schedule) - 1)


def stage_spp(p: Plan, it: int) -> int:
    """Set the film sizes of iteration ``it``'s stage; its spp."""
    if not p.schedule:
        return p.cfg.spp
    res, spp, _ = p.schedule[stage(p, it)]
    for t, (w, h) in zip(p.targets, p.full_sizes):
        if film_size(p.scene, t.sensor)[0] != res:
            set_film(p.scene, t.sensor, res, max(1, round(h * res / w)))
    return spp


def stage_lr(p: Plan, it: int) -> float:
    """The learning-rate factor of iteration ``it``'s stage."""
    return p.schedule[stage(p, it)][2] if p.schedule else 1.0


def meshes(p: Plan) -> list[MeshVariable]:
    return [v for v in p.vars if isinstance(v, MeshVariable)]


def upsample_to(p: Plan, level: int, out=None) -> None:
    """Subdivide the optimized meshes until they have been subdivided ``level`` times (with
    ``--upsample``, once per new stage); ``out``: write each mesh as it was at the end of the
    stage it leaves (``ID_stageK.ply``) first."""
    while p.cfg.upsample and p.level < level:
        if out is not None:
            write_meshes(p, out, f"stage{p.level}")
        for v in meshes(p):
            v.upsample(p.params)
        p.level += 1


def write_meshes(p: Plan, out, tag: str) -> list:
    """Write each optimized mesh at its current values as ``ID_TAG.ply`` in ``out``."""
    files = []
    with dr.suspend_grad():
        bind(p.params, p.vars)
    for v in meshes(p):
        shape_id = v.name.removesuffix(".vertex_positions")
        shape = next(s for s in p.scene.shapes() if s.id() == shape_id)
        files.append(out / f"{shape_id}_{tag}.ply")
        shape.write_ply(str(files[-1]))
    return files


# ---- Evaluate: render, exposure, frames, mask, loss, backward, NaN check --------------------
def render_seed(p: Plan, it: int, view: int) -> int:
    return ((p.cfg.seed << 20) + it * len(p.targets) + view) & 0xFFFFFFFF


def render_view(p: Plan, view: int, spp: int, seed: int | mi.UInt32) -> mi.TensorXf:
    sensor = p.targets[view].sensor
    # latent values of ParamSpecs are inputs too: a camera's pose reaches the image only
    # through the integrator (see pathdiff.render.diff_render)
    extra = [v.latent for v in p.vars if v.kind == "spec"]
    return diff_render(p.scene, p.params, p.integ, sensor, spp, seed, extra=extra)


def keep_frame(p: Plan, it: int, view: int, img: mi.TensorXf) -> None:
    if p.out is not None and (it % p.frame_every == 0 or it == p.cfg.iters - 1):
        runs.save_frame(p.out, view, it, np.array(dr.detach(img)))


def forward_backward(
    p: Plan, views: list[int], seeds: list, spp: int
) -> tuple[mi.TensorXf, list[mi.TensorXf]]:
    """Bind, render ``views``, camera response, mask, loss, one backward pass: the part of an
    iteration that :mod:`.frozen` can record once and replay. Returns the loss (divided by
    the number of *all* views, so that the sum over the ranks is one process's loss) and
    the views' images as the targets' cameras would record them (for the frames)."""
    bind(p.params, p.vars)
    images, losses = [], []
    for view, seed in zip(views, seeds):
        target = p.targets[view]
        T, M = target.tensors(*film_size(p.scene, target.sensor))
        img = photo_response(render_view(p, view, spp, seed), target, T, M, p.cfg.exposure)
        images.append(img)
        if M is not None:
            img, T = img * M, T * M
        losses.append(p.loss_fn(img, T))
    # One backward pass for all views: each traversal consumes the graph from the latent
    # values to the scene parameters that the views share.
    loss = sum(losses[1:], losses[0]) / len(p.targets)
    dr.backward(loss)
    return loss, images


def evaluate(p: Plan, it: int, group: Group = SINGLE) -> Evaluation:
    """Loss of iteration ``it`` and gradients on the latent values (nothing else changes).

    With several processes, this rank renders its views only and the gradients and the
    loss are summed over the ranks before the check, so every rank decides the same."""
    spp = stage_spp(p, it)
    views = list(group.views(len(p.targets)))
    seeds = [render_seed(p, it, view) for view in views]
    if p.iteration is None:
        p.iteration = frozen.wrap(p, forward_backward)
    loss, images = p.iteration(views, seeds, spp)
    for view, img in zip(views, images):
        keep_frame(p, it, view, img)
    group.allreduce_grads(p.vars)
    total = group.allreduce_loss(float(np.array(dr.detach(loss)).ravel()[0]))
    bad = [v.name for v in p.vars if not v.grad_finite()]
    if not math.isfinite(total) and not bad:
        bad = ["loss"]
    return Evaluation(total, bad)


def lr_factor(it: int, iters: int, final: float) -> float:
    """Learning-rate multiplier of iteration ``it``: 1 over the first half of the run, then a
    cosine down to ``final`` at the last iteration. Monte Carlo gradients keep Adam's iterate
    jittering at a scale set by the step size; decaying it lets the run settle on the value
    the noise-free gradient points to."""
    s = min(max((it + 1) / iters - 0.5, 0.0) / 0.5, 1.0)
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * s))


# ---- Commit: step (or skip) and record, as one transaction ---------------------------------
def row(p: Plan, it: int, loss: float, seconds: float) -> list[float]:
    out = [it, loss, seconds]
    values = {v.name: v.value() for v in p.vars}
    for x in values.values():
        out += list(x) if x.size <= MAX_COLUMNS else [x.mean()]
    return out + [param_error(n, values[n], t) for n, t in p.truth.items()]


@contextmanager
def transaction(p: Plan, h: History):
    """Roll the variables and the history back if the body raises."""
    saved = [v.snapshot() for v in p.vars]
    sizes = len(h.losses), len(h.rows), len(h.skipped)
    try:
        yield
    except BaseException:
        for v, s in zip(p.vars, saved):
            v.rollback(s)
        del h.losses[sizes[0] :], h.rows[sizes[1] :], h.skipped[sizes[2] :]
        raise


def commit(p: Plan, h: History, it: int, ev: Evaluation, seconds: float) -> None:
    with transaction(p, h):
        record = row(p, it, ev.loss, seconds)
        if ev.bad:
            what = "loss" if ev.bad == ["loss"] else f"gradient of {', '.join(ev.bad)}"
            warnings.warn(f"iteration {it}: non-finite {what}; step skipped", stacklevel=4)
            h.skipped.append(it)
            for v in p.vars:
                v.discard_grad()
        else:
            factor = lr_factor(it, p.cfg.iters, p.cfg.lr_final) * stage_lr(p, it)
            for v in p.vars:
                v.opt.set_learning_rate(v.lr * factor)
                v.step()
        h.losses.append(ev.loss)
        h.rows.append(record)


# ---- Stopping -------------------------------------------------------------------------------
def plateau(losses: list[float], patience: int, tol: float) -> bool:
    if patience <= 0 or len(losses) < 2 * patience:
        return False
    prev, cur = np.mean(losses[-2 * patience : -patience]), np.mean(losses[-patience:])
    return prev - cur < tol * prev


def trend(losses: list[float]) -> str:
    n = min(10, len(losses) // 2)
    if n < 2:
        return ""
    prev, cur = np.mean(losses[-2 * n : -n]), np.mean(losses[-n:])
    return f"{cur / prev - 1:+.1%}/{n}it" if prev > 0 else ""


@contextmanager
def graceful_sigint(flag: list[bool]):
    """First Ctrl-C sets ``flag[0]`` (stop after this iteration); the second interrupts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if flag[0]:
            raise KeyboardInterrupt
        flag[0] = True
        print("\npathdiff: stopping after this iteration (Ctrl-C again to abort)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def scene_guard(p: Plan):
    """On the way out (normally or by any exception): the full film sizes, and the current
    values written into the scene detached from the latent values."""
    try:
        yield
    finally:
        with dr.suspend_grad():
            bind(p.params, p.vars)
        for t, (w, h) in zip(p.targets, p.full_sizes):
            set_film(p.scene, t.sensor, w, h)


# ---- The loop --------------------------------------------------------------------------------
def run_loop(p: Plan, h: History, checkpoint, group: Group = SINGLE) -> str:
    """Iterate from ``len(h.losses)`` to ``iters``; the stop reason (``done``, ``plateau``,
    ``interrupted``). ``checkpoint()`` is called every ``checkpoint_every`` iterations.

    With several processes every rank runs this loop; the ranks agree on stopping (Ctrl-C
    on any rank stops all; the plateau test sees the same summed losses on every rank)."""
    from tqdm import tqdm

    cfg, flag = p.cfg, [False]
    t0 = time.perf_counter() - h.elapsed
    bar = tqdm(
        total=cfg.iters, initial=len(h.losses), disable=not cfg.progress or group.rank != 0,
        file=sys.stderr, unit="it",
    )  # fmt: skip
    try:
        with scene_guard(p), graceful_sigint(flag):
            for it in range(len(h.losses), cfg.iters):
                upsample_to(p, stage(p, it), p.out if group.rank == 0 else None)
                ev = evaluate(p, it, group)
                commit(p, h, it, ev, time.perf_counter() - t0)
                h.elapsed = time.perf_counter() - t0
                bar.set_postfix_str(f"loss {ev.loss:.4g} {trend(h.losses)}".rstrip())
                bar.update()
                if cfg.callback is not None:
                    cfg.callback(it, ev.loss)
                if checkpoint is not None and len(h.losses) % cfg.checkpoint_every == 0:
                    checkpoint()
                if group.any(flag[0]):
                    return "interrupted"
                if plateau(h.losses, cfg.patience, cfg.tol):
                    return "plateau"
    except KeyboardInterrupt:
        return "interrupted"
    finally:
        bar.close()
    return "done"
