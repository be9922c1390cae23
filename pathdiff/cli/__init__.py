"""The ``pathdiff`` command line: one module per subcommand.

Each subcommand module has ``add_parser(sub)`` (its flags, with a ``run`` default that does
the work and returns the exit code). Exit codes: 0 ok / PASS, 1 FAIL, 2 bad input (one line
``pathdiff: error: ...``, before any work), 3 INCONCLUSIVE, 4 internal error (one line, or
the traceback with ``--debug``), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

import pathdiff
from pathdiff.backend import BackendError
from pathdiff.inputs import InputError
from pathdiff.version import __version__

from .common import Parser
from .render import render_progressive

__all__ = ["build_parser", "main", "render_progressive"]

#: subcommand modules, in the order of ``pathdiff --help`` (imported when the parser is built)
SUBCOMMANDS = ["render", "params", "gradcheck", "optimize", "bench", "doctor"]
EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 2, 4, 130


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="pathdiff", description="Differentiable Monte Carlo path tracing.")
    parser.add_argument("--version", action="version", version=f"pathdiff {__version__}")
    parser.add_argument(
        "--variant",
        help="Mitsuba variant (default: cuda_ad_rgb if usable, "
        "else llvm_ad_rgb; env PATHDIFF_VARIANT)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        p = importlib.import_module(f"{__name__}.{name}").add_parser(sub)
        p.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
        )
    return parser


def _bad_input_types() -> tuple[type[BaseException], ...]:
    from pathdiff.scene import SceneError

    return (InputError, SceneError, BackendError)


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pathdiff`` console script; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:
        print(f"pathdiff {__version__}")
        return 0
    if pathdiff.backend_error is not None:
        print(f"pathdiff: error: {_first_line(pathdiff.backend_error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a one-line usage error
        return e.code if isinstance(e.code, int) else EXIT_BAD_INPUT
    args.argv = argv
    try:
        if args.variant:
            pathdiff.set_variant(args.variant)
        return args.run(args)
    except KeyboardInterrupt:
        print("pathdiff: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        if args.debug:
            traceback.print_exc()
        if isinstance(e, _bad_input_types()):
            print(f"pathdiff: error: {_first_line(e)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(
            f"pathdiff: internal error: {type(e).__name__}: {_first_line(e)} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
