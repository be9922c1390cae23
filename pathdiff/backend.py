"""Backend selection: find a libLLVM that Dr.Jit 1.5 can use and pick the Mitsuba variant.

Dr.Jit 1.5 aborts inside LLVM 15/16 ("Cannot select: fminimum"), so we look for LLVM >= 17
(newest first) and export ``DRJIT_LIBLLVM_PATH`` *before* Dr.Jit initialises its LLVM
backend. ``cuda_ad_rgb`` is chosen when a CUDA device is usable, else ``llvm_ad_rgb``;
``PATHDIFF_VARIANT`` (or the CLI's ``--variant``) overrides the choice.
"""

from __future__ import annotations

import glob
import os
import re
import sys

MIN_LLVM = 17
FIX = "apt-get install libllvm19 (or set DRJIT_LIBLLVM_PATH to a libLLVM.so of version >= 17)"

_SEARCH = [
    "/usr/lib/llvm-*/lib/libLLVM*.so*",
    "/usr/lib/*-linux-gnu/libLLVM*.so*",
    "/usr/lib64/libLLVM*.so*",
    "/usr/local/lib/libLLVM*.so*",
    "/opt/homebrew/opt/llvm/lib/libLLVM.dylib",
    "/usr/local/opt/llvm/lib/libLLVM.dylib",
]


class BackendError(RuntimeError):
    """No usable Dr.Jit backend; the message is one line saying what to install."""


class NoLLVMError(BackendError):
    """No libLLVM >= 17 on this machine (a GPU may still serve)."""


def _llvm_version(path: str) -> int | None:
    m = re.search(r"llvm-(\d+)/", path) or re.search(r"libLLVM[-.]?(?:so\.)?(\d+)", path)
    return int(m.group(1)) if m else None


def find_llvm() -> list[tuple[int, str]]:
    """All libLLVM shared libraries found on this machine as ``(major, path)``, newest first."""
    found: dict[str, tuple[int, str]] = {}
    for pattern in _SEARCH:
        for path in glob.glob(pattern):
            version = _llvm_version(path)
            real = os.path.realpath(path)
            if version is not None and real not in found:
                found[real] = (version, path)
    return sorted(found.values(), reverse=True)


def configure_llvm() -> str:
    """Export ``DRJIT_LIBLLVM_PATH`` (unless the user set it) and return the path used."""
    user = os.environ.get("DRJIT_LIBLLVM_PATH")
    if user:
        if not os.path.exists(user):
            raise BackendError(f"DRJIT_LIBLLVM_PATH={user} does not exist; fix: {FIX}")
        return user
    usable = [(v, p) for v, p in find_llvm() if v >= MIN_LLVM]
    if not usable:
        raise NoLLVMError(
            f"no libLLVM >= {MIN_LLVM} found (Dr.Jit 1.5 crashes on 15/16); fix: {FIX}"
        )
    os.environ["DRJIT_LIBLLVM_PATH"] = usable[0][1]
    return usable[0][1]


def cuda_available() -> bool:
    import drjit as dr

    try:
        return bool(dr.has_backend(dr.JitBackend.CUDA))
    except Exception:
        return False


def _user_variant() -> str | None:
    """The differentiable variant the user already set before importing pathdiff, if any
    (never switched behind their back); ``None`` if Mitsuba is not imported yet."""
    mi = sys.modules.get("mitsuba")
    try:
        current = mi.variant() if mi is not None else None
    except Exception:
        return None
    return current if current and "_ad_" in current else None


def choose_variant(variant: str | None = None) -> str:
    """Set and return the Mitsuba variant: argument, else ``PATHDIFF_VARIANT``, else one the
    user already set (a differentiable one), else auto (CUDA if usable, else LLVM)."""
    variant = variant or os.environ.get("PATHDIFF_VARIANT") or _user_variant()
    if variant is None:
        try:
            configure_llvm()
        except NoLLVMError:
            if not cuda_available():
                raise
        variant = "cuda_ad_rgb" if cuda_available() else "llvm_ad_rgb"
    elif variant.startswith("llvm"):
        configure_llvm()
    import mitsuba as mi

    if variant not in mi.variants():
        raise BackendError(f"unknown variant {variant!r}; available: {', '.join(mi.variants())}")
    if mi.variant() != variant:
        mi.set_variant(variant)
    return variant


def jit_backend():
    """The Dr.Jit backend of the active Mitsuba variant (for memory watermarks)."""
    import drjit as dr
    import mitsuba as mi

    return dr.JitBackend.CUDA if mi.variant().startswith("cuda") else dr.JitBackend.LLVM
