"""Set-up of an optimization: everything read, checked and chosen before the first render.

:func:`plan` turns the caller's arguments into a :class:`Plan` (the scene, its targets, the
variables with their starting values, the truth, the loss, the integrator, the stages). It
does all input I/O and validation and raises :class:`pathdiff.inputs.InputError` (or
``SceneError``) on bad input; it never changes the caller's :class:`Settings`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import mitsuba as mi
import numpy as np

from ..inputs import InputError, as_input_error, read_json
from ..losses import get_loss
from ..params import scene_params
from ..render import make_integrator
from ..scene import ParamSpec, load_scene
from ..targets import EXPOSURE, Target, film_size, load_target
from ..variables import MeshVariable, ParamArg, Variable, select_variables, values_for
from . import distributed
from .result import MAX_COLUMNS
from .settings import Settings, parse_schedule, validate

#: parameter keys whose change moves geometry (the default integrator is then ``edge``)
GEOMETRY_KEYS = ("vertex_positions", "to_world")


@dataclass
class Plan:
    """An optimization ready to run (built by :func:`plan`)."""

    cfg: Settings
    scene: mi.Scene
    params: mi.SceneParameters
    targets: list[Target]
    vars: list[Variable]
    truth: dict[str, np.ndarray]
    loss_fn: Callable
    integrator_name: str
    integ: mi.Integrator
    schedule: list[tuple[int, int, float]]
    full_sizes: list[tuple[int, int]]
    out: Path | None
    frame_every: int
    columns: list[str]
    #: ``(views, seeds, spp) -> (loss, images)``: one iteration's render, loss and backward
    #: pass, frozen where it can be (:mod:`.frozen`); made on the first iteration
    iteration: Callable | None = None
    #: how many times the optimized meshes have been subdivided (``upsample``)
    level: int = 0


def plan(
    scene: mi.Scene | str | os.PathLike,
    param_args: Sequence[str | ParamArg | ParamSpec],
    targets: Sequence,
    cfg: Settings,
) -> Plan:
    """Read and check every input of a run (no rendering, no output written)."""
    cfg = validate(cfg)
    distributed.check(scene, param_args, targets, cfg)
    if not isinstance(scene, mi.Scene):
        cfg = dataclasses.replace(cfg, xml=cfg.xml or os.fspath(scene))
        scene = load_scene(scene, **cfg.xml_params)
    loaded = [_target(scene, i, t, cfg.strict) for i, t in enumerate(targets)]
    _check_targets(loaded)
    if not param_args:
        raise InputError("no parameter to optimize: give at least one --param")
    variables = select_variables(scene, param_args, cfg.lr, cfg.lambda_)
    for v in variables:
        v.opt.beta_1 = cfg.beta1
    if cfg.upsample and not any(isinstance(v, MeshVariable) for v in variables):
        raise InputError(
            "--upsample subdivides optimized meshes: give a KEY.vertex_positions --param "
            "(with --lambda > 0)"
        )
    by_name = {v.name: v for v in variables}
    for name, value in values_for(variables, cfg.init, cfg.base_dir, "initial value").items():
        by_name[name].set_value(value)
    truth = _load_truth(variables, cfg.truth, cfg.base_dir)
    name = cfg.integrator or ("edge" if moves_geometry(variables) else "prb")
    with as_input_error():
        integ = make_integrator(scene, name, **cfg.integrator_options)
    return Plan(
        cfg=cfg,
        scene=scene,
        params=scene_params(scene),
        targets=loaded,
        vars=variables,
        truth=truth,
        loss_fn=get_loss(cfg.loss),
        integrator_name=name,
        integ=integ,
        schedule=parse_schedule(cfg.schedule),
        full_sizes=[film_size(scene, t.sensor) for t in loaded],
        out=Path(cfg.out_dir) if cfg.out_dir is not None else None,
        frame_every=cfg.frame_every or max(1, cfg.iters // 24),
        columns=_columns(variables, truth),
    )


def _target(scene: mi.Scene, i: int, t, strict: bool) -> Target:
    if isinstance(t, Target):
        return t
    spec = t if isinstance(t, dict) else {"image": t}
    keys = {"image", "sensor", "mask", "exposure"}
    if set(spec) - keys or "image" not in spec:
        raise InputError(f"a target is {sorted(keys)} ('image' required), got {sorted(spec)}")
    sensor = spec.get("sensor", i)
    try:
        sensor = int(sensor)
    except (TypeError, ValueError):
        raise InputError(f"--sensor must be an integer, got {sensor!r}") from None
    exposure = spec.get("exposure")
    if exposure is not None and exposure not in EXPOSURE:
        raise InputError(f"a target's exposure is one of {sorted(EXPOSURE)}, got {exposure!r}")
    target = load_target(scene, spec["image"], sensor, spec.get("mask"), strict)
    target.exposure = exposure
    return target


def _check_targets(targets: list[Target]) -> None:
    if not targets:
        raise InputError("no target image: give at least one --target")
    sensors = [t.sensor for t in targets]
    if len(set(sensors)) != len(sensors):
        raise InputError(f"more than one target for a sensor: sensors {sensors}")


def moves_geometry(variables: list[Variable]) -> list[str]:
    """Names of the variables that move geometry or a camera (keys such as
    ``vertex_positions``, ``to_world``)."""
    return [v.name for v in variables if any(k.endswith(GEOMETRY_KEYS) for k in v.keys)]


def _load_truth(variables: list[Variable], truth, base: str) -> dict[str, np.ndarray]:
    if isinstance(truth, (str, os.PathLike)):
        path = os.path.join(base, truth)
        truth = read_json(path, "truth file")
        base = os.path.dirname(path)
    names = {v.name for v in variables}  # a truth file may list more than is optimized
    truth = {k: value for k, value in (truth or {}).items() if k in names}
    return values_for(variables, truth, base, "truth")


def _columns(variables: list[Variable], truth: dict) -> list[str]:
    """Trajectory columns: iteration, loss, seconds, values (per component or mean), errors."""
    cols = ["iteration", "loss", "seconds"]
    for v in variables:
        n = v.value().size
        if n == 1:
            cols.append(v.name)
        elif n <= MAX_COLUMNS:
            cols += [f"{v.name}[{i}]" for i in range(n)]
        else:
            cols.append(f"{v.name}:mean")
    return cols + [f"error:{name}" for name in truth]
