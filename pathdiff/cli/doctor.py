"""``pathdiff doctor``: versions, variant, LLVM/CUDA, and a one-second smoke render."""

from __future__ import annotations

import os
import time

import numpy as np


def add_parser(sub):
    p = sub.add_parser("doctor", help="check the installation with a 1-second render")
    p.set_defaults(run=run)
    return p


def run(args) -> int:
    import platform

    import drjit as dr
    import mitsuba as mi

    import pathdiff
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
