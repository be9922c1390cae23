"""The flagship example (``scenes/examples/shaded/``) through pathdiff and through Mitsuba's
own pipeline, with the same iteration count, and a side-by-side table of the results.

* ours: ``python3 -m pathdiff optimize EXAMPLE -o OUT/pathdiff --overwrite --iters N``; the
  recovered meshes are read from the run directory (``mesh_stage{k}.ply``, ``mesh_final.ply``)
  when it has them, the albedo and its error from ``result.json`` (which also holds the
  Chamfer error of the vertex positions when the meshes are missing);
* Mitsuba: ``experiments/flagship_mitsuba.py --iters N --out OUT/mitsuba --overwrite``
  (``prb_projective``, ``mi.ad.LargeSteps``), read from its ``summary.json``.

The two runs go one after the other (never at once: the machine is small). ``--skip-ours`` /
``--skip-mitsuba`` leave a side out of the run but still show it if its directory holds an
earlier run (``--ours-dir`` / ``--mitsuba-dir`` point at runs made elsewhere). Usage:
``python3 experiments/flagship_compare.py [--iters N] [--out DIR] [--skip-ours] [--overwrite]``
(an earlier run in a directory it would write is kept unless ``--overwrite``).

One run of each is one draw: both trajectories are chaotic (the final Chamfer distance of
either pipeline moves by tens of percent with the seed). ``--seeds 0,1,2`` runs the pair once
per seed (``OUT/seedK``, each with its own table; ``--seed K`` passed to both sides) and ends
with a table of each seed's final errors and times and their means.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import pathdiff  # noqa: F401  (selects the Mitsuba variant used to read meshes)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "scenes" / "examples" / "shaded" / "example.json"
MITSUBA_SCRIPT = ROOT / "experiments" / "flagship_mitsuba.py"
VKEY = "mesh.vertex_positions"


def run(cmd: list[str], log: Path) -> tuple[int, float]:
    """Run ``cmd`` with its output shown and kept in ``log``; (exit code, wall seconds)."""
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            sys.stdout.write(line)
            fh.write(line)
        code = proc.wait()
    return code, time.perf_counter() - t0


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def mesh_metrics(path: Path, truth: tuple[np.ndarray, np.ndarray]) -> dict | None:
    """Chamfer (vertices and surface samples) and normal consistency of a mesh file."""
    if not path.is_file():
        return None
    sys.path.insert(0, str(MITSUBA_SCRIPT.parent))
    from flagship_mitsuba import mesh_errors, read_ply

    try:
        v, f = read_ply(path)
    except Exception as e:  # a half-written or unreadable file: the table shows "-"
        print(f"cannot read {path}: {str(e).splitlines()[0]}", file=sys.stderr)
        return None
    return {"triangles": len(f), **mesh_errors(v, f, *truth)}


def ours_results(
    out: Path, spec: dict, iters: int, truth: tuple, akey: str, wall: float | None
) -> dict:
    """What pathdiff's run directory says: per-stage and final meshes, albedo, time."""
    res = {"available": False}
    result = read_json(out / "result.json")
    n_stages = len(spec.get("schedule", "").split(",")) if spec.get("schedule") else 1
    stages = [mesh_metrics(out / f"mesh_stage{k}.ply", truth) for k in range(n_stages)]
    # the run's own iteration count (an earlier run may have had another)
    done = int((result or {}).get("iterations") or iters)
    times = stage_seconds(out, done, n_stages)
    for m, t in zip(stages, times):
        if m is not None:
            m["wall_seconds"] = t
    final = mesh_metrics(out / "mesh_final.ply", truth)
    if final is None and stages and stages[-1] is not None:
        final = stages[-1]
    if result is None and final is None:
        return res
    res.update(available=True, stages=stages, final=dict(final or {}))
    if result is not None:
        params = result.get("params", {})
        albedo = params.get(akey, {})
        res["final"]["albedo"] = albedo.get("final")
        res["final"]["albedo_rmse"] = albedo.get("error_final")
        mesh = params.get(VKEY, {})
        res["final"].setdefault("chamfer", mesh.get("error_final"))
        res["initial_chamfer"] = mesh.get("error_initial")
        res["loop_seconds"] = result.get("seconds")
        res["iterations"] = result.get("iterations")
        res["notes"] = result.get("notes", [])
    res["wall_seconds"] = wall
    return res


def mitsuba_results(out: Path, wall: float | None) -> dict:
    summary = read_json(out / "summary.json")
    if summary is None:
        return {"available": False}
    return {
        "available": True,
        "stages": summary.get("stages", []),
        "final": summary.get("final", {}),
        "initial": summary.get("initial", {}),
        "initial_chamfer": summary.get("initial", {}).get("chamfer"),
        "loop_seconds": summary.get("seconds"),
        "iterations": summary.get("iters"),
        "wall_seconds": wall,
        "skipped": summary.get("skipped", []),
    }


def cell(value, fmt: str = ".4f") -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return " ".join(f"{float(x):.3f}" for x in value)
    try:
        return format(float(value), fmt)
    except (TypeError, ValueError):
        return str(value)


