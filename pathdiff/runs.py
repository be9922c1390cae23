"""The run directory of an optimization (``-o runs/NAME``).

``config.json`` (command, versions, seeds, settings), ``checkpoint.npz`` (written atomically),
``trajectory.csv`` (loss and parameter values per iteration), ``loss.png`` (loss and
parameter-error curves), ``frames/`` (renders over iterations) assembled into ``frames.png``
(target | iterations | final, one row per view) and ``frames.gif``, ``final_<sensor>.exr|png``
and ``scene/`` (the optimized scene: XML plus meshes and textures).
"""

from __future__ import annotations

import csv
import json
import os
import platform
from pathlib import Path

import numpy as np

from .images import linear_to_srgb, resize, write_image
from .version import __version__

#: frames shown in frames.png besides the target and the final render
STRIP_FRAMES = 6
#: small renders are enlarged (nearest neighbour) to at least this height in frames.png/gif
MIN_HEIGHT = 128


def versions() -> dict[str, str]:
    """Versions of Python, Dr.Jit, Mitsuba, numpy and pathdiff, and the Mitsuba variant."""
    import drjit as dr
    import mitsuba as mi

    return {
        "python": platform.python_version(),
        "drjit": dr.__version__,
        "mitsuba": mi.__version__,
        "numpy": np.__version__,
        "pathdiff": __version__,
        "variant": mi.variant(),
    }


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_config(out: Path, config: dict, resumed: bool) -> None:
    """``config.json``; a resumed run appends its command to ``resumed`` instead."""
    path = out / "config.json"
    if resumed and path.is_file():
        old = json.loads(path.read_text())
        old.setdefault("resumed", []).append({k: config[k] for k in ("command", "started")})
        config = old
    _atomic_write(path, lambda fh: fh.write(json.dumps(config, indent=2, default=str).encode()))


def save_checkpoint(out: Path, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write ``checkpoint.npz`` atomically (temporary file, fsync, rename)."""
    path = out / "checkpoint.npz"
    arrays = {**arrays, "meta": np.array(json.dumps(meta))}
    _atomic_write(path, lambda fh: np.savez(fh, **arrays))
    return path


def load_checkpoint(out: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays and metadata of ``checkpoint.npz``."""
    path = out / "checkpoint.npz"
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint to resume from: {path}")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    return arrays, json.loads(str(arrays.pop("meta")))


def write_trajectory(out: Path, columns: list[str], rows: np.ndarray) -> Path:
    """``trajectory.csv``: one row per iteration."""
    path = out / "trajectory.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows([f"{x:.7g}" for x in row] for row in rows)
    return path


def plot_losses(out: Path, losses: np.ndarray, errors: dict[str, np.ndarray]) -> Path:
    """``loss.png``: the loss and, if the truth is known, each parameter's error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 if errors else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.8), layout="constrained")
    axes = np.atleast_1d(axes)
    it = np.arange(len(losses))
    axes[0].semilogy(it, losses, lw=0.8, alpha=0.5, label="loss")
    w = max(1, len(losses) // 20)
    if len(losses) > w:
        smooth = np.convolve(losses, np.ones(w) / w, mode="valid")
        axes[0].semilogy(it[w - 1 :], smooth, lw=1.6, label=f"mean of {w}")
    axes[0].set(xlabel="iteration", ylabel="loss", title="loss")
    axes[0].legend(fontsize=8)
    if errors:
        for name, err in errors.items():
            axes[1].semilogy(it[: len(err)], np.maximum(err, 1e-12), label=name)
        axes[1].set(
            xlabel="iteration", ylabel="error (RMSE; Chamfer for vertices)", title="parameter error"
        )
        axes[1].legend(fontsize=7)
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    path = out / "loss.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def frame_path(out: Path, view: int, iteration: int) -> Path:
    return out / "frames" / f"view{view}_{iteration:05d}.exr"


def save_frame(out: Path, view: int, iteration: int, img: np.ndarray) -> None:
    """Keep the render of one view at one iteration (EXR; read back for the strip and GIF)."""
    write_image(frame_path(out, view, iteration), img)


def _frames(out: Path, view: int) -> list[tuple[int, Path]]:
    files = sorted((out / "frames").glob(f"view{view}_*.exr"))
    return [(int(f.stem.split("_")[1]), f) for f in files]


def write_frames(out: Path, targets: list[np.ndarray], finals: list[np.ndarray]) -> list[Path]:
    """``frames.png`` (per view: target | frames over iterations | final) and ``frames.gif``
    (per frame: the views' renders above their targets)."""
    import imageio.v3 as iio

    from .images import read_image

    shape = targets[0].shape[:2]
    zoom = max(1, MIN_HEIGHT // shape[0])

    def srgb(img, shape):
        img = np.round(linear_to_srgb(resize(img, *shape)) * 255).astype(np.uint8)
        return img.repeat(zoom, axis=0).repeat(zoom, axis=1)

    rows, gif = [], []
    frames = [_frames(out, v) for v in range(len(targets))]
    for view, (target, final) in enumerate(zip(targets, finals)):
        pick = frames[view]
        if len(pick) > STRIP_FRAMES:
            pick = [
                pick[i] for i in np.linspace(0, len(pick) - 1, STRIP_FRAMES).round().astype(int)
            ]
        cells = [target] + [read_image(f) for _, f in pick] + [final]
        rows.append(np.concatenate([srgb(c, shape) for c in cells], axis=1))
    for i in range(min(len(f) for f in frames)):
        top = [srgb(read_image(frames[v][i][1]), shape) for v in range(len(targets))]
        bottom = [srgb(t, shape) for t in targets]
        gif.append(np.concatenate([np.concatenate(top, 1), np.concatenate(bottom, 1)], 0))
    paths = [out / "frames.png"]
    iio.imwrite(paths[0], np.concatenate(rows, axis=0))
    if gif:
        paths.append(out / "frames.gif")
        iio.imwrite(paths[1], np.stack(gif), duration=120, loop=0)
    return paths


def write_result(out: Path, result: dict) -> Path:
    """``result.json``: final values, truth and errors (small parameters in full)."""
    path = out / "result.json"
    path.write_text(json.dumps(result, indent=2, default=_json_default))
    return path


def _json_default(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return str(x)
