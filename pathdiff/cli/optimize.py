"""``pathdiff optimize``: inverse rendering from the command line or an example file.

The optimization flags are built from :class:`pathdiff.optimize.Settings` (help, defaults
and checks declared there once); each defaults to ``None`` here so that an example file
(:mod:`.example`) fills only what the command line leaves out.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from pathdiff.inputs import InputError, OutputError, arg_type
from pathdiff.optimize.distributed import env_rank
from pathdiff.optimize.settings import FIELDS, cli_options, flag

from .common import integrator_options, key_value, scene_arguments, xml_params
from .example import apply_example

SCENE_HELP = (
    "Mitsuba XML scene, or an example file (.json, e.g. scenes/examples/cbox/example.json) "
    "holding the options; options on the command line take precedence over the file's"
)


class TargetAction(argparse.Action):
    """``--target IMG`` starts a target; ``--sensor N`` and ``--mask FILE`` set the last one's."""

    def __call__(self, parser, namespace, value, option_string=None):
        targets = list(namespace.targets or [])
        if option_string == "--target":
            targets.append({"image": value})
        elif not targets:
            parser.error(f"{option_string} {value} must follow the --target it is for")
        else:
            targets[-1][option_string[2:]] = value
        namespace.targets = targets


def _settings_argument(group, f) -> None:
    """One flag of a :class:`Settings` field (default ``None``: resolved later)."""
    m, default = f.metadata, f.default
    shown = default is None or isinstance(default, bool)
    text = m["help"] + ("" if shown else f" (default: {default})")
    if isinstance(default, bool):
        group.add_argument(flag(f), dest=f.name, action="store_true", default=None, help=text)
        return
    group.add_argument(
        flag(f), dest=f.name, default=None, help=text.replace("%", "%%"),
        type=arg_type(m["check"]) if m["check"] else str, metavar=m.get("metavar"),
        choices=m.get("choices"),
    )  # fmt: skip


def add_parser(sub):
    p = sub.add_parser(
        "optimize",
        help="recover scene parameters from target images (inverse rendering)",
        description="Fit scene parameters to target images. " + SCENE_HELP + ".",
    )
    scene_arguments(p, scene_help=SCENE_HELP)
    p.set_defaults(targets=None, run=run)
    groups = {
        "targets": p.add_argument_group("targets (repeat --target for several sensors)"),
        "parameters": p.add_argument_group("parameters"),
        "optimization": p.add_argument_group("optimization"),
        "outputs": p.add_argument_group("outputs"),
    }
    t, v = groups["targets"], groups["parameters"]
    for name, meta, text in (
        ("--target", "IMG", "target image: PNG/JPEG (sRGB), EXR/HDR (linear)"),
        ("--sensor", "N", "sensor of the preceding --target (default: its position)"),
        ("--mask", "FILE", "mask of the preceding --target (default: the image's alpha)"),
    ):
        t.add_argument(name, action=TargetAction, dest="targets", metavar=meta, help=text)
    v.add_argument(
        "--param", action="append", dest="params", metavar="KEY[:lr=X]",
        help="parameter key, glob or ParamSpec; options :lr= :min= :max= (repeatable)",
    )  # fmt: skip
    v.add_argument(
        "--init", action="append", type=key_value, default=[], metavar="KEY=VALUE",
        help="starting value: numbers (0.5 or 0.5,0.4,0.3) or a file (PLY, image)",
    )  # fmt: skip
    v.add_argument("--truth", metavar="JSON", help="true values, to report the errors")
    for f in cli_options():
        _settings_argument(groups[f.metadata["group"]], f)
    r = groups["outputs"]
    r.add_argument("-o", "--output", required=True, metavar="DIR", help="run directory")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _init_values(items: list[tuple[str, str]]) -> dict:
    out = {}
    for key, value in items:
        try:
            out[key] = [float(x) for x in value.split(",")]
        except ValueError:
            out[key] = value
    return out


def settings_from_args(args: argparse.Namespace) -> dict:
    """Keyword arguments of :func:`pathdiff.optimize` (unset options keep their defaults)."""
    chosen = {f.name: getattr(args, f.name) for f in cli_options()}
    return {k: v for k, v in chosen.items() if v is not None} | dict(
        integrator_options={**integrator_options(args), **args.integrator_options},
        init=args.init_values, truth=args.truth, out_dir=args.output,
        progress=not args.quiet, xml_params=xml_params(args),
        command=["pathdiff", *args.argv],
    )  # fmt: skip


_WARNED: set[str] = set()


def _show_warning(message, *rest, **kw) -> None:
    """Each distinct warning once per run (one per view would repeat it)."""
    if str(message) in _WARNED:
        return
    _WARNED.add(str(message))
    print(f"pathdiff: warning: {message}", file=sys.stderr)


def run(args) -> int:
    from pathdiff.optimize import optimize

    _WARNED.clear()
    args.init_values, args.integrator_options = _init_values(args.init), {}
    if args.scene.lower().endswith(".json"):
        apply_example(args)
    if not args.params:
        raise InputError("no parameter to optimize: give at least one --param")
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            result = optimize(
                args.scene, args.params, args.targets or [], **settings_from_args(args)
            )
        except OutputError as e:  # show what was computed, then the error (exit 2)
            report(e.result, args.output, wrote=False)
            raise
    if (args.workers or 1) > 1 and env_rank() != 0:
        return 0  # a torchrun job: rank 0 reports
    return report(result, args.output)


def report(result, out: str, wrote: bool = True) -> int:
    print(result.summary())
    for note in result.notes:
        if note not in _WARNED:
            print(f"note: {note}")
    loss = f", final loss {result.losses[-1]:.4g}" if len(result.losses) else ""
    skipped = f", {len(result.skipped)} step(s) skipped" if result.skipped else ""
    print(
        f"{result.iterations} iterations ({result.stop_reason}), {result.seconds:.1f} s"
        f"{loss}{skipped}"
    )
    if not wrote:
        return 2
    if result.stop_reason == "interrupted":
        print(
            f"checkpoint: {out}/checkpoint.npz; continue with the same command and --resume",
            file=sys.stderr,
        )
        return 130
    print(f"wrote {out}/: {', '.join(os.path.relpath(f, out) for f in result.files)}")
    return 0


__all__ = ["FIELDS", "add_parser", "run"]
