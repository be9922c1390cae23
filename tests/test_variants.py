"""Variant hazards: pathdiff keeps a differentiable variant the user set before importing
it, and its loop-state structs follow the variant active when they are used."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ENV = {k: v for k, v in os.environ.items() if k != "PATHDIFF_VARIANT"}


def _python(code: str) -> str:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_a_variant_set_before_import_is_kept():
    pre = "import mitsuba as mi; mi.set_variant('llvm_ad_spectral'); "
    assert _python(pre + "import pathdiff; print(mi.variant())") == "llvm_ad_spectral"
    auto = _python("import pathdiff, mitsuba as mi; print(mi.variant())")
    assert auto in ("llvm_ad_rgb", "cuda_ad_rgb")


def test_rng_struct_follows_the_active_variant():
    import mitsuba as mi

    from pathdiff.integrators.base import RNGSampler

    before = mi.variant()
    assert RNGSampler.DRJIT_STRUCT["state"] is mi.UInt64
    try:
        mi.set_variant("llvm_ad_spectral")
        assert RNGSampler.DRJIT_STRUCT["state"] is mi.UInt64  # the spectral variant's type
        assert type(RNGSampler().state) is mi.UInt64
    finally:
        mi.set_variant(before)
    assert RNGSampler.DRJIT_STRUCT["state"] is mi.UInt64


@pytest.mark.parametrize("spec", ["red.reflectance.value"])
def test_render_after_a_variant_round_trip(pd, spec):
    """The replay's RNG loop state still works after switching variants back and forth."""
    import mitsuba as mi
    from conftest import scene_path

    before = mi.variant()
    mi.set_variant("llvm_ad_spectral")
    mi.set_variant(before)
    scene = pd.load_scene(scene_path("shadow"), res=8, max_depth=2)
    d = pd.derivative(scene, "occluder.translate.x", "edge", spp=4)
    assert d.shape == (8, 8, 3)
