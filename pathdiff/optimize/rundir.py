"""The run directory of an optimization: never clobbered, resumable, and its final outputs.

* :func:`claim` decides, before any rendering, what happens to ``-o DIR``: a new run needs an
  empty or missing directory (``--overwrite`` first clears an earlier run), ``--resume``
  needs a checkpoint there and the same settings (only the ``resumable`` ones, e.g.
  ``--iters``, may change). It creates nothing; :func:`open_run` does, just before the loop.
* :func:`checkpoint` / :func:`restore` write and read ``checkpoint.npz``;
* with several processes (:mod:`.distributed`) only rank 0 claims, writes and reads the
  directory: the others get the checkpoint from it and write only frames of their views;
* :func:`finish` writes the trajectory, plots, final renders, frames, scene and result.
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from datetime import datetime, timezone
from pathlib import Path

import mitsuba as mi
import numpy as np

from .. import runs
from ..images import write_image
from ..inputs import InputError, check_output_dir
from ..render import render
from ..scene import write_scene
from ..targets import film_size, photo_response
from .loop import History, write_meshes
from .result import OptimizeResult
from .settings import recorded, resumable

#: files that mark a directory as a pathdiff run (only such a directory is ever cleared)
RUN_MARKERS = ("config.json", "checkpoint.npz", "result.json")
#: config.json entries that describe the run itself, not the invocation
COMPARED = ("scene", "xml_params", "integrator", "seeds", "params", "targets", "init", "truth")


def config(p) -> dict:
    """The content of ``config.json`` for plan ``p``."""
    cfg = p.cfg

    def bound(x):
        return None if math.isinf(x) else x

    return {
        "command": cfg.command or ["pathdiff.optimize(...)"],
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": runs.versions(),
        "scene": cfg.xml,
        "xml_params": cfg.xml_params,
        "integrator": {"name": p.integrator_name, **cfg.integrator_options},
        "seeds": {
            "seed": cfg.seed,
            "rule": "render seed = (seed << 20) + iteration * n_targets + view; "
            "gradient seed derived by mi.render; final renders seed 1",
        },
        "params": [
            {"name": v.name, "kind": v.kind, "keys": v.keys, "lr": v.lr}
            | {"min": bound(v.lo), "max": bound(v.hi)}
            for v in p.vars
        ],
        "targets": [
            {"image": t.path, "sensor": t.sensor, "mask": t.mask_path, "size": t.image.shape}
            for t in p.targets
        ],
        "init": {k: str(v) for k, v in cfg.init.items()},
        "truth": cfg.truth if isinstance(cfg.truth, str) else sorted(p.truth),
        "settings": recorded(cfg),
    }


def _plain(x):
    return json.loads(json.dumps(x, default=str))


def _leaves(x, prefix: str) -> dict:
    """Flatten nested dicts/lists to ``{"a.b[0].c": value}`` so a diff names the leaf."""
    if isinstance(x, dict):
        return {k: v for key, val in x.items() for k, v in _leaves(val, f"{prefix}.{key}").items()}
    if isinstance(x, list) and any(isinstance(v, (dict, list)) for v in x):
        return {k: v for i, val in enumerate(x) for k, v in _leaves(val, f"{prefix}[{i}]").items()}
    return {prefix: x}


def _diff(a, b, prefix: str) -> list[str]:
    la, lb = _leaves(a, prefix), _leaves(b, prefix)
    keys = list(dict.fromkeys([*la, *lb]))
    return [f"{k.lstrip('.')}: {la.get(k)} -> {lb.get(k)}" for k in keys if la.get(k) != lb.get(k)]


def changes(old: dict, new: dict) -> list[str]:
    """What differs between a stored ``config.json`` and this run (``name: old -> new``)."""
    old, new = _plain(old), _plain(new)
    out = [line for k in COMPARED for line in _diff(old.get(k), new.get(k), k)]
    a, b = old.get("settings", {}), new["settings"]
    for k in sorted(set(a) | set(b)):
        if k not in resumable():
            out += _diff(a.get(k), b.get(k), k)
    return out


def claim(p) -> None:
    """Check ``-o`` for this run (see the module docstring); creates nothing."""
    out, cfg = p.out, p.cfg
    if out is None:
        return
    check_output_dir(out)
    if cfg.resume:
        if not (out / "checkpoint.npz").is_file():
            raise InputError(f"no checkpoint to resume from: {out / 'checkpoint.npz'}")
        stored = out / "config.json"
        if stored.is_file():
            diff = changes(json.loads(stored.read_text()), config(p))
            if diff:
                raise InputError(
                    f"--resume with changed settings ({'; '.join(diff)}): only --iters may "
                    "change; use another -o for a new run"
                )
        return
    if out.is_dir() and any(out.iterdir()):
        if not cfg.overwrite:
            raise InputError(
                f"{out} is not empty: continue its run with --resume, replace it with "
                "--overwrite, or choose another -o"
            )
        if not any((out / m).exists() for m in RUN_MARKERS):
            raise InputError(f"{out} does not hold a pathdiff run: not clearing it")


def open_run(p) -> None:
    """Create (or, with ``--overwrite``, clear) the run directory and write ``config.json``."""
    if p.out is None:
        return
    if p.cfg.overwrite and p.out.is_dir():
        shutil.rmtree(p.out)
    p.out.mkdir(parents=True, exist_ok=True)
    runs.write_config(p.out, config(p), p.cfg.resume)


def checkpoint(p, h: History) -> Path:
    arrays = {
        "losses": np.array(h.losses),
        "rows": np.array(h.rows).reshape(-1, len(p.columns)),
        "skipped": np.array(h.skipped, dtype=np.int64),
    }
    for i, v in enumerate(p.vars):
        arrays.update({f"var{i}.{k}": x for k, x in v.state().items()})
        arrays[f"var{i}.initial"] = h.initial[v.name]
    meta = {
        "iterations": len(h.losses),
        "params": [v.name for v in p.vars],
        "columns": p.columns,
        "elapsed": h.elapsed,
        "seed": p.cfg.seed,
    }
    return runs.save_checkpoint(p.out, arrays, meta)


def read_checkpoint(p) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and metadata of ``checkpoint.npz``, checked against plan ``p``."""
    arrays, meta = runs.load_checkpoint(p.out)
    names = [v.name for v in p.vars]
    if meta["params"] != names or meta["columns"] != p.columns:
        raise InputError(
            f"the checkpoint in {p.out} is for parameters {meta['params']}, not {names}: "
            "run the same command with --resume, or use another -o"
        )
    return arrays, meta


