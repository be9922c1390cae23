"""Run the benchmark suite: every estimator on every problem, against the stored references.

    python -m experiments.suite [--problems a,b] [--estimators prb,edge] [--spp 16]
                                [--seeds 4] [--opt-iters 12] [--opt-spp 8] [--out DIR]

Writes ``table.md``, ``results.json``, ``images.npz`` (mean derivative images and the FD
references, for ``experiments/gradient_gallery.py``), ``errors.png`` and ``optimization.png``
to ``--out`` (default ``experiments/out/suite``).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import drjit as dr
import mitsuba as mi

from . import report
from .make_references import load_reference
from .problems import PROBLEMS, ROOT, estimators, load, problem
from .run import Settings, run_pair


def main(argv: list[str] | None = None) -> int:
    defaults = Settings()
    ap = argparse.ArgumentParser(prog="python -m experiments.suite", description=__doc__)
    ap.add_argument("--problems", help="comma-separated problem names (default: all)")
    ap.add_argument("--estimators", help="comma-separated estimators (default: all registered)")
    for key, value in vars(defaults).items():
        ap.add_argument(f"--{key.replace('_', '-')}", type=int, default=value)
    ap.add_argument("--out", type=Path, default=ROOT / "experiments" / "out" / "suite")
    args = ap.parse_args(argv)
    s = Settings(**{k: getattr(args, k) for k in vars(defaults)})
    if s.seeds < 2:
        ap.error("--seeds must be at least 2 (standard errors)")
    chosen = [problem(n) for n in args.problems.split(",")] if args.problems else PROBLEMS
    names = args.estimators.split(",") if args.estimators else estimators()

    t_start = time.perf_counter()
    results, refs = [], {}
    for p in chosen:
        refs[p.name] = ref = load_reference(p)
        scene = load(p, ref["settings"]["res"])
        for est in names:
            t0 = time.perf_counter()
            r = run_pair(p, scene, ref, est, s)
            results.append(r)
            print(f"{time.perf_counter() - t0:6.1f} s  {report.row(r)}", flush=True)
    minutes = (time.perf_counter() - t_start) / 60
    header = (
        f"{len(chosen)} problems × {len(names)} estimators in {minutes:.1f} min on "
        f"{platform.processor() or platform.machine()} ({mi.variant()}, Mitsuba "
        f"{mi.__version__}, Dr.Jit {dr.__version__}); {s.spp} spp × {s.seeds} seeds per "
        f"derivative, {s.opt_iters} Adam steps at {s.opt_spp} spp; "
        f"resolution {ref['settings']['res']}²."
    )
    report.write(args.out, results, refs, s, header)
    print(f"\n{header}\nwrote {args.out}/table.md, errors.png, optimization.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
