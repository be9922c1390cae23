"""What several subcommands share: the parser class, scene arguments, scene loading."""

from __future__ import annotations

import argparse
import sys

from pathdiff.inputs import InputError, arg_type, as_input_error


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (and exit code 2)."""

    def error(self, message: str):
        print(f"pathdiff: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` -> ``(KEY, VALUE)`` (argparse ``type=``; one-line error otherwise)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expects KEY=VALUE, got {text!r}")
    return key.strip(), value


def scene_arguments(
    p: argparse.ArgumentParser, scene_help: str = "Mitsuba XML scene", depth: bool = True
) -> None:
    """The scene and the options that change it: ``--res``, ``--define``, ``--max-depth``."""
    p.add_argument("scene", help=scene_help)
    p.add_argument("--res", type=arg_type("int>0"), help="film width (sets $res)")
    p.add_argument(
        "--define", "-D", type=key_value, action="append", default=None, metavar="KEY=VALUE",
        help="set an XML $parameter (repeatable)",
    )  # fmt: skip
    if depth:
        p.add_argument(
            "--max-depth", type=arg_type("depth"), help="path depth (overrides the scene's)"
        )


def xml_params(args: argparse.Namespace) -> dict:
    """The XML ``$`` parameters of ``--define`` and ``--res``."""
    out = dict(args.define or [])
    if args.res is not None:
        out["res"] = args.res
    return out


def load_scene_from_args(args: argparse.Namespace):
    """The scene named on the command line, with ``--define`` and ``--res`` applied."""
    import pathdiff

    return pathdiff.load_scene(args.scene, **xml_params(args))


def integrator_options(args: argparse.Namespace) -> dict:
    depth = getattr(args, "max_depth", None)
    return {} if depth is None else {"max_depth": depth}


def make_integrator(scene, name: str | None, options: dict, derivative: bool = False):
    """The integrator, built now so that a bad name or option is bad input (exit 2);
    ``derivative`` requires one that computes derivatives."""
    from pathdiff.render import make_integrator as make

    with as_input_error():
        integ = make(scene, name, **options)
    if derivative and primal_only(integ):
        raise InputError(
            f"--integrator {name} is primal-only: use a derivative estimator "
            "(prb, ad, edge, reparam, psdr)"
        )
    return integ


def primal_only(integ) -> bool:
    """True for an integrator without derivatives (pathdiff_path, Mitsuba's C++ ones)."""
    import mitsuba as mi

    from pathdiff.integrators import PathIntegrator

    ad = mi.ad.integrators.common.ADIntegrator
    return getattr(type(integ), "primal_only", isinstance(integ, PathIntegrator)) or not (
        isinstance(integ, ad)
    )