def stage_seconds(out: Path, iters: int, n_stages: int) -> list[float | None]:
    """Elapsed seconds at the end of each stage, from pathdiff's ``trajectory.csv``."""
    try:
        rows = np.genfromtxt(out / "trajectory.csv", delimiter=",", names=True)
        it, sec = np.atleast_1d(rows["iteration"]), np.atleast_1d(rows["seconds"])
    except (OSError, ValueError):
        return [None] * n_stages
    ends = [(k + 1) * iters // n_stages - 1 for k in range(n_stages)]
    return [float(sec[it == e][0]) if (it == e).any() else None for e in ends]


def table(ours: dict, mitsuba: dict, initial: dict, albedo_true) -> str:
    """The side-by-side table (a side that did not run shows "-")."""

    def get(entry, key):
        return entry.get(key) if isinstance(entry, dict) else None

    def stage(res, k):
        stages = res.get("stages") or [] if res.get("available") else []
        return stages[k] if k < len(stages) else None

    rows = [("", "pathdiff (edge)", "Mitsuba (prb_projective)")]
    n = max(len(ours.get("stages") or []), len(mitsuba.get("stages") or []))
    for k in range(n):
        a, b = stage(ours, k), stage(mitsuba, k)
        for label, key, fmt in (
            ("Chamfer", "chamfer", ".4f"),
            ("normal consistency", "normal_consistency", ".4f"),
            ("elapsed [s]", "wall_seconds", ".0f"),
        ):
            rows.append((f"stage {k} {label}", cell(get(a, key), fmt), cell(get(b, key), fmt)))
    fa = ours.get("final") if ours.get("available") else None
    fb = mitsuba.get("final") if mitsuba.get("available") else None
    for label, key, fmt in (
        ("final triangles", "triangles", "d"),
        ("final Chamfer (vertices)", "chamfer", ".4f"),
        ("final Chamfer (surface samples)", "chamfer_surface", ".4f"),
        ("final normal consistency", "normal_consistency", ".4f"),
        ("final albedo", "albedo", ""),
        ("final albedo RMSE", "albedo_rmse", ".4f"),
    ):
        rows.append((label, cell(get(fa, key), fmt), cell(get(fb, key), fmt)))
    for label, key in (
        ("iterations", "iterations"),
        ("loop time [s]", "loop_seconds"),
        ("wall time [s]", "wall_seconds"),
    ):
        rows.append((label, cell(get(ours, key), ".0f"), cell(get(mitsuba, key), ".0f")))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "-" * max(len(x) for x in lines))
    head = (
        f"start (both): Chamfer {cell(initial.get('chamfer'))}, surface"
        f" {cell(initial.get('chamfer_surface'))}, normal consistency"
        f" {cell(initial.get('normal_consistency'))}; true albedo {cell(albedo_true)}"
    )
    return head + "\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iters", type=int, default=None, help="iterations (default: the example's)")
    ap.add_argument("--out", type=Path, default=Path("runs/flagship_compare"), help="output dir")
    ap.add_argument("--example", type=Path, default=EXAMPLE, help="the example.json")
    ap.add_argument("--skip-ours", action="store_true", help="do not run pathdiff")
    ap.add_argument("--skip-mitsuba", action="store_true", help="do not run the Mitsuba script")
    ap.add_argument(
        "--ours-dir", type=Path, help="pathdiff's run directory (default: OUT/pathdiff)"
    )
    ap.add_argument(
        "--mitsuba-dir", type=Path, help="Mitsuba's run directory (default: OUT/mitsuba)"
    )
    ap.add_argument("--ours-args", default="", help="extra arguments for pathdiff optimize")
    ap.add_argument("--mitsuba-args", default="", help="extra arguments for flagship_mitsuba.py")
    ap.add_argument(
        "--seeds",
        type=seed_list,
        default=None,
        help="comma-separated seeds: one pair of runs per seed in OUT/seedK, then a summary",
    )
    ap.add_argument(
        "--overwrite", action="store_true", help="replace earlier runs in the run directories"
    )
    args = ap.parse_args(argv)
    if args.seeds is not None and (args.ours_dir or args.mitsuba_dir):
        ap.error("--seeds writes each seed's runs to OUT/seedK: no --ours-dir/--mitsuba-dir")
    taken = [d for d in run_dirs(args) if d.is_dir() and any(d.iterdir())]
    if taken and not args.overwrite:
        ap.error(f"{taken[0]} holds an earlier run: pass --overwrite to replace it")
    return several_seeds(args) if args.seeds is not None else compare(args)


