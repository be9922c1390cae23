"""The ``pathdiff`` command line: ``render``, ``params``, ``doctor`` (and more subcommands).

Each subcommand is a function adding its parser to :data:`SUBCOMMANDS`; the parser's
``run`` default does the work and returns the exit code. User errors (bad files, unknown
parameters, malformed XML) print one line ``pathdiff: error: ...`` and exit with code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import numpy as np

import pathdiff
from pathdiff.backend import BackendError

SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def subcommand(add: Callable[[argparse._SubParsersAction], None]):
    """Register a function that adds a subcommand parser (with a ``run`` default)."""
    SUBCOMMANDS.append(add)
    return add


def scene_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by the subcommands that load a scene."""
    p.add_argument("scene", help="Mitsuba XML scene")
    p.add_argument("--res", type=int, help="film resolution (sets $res)")
    p.add_argument("--spp", type=int, default=0, help="samples per pixel (0: the scene's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-depth", type=int, help="path depth (overrides the scene's)")
    p.add_argument(
        "--define",
        "-D",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set an XML $parameter (repeatable)",
    )


def load_scene_from_args(args: argparse.Namespace):
    """The scene named on the command line, with ``--define`` and ``--res`` applied."""
    defines = {}
    for item in args.define:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--define expects KEY=VALUE, got {item!r}")
        defines[key] = value
    if args.res is not None:
        defines["res"] = args.res
    return pathdiff.load_scene(args.scene, **defines)


def integrator_options(args: argparse.Namespace) -> dict:
    return {} if args.max_depth is None else {"max_depth": args.max_depth}


