"""The flagship example (``scenes/examples/shaded/``) solved through Mitsuba's own pipeline,
for a side-by-side comparison with ``pathdiff optimize``.

Same problem as the example: the scene (``mesh=start.ply``), the ten 8-bit sRGB targets
(decoded to linear by ``mi.Bitmap.convert``), the same coarse-to-fine schedule (film width,
spp and learning-rate factor per stage; the iterations split equally over the stages), the
same starting albedo, learning rates and cosine decay of the learning rate over the second
half of the run (to ``lr_final``, pathdiff's default 0.1 unless the example sets it), the
same seeds (iteration ``i``, view ``k``: ``i * 10 + k``, plus ``--seed`` times 2**20).
Mitsuba's side:

* derivatives: ``prb_projective`` (max_depth of the example). Its default guiding of the
  indirect silhouette samples (``octree``) is rebuilt at every render: ~3.5-5.5 s per view at
  128x128 on 2 cores, against ~0.2 s for the whole gradient without it, which would make
  the run take hours (at 32x32 the octree fails to build and the fallback is ~10x slower
  still); ``--guiding`` picks it (default ``none``: indirect silhouettes are still sampled,
  from all silhouette edges, without guiding);
* vertex positions: ``mi.ad.LargeSteps`` (lambda of the example) with ``mi.ad.Adam(uniform=True)``,
  both rebuilt on the subdivided mesh at each new stage (each triangle into 4 through its edge
  midpoints, the surface unchanged);
* albedo: a plain ``mi.ad.Adam``, clamped to [0, 1];
* loss: L1 between the render clipped to [0, 1] (as a camera would) and the target, averaged
  over the views; the targets are box-averaged (in linear space) to the stage's film size.
  ``--response hinge`` clips only where the photo is clipped (a diagnostic, closer to
  pathdiff's handling of LDR targets).

``--lr`` overrides the example's learning rate (the albedo keeps its own). At 0.15 this
pipeline's first stage diverges (the loss bottoms out after ~30 iterations, then rises; the
mesh stretches upward and folds), with any seed, guiding or response; the example's 0.1 and
0.05 are stable.

Per stage and at the end: Chamfer distance (RMS of the nearest-vertex distances, both ways,
as ``pathdiff``'s error of vertex positions), the same on points sampled uniformly over both
surfaces (independent of the vertex count), normal consistency, albedo RMSE, wall time.
Writes ``mesh_stage{k}.ply`` (end of stage k), ``mesh_final.ply`` and ``summary.json`` into
``--out``.

Usage: ``python3 experiments/flagship_mitsuba.py [--iters N] [--out DIR] [--overwrite]``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import drjit as dr
import mitsuba as mi
import numpy as np

import pathdiff  # noqa: F401  (finds a usable libLLVM and selects the Mitsuba variant)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "scenes" / "examples" / "shaded" / "example.json"
VKEY = "mesh.vertex_positions"
FKEY = "mesh.faces"
NKEY = "mesh.vertex_normals"
PRINT_EVERY = 10

try:
    from pathdiff.meshes import chamfer, normal_consistency, read_ply, subdivide
except ImportError:  # pathdiff.meshes not there yet: local versions with the same behaviour

    def subdivide(v, f, uv=None):
        """Each triangle into four through its (shared) edge midpoints."""
        v, f = np.asarray(v, np.float64).reshape(-1, 3), np.asarray(f, np.int64).reshape(-1, 3)
        pairs = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
        edges, index = np.unique(pairs, axis=0, return_inverse=True)
        index = index.ravel().reshape(3, -1) + len(v)  # midpoint of edge 01, 12, 20 per face
        new_v = np.concatenate([v, 0.5 * (v[edges[:, 0]] + v[edges[:, 1]])])
        m01, m12, m20 = index
        a, b, c = f.T
        new_f = np.concatenate(
            [np.stack(t, 1) for t in ((a, m01, m20), (b, m12, m01), (c, m20, m12), (m01, m12, m20))]
        )
        new_uv = None
        if uv is not None:
            uv = np.asarray(uv, np.float64).reshape(-1, 2)
            new_uv = np.concatenate([uv, 0.5 * (uv[edges[:, 0]] + uv[edges[:, 1]])])
        return new_v, new_f, new_uv

    def _normals(v, f):
        n = np.zeros_like(v)
        fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        for k in range(3):
            np.add.at(n, f[:, k], fn)
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-30)

    def chamfer(a, b):
        """RMS of the nearest-point distances from a to b and from b to a."""
        from scipy.spatial import cKDTree

        a, b = np.asarray(a, np.float64).reshape(-1, 3), np.asarray(b, np.float64).reshape(-1, 3)
        d = np.concatenate([cKDTree(b).query(a)[0], cKDTree(a).query(b)[0]])
        return float(np.sqrt(np.mean(d**2)))

    def normal_consistency(va, fa, vb, fb):
        """Mean |n_a . n_b| over nearest-vertex pairs, both ways."""
        from scipy.spatial import cKDTree

        va, vb = (
            np.asarray(va, np.float64).reshape(-1, 3),
            np.asarray(vb, np.float64).reshape(-1, 3),
        )
        na, nb = _normals(va, np.asarray(fa)), _normals(vb, np.asarray(fb))
        ia, ib = cKDTree(vb).query(va)[1], cKDTree(va).query(vb)[1]
        return float(np.mean(np.abs(np.concatenate([(na * nb[ia]).sum(1), (nb * na[ib]).sum(1)]))))

    def read_ply(path):
        p = mi.traverse(mi.load_dict({"type": "ply", "filename": str(path)}))
        v = np.array(p["vertex_positions"], np.float64).reshape(-1, 3)
        return v, np.array(p["faces"], np.int64).reshape(-1, 3)


# ---- Metrics ----------------------------------------------------------------------------------
def surface_points(v: np.ndarray, f: np.ndarray, n: int = 20000, seed: int = 0) -> np.ndarray:
    """``n`` points uniformly distributed over the surface (fixed seed)."""
    rng = np.random.default_rng(seed)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    tri = rng.choice(len(f), n, p=area / area.sum())
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    w = np.stack([1 - s, s * (1 - r2), s * r2], 1)
    return w[:, :1] * a[tri] + w[:, 1:2] * b[tri] + w[:, 2:] * c[tri]


def mesh_errors(v: np.ndarray, f: np.ndarray, vt: np.ndarray, ft: np.ndarray) -> dict:
    finite = bool(np.isfinite(v).all())
    if not finite:
        return {"chamfer": math.nan, "chamfer_surface": math.nan, "normal_consistency": math.nan}
    return {
        "chamfer": chamfer(v, vt),
        "chamfer_surface": chamfer(surface_points(v, f), surface_points(vt, ft)),
        "normal_consistency": normal_consistency(v, f, vt, ft),
    }


# ---- Example, targets, schedule ---------------------------------------------------------------
def parse_schedule(text: str) -> list[tuple[int, int, float]]:
    stages = []
    for item in text.split(","):
        parts = item.split(":")
        stages.append((int(parts[0]), int(parts[1]), float(parts[2]) if len(parts) > 2 else 1.0))
    return stages


def param_lrs(spec: dict) -> dict[str, float]:
    """Per-parameter learning rates (``KEY:lr=X``), else the example's ``lr``."""
    out = {}
    for entry in spec["params"]:
        key, *opts = entry.split(":")
        out[key] = spec.get("lr", 0.02)
        for opt in opts:
            name, _, value = opt.partition("=")
            if name == "lr":
                out[key] = float(value)
    return out