def seed_list(text: str) -> list[int]:
    """``--seeds``: comma-separated non-negative integers."""
    try:
        seeds = [int(x) for x in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected seeds like 0,1,2")
    return seeds


def run_dirs(args: argparse.Namespace) -> list[Path]:
    """The run directories this invocation would write (not those of skipped sides)."""
    outs = [args.out / f"seed{k}" for k in args.seeds] if args.seeds is not None else [args.out]
    dirs = []
    for out in outs:
        if not args.skip_ours:
            dirs.append(args.ours_dir or out / "pathdiff")
        if not args.skip_mitsuba:
            dirs.append(args.mitsuba_dir or out / "mitsuba")
    return dirs


def compare(args: argparse.Namespace) -> int:
    """Run (or read) both sides once and write ``table.txt`` and ``comparison.json``."""
    example = args.example.resolve()
    spec = json.loads(example.read_text())
    iters = args.iters or spec["iters"]
    akey = next(p.split(":")[0] for p in spec["params"] if not p.startswith(VKEY))
    truth_file = example.parent / spec["truth"]
    truth_spec = json.loads(truth_file.read_text())
    sys.path.insert(0, str(MITSUBA_SCRIPT.parent))
    from flagship_mitsuba import mesh_errors, read_ply

    truth = read_ply(truth_file.parent / truth_spec[VKEY])
    start = (
        read_ply(example.parent / "start.ply") if (example.parent / "start.ply").is_file() else None
    )
    initial = mesh_errors(*start, *truth) if start is not None else {}
    args.out.mkdir(parents=True, exist_ok=True)
    ours_dir = args.ours_dir or args.out / "pathdiff"
    mitsuba_dir = args.mitsuba_dir or args.out / "mitsuba"

    ours_wall = mitsuba_wall = None
    if not args.skip_ours:
        cmd = [sys.executable, "-m", "pathdiff", "optimize", str(example), "-o", str(ours_dir)]
        cmd += ["--overwrite", "--iters", str(iters), *args.ours_args.split()]
        code, ours_wall = run(cmd, args.out / "pathdiff.log")
        if code != 0:
            print(f"pathdiff optimize failed (exit {code}); see {args.out / 'pathdiff.log'}")
    if not args.skip_mitsuba:
        cmd = [sys.executable, str(MITSUBA_SCRIPT), "--example", str(example)]
        cmd += ["--iters", str(iters), "--out", str(mitsuba_dir), "--overwrite"]
        cmd += args.mitsuba_args.split()
        code, mitsuba_wall = run(cmd, args.out / "mitsuba.log")
        if code != 0:
            print(f"flagship_mitsuba.py failed (exit {code}); see {args.out / 'mitsuba.log'}")

    ours = ours_results(ours_dir, spec, iters, truth, akey, ours_wall)
    mitsuba = mitsuba_results(mitsuba_dir, mitsuba_wall)
    text = table(ours, mitsuba, initial, truth_spec.get(akey))
    print(f"\nflagship example, {iters} iterations, schedule {spec.get('schedule')}\n{text}")
    (args.out / "table.txt").write_text(text + "\n")
    comparison = {"iters": iters, "initial": initial, "pathdiff": ours, "mitsuba": mitsuba}
    (args.out / "comparison.json").write_text(json.dumps(comparison, indent=2, default=str) + "\n")
    return 0


def several_seeds(args: argparse.Namespace) -> int:
    """One comparison per seed (in OUT/seedK, ``--seed K`` given to both sides), then the
    summary table."""
    rows = []
    for seed in args.seeds:
        out = args.out / f"seed{seed}"
        compare(
            argparse.Namespace(
                **{
                    **vars(args),
                    "out": out,
                    "ours_args": f"{args.ours_args} --seed {seed}",
                    "mitsuba_args": f"{args.mitsuba_args} --seed {seed}",
                }
            )
        )
        comparison = read_json(out / "comparison.json") or {}
        rows.append((seed, comparison.get("pathdiff", {}), comparison.get("mitsuba", {})))
    text = seed_table(rows)
    print("\n" + text)
    (args.out / "seeds.txt").write_text(text + "\n")
    return 0


def seed_table(rows: list[tuple[int, dict, dict]]) -> str:
    """Final Chamfer, normal consistency, albedo RMSE and loop time of each side per seed,
    and their means over the seeds."""
    keys = [("chamfer", ".4f"), ("normal_consistency", ".4f"), ("albedo_rmse", ".4f")]
    head = ["seed"] + [f"{side} {k}" for side in ("ours", "Mitsuba") for k in
                       ("Chamfer", "NC", "albedo", "time [s]")]  # fmt: skip
    lines, values = [head], {}
    for seed, ours, mitsuba in rows:
        cells = [str(seed)]
        for side, result in (("ours", ours), ("mitsuba", mitsuba)):
            final = result.get("final") or {}
            for key, fmt in keys:
                x = final.get(key)
                values.setdefault((side, key), []).append(x)
                cells.append("-" if x is None else format(x, fmt))
            t = result.get("loop_seconds")
            values.setdefault((side, "time"), []).append(t)
            cells.append("-" if t is None else f"{t:.0f}")
        lines.append(cells)
    mean = ["mean"]
    for side in ("ours", "mitsuba"):
        for key, fmt in [*keys, ("time", ".0f")]:
            xs = [x for x in values[side, key] if x is not None]
            mean.append(format(float(np.mean(xs)), fmt) if xs else "-")
    lines.append(mean)
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in lines)


if __name__ == "__main__":
    sys.exit(main())
