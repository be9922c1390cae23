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
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import drjit as dr
import mitsuba as mi
import numpy as np

from . import runs
from .images import write_image
from .losses import get_loss
from .render import make_integrator, render
from .scene import load_scene, write_scene
from .targets import Target, film_size, fit_exposure, load_target
from .variables import ParamArg, Variable, bind, param_error, select_variables, values_for

#: parameters with at most this many components get one trajectory column per component
MAX_COLUMNS = 16


@dataclass
class Settings:
    """Options of :func:`optimize` (the command line's flags)."""

    iters: int = 100
    lr: float = 0.02
    spp: int = 8
    loss: str | Callable = "l2"
    integrator: str | None = None
    integrator_options: dict = field(default_factory=dict)
    seed: int = 0
    init: dict = field(default_factory=dict)
    truth: dict | str | None = None
    lambda_: float = 20.0
    exposure: str = "none"
    strict: bool = False
    schedule: Sequence[tuple[int, int]] | str | None = None
    patience: int = 0
    tol: float = 1e-3
    out_dir: str | os.PathLike | None = None
    checkpoint_every: int = 10
    resume: bool = False
    frame_every: int = 0
    final_spp: int = 64
    progress: bool = True
    callback: Callable[[int, float], None] | None = None
    xml: str | None = None
    xml_params: dict = field(default_factory=dict)
    base_dir: str = "."
    command: list[str] | None = None


@dataclass
class OptimizeResult:
    """What :func:`optimize` returns: per-parameter values, losses, errors and how it ended.

    ``values``/``initial``/``truth`` map each variable name to its flat value; ``errors``
    maps it to the error to the truth per iteration (:func:`param_error`); ``stop_reason``
    is ``done``, ``plateau`` or ``interrupted``.
    """

    scene: mi.Scene
    names: list[str]
    initial: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    truth: dict[str, np.ndarray]
    losses: np.ndarray
    errors: dict[str, np.ndarray]
    iterations: int
    stop_reason: str
    skipped: list[int]
    seconds: float
    out_dir: str | None = None
    files: list[str] = field(default_factory=list)

    def error(self, name: str, values: np.ndarray | None = None) -> float:
        """Error of ``values`` (default: the final ones) to the truth (:func:`param_error`)."""
        values = self.values[name] if values is None else values
        return param_error(name, values, self.truth[name])

    def to_dict(self) -> dict:
        """JSON-ready summary (parameters with many components as mean and size)."""

        def small(x):
            return x if x.size <= MAX_COLUMNS else {"mean": float(x.mean()), "size": x.size}

        params = {}
        for n in self.names:
            params[n] = {"initial": small(self.initial[n]), "final": small(self.values[n])}
            if n in self.truth:
                params[n].update(
                    truth=small(self.truth[n]),
                    error_initial=self.error(n, self.initial[n]),
                    error_final=self.error(n),
                )
        return {
            "iterations": self.iterations,
            "stop_reason": self.stop_reason,
            "seconds": self.seconds,
            "final_loss": float(self.losses[-1]) if len(self.losses) else None,
            "skipped": self.skipped,
            "params": params,
        }

    def summary(self) -> str:
        """A table of the initial, recovered and true values, and the error change."""
        rows = [("parameter", "initial", "recovered", "truth", "error")]
        for name in self.names:
            truth = self.truth.get(name)
            err = ""
            if truth is not None:
                e0, e1 = self.error(name, self.initial[name]), self.error(name)
                err = f"{e0:.3g} -> {e1:.3g}" + (f" (/{e0 / e1:.0f})" if e1 > 0 else "")
            cells = [self.initial[name], self.values[name], truth]
            rows.append((name, *(_short(c) for c in cells), err))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _short(x: np.ndarray | None) -> str:
    if x is None:
        return "-"
    if x.size <= 4:
        return " ".join(f"{v:.4g}" for v in x)
    return f"mean {x.mean():.4g} ({x.size} values)"


