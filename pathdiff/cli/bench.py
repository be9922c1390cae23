"""``pathdiff bench``: the benchmark suite (``pathdiff.bench`` when installed, else the
``experiments/suite`` of the source tree)."""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from pathdiff import bench as _bench
except Exception:  # not there yet, or the backend is broken (reported by main)
    _bench = None

#: options of the source-tree suite, forwarded to ``python -m experiments.suite``
OPTIONS = {
    "problems": (str, "comma-separated problem names (default: all)"),
    "estimators": (str, "comma-separated estimators (default: every registered one)"),
    "spp": (int, "samples per pixel of each derivative (default: 16)"),
    "seeds": (int, "independent derivatives per pair (default: 4)"),
    "opt_iters": (int, "Adam steps of the short optimization, 0 to skip (default: 10)"),
    "opt_spp": (int, "samples per pixel per optimization step (default: 8)"),
    "out": (str, "output folder (default: experiments/out/suite)"),
}


def add_parser(sub):
    p = sub.add_parser("bench", help="run the benchmark suite of toy problems")
    if _bench is not None and hasattr(_bench, "add_arguments"):
        _bench.add_arguments(p)
        p.set_defaults(run=_bench.run)
        return p
    for name, (kind, text) in OPTIONS.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, help=text)
    p.set_defaults(run=run_source_tree)
    return p


def run_source_tree(args) -> int:
    import pathdiff
    from pathdiff.inputs import MissingFileError

    roots = [Path.cwd(), Path(pathdiff.__file__).resolve().parents[1]]
    root = next((r for r in roots if (r / "experiments" / "suite" / "__main__.py").is_file()), None)
    if root is None:
        raise MissingFileError(
            "experiments/suite not found: run `pathdiff bench` in the pathdiff source tree"
        )
    sys.path.insert(0, str(root))
    from experiments.suite.__main__ import main as bench_main

    argv = []
    for name in OPTIONS:
        value = getattr(args, name)
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    return bench_main(argv)
