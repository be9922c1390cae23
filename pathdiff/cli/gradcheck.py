"""``pathdiff gradcheck``: derivatives of an estimator against finite differences.

Everything is checked before the first render (parameters, integrator, numbers, the panel
directory). One progress line per parameter goes to stderr. The table (or JSON) is printed
even if the panels cannot be written. Exit code: 0 PASS, 1 FAIL, 3 INCONCLUSIVE (too noisy
to judge), 2 bad input, 4 internal error.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import time

from pathdiff.inputs import arg_type, check_output_dir

from .common import integrator_options, load_scene_from_args, make_integrator, scene_arguments

EXIT = {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 3}


def add_parser(sub):
    p = sub.add_parser("gradcheck", help="compare derivatives with finite differences")
    scene_arguments(p)
    p.add_argument(
        "--param", action="append", required=True, metavar="SPEC", help="ParamSpec (repeatable)"
    )
    p.add_argument("--integrator", default="prb", help="derivative estimator (default: prb)")
    p.add_argument(
        "--spp", type=arg_type("int>0"), help="AD samples per pixel per seed (default: 64)"
    )
    p.add_argument(
        "--fd-spp", type=arg_type("int>0"), help="FD samples per pixel per seed (default: 256)"
    )
    p.add_argument("--h", type=arg_type("float>0"), help="FD step (default: per parameter kind)")
    p.add_argument(
        "--seeds", type=arg_type("int>=2"), default=4, help="independent AD runs (default: 4)"
    )
    p.add_argument(
        "--fd-seeds", type=arg_type("int>=2"), default=8, help="independent FD runs (default: 8)"
    )
    p.add_argument("--seed", type=arg_type("int>=0"), default=0, help="first seed")
    p.add_argument("--out", default="gradcheck_out", help="panel directory")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(run=run)
    return p


def verdict(r) -> str:
    """PASS, FAIL or INCONCLUSIVE (older results have only ``passed``)."""
    return getattr(r, "verdict", None) or ("PASS" if r.passed else "FAIL")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def check_all(scene, args) -> list:
    """Run the gradcheck with one progress line per parameter on stderr."""
    from pathdiff.gradcheck import gradcheck

    kw = dict(
        spp=args.spp, fd_spp=args.fd_spp, h=args.h, seeds=args.seeds, fd_seeds=args.fd_seeds,
        seed=args.seed, **integrator_options(args),
    )  # fmt: skip
    if "progress" in inspect.signature(gradcheck).parameters:
        return gradcheck(scene, args.param, args.integrator, progress=_say, **kw)
    results = []
    for i, spec in enumerate(args.param, start=1):
        t0 = time.perf_counter()
        _say(f"gradcheck [{i}/{len(args.param)}] {spec} ...")
        (r,) = gradcheck(scene, [spec], args.integrator, **kw)
        _say(f"gradcheck [{i}/{len(args.param)}] {spec}: {verdict(r)} "
             f"({time.perf_counter() - t0:.1f} s)")  # fmt: skip
        results.append(r)
    return results


def write_panels(results, out: str) -> str | None:
    """Write each result's panel; the error message if that fails."""
    from pathdiff.report import write_panel

    try:
        for r in results:
            r.panel = str(write_panel(r, os.path.join(out, f"gradcheck_{r.name}.png")))
    except OSError as e:
        return f"cannot write the panels to {out}: {e.strerror or e}"
    return None


def notes(r) -> list[str]:
    """Decisive spp and hint of a result, when the gradcheck module provides them."""
    out = []
    spp = getattr(r, "decisive_spp", None)
    if verdict(r) == "INCONCLUSIVE" and spp:
        out.append(f"{r.name}: too noisy to judge; about {spp} spp would decide (--fd-spp alike)")
    if getattr(r, "hint", None):
        out.append(f"{r.name}: {r.hint}")
    return out


def run(args) -> int:
    import pathdiff
    from pathdiff.report import format_table

    check_output_dir(args.out)
    scene = load_scene_from_args(args)
    for spec in args.param:
        pathdiff.resolve_param(scene, spec)
    make_integrator(scene, args.integrator, integrator_options(args), derivative=True)
    results = check_all(scene, args)
    error = write_panels(results, args.out)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        print(format_table(results))
        for line in (n for r in results for n in notes(r)):
            print(line)
        if error is None:
            print("panels: " + ", ".join(r.panel for r in results))
    if error is not None:
        print(f"pathdiff: error: {error}", file=sys.stderr)
        return 2
    verdicts = {verdict(r) for r in results}
    return next(EXIT[v] for v in ("FAIL", "INCONCLUSIVE", "PASS") if v in verdicts)