def optimize(
    scene: mi.Scene | str | os.PathLike,
    params: Sequence[str | ParamArg],
    targets: Sequence[str | np.ndarray | dict | Target],
    **settings,
) -> OptimizeResult:
    """Fit ``params`` of ``scene`` (a ``mi.Scene`` or an XML path) to ``targets``.

    ``params`` are ``--param`` strings (see :mod:`pathdiff.variables`); ``targets`` are image
    paths, arrays, ``{"image", "sensor", "mask"}`` dicts or :class:`Target` objects (the
    ``i``-th target's sensor defaults to ``i``). ``settings`` are the fields of
    :class:`Settings`, e.g. ``iters=200, lr=0.02, spp=8, loss="l1", out_dir="runs/x"``.
    """
    return _Run(scene, params, targets, Settings(**settings)).run()


def parse_schedule(schedule: Sequence[tuple[int, int]] | str | None) -> list[tuple[int, int]]:
    """``"32:4,64:8"`` (film width : spp per stage) or pairs -> ``[(32, 4), (64, 8)]``."""
    if not schedule:
        return []
    if isinstance(schedule, str):
        try:
            schedule = [tuple(int(x) for x in s.split(":")) for s in schedule.split(",")]
        except ValueError:
            raise ValueError(f"bad --schedule {schedule!r}: use RES:SPP,RES:SPP,...") from None
    stages = [tuple(s) for s in schedule]
    if any(len(s) != 2 or min(s) < 1 for s in stages):
        raise ValueError(f"bad schedule {schedule!r}: stages are (res >= 1, spp >= 1)")
    return stages


@contextmanager
def _graceful_sigint(flag: list[bool]):
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


