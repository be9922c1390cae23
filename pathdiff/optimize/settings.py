"""The options of :func:`pathdiff.optimize`, declared once.

:class:`Settings` is the single list: each field carries its default, its help text and the
check of its value. The command line builds its flags from it (:func:`cli_options`), example
files accept its names (:func:`example_keys`), ``config.json`` records it and ``--resume``
compares it (:func:`recorded`), and :func:`validate` checks a value set before any work.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..inputs import InputError, check
from ..losses import LOSSES


def option(default, help: str, *, check: str | None = None, cli: bool = True, **meta):
    """A :class:`Settings` field: ``help`` for ``--help``; ``check`` a kind of
    :data:`pathdiff.inputs.KINDS`; ``cli=False`` for API-only fields. Further ``meta``:
    ``group``, ``flag``, ``metavar``, ``choices``, ``resumable`` (may change on ``--resume``),
    ``record=False`` (not written to ``config.json``)."""
    meta = {"help": help, "check": check, "cli": cli, **meta}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


_OPT, _OUT, _TGT = "optimization", "outputs", "targets"


@dataclass
class Settings:
    """Options of :func:`pathdiff.optimize` (the command line's flags)."""

    iters: int = option(100, "iterations", check="int>0", group=_OPT, resumable=True)
    lr: float = option(0.02, "Adam learning rate", check="float>0", group=_OPT)
    lr_final: float = option(
        0.1,
        "learning rate at the last iteration, as a fraction of --lr (cosine decay over the"
        " second half of the run; 1: constant)",
        check="float>0",
        group=_OPT,
    )
    beta1: float = option(
        0.9, "Adam's first-moment decay (momentum); lower for very short runs", check="[0,1)",
        group=_OPT,
    )  # fmt: skip
    spp: int = option(8, "samples per pixel per iteration and target", check="int>0", group=_OPT)
    loss: str | Callable = option(
        "l2", "image loss", choices=sorted(set(LOSSES) - {"mean"}), group=_OPT
    )
    integrator: str | None = option(
        None, "derivative estimator (default: edge if geometry moves, else prb)", group=_OPT
    )
    seed: int = option(0, "seed of the iteration renders", check="int>=0", group=_OPT)
    schedule: Sequence[tuple] | str | None = option(
        None,
        "coarse-to-fine stages of equal length: film width, spp and optionally a factor on the"
        " learning rates, e.g. 32:4,64:8 or 32:4:1,64:8:0.5",
        metavar="RES:SPP[:LR],...",
        group=_OPT,
    )
    upsample: bool = option(
        False,
        "at each new --schedule stage, subdivide the optimized meshes (each triangle into 4"
        " through its edge midpoints; large steps and Adam restart on the finer mesh) and write"
        " each stage's mesh to the run directory",
        group=_OPT,
    )
    freeze: str = option(
        "auto",
        "record an iteration's kernels once and replay them (Dr.Jit's dr.freeze): auto ="
        " where it applies (colours, floats, emitter values with prb/ad; docs/optimize.md),"
        " off = trace every iteration",
        choices=["auto", "off"],
        group=_OPT,
        resumable=True,
    )
    patience: int = option(
        0,
        "stop when the mean loss of the last N iterations improves by less than --tol on "
        "the N before (0: off)",
        check="int>=0",
        metavar="N",
        group=_OPT,
    )
    tol: float = option(1e-3, "relative improvement for --patience", check="float>=0", group=_OPT)
    workers: int = option(
        1,
        "processes to split the views over (torch.distributed; needs pathdiff[torch])",
        check="int>0",
        metavar="N",
        group=_OPT,
        resumable=True,
    )
    lambda_: float = option(
        20.0,
        "large-steps lambda for vertex positions (0: plain Adam)",
        check="float>=0",
        flag="--lambda",
        metavar="LAMBDA",
        group="parameters",
    )
    exposure: str = option(
        "none",
        "fit each render to its target: fit = one scale (unknown exposure), fit-rgb = one"
        " gain per channel (unknown exposure and white balance)",
        choices=["none", "fit", "fit-rgb"],
        group=_TGT,
    )
    strict: bool = option(False, "reject targets of the wrong size", group=_TGT)
    checkpoint_every: int = option(
        10, "checkpoint every N iterations", check="int>0", metavar="N", group=_OUT, resumable=True
    )
    frame_every: int = option(
        0,
        "keep a render every N iterations (0: iters/24)",
        check="int>=0",
        metavar="N",
        group=_OUT,
        resumable=True,
    )
    final_spp: int = option(
        64, "samples per pixel of the final renders", check="int>0", group=_OUT, resumable=True
    )
    resume: bool = option(
        False, "continue from DIR's checkpoint (only --iters may change)", group=_OUT, record=False
    )
    overwrite: bool = option(
        False, "clear DIR first if it holds an earlier run", group=_OUT, record=False
    )
    # API-only fields (the command line sets them through its own flags)
    integrator_options: dict = option({}, "integrator options, e.g. max_depth", cli=False)
    init: dict = option({}, "starting values {name: value or file}", cli=False)
    truth: dict | str | None = option(None, "true values or a JSON file", cli=False)
    out_dir: str | os.PathLike | None = option(None, "run directory", cli=False, record=False)
    progress: bool = option(True, "progress bar", cli=False, record=False)
    callback: Callable[[int, float], None] | None = option(
        None, "called as callback(iteration, loss)", cli=False, record=False
    )
    xml: str | None = option(None, "scene XML to write back", cli=False, record=False)
    xml_params: dict = option({}, "XML $parameters", cli=False, record=False)
    base_dir: str = option(".", "base of relative init/truth paths", cli=False, record=False)
    command: list[str] | None = option(None, "command line", cli=False, record=False)


FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def cli_options() -> list[dataclasses.Field]:
    """The fields the command line exposes as flags."""
    return [f for f in FIELDS.values() if f.metadata["cli"]]


def flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def example_keys() -> list[str]:
    """Option names an example file may set."""
    return [f.name for f in cli_options() if f.name not in ("resume", "overwrite")]


def recorded(cfg: Settings) -> dict:
    """The settings written to ``config.json`` (compared on ``--resume``)."""
    out = {}
    for name, f in FIELDS.items():
        if f.metadata.get("record", True) and f.metadata["cli"]:
            value = getattr(cfg, name)
            out[name] = value if not callable(value) else getattr(value, "__name__", "callable")
    return out


def resumable() -> set[str]:
    return {n for n, f in FIELDS.items() if f.metadata.get("resumable")}


def parse_schedule(schedule: Sequence[tuple] | str | None) -> list[tuple[int, int, float]]:
    """``"32:4,64:8:0.5"`` (film width : spp [: learning-rate factor] per stage) or tuples ->
    ``[(32, 4, 1.0), (64, 8, 0.5)]``."""
    if not schedule:
        return []
    usage = f"bad --schedule {schedule!r}: use RES:SPP[:LR],... (e.g. 32:4,64:8:0.5)"
    if isinstance(schedule, str):
        schedule = [s.split(":") for s in schedule.split(",")]
    stages = []
    for s in schedule:
        s = list(s)
        if len(s) not in (2, 3):
            raise InputError(usage)
        try:
            res, spp, lr = int(s[0]), int(s[1]), float(s[2]) if len(s) == 3 else 1.0
        except (TypeError, ValueError):
            raise InputError(usage) from None
        if res < 1 or spp < 1 or not lr > 0:
            raise InputError(f"bad schedule {schedule!r}: stages are (res >= 1, spp >= 1, lr > 0)")
        stages.append((res, spp, lr))
    return stages


def validate(cfg: Settings) -> Settings:
    """A checked copy of ``cfg`` (numbers converted); :class:`InputError` on a bad value."""
    changes = {}
    for name, f in FIELDS.items():
        value, kind = getattr(cfg, name), f.metadata["check"]
        if kind is not None:
            changes[name] = check(flag(f) if f.metadata["cli"] else name, value, kind)
        choices = f.metadata.get("choices")
        if choices and not callable(value) and value not in choices:
            raise InputError(f"{flag(f)} must be one of {', '.join(choices)}, got {value!r}")
    if cfg.resume and cfg.overwrite:
        raise InputError("--resume and --overwrite exclude each other")
    if cfg.resume and cfg.out_dir is None:
        raise InputError("--resume needs the output directory (-o) of the interrupted run")
    stages = parse_schedule(cfg.schedule)
    if cfg.upsample and len(stages) < 2:
        raise InputError("--upsample subdivides at each new stage: give a --schedule of 2+ stages")
    return dataclasses.replace(cfg, **changes)