def restore(p, h: History, saved: tuple[dict, dict] | None = None) -> None:
    """Load the variables' state and the history from ``checkpoint.npz`` (or from ``saved``,
    what :func:`read_checkpoint` returned, e.g. on another process)."""
    arrays, meta = saved if saved is not None else read_checkpoint(p)
    for i, v in enumerate(p.vars):
        prefix = f"var{i}."
        state = {k.removeprefix(prefix): a for k, a in arrays.items() if k.startswith(prefix)}
        h.initial[v.name] = state.pop("initial")
        v.load_state(state)
    h.losses, h.rows = arrays["losses"].tolist(), arrays["rows"].tolist()
    h.skipped, h.elapsed = arrays["skipped"].tolist(), meta["elapsed"]


def result(p, h: History, stop: str) -> OptimizeResult:
    rows = np.array(h.rows).reshape(-1, len(p.columns))
    return OptimizeResult(
        scene=p.scene,
        names=[v.name for v in p.vars],
        initial=h.initial,
        values={v.name: v.value() for v in p.vars},
        truth=p.truth,
        losses=np.array(h.losses),
        errors={n: rows[:, p.columns.index(f"error:{n}")] for n in p.truth},
        iterations=len(h.losses),
        stop_reason=stop,
        skipped=list(h.skipped),
        seconds=h.elapsed,
        out_dir=None if p.out is None else str(p.out),
        trajectory={v.name: rows[:, _value_columns(p.columns, v.name)] for v in p.vars},
    )


def _value_columns(columns: list[str], name: str) -> list[int]:
    """The trajectory columns holding variable ``name``'s value."""
    return [i for i, c in enumerate(columns) if c == name or c.startswith((f"{name}[", f"{name}:"))]


def finish(p, h: History, res: OptimizeResult) -> None:
    """Write the checkpoint, trajectory, loss plot, final outputs and ``result.json``."""
    rows = np.array(h.rows).reshape(-1, len(p.columns))
    files = [checkpoint(p, h), runs.write_trajectory(p.out, p.columns, rows)]
    if len(rows):
        files.append(runs.plot_losses(p.out, rows[:, 1], res.errors))
    if res.stop_reason != "interrupted":
        files += final_outputs(p)
    if p.cfg.upsample:  # the last stage's mesh (the earlier ones were written on leaving them)
        files += write_meshes(p, p.out, f"stage{p.level}")
    files += write_meshes(p, p.out, "final")
    files.append(runs.write_result(p.out, res.to_dict()))
    res.files = [str(f) for f in files]


def final_outputs(p) -> list[Path]:
    """Final renders, frame strip and GIF, and the optimized scene."""
    files, shown = [], []
    for t in p.targets:
        img = render(p.scene, p.integ, spp=p.cfg.final_spp, sensor=t.sensor, seed=1)
        for ext in (".exr", ".png"):
            files.append(Path(write_image(p.out / f"final_{t.sensor}{ext}", img)))
        T, M = t.tensors(*film_size(p.scene, t.sensor))
        shown.append(np.array(photo_response(mi.TensorXf(img), t, T, M, p.cfg.exposure)))
    files += runs.write_frames(p.out, [t.image for t in p.targets], shown)
    if p.cfg.xml:
        keys = list(dict.fromkeys(k for v in p.vars for k in v.keys))
        xml, missing = write_scene(p.scene, p.cfg.xml, p.out / "scene", keys, p.cfg.xml_params)
        files.append(Path(xml))
        if missing:
            warnings.warn(
                f"not written to the scene XML (no element holds them): {', '.join(missing)}",
                stacklevel=4,
            )
    return files