def render_progressive(
    scene, integrator: str | None, spp: int, seed: int, passes: int = 8, **opts
) -> np.ndarray:
    """Render ``spp`` samples: one pass of ``spp // passes`` is timed; if the rest is
    projected to take over a second it is rendered in passes (distinct seeds) under a
    progress bar, else in one go. The result is the spp-weighted mean of the passes."""
    if spp <= 0:
        spp = scene.sensors()[0].sampler().sample_count()
    step = max(1, spp // passes)

    def run(i: int, n: int) -> np.ndarray:
        seed_i = ((seed << 16) + i) & 0xFFFFFFFF
        return pathdiff.render(scene, integrator, spp=n, seed=seed_i, **opts) * n

    t0 = time.perf_counter()
    img = run(0, step)
    rest = spp - step
    if rest and (time.perf_counter() - t0) * rest / step <= 1.0:
        img += run(1, rest)
    elif rest:
        from tqdm import tqdm

        with tqdm(total=spp, initial=step, unit="spp", file=sys.stderr) as bar:
            for i, start in enumerate(range(step, spp, step), start=1):
                n = min(step, spp - start)
                img += run(i, n)
                bar.update(n)
    return img / spp


@subcommand
def _render(sub) -> None:
    p = sub.add_parser("render", help="render a scene to EXR (linear) or PNG (sRGB)")
    scene_arguments(p)
    p.add_argument("-o", "--output", required=True, help="output image (.exr, .png, .jpg)")
    p.add_argument("--integrator", help="path, prb, ad, edge, ... (default: the scene's)")
    p.set_defaults(run=_run_render)


def _run_render(args) -> int:
    from pathdiff.images import write_image

    ext = os.path.splitext(args.output)[1].lower()
    if ext not in (".exr", ".hdr", ".pfm", ".png", ".jpg", ".jpeg"):
        raise ValueError(f"unsupported output type {ext!r}: use .exr, .png or .jpg")
    scene = load_scene_from_args(args)
    t0 = time.perf_counter()
    img = render_progressive(
        scene, args.integrator, args.spp, args.seed, **integrator_options(args)
    )
    path = write_image(args.output, img)
    print(f"wrote {path} ({img.shape[1]}x{img.shape[0]}, {time.perf_counter() - t0:.2f} s)")
    return 0


@subcommand
def _params(sub) -> None:
    p = sub.add_parser("params", help="list the differentiable parameters of a scene")
    p.add_argument("scene")
    p.add_argument("--res", type=int)
    p.add_argument("--define", "-D", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(run=_run_params)


def _run_params(args) -> int:
    from pathdiff.scene import rigid_specs

    scene = load_scene_from_args(args)
    rows = pathdiff.list_params(scene)
    width = max(len(k) for k, _, _ in rows) if rows else 10
    print(f"{'parameter':{width}s}  {'type':10s} {'size':>8s}")
    for key, kind, size in rows:
        print(f"{key:{width}s}  {kind:10s} {size:8d}")
    rigid = rigid_specs(scene)
    if rigid:
        print("\nrigid ParamSpecs (triangle meshes):")
        for shape in dict.fromkeys(s.split(".")[0] for s in rigid):
            print(f"  {shape}.translate.x|y|z  {shape}.rotate.x|y|z  {shape}.scale")
    return 0


@subcommand
def _doctor(sub) -> None:
    p = sub.add_parser("doctor", help="check the installation with a 1-second render")
    p.set_defaults(run=_run_doctor)


def _run_doctor(args) -> int:
    import platform

    import drjit as dr
    import mitsuba as mi

    from pathdiff.backend import cuda_available, find_llvm

    print(f"python      {platform.python_version()}")
    print(f"drjit       {dr.__version__}")
    print(f"mitsuba     {mi.__version__}")
    print(f"pathdiff    {pathdiff.__version__}")
    print(f"variant     {mi.variant()}")
    print(f"libLLVM     {os.environ.get('DRJIT_LIBLLVM_PATH', '(not set)')}")
    print(f"found LLVM  {', '.join(f'{v} ({p})' for v, p in find_llvm()) or 'none'}")
    print(f"CUDA        {'available' if cuda_available() else 'not available'}")
    scene_dict = mi.cornell_box()
    scene_dict["sensor"]["film"].update(width=32, height=32)
    scene = mi.load_dict(scene_dict)
    t0 = time.perf_counter()
    try:
        img = pathdiff.render(scene, "path", spp=16)
    except Exception as e:  # report any failure of the stack as a failed check
        print(f"smoke test  FAILED: {type(e).__name__}: {e}".splitlines()[0])
        return 1
    ok = bool(np.isfinite(img).all() and img.mean() > 0)
    print(
        f"smoke test  Cornell box 32x32, 16 spp, pathdiff_path: mean {img.mean():.4f}, "
        f"{time.perf_counter() - t0:.2f} s -> {'ok' if ok else 'FAILED'}"
    )
    return 0 if ok else 1


@subcommand
def _gradcheck(sub) -> None:
    p = sub.add_parser("gradcheck", help="compare derivatives with finite differences")
    p.add_argument("scene", help="Mitsuba XML scene")
    p.add_argument(
        "--param", action="append", required=True, metavar="SPEC", help="ParamSpec (repeatable)"
    )
    p.add_argument("--integrator", default="prb", help="derivative estimator (default: prb)")
    p.add_argument("--spp", type=int, help="AD samples per pixel per seed (default: 64)")
    p.add_argument("--fd-spp", type=int, help="FD samples per pixel per seed (default: 256)")
    p.add_argument("--h", type=float, help="FD step (default: per parameter kind)")
    p.add_argument("--seeds", type=int, default=4, help="independent AD runs (default: 4)")
    p.add_argument("--fd-seeds", type=int, default=8, help="independent FD runs (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--res", type=int, help="film resolution (sets $res)")
    p.add_argument("--max-depth", type=int, help="path depth (overrides the scene's)")
    p.add_argument("--define", "-D", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default="gradcheck_out", help="panel directory")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(run=_run_gradcheck)


def _run_gradcheck(args) -> int:
    import json

    from pathdiff.gradcheck import gradcheck
    from pathdiff.report import format_table, write_panel

    scene = load_scene_from_args(args)
    results = gradcheck(
        scene,
        args.param,
        args.integrator,
        spp=args.spp,
        fd_spp=args.fd_spp,
        h=args.h,
        seeds=args.seeds,
        fd_seeds=args.fd_seeds,
        seed=args.seed,
        **integrator_options(args),
    )
    for r in results:
        r.panel = str(write_panel(r, os.path.join(args.out, f"gradcheck_{r.name}.png")))
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        print(format_table(results))
        print("panels: " + ", ".join(r.panel for r in results))
    return 0 if all(r.passed for r in results) else 1


class _TargetAction(argparse.Action):
    """``--target IMG`` starts a target; ``--sensor N`` and ``--mask FILE`` set the last one's."""

    def __call__(self, parser, namespace, value, option_string=None):
        targets = list(namespace.targets or [])
        if option_string == "--target":
            targets.append({"image": value})
        elif not targets:
            namespace.target_error = f"{option_string} {value} must follow the --target it is for"
        else:
            targets[-1][option_string[2:]] = value
        namespace.targets = targets


#: example-file keys that set options (paths in the file are relative to it)
EXAMPLE_OPTIONS = (
    "res", "spp", "seed", "max_depth", "iters", "lr", "loss", "integrator", "lambda_",
    "exposure", "schedule", "patience", "tol", "checkpoint_every", "frame_every", "final_spp",
)  # fmt: skip


@subcommand
def _optimize(sub) -> None:
    p = sub.add_parser(
        "optimize",
        help="recover scene parameters from target images (inverse rendering)",
        description="SCENE is a Mitsuba XML scene, or an example file (.json) holding these "
        "options; options given on the command line take precedence over the file's.",
    )
    scene_arguments(p)
    p.set_defaults(spp=8, targets=None, target_error=None)
    t = p.add_argument_group("targets (repeat --target for several sensors)")
    for flag, meta, text in (
        ("--target", "IMG", "target image: PNG/JPEG (sRGB), EXR/HDR (linear)"),
        ("--sensor", "N", "sensor of the preceding --target (default: its position)"),
        ("--mask", "FILE", "mask of the preceding --target (default: the image's alpha)"),
    ):
        t.add_argument(flag, action=_TargetAction, dest="targets", metavar=meta, help=text)
    t.add_argument("--strict", action="store_true", help="reject targets of the wrong size")
    t.add_argument(
        "--exposure",
        choices=["none", "fit"],
        default="none",
        help="fit each render's scale to its target (photos of unknown exposure)",
    )
    v = p.add_argument_group("parameters")
    v.add_argument(
        "--param",
        action="append",
        dest="params",
        metavar="KEY[:lr=X]",
        help="parameter key, glob or ParamSpec; options :lr= :min= :max= (repeatable)",
    )
    v.add_argument(
        "--init",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="starting value: numbers (0.5 or 0.5,0.4,0.3) or a file (PLY, image)",
    )
    v.add_argument("--truth", metavar="JSON", help="true values, to report the errors")
    v.add_argument(
        "--lambda",
        dest="lambda_",
        type=float,
        default=20.0,
        metavar="LAMBDA",
        help="large-steps λ for vertex positions (0: plain Adam; default: 20)",
    )
    o = p.add_argument_group("optimization")
    o.add_argument("--iters", type=int, default=100, help="iterations (default: 100)")
    o.add_argument("--lr", type=float, default=0.02, help="Adam learning rate (default: 0.02)")
    o.add_argument("--loss", default="l2", choices=["l1", "l2", "rel_l2", "multiscale_l1"])
    o.add_argument("--integrator", help="default: edge if geometry moves, else prb")
    o.add_argument(
        "--schedule",
        metavar="RES:SPP,...",
        help="coarse-to-fine stages of equal length, e.g. 32:4,64:8",
    )
    o.add_argument(
        "--patience",
        type=int,
        default=0,
        help="stop when the mean loss of the last N iterations improves by less "
        "than --tol on the N before (default: 0, off)",
    )
    o.add_argument("--tol", type=float, default=1e-3)
    r = p.add_argument_group("outputs")
    r.add_argument("-o", "--output", required=True, metavar="DIR", help="run directory")
    r.add_argument("--resume", action="store_true", help="continue from DIR's checkpoint")
    r.add_argument("--checkpoint-every", type=int, default=10, metavar="N")
    r.add_argument(
        "--frame-every",
        type=int,
        default=0,
        metavar="N",
        help="keep a render every N iterations (default: iters/24)",
    )
    r.add_argument("--final-spp", type=int, default=64)
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_optimize)  # fmt: skip


def _parse_init(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--init expects KEY=VALUE, got {item!r}")
        try:
            out[key] = [float(x) for x in value.split(",")]
        except ValueError:
            out[key] = value
    return out


def _apply_example(args: argparse.Namespace, parser_defaults: dict) -> None:
    """Fill ``args`` from an example file (``SCENE`` ending in ``.json``)."""
    import json

    path = args.scene
    if not os.path.isfile(path):
        raise FileNotFoundError(f"example file not found: {path}")
    try:
        spec = json.loads(open(path).read())
    except json.JSONDecodeError as e:
        raise ValueError(f"malformed JSON in {path}: {e}") from e
    base = os.path.dirname(os.path.abspath(path))

    def rel(p):
        return os.path.normpath(os.path.join(base, p))

    args.scene = rel(spec["scene"])
    for key in EXAMPLE_OPTIONS:
        if key in spec and getattr(args, key) == parser_defaults.get(key):
            setattr(args, key, spec[key])
    if not args.targets:
        args.targets = [
            {k: rel(v) if k in ("image", "mask") else v for k, v in t.items()}
            for t in spec.get("targets", [])
        ]
    args.params = args.params or spec.get("params")
    args.truth = args.truth or (rel(spec["truth"]) if "truth" in spec else None)
    init = {k: rel(v) if isinstance(v, str) else v for k, v in spec.get("init", {}).items()}
    args.init_values = init | _parse_init(args.init)
    args.define = [f"{k}={v}" for k, v in spec.get("define", {}).items()] + args.define
    args.integrator_options = spec.get("integrator_options", {})


def _run_optimize(args) -> int:
    import warnings

    from pathdiff.optimize import optimize

    if args.target_error:
        raise ValueError(args.target_error)
    args.init_values, args.integrator_options = _parse_init(args.init), {}
    if args.scene.lower().endswith(".json"):
        _apply_example(args, vars(build_parser().parse_args(["optimize", "x", "-o", "x"])))
    defines = dict(item.partition("=")[::2] for item in args.define)
    xml_params = {**defines, **({"res": args.res} if args.res else {})}
    opts = {**integrator_options(args), **args.integrator_options}

    def show(message, *rest, **kw):
        print(f"pathdiff: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        result = optimize(
            args.scene,
            args.params or [],
            [
                {**t, "sensor": int(t["sensor"])} if "sensor" in t else t
                for t in args.targets or []
            ],
            iters=args.iters, lr=args.lr, spp=args.spp, loss=args.loss,
            integrator=args.integrator, integrator_options=opts, seed=args.seed,
            init=args.init_values, truth=args.truth, lambda_=args.lambda_,
            exposure=args.exposure, strict=args.strict, schedule=args.schedule,
            patience=args.patience, tol=args.tol, out_dir=args.output,
            checkpoint_every=args.checkpoint_every, resume=args.resume,
            frame_every=args.frame_every, final_spp=args.final_spp, progress=not args.quiet,
            xml_params=xml_params, command=["pathdiff", *args.argv],
        )  # fmt: skip
    print(result.summary())
    loss = f", final loss {result.losses[-1]:.4g}" if len(result.losses) else ""
    skipped = f", {len(result.skipped)} step(s) skipped" if result.skipped else ""
    print(
        f"{result.iterations} iterations ({result.stop_reason}), {result.seconds:.1f} s"
        f"{loss}{skipped}"
    )
    if result.stop_reason == "interrupted":
        print(
            f"checkpoint: {args.output}/checkpoint.npz; continue with the same command and "
            "--resume",
            file=sys.stderr,
        )
        return 130
    names = ", ".join(os.path.relpath(f, args.output) for f in result.files)
    print(f"wrote {args.output}/: {names}")
    return 0


#: options of ``pathdiff bench``, forwarded to ``python -m experiments.suite``
BENCH_OPTIONS = {
    "problems": (str, "comma-separated problem names (default: all)"),
    "estimators": (str, "comma-separated estimators (default: every registered one)"),
    "spp": (int, "samples per pixel of each derivative (default: 16)"),
    "seeds": (int, "independent derivatives per pair (default: 4)"),
    "opt_iters": (int, "Adam steps of the short optimization, 0 to skip (default: 10)"),
    "opt_spp": (int, "samples per pixel per optimization step (default: 8)"),
    "out": (str, "output folder (default: experiments/out/suite)"),
}


@subcommand
def _bench(sub) -> None:
    p = sub.add_parser(
        "bench", help="run the benchmark suite (experiments/suite of the source tree)"
    )
    for name, (kind, text) in BENCH_OPTIONS.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, help=text)
    p.set_defaults(run=_run_bench)


def _run_bench(args) -> int:
    from pathlib import Path

    roots = [Path.cwd(), Path(pathdiff.__file__).resolve().parents[1]]
    root = next((r for r in roots if (r / "experiments" / "suite" / "__main__.py").is_file()), None)
    if root is None:
        raise FileNotFoundError(
            "experiments/suite not found: run `pathdiff bench` in the pathdiff source tree"
        )
    sys.path.insert(0, str(root))
    from experiments.suite.__main__ import main as bench_main

    argv = []
    for name in BENCH_OPTIONS:
        value = getattr(args, name)
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    return bench_main(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pathdiff", description="Differentiable Monte Carlo path tracing."
    )
    parser.add_argument(
        "--variant",
        help="Mitsuba variant (default: cuda_ad_rgb if usable, "
        "else llvm_ad_rgb; env PATHDIFF_VARIANT)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def _error(message: str) -> int:
    print(f"pathdiff: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pathdiff`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if pathdiff.backend_error is not None:
        return _error(str(pathdiff.backend_error))
    from pathdiff.scene import SceneError

    try:
        if args.variant:
            pathdiff.set_variant(args.variant)
        return args.run(args)
    except (BackendError, SceneError, FileNotFoundError, ValueError) as e:
        lines = str(e).strip().splitlines()
        return _error(lines[0] if lines else type(e).__name__)
    except KeyboardInterrupt:
        print("pathdiff: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
