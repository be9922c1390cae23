"""Target images for optimization: one per sensor, linear, checked, masked and film-sized.

A target is read with :func:`pathdiff.images.read_image` (PNG/JPEG decoded from sRGB, EXR/HDR
as stored). Its mask is a separate file (white: used, black: ignored) or, failing that, the
image's own alpha channel. A target whose size differs from its sensor's film is resampled
(area average) with a warning, or rejected when ``strict``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import drjit as dr
import mitsuba as mi
import numpy as np

from .images import read_alpha, read_image, read_mask, resize
from .inputs import InputError, MissingFileError


@dataclass
class Target:
    """A linear target image ``(H, W, 3)`` for one sensor, with an optional ``(H, W)`` mask."""

    image: np.ndarray
    sensor: int = 0
    mask: np.ndarray | None = None
    path: str | None = None
    mask_path: str | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def tensors(self, width: int, height: int) -> tuple[mi.TensorXf, mi.TensorXf | None]:
        """Target (and mask, ``(H, W, 1)``) resampled to a film size, as Dr.Jit tensors."""
        if (width, height) not in self._cache:
            img = mi.TensorXf(resize(self.image, height, width))
            mask = None
            if self.mask is not None:
                mask = mi.TensorXf(resize(self.mask, height, width)[..., None])
            self._cache[(width, height)] = (img, mask)
        return self._cache[(width, height)]


def film_size(scene: mi.Scene, sensor: int) -> tuple[int, int]:
    """``(width, height)`` of a sensor's film."""
    return tuple(int(v) for v in scene.sensors()[sensor].film().crop_size())


def load_target(
    scene: mi.Scene,
    image: str | os.PathLike | np.ndarray,
    sensor: int = 0,
    mask: str | os.PathLike | np.ndarray | None = None,
    strict: bool = False,
) -> Target:
    """Read, check and film-size a target (see the module docstring)."""
    n = len(scene.sensors())
    if not 0 <= sensor < n:
        raise InputError(f"sensor {sensor} does not exist: the scene has {n} sensor(s)")
    path = None if isinstance(image, np.ndarray) else os.fspath(image)
    name = path or "target array"
    if path is not None and not os.path.isfile(path):
        raise MissingFileError(f"target image not found: {path}")
    img = read_image(path) if path is not None else np.asarray(image, dtype=np.float32)
    if img.ndim != 3 or img.shape[2] != 3:
        raise InputError(f"{name} must be an (H, W, 3) image, got shape {img.shape}")
    bad = int((~np.isfinite(img)).any(axis=2).sum())
    if bad:
        raise InputError(f"{name} has {bad} pixel(s) with NaN or Inf values")
    mask_path = None if mask is None or isinstance(mask, np.ndarray) else os.fspath(mask)
    if mask_path is not None:
        if not os.path.isfile(mask_path):
            raise MissingFileError(f"mask not found: {mask_path}")
        mask = read_mask(mask_path)
    elif mask is None and path is not None:
        mask = read_alpha(path)
    if mask is not None:
        mask = resize(np.clip(np.nan_to_num(mask), 0, 1), *img.shape[:2])
        if not mask.any():
            raise InputError(f"the mask of {name} excludes every pixel")
    width, height = film_size(scene, sensor)
    if img.shape[:2] != (height, width):
        msg = (
            f"{name} is {img.shape[1]}x{img.shape[0]} but sensor {sensor}'s film is "
            f"{width}x{height}"
        )
        if strict:
            raise InputError(f"{msg} (--strict)")
        warnings.warn(f"{msg}: resampled", stacklevel=2)
        img = resize(img, height, width)
        mask = None if mask is None else resize(mask, height, width)
    return Target(img, sensor, mask, path, mask_path)


def fit_exposure(img: mi.TensorXf, target: mi.TensorXf, mask: mi.TensorXf | None) -> mi.Float:
    """Detached least-squares scale ``s`` minimizing ``|m (s I − T)|²`` (unknown exposure)."""
    img = dr.detach(img)
    w = img if mask is None else img * mask
    s = dr.sum(w * target, axis=None) / dr.maximum(dr.sum(w * img, axis=None), 1e-12)
    return dr.detach(s)
