"""Example files for ``pathdiff optimize``: a saved command line as JSON.

Keys: the option names of :class:`pathdiff.optimize.Settings` (:func:`example_keys`), ``res``,
``max_depth``, and ``scene``, ``targets``, ``params``, ``init``, ``truth``, ``define``,
``integrator_options``, ``description``. Paths are relative to the file. An option given on
the command line wins over the file's (flags default to ``None``, so an explicit default on
the command line is told apart from an absent flag).
"""

from __future__ import annotations

import argparse
import os

from pathdiff.inputs import InputError, check, read_json
from pathdiff.optimize.settings import example_keys

SCENE_KEYS = {"res": "int>0", "max_depth": "depth"}
STRUCTURE = ("scene", "targets", "params", "init", "truth", "define", "integrator_options")


def read_example(path: str) -> dict:
    """The example file's content, checked for unknown keys."""
    spec = read_json(path, "example file")
    known = {*example_keys(), *SCENE_KEYS, *STRUCTURE, "description"}
    unknown = sorted(set(spec) - known) if isinstance(spec, dict) else ["(not an object)"]
    if unknown:
        raise InputError(f"unknown key(s) {', '.join(unknown)} in {path}")
    if "scene" not in spec:
        raise InputError(f"{path} names no scene (key 'scene')")
    return spec


def apply_example(args: argparse.Namespace) -> None:
    """Fill the options ``args`` lacks (``None``) from the example file ``args.scene``."""
    path = args.scene
    spec = read_example(path)
    base = os.path.dirname(os.path.abspath(path))

    def rel(p):
        return os.path.normpath(os.path.join(base, p))

    args.scene = rel(spec["scene"])
    for key in (*example_keys(), *SCENE_KEYS):
        if getattr(args, key) is None and key in spec:
            value = spec[key]
            setattr(args, key, check(key, value, SCENE_KEYS[key]) if key in SCENE_KEYS else value)
    if not args.targets:
        args.targets = [
            {k: rel(v) if k in ("image", "mask") else v for k, v in t.items()}
            for t in spec.get("targets", [])
        ]
    args.params = args.params or spec.get("params")
    args.truth = args.truth or (rel(spec["truth"]) if "truth" in spec else None)
    init = {k: rel(v) if isinstance(v, str) else v for k, v in spec.get("init", {}).items()}
    args.init_values = init | args.init_values
    args.define = [(k, str(v)) for k, v in spec.get("define", {}).items()] + (args.define or [])
    args.integrator_options = spec.get("integrator_options", {})
