"""``pathdiff bench``: every estimator on every problem, against the stored references.

    pathdiff bench [--problems a,b] [--estimators prb,edge] [--spp 16] [--seeds 4]
                   [--opt-iters 10] [--opt-spp 8] [--out DIR] [--overwrite]

Writes ``table.md``, ``results.json``, ``images.npz`` (mean derivative images and the FD
references, for ``experiments/gradient_gallery.py``), ``errors.png`` and ``optimization.png``
to ``--out`` (default ``bench_out`` in the current directory; an earlier run there is kept
unless ``--overwrite``). Importing this module is cheap (the parser is built before any
Mitsuba import).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from pathdiff.inputs import InputError, arg_type, check_output_dir

#: numeric options: name -> (default, help); the defaults of :class:`.run.Settings`
NUMBERS = {
    "spp": (16, "samples per pixel of each derivative"),
    "seeds": (4, "independent derivatives per pair (at least 2)"),
    "opt_iters": (10, "Adam steps of the short optimization, 0 to skip"),
    "opt_spp": (8, "samples per pixel per optimization step"),
}
CHECKS = {"spp": "int>0", "seeds": "int>=2", "opt_iters": "int>=0", "opt_spp": "int>0"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--problems", help="comma-separated problem names (default: all)")
    p.add_argument("--estimators", help="comma-separated estimators (default: all registered)")
    for name, (default, text) in NUMBERS.items():
        p.add_argument(
            f"--{name.replace('_', '-')}", type=arg_type(CHECKS[name]), default=default,
            help=f"{text} (default: {default})",
        )  # fmt: skip
    p.add_argument("--out", default="bench_out", help="output folder (default: bench_out)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")


def _choose(args):
    """Problems and estimators by name, checked (one line naming the unknown ones)."""
    from .problems import PROBLEMS, estimators

    known = {p.name: p for p in PROBLEMS}
    names = args.problems.split(",") if args.problems else list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(f"unknown problem(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    ests = args.estimators.split(",") if args.estimators else estimators()
    bad = [e for e in ests if e not in estimators()]
    if bad:
        raise InputError(
            f"unknown estimator(s) {', '.join(bad)}; choose from {', '.join(estimators())}"
        )
    return [known[n] for n in names], ests


def _claim(out: Path, overwrite: bool) -> None:
    check_output_dir(str(out))
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise InputError(f"{out} holds an earlier run: use --overwrite or another --out")
        shutil.rmtree(out)


def run(args: argparse.Namespace) -> int:
    import platform
    import time

    import drjit as dr
    import mitsuba as mi

    from . import report
    from .make_references import load_reference
    from .problems import load
    from .run import Settings, run_pair

    problems, names = _choose(args)
    out = Path(args.out)
    _claim(out, args.overwrite)
    s = Settings(**{k: getattr(args, k) for k in NUMBERS})
    t_start = time.perf_counter()
    results, refs = [], {}
    for p in problems:
        refs[p.name] = ref = load_reference(p)
        scene = load(p, ref["settings"]["res"])
        for est in names:
            t0 = time.perf_counter()
            r = run_pair(p, scene, ref, est, s)
            results.append(r)
            print(f"{time.perf_counter() - t0:6.1f} s  {report.row(r)}", flush=True)
    minutes = (time.perf_counter() - t_start) / 60
    header = (
        f"{len(problems)} problems × {len(names)} estimators in {minutes:.1f} min on "
        f"{platform.processor() or platform.machine()} ({mi.variant()}, Mitsuba "
        f"{mi.__version__}, Dr.Jit {dr.__version__}); {s.spp} spp × {s.seeds} seeds per "
        f"derivative, {s.opt_iters} Adam steps at {s.opt_spp} spp; "
        f"resolution {ref['settings']['res']}²."
    )
    report.write(out, results, refs, s, header)
    print(f"\n{header}\nwrote {out}/table.md, errors.png, optimization.png")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m pathdiff.bench``: the same as ``pathdiff bench``."""
    from pathdiff.cli import main as cli_main

    return cli_main(["bench", *(argv or [])])
