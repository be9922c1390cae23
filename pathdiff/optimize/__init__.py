"""Inverse rendering: :func:`optimize` recovers scene parameters from target images.

One iteration:

1. every variable (:mod:`pathdiff.variables`) writes its latent value into the scene;
2. for each target (one per sensor), the sensor is rendered in reverse mode —
   ``mi.render(scene, params, seed=s)`` with ``s = (seed << 20) + iteration · n_targets + view``
   (the gradient pass gets a decorrelated seed derived from ``s``) — optionally scaled by the
   least-squares exposure, masked, compared with the loss, and back-propagated;
3. if the loss and every gradient are finite, each variable takes an Adam step and is clamped
   to its bounds; otherwise the step is skipped with a warning and nothing reaches the scene;
4. bookkeeping: loss, trajectory row, render frames, a checkpoint every ``checkpoint_every``
   iterations, the progress bar, and the plateau test for an early stop.

The seeds depend on the iteration only, so a run resumed from a checkpoint retraces the
uninterrupted run. Ctrl-C finishes the current iteration, writes a checkpoint and returns (a
second Ctrl-C aborts at once). The integrator defaults to ``edge`` when geometry moves and to
``prb`` otherwise. An optional schedule ``[(res, spp), ...]`` runs equal shares of the
iterations at increasing film width (coarse to fine), with the targets resampled to match.

Modules, in the order a run uses them: :mod:`.settings` (the options, declared once),
:mod:`.setup` (inputs read and checked: a :class:`~.setup.Plan`), :mod:`.rundir` (the run
directory: claim, checkpoints, outputs), :mod:`.loop` (the iterations), :mod:`.result`;
:mod:`.distributed` splits the views over several processes (``workers``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import mitsuba as mi
import numpy as np

from ..inputs import OutputError
from ..scene import ParamSpec
from ..targets import Target
from ..variables import ParamArg
from . import diagnose, distributed, loop, rundir
from .distributed import Group
from .loop import History, run_loop
from .result import OptimizeResult
from .settings import Settings, parse_schedule
from .setup import Plan, plan

__all__ = ["OptimizeResult", "Settings", "optimize", "parse_schedule", "run"]


def optimize(
    scene: mi.Scene | str | os.PathLike,
    params: Sequence[str | ParamArg | ParamSpec],
    targets: Sequence[str | np.ndarray | dict | Target],
    **settings,
) -> OptimizeResult:
    """Fit ``params`` of ``scene`` (a ``mi.Scene`` or an XML path) to ``targets``.

    ``params`` are ``--param`` strings (see :mod:`pathdiff.variables`) or
    :class:`~pathdiff.scene.ParamSpec` objects resolved against ``scene``; ``targets`` are
    image paths, arrays, ``{"image", "sensor", "mask"}`` dicts or :class:`Target` objects
    (the ``i``-th target's sensor defaults to ``i``). ``settings`` are the fields of
    :class:`Settings`, e.g. ``iters=200, lr=0.02, spp=8, loss="l1", out_dir="runs/x"``.
    ``workers=N`` splits the views over N processes (:mod:`.distributed`; needs torch).
    Bad input raises :class:`pathdiff.inputs.InputError` before any rendering; outputs
    that cannot be written raise :class:`~pathdiff.inputs.OutputError` holding the result. Whatever
    ends the run, the scene is left with its full film sizes and the current values,
    detached.
    """
    p = plan(scene, params, targets, Settings(**settings))
    with distributed.processes(p, scene, params) as group:
        return run(p, group)


def run(p: Plan, group: Group | None = None) -> OptimizeResult:
    """Run a :class:`Plan`: claim the run directory, resume, loop, write the outputs.

    With a :class:`~.distributed.Group` of several processes this is rank ``group.rank``'s
    part: only rank 0 claims, reads and writes the run directory (the others receive the
    checkpoint from it and write frames of their own views)."""
    group = group or Group()
    lead = group.rank == 0
    history = History(initial={v.name: v.value() for v in p.vars})
    saved = None
    if lead:
        rundir.claim(p)
        saved = rundir.read_checkpoint(p) if p.cfg.resume else None
        rundir.open_run(p)
    saved = group.share(saved)  # also a barrier: no frame is written before the directory
    if saved is not None:
        # the meshes get the topology of the checkpoint's stage first (--upsample)
        loop.upsample_to(p, loop.stage(p, saved[1]["iterations"] - 1))
        rundir.restore(p, history, saved)
    save = None if p.out is None or not lead else (lambda: rundir.checkpoint(p, history))
    notes = diagnose.target_notes(p.targets)
    stop = run_loop(p, history, save, group)
    res = rundir.result(p, history, stop)
    rows = np.array(history.rows).reshape(-1, len(p.columns))
    bounds = {v.name: (v.lo, v.hi) for v in p.vars}
    notes += diagnose.bound_notes(res.names, bounds, p.columns, rows)
    res.notes = notes + diagnose.loss_notes(res.losses)
    if p.out is not None and lead:
        try:
            rundir.finish(p, history, res)
        except OSError as e:
            raise OutputError(f"cannot write the outputs to {p.out}: {e}", res) from e
    return res