def read_target(path: Path) -> np.ndarray:
    """An 8-bit sRGB PNG as linear float32 ``(H, W, 3)``: Mitsuba removes the sRGB ramp."""
    bmp = mi.Bitmap(str(path))
    lin = bmp.convert(mi.Bitmap.PixelFormat.RGB, mi.Struct.Type.Float32, srgb_gamma=False)
    return np.array(lin, np.float32)


def box_resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area average by an integer factor (linear space)."""
    h, w, c = img.shape
    if (h, w) == (height, width):
        return img
    if h % height or w % width:
        raise ValueError(f"cannot box-average {w}x{h} to {width}x{height}")
    return img.reshape(height, h // height, width, w // width, c).mean((1, 3))


def lr_decay(it: int, iters: int, final: float) -> float:
    """1 over the first half of the run, then a cosine down to ``final`` at the last iteration."""
    s = min(max((it + 1) / iters - 0.5, 0.0) / 0.5, 1.0)
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * s))


def camera(img: mi.TensorXf, target: mi.TensorXf, clipped: mi.TensorXf) -> mi.TensorXf:
    """The render as a camera records it: clipped to [0, 1]."""
    return dr.clip(img, 0.0, 1.0)


def hinge(img: mi.TensorXf, target: mi.TensorXf, clipped: mi.TensorXf) -> mi.TensorXf:
    """Clipped only in the pixels the photo clipped (there: at most the target, so only "at
    least white" is asked); elsewhere the render as is, so that a render too bright where the
    photo is not clipped is still pulled down."""
    return dr.select(clipped > 0.5, dr.minimum(img, target), img)


RESPONSES = {"clip": camera, "hinge": hinge}


# ---- Scene helpers ----------------------------------------------------------------------------
def set_films(scene: mi.Scene, res: int, full: list[tuple[int, int]]) -> None:
    for sensor, (w, h) in zip(scene.sensors(), full):
        sp = mi.traverse(sensor)
        size = mi.ScalarVector2u(res, max(1, round(h * res / w)))
        sp["film.size"] = size
        sp["film.crop_size"] = size
        sp.update()


def set_mesh(params: mi.SceneParameters, v: np.ndarray, f: np.ndarray) -> None:
    """New topology: faces, positions (and vertex normals of the right size), detached."""
    with dr.suspend_grad():
        params[FKEY] = mi.UInt32(np.asarray(f, np.uint32).ravel())
        params[VKEY] = mi.Float(np.asarray(v, np.float32).ravel())
        if NKEY in params and dr.width(params[NKEY]):
            params[NKEY] = dr.zeros(mi.Float, 3 * len(v))
        params.update()


def current_mesh(params: mi.SceneParameters) -> tuple[np.ndarray, np.ndarray]:
    v = np.array(dr.detach(params[VKEY]), np.float64).reshape(-1, 3)
    return v, np.array(params[FKEY], np.int64).reshape(-1, 3)


def write_mesh(scene: mi.Scene, path: Path) -> None:
    next(s for s in scene.shapes() if s.id() == VKEY.split(".")[0]).write_ply(str(path))


# ---- The run ----------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict:
    example = Path(args.example).resolve()
    spec = json.loads(example.read_text())
    base = example.parent
    stages = parse_schedule(spec["schedule"])
    iters = args.iters or spec["iters"]
    if iters < len(stages):
        raise SystemExit(f"--iters {iters}: need at least one iteration per stage")
    if args.lr is not None:  # the run's learning rate (parameters with their own keep it)
        spec = dict(spec, lr=args.lr)
    lrs = param_lrs(spec)
    response = RESPONSES[args.response]
    akey = next(k for k in lrs if k != VKEY)
    lr_final = spec.get("lr_final", 0.1)
    lambda_ = spec.get("lambda_", 20.0)
    max_depth = spec.get("max_depth", 3)

    truth_file = base / spec["truth"]  # its paths are relative to itself
    truth = json.loads(truth_file.read_text())
    vt, ft = read_ply(truth_file.parent / truth[VKEY])
    albedo_true = np.array(truth[akey], np.float64)

    scene = mi.load_file(str(base / spec["scene"]), max_depth=max_depth)
    params = mi.traverse(scene)
    integrator = mi.load_dict(
        {"type": "prb_projective", "max_depth": max_depth, "guiding": args.guiding}
    )
    targets = [(t["sensor"], read_target(base / t["image"])) for t in spec["targets"]]
    full = [(int(s.film().size()[0]), int(s.film().size()[1])) for s in scene.sensors()]

    with dr.suspend_grad():
        params[akey] = mi.Color3f(float(spec["init"][akey]))
        params.update()
    opt_a = mi.ad.Adam(lr=lrs[akey])
    opt_a["albedo"] = mi.Float(np.array(dr.detach(params[akey]), np.float32).ravel())

    def report(tag: str, extra: dict) -> dict:
        v, f = current_mesh(params)
        albedo = np.array(dr.detach(opt_a["albedo"]), np.float64).ravel()
        entry = {
            "stage": tag,
            **extra,
            "vertices": len(v),
            "triangles": len(f),
            **mesh_errors(v, f, vt, ft),
            "albedo": albedo.tolist(),
            "albedo_rmse": float(np.sqrt(np.mean((albedo - albedo_true) ** 2))),
        }
        print(
            f"[{tag}] {len(f)} triangles  chamfer {entry['chamfer']:.4f}"
            f" (surface {entry['chamfer_surface']:.4f})"
            f"  normal consistency {entry['normal_consistency']:.4f}"
            f"  albedo {np.round(albedo, 3).tolist()} rmse {entry['albedo_rmse']:.4f}"
            + (f"  wall {entry['wall_seconds']:.0f} s" if "wall_seconds" in entry else ""),
            flush=True,
        )
        return entry

    summary = {
        "example": str(example),
        "integrator": "prb_projective",
        "guiding": args.guiding,
        "response": args.response,
        "iters": iters,
        "schedule": spec["schedule"],
        "lambda_": lambda_,
        "lr": lrs,
        "lr_final": lr_final,
        "seed": args.seed,
        "initial": report("initial", {}),
        "stages": [],
        "losses": [],
        "skipped": [],
    }

    t0 = time.perf_counter()
    it = 0
    for s, (res, spp, lr_factor) in enumerate(stages):
        t_stage = time.perf_counter()
        if s > 0:  # finer mesh: subdivide and restart large steps and Adam on it
            v, f, _ = subdivide(*current_mesh(params))
            set_mesh(params, v, f)
        set_films(scene, res, full)
        stage_targets = []
        for k, img in targets:
            width, height = (int(x) for x in scene.sensors()[k].film().size())
            clipped = (img >= 1.0).any(-1, keepdims=True).astype(np.float32)
            clipped = box_resize(clipped, height, width) > 0.5
            stage_targets.append(
                (k, mi.TensorXf(box_resize(img, height, width)), mi.TensorXf(clipped * 1.0))
            )
        ls = mi.ad.LargeSteps(dr.detach(params[VKEY]), params[FKEY], lambda_)
        opt_v = mi.ad.Adam(lr=lrs[VKEY], uniform=True)
        opt_v["u"] = ls.to_differential(dr.detach(params[VKEY]))
        end = (s + 1) * iters // len(stages)
        losses = []
        while it < end:
            decay = lr_decay(it, iters, lr_final) * lr_factor
            opt_v.set_learning_rate(lrs[VKEY] * decay)
            opt_a.set_learning_rate(lrs[akey] * decay)
            params[VKEY] = ls.from_differential(opt_v["u"])
            params[akey] = dr.unravel(mi.Color3f, opt_a["albedo"])
            params.update()
            loss = 0
            for k, target, clipped in stage_targets:
                seed = (args.seed << 20) + it * 10 + k
                img = mi.render(scene, params, integrator=integrator, sensor=k, spp=spp, seed=seed)
                loss = loss + dr.mean(dr.abs(response(img, target, clipped) - target), axis=None)
            loss = loss / len(stage_targets)
            dr.backward(loss)
            value = float(np.array(dr.detach(loss)).ravel()[0])
            grads_ok = all(
                np.isfinite(np.array(dr.grad(o[name]))).all()
                for o, name in ((opt_v, "u"), (opt_a, "albedo"))
            )
            if grads_ok and math.isfinite(value):
                opt_v.step()
                opt_a.step()
                opt_a["albedo"] = dr.clip(opt_a["albedo"], 0.0, 1.0)
            else:
                summary["skipped"].append(it)
                print(f"iteration {it}: non-finite loss or gradient, step skipped", flush=True)
                opt_v["u"], opt_a["albedo"] = opt_v["u"], opt_a["albedo"]
            losses.append(value)
            summary["losses"].append(value)
            if it % PRINT_EVERY == 0 or it == end - 1:
                print(
                    f"  it {it:4d}  stage {s}  loss {value:.5f}  {time.perf_counter() - t0:6.0f} s",
                    flush=True,
                )
            it += 1
        with dr.suspend_grad():
            params[VKEY] = ls.from_differential(opt_v["u"])
            params[akey] = dr.unravel(mi.Color3f, opt_a["albedo"])
            params.update()
        write_mesh(scene, args.out / f"mesh_stage{s}.ply")
        wall = time.perf_counter() - t0
        summary["stages"].append(
            report(
                f"stage {s}",
                {
                    "res": res,
                    "spp": spp,
                    "lr_factor": lr_factor,
                    "iterations": len(losses),
                    "final_loss": float(np.mean(losses[-5:])),
                    "seconds": time.perf_counter() - t_stage,
                    "wall_seconds": wall,
                },
            )
        )
    write_mesh(scene, args.out / "mesh_final.ply")
    summary["final"] = dict(summary["stages"][-1], stage="final")
    summary["seconds"] = time.perf_counter() - t0
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out} (mesh_final.ply, summary.json) in {summary['seconds']:.0f} s")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iters", type=int, default=None, help="iterations (default: the example's)")
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default: the example's)")
    ap.add_argument("--out", type=Path, default=Path("runs/flagship_mitsuba"), help="output dir")
    ap.add_argument("--overwrite", action="store_true", help="reuse a non-empty output dir")
    ap.add_argument("--seed", type=int, default=0, help="0: iteration i, view k uses seed i*10+k")
    ap.add_argument(
        "--guiding",
        choices=("none", "grid", "octree"),
        default="none",
        help="prb_projective's guiding of indirect silhouette samples (default: none; Mitsuba's"
        " default octree is rebuilt at every render and costs ~5 s per 128x128 view here)",
    )
    ap.add_argument(
        "--response",
        choices=tuple(RESPONSES),
        default="clip",
        help="what the loss sees of the render: clip (to [0, 1], as a camera; default) or hinge"
        " (clipped only where the photo is; a diagnostic, closer to pathdiff's LDR handling)",
    )
    ap.add_argument("--example", default=str(EXAMPLE), help="example.json of the problem")
    args = ap.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()) and not args.overwrite:
        print(f"{args.out} exists and is not empty (use --overwrite)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