class _Run:
    """State of one optimization run (setup, loop, checkpoints, outputs)."""

    def __init__(self, scene, param_args, targets, cfg: Settings):
        self.cfg = cfg
        if not isinstance(scene, mi.Scene):
            cfg.xml = cfg.xml or os.fspath(scene)
            scene = load_scene(scene, **cfg.xml_params)
        self.scene, self.params = scene, mi.traverse(scene)
        self.targets = [self._target(i, t) for i, t in enumerate(targets)]
        if not self.targets:
            raise ValueError("no target image: give at least one --target")
        sensors = [t.sensor for t in self.targets]
        if len(set(sensors)) != len(sensors):
            raise ValueError(f"more than one target for a sensor: sensors {sensors}")
        if not param_args:
            raise ValueError("no parameter to optimize: give at least one --param")
        self.vars: list[Variable] = select_variables(scene, param_args, cfg.lr, cfg.lambda_)
        for name, value in values_for(self.vars, cfg.init, cfg.base_dir, "initial value").items():
            self._var(name).set_value(value)
        self.truth = self._load_truth(cfg.truth)
        self.loss_fn = get_loss(cfg.loss)
        if cfg.exposure not in ("none", "fit"):
            raise ValueError(f"unknown exposure mode {cfg.exposure!r}: use none or fit")
        geometry = any(
            k.endswith(("vertex_positions", "to_world")) for v in self.vars for k in v.keys
        )
        self.integrator_name = cfg.integrator or ("edge" if geometry else "prb")
        self.integ = make_integrator(scene, self.integrator_name, **cfg.integrator_options)
        self.schedule = parse_schedule(cfg.schedule)
        self.full_sizes = [film_size(scene, t.sensor) for t in self.targets]
        self.out = Path(cfg.out_dir) if cfg.out_dir is not None else None
        self.frame_every = cfg.frame_every or max(1, cfg.iters // 24)
        self.columns = self._columns()
        self.initial = {v.name: v.value() for v in self.vars}
        self.losses: list[float] = []
        self.rows: list[list[float]] = []
        self.skipped: list[int] = []
        self.elapsed = 0.0
        self.consistent = True
        self.stage = None

    # ---- Setup ---------------------------------------------------------------------------
    def _target(self, i: int, t) -> Target:
        if isinstance(t, Target):
            return t
        spec = t if isinstance(t, dict) else {"image": t}
        unknown = set(spec) - {"image", "sensor", "mask"}
        if unknown or "image" not in spec:
            raise ValueError(f"a target is {{'image', 'sensor', 'mask'}}, got {sorted(spec)}")
        return load_target(
            self.scene, spec["image"], spec.get("sensor", i), spec.get("mask"), self.cfg.strict
        )

    def _var(self, name: str) -> Variable:
        return next(v for v in self.vars if v.name == name)

    def _load_truth(self, truth) -> dict[str, np.ndarray]:
        base = self.cfg.base_dir
        if isinstance(truth, (str, os.PathLike)):
            path = os.path.join(base, truth)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"truth file not found: {path}")
            truth, base = json.loads(Path(path).read_text()), os.path.dirname(path)
        names = {v.name for v in self.vars}  # a truth file may list more than is optimized
        truth = {k: value for k, value in (truth or {}).items() if k in names}
        return values_for(self.vars, truth, base, "truth")

    def _columns(self) -> list[str]:
        cols = ["iteration", "loss", "seconds"]
        for v in self.vars:
            n = v.value().size
            if n == 1:
                cols.append(v.name)
            elif n <= MAX_COLUMNS:
                cols += [f"{v.name}[{i}]" for i in range(n)]
            else:
                cols.append(f"{v.name}:mean")
        return cols + [f"error:{name}" for name in self.truth]

    def _row(self, it: int, loss: float, seconds: float) -> list[float]:
        row = [it, loss, seconds]
        values = {v.name: v.value() for v in self.vars}
        for x in values.values():
            row += list(x) if x.size <= MAX_COLUMNS else [x.mean()]
        row += [param_error(n, values[n], t) for n, t in self.truth.items()]
        return row

    # ---- Stages (coarse to fine) -----------------------------------------------------------
    def _set_stage(self, it: int) -> int:
        """Film sizes of the stage of iteration ``it``; returns its spp."""
        if not self.schedule:
            return self.cfg.spp
        stage = min(it * len(self.schedule) // max(self.cfg.iters, 1), len(self.schedule) - 1)
        res, spp = self.schedule[stage]
        if stage != self.stage:
            self.stage = stage
            for t, (w, h) in zip(self.targets, self.full_sizes):
                self._set_film(t.sensor, res, max(1, round(h * res / w)))
        return spp

    def _set_film(self, sensor: int, width: int, height: int) -> None:
        sp = mi.traverse(self.scene.sensors()[sensor])
        sp["film.size"] = sp["film.crop_size"] = mi.ScalarVector2u(width, height)
        sp.update()

    # ---- One iteration ------------------------------------------------------------------------
    def _seed(self, it: int, view: int) -> int:
        return ((self.cfg.seed << 20) + it * len(self.targets) + view) & 0xFFFFFFFF

    def _iteration(self, it: int, t0: float) -> None:
        spp = self._set_stage(it)
        bind(self.params, self.vars)
        losses = []
        for view, target in enumerate(self.targets):
            img = mi.render(
                self.scene,
                self.params,
                integrator=self.integ,
                sensor=target.sensor,
                spp=spp,
                seed=self._seed(it, view),
            )
            T, M = target.tensors(*film_size(self.scene, target.sensor))
            if self.cfg.exposure == "fit":
                img = img * fit_exposure(img, T, M)
            if it % self.frame_every == 0 or it == self.cfg.iters - 1:
                if self.out is not None:
                    runs.save_frame(self.out, view, it, np.array(dr.detach(img)))
            if M is not None:
                img, T = img * M, T * M
            losses.append(self.loss_fn(img, T))
        # One backward pass for all views: each traversal consumes the graph from the latent
        # values to the scene parameters that the views share.
        loss = sum(losses[1:], losses[0]) / len(self.targets)
        dr.backward(loss)
        total = float(np.array(dr.detach(loss)).ravel()[0])
        row = self._row(it, total, time.perf_counter() - t0)
        bad = [v.name for v in self.vars if not v.grad_finite()]
        self.consistent = False
        if bad or not math.isfinite(total):
            what = f"gradient of {', '.join(bad)}" if bad else "loss"
            warnings.warn(f"iteration {it}: non-finite {what}; step skipped", stacklevel=3)
            self.skipped.append(it)
            for v in self.vars:
                v.discard_grad()
        else:
            for v in self.vars:
                v.step()
        self.losses.append(total)
        self.rows.append(row)
        self.consistent = True

    def _plateau(self) -> bool:
        p = self.cfg.patience
        if p <= 0 or len(self.losses) < 2 * p:
            return False
        prev, cur = np.mean(self.losses[-2 * p : -p]), np.mean(self.losses[-p:])
        return prev - cur < self.cfg.tol * prev

    def _trend(self) -> str:
        n = min(10, len(self.losses) // 2)
        if n < 2:
            return ""
        prev, cur = np.mean(self.losses[-2 * n : -n]), np.mean(self.losses[-n:])
        return f"{cur / prev - 1:+.1%}/{n}it" if prev > 0 else ""

    # ---- Checkpoints ---------------------------------------------------------------------------
    def _checkpoint(self) -> Path:
        arrays = {
            "losses": np.array(self.losses),
            "rows": np.array(self.rows).reshape(-1, len(self.columns)),
            "skipped": np.array(self.skipped, dtype=np.int64),
        }
        for i, v in enumerate(self.vars):
            arrays.update({f"var{i}.{k}": x for k, x in v.state().items()})
            arrays[f"var{i}.initial"] = self.initial[v.name]
        meta = {
            "iterations": len(self.losses),
            "params": [v.name for v in self.vars],
            "columns": self.columns,
            "elapsed": self.elapsed,
            "seed": self.cfg.seed,
        }
        return runs.save_checkpoint(self.out, arrays, meta)

    def _restore(self) -> None:
        arrays, meta = runs.load_checkpoint(self.out)
        names = [v.name for v in self.vars]
        if meta["params"] != names or meta["columns"] != self.columns:
            raise ValueError(
                f"the checkpoint in {self.out} is for parameters {meta['params']}, not {names}: "
                "run the same command with --resume, or use another -o"
            )
        for i, v in enumerate(self.vars):
            v.load_state({k: arrays[f"var{i}.{k}"] for k in ("x", "m", "v", "t")})
            self.initial[v.name] = arrays[f"var{i}.initial"]
        self.losses = arrays["losses"].tolist()
        self.rows = arrays["rows"].tolist()
        self.skipped = arrays["skipped"].tolist()
        self.elapsed = meta["elapsed"]

    # ---- The loop ------------------------------------------------------------------------------
    def run(self) -> OptimizeResult:
        cfg = self.cfg
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            if cfg.resume:
                self._restore()
            runs.write_config(self.out, self._config(), cfg.resume)
        elif cfg.resume:
            raise ValueError("--resume needs the output directory (-o) of the interrupted run")
        from tqdm import tqdm

        start, stop, flag = len(self.losses), "done", [False]
        t0 = time.perf_counter() - self.elapsed
        bar = tqdm(
            total=cfg.iters, initial=start, disable=not cfg.progress, file=sys.stderr, unit="it"
        )
        try:
            with _graceful_sigint(flag):
                for it in range(start, cfg.iters):
                    self._iteration(it, t0)
                    self.elapsed = time.perf_counter() - t0
                    bar.set_postfix_str(f"loss {self.losses[-1]:.4g} {self._trend()}".rstrip())
                    bar.update()
                    if cfg.callback is not None:
                        cfg.callback(it, self.losses[-1])
                    done = len(self.losses)
                    if self.out is not None and done % cfg.checkpoint_every == 0:
                        self._checkpoint()
                    if flag[0]:
                        stop = "interrupted"
                        break
                    if self._plateau():
                        stop = "plateau"
                        break
        except KeyboardInterrupt:
            stop = "interrupted"
        finally:
            bar.close()
        return self._finish(stop)

    def _finish(self, stop: str) -> OptimizeResult:
        with dr.suspend_grad():
            bind(self.params, self.vars)
        for t, (w, h) in zip(self.targets, self.full_sizes):
            self._set_film(t.sensor, w, h)
        rows = np.array(self.rows).reshape(-1, len(self.columns))
        result = OptimizeResult(
            scene=self.scene,
            names=[v.name for v in self.vars],
            initial=self.initial,
            values={v.name: v.value() for v in self.vars},
            truth=self.truth,
            losses=np.array(self.losses),
            errors={n: rows[:, self.columns.index(f"error:{n}")] for n in self.truth},
            iterations=len(self.losses),
            stop_reason=stop,
            skipped=list(self.skipped),
            seconds=self.elapsed,
            out_dir=None if self.out is None else str(self.out),
        )
        if self.out is not None:
            files = [self._checkpoint()] if self.consistent else []
            files.append(runs.write_trajectory(self.out, self.columns, rows))
            if len(rows):
                files.append(runs.plot_losses(self.out, rows[:, 1], result.errors))
            if stop != "interrupted":
                files += self._write_outputs()
            files.append(runs.write_result(self.out, result.to_dict()))
            result.files = [str(f) for f in files]
        return result

    def _write_outputs(self) -> list[Path]:
        """Final renders, frame strip and GIF, and the optimized scene."""
        files, shown = [], []
        for t in self.targets:
            img = render(self.scene, self.integ, spp=self.cfg.final_spp, sensor=t.sensor, seed=1)
            for ext in (".exr", ".png"):
                files.append(Path(write_image(self.out / f"final_{t.sensor}{ext}", img)))
            if self.cfg.exposure == "fit":
                T, M = t.tensors(*film_size(self.scene, t.sensor))
                img = img * float(fit_exposure(mi.TensorXf(img), T, M)[0])
            shown.append(img)
        files += runs.write_frames(self.out, [t.image for t in self.targets], shown)
        if self.cfg.xml:
            keys = list(dict.fromkeys(k for v in self.vars for k in v.keys))
            xml, missing = write_scene(
                self.scene, self.cfg.xml, self.out / "scene", keys, self.cfg.xml_params
            )
            files.append(Path(xml))
            if missing:
                warnings.warn(
                    f"not written to the scene XML (no element holds them): {', '.join(missing)}",
                    stacklevel=3,
                )
        return files

    def _config(self) -> dict:
        cfg = self.cfg

        def bound(x):
            return None if math.isinf(x) else x

        return {
            "command": cfg.command or ["pathdiff.optimize(...)"],
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": runs.versions(),
            "scene": cfg.xml,
            "xml_params": cfg.xml_params,
            "integrator": {"name": self.integrator_name, **cfg.integrator_options},
            "seeds": {
                "seed": cfg.seed,
                "rule": "render seed = (seed << 20) + iteration * n_targets + view; "
                "gradient seed derived by mi.render; final renders seed 1",
            },
            "params": [
                {"name": v.name, "kind": v.kind, "keys": v.keys, "lr": v.lr}
                | {"min": bound(v.lo), "max": bound(v.hi)}
                for v in self.vars
            ],
            "targets": [
                {"image": t.path, "sensor": t.sensor, "mask": t.mask_path, "size": t.image.shape}
                for t in self.targets
            ],
            "init": {k: str(v) for k, v in cfg.init.items()},
            "truth": cfg.truth if isinstance(cfg.truth, str) else sorted(self.truth),
            "settings": {
                k: getattr(cfg, k)
                for k in (
                    "iters", "lr", "spp", "loss", "lambda_", "exposure", "strict", "schedule",
                    "patience", "tol", "checkpoint_every", "frame_every", "final_spp",
                )
            },
        }  # fmt: skip
