"""``pathdiff render``: a scene to EXR (linear) or PNG/JPEG (sRGB), reproducible by seed."""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from pathdiff.inputs import InputError, arg_type, check_output_file

from .common import integrator_options, load_scene_from_args, make_integrator, scene_arguments

#: renders with more samples per pixel are split into this many passes (progress bar)
PASSES = 8
#: renders with at most this many samples per pixel are one pass
ONE_PASS_SPP = 32
OUTPUT_TYPES = (".exr", ".hdr", ".pfm", ".png", ".jpg", ".jpeg")


def add_parser(sub):
    p = sub.add_parser("render", help="render a scene to EXR (linear) or PNG (sRGB)")
    scene_arguments(p)
    p.add_argument("--spp", type=arg_type("int>0"), help="samples per pixel (default: the scene's)")
    p.add_argument("--seed", type=arg_type("int>=0"), default=0, help="seed (default: 0)")
    p.add_argument("-o", "--output", required=True, help="output image (.exr, .png, .jpg)")
    p.add_argument("--integrator", help="path, prb, ad, edge, ... (default: the scene's)")
    p.set_defaults(run=run)
    return p


def pass_sizes(spp: int) -> list[int]:
    """How ``spp`` samples are split into passes: a function of ``spp`` alone, so the image
    depends only on the inputs and the seed (never on timing or the kernel cache)."""
    if spp <= ONE_PASS_SPP:
        return [spp]
    base, extra = divmod(spp, PASSES)
    return [base + 1] * extra + [base] * (PASSES - extra)


def render_progressive(scene, integrator, spp: int | None, seed: int) -> np.ndarray:
    """Render ``spp`` samples (default: the scene's) in :func:`pass_sizes` passes, pass
    ``i`` with seed ``(seed << 16) + i``, under a progress bar on a terminal; the result is
    the spp-weighted mean of the passes."""
    import pathdiff

    if not spp:
        spp = scene.sensors()[0].sampler().sample_count()
    from tqdm import tqdm

    sizes = pass_sizes(spp)
    img = None
    with tqdm(total=spp, unit="spp", file=sys.stderr, disable=len(sizes) == 1 or None) as bar:
        for i, n in enumerate(sizes):
            seed_i = ((seed << 16) + i) & 0xFFFFFFFF
            part = pathdiff.render(scene, integrator, spp=n, seed=seed_i) * n
            img = part if img is None else img + part
            bar.update(n)
    return img / spp


def run(args) -> int:
    from pathdiff.images import write_image

    ext = os.path.splitext(args.output)[1].lower()
    if ext not in OUTPUT_TYPES:
        raise InputError(f"unsupported output type {ext!r}: use .exr, .png or .jpg")
    check_output_file(args.output)
    scene = load_scene_from_args(args)
    integ = make_integrator(scene, args.integrator, integrator_options(args))
    t0 = time.perf_counter()
    img = render_progressive(scene, integ, args.spp, args.seed)
    path = write_image(args.output, img)
    print(f"wrote {path} ({img.shape[1]}x{img.shape[0]}, {time.perf_counter() - t0:.2f} s)")
    return 0
