"""Target images for optimization: one per sensor, linear, checked, masked and film-sized.

A target is read with :func:`pathdiff.images.read_image` (PNG/JPEG decoded from sRGB, EXR/HDR
as stored). Its mask is a separate file (white: used, black: ignored) or, failing that, the
image's own alpha channel. A target whose size differs from its sensor's film is resampled
(area average) with a warning, or rejected when ``strict``.

**Photographs (LDR targets).** An 8-bit (or 16-bit) PNG/JPEG is display-referred: the camera
clipped every value above its white level. Comparing an unclipped HDR render with it puts a
false, often dominant gradient on every saturated pixel (a lamp at radiance 17 against a
target of 1). We therefore pass the render through the same response as the photo before
the loss (:func:`camera_response`): exposure and white-balance gains (fitted, see
:func:`fit_gains`), then clipping at the white level in the channels the photo clipped, in
linear space where the target was decoded. A pixel that the photo clipped then only asks
the render to be at least white (a one-sided constraint: no gradient once it is), which is
all the photo says about it. The number of clipped pixels is reported per view.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import drjit as dr
import mitsuba as mi
import numpy as np

from .images import DISPLAY, read_alpha, read_image, read_mask, resize
from .inputs import InputError, MissingFileError


@dataclass
class Target:
    """A linear target image ``(H, W, 3)`` for one sensor, with an optional ``(H, W)`` mask."""

    image: np.ndarray
    sensor: int = 0
    mask: np.ndarray | None = None
    path: str | None = None
    mask_path: str | None = None
    #: display-referred target (PNG/JPEG): renders are clipped at ``white`` before the loss
    ldr: bool = False
    white: float = 1.0
    #: pixels left out because a lossy format cannot be trusted there (JPEG ringing)
    unreliable: int = 0
    #: this view's exposure handling (``none``, ``fit``, ``fit-rgb``); ``None``: the run's
    exposure: str | None = None
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
    ldr = path is not None and os.path.splitext(path)[1].lower() in DISPLAY
    unreliable = 0
    if ldr:
        mask, unreliable = _mask_unreliable(img, mask, path)
    width, height = film_size(scene, sensor)
    if img.shape[:2] != (height, width):
        msg = (
            f"{name} is {img.shape[1]}x{img.shape[0]} but sensor {sensor}'s film is "
            f"{width}x{height}"
        )
        if strict:
            raise InputError(f"{msg} (--strict)")
        warnings.warn(f"{msg}: resampled", stacklevel=2)
        clipped = None
        if ldr:
            clipped = resize(_clipped(img).astype(np.float32)[..., None], height, width)[..., 0]
        img = resize(img, height, width)
        mask = None if mask is None else resize(mask, height, width)
        if clipped is not None and ((clipped > 0) & (clipped < 1)).any():
            # a film pixel partly clipped is neither a measurement nor a bound: leave it out
            mixed = (clipped > 0) & (clipped < 1)
            mask = np.where(mixed, 0.0, 1.0 if mask is None else mask).astype(np.float32)
            img[clipped >= 1] = 1.0
    return Target(img, sensor, mask, path, mask_path, ldr=ldr, unreliable=unreliable)


def _clipped(img: np.ndarray, white: float = 1.0) -> np.ndarray:
    return (img >= white * CLIP_LEVEL).any(axis=2)


#: JPEG's 8x8 blocks (16x16 for subsampled chroma) ring around saturated regions: pixels
#: within this many pixels of a clipped one are not trusted in a lossy target
JPEG_RING = 8


def _mask_unreliable(img: np.ndarray, mask, path: str) -> tuple[np.ndarray | None, int]:
    """For a JPEG, mask the pixels next to clipped ones (compression ringing: values below
    white where the scene is brighter); returns the mask and how many were masked."""
    if os.path.splitext(path)[1].lower() == ".png":
        return mask, 0
    from scipy.ndimage import binary_dilation

    clipped = _clipped(img)
    if not clipped.any():
        return mask, 0
    near = binary_dilation(clipped, np.ones((2 * JPEG_RING + 1,) * 2, bool)) & ~clipped
    base = np.ones(img.shape[:2], np.float32) if mask is None else mask
    if not (base * ~near).any():
        raise InputError(f"{path}: no pixel left once those next to clipped ones are excluded")
    return (base * ~near).astype(np.float32), int((base * near).sum())


#: a display value at or above this (of 1) counts as clipped (8-bit: 255 of 255)
CLIP_LEVEL = 1.0 - 0.5 / 255


def clipped_fraction(t: Target) -> float:
    """Fraction of the used (unmasked) pixels of an LDR target clipped in some channel."""
    if not t.ldr:
        return 0.0
    clipped = _clipped(t.image, t.white)
    used = np.ones(clipped.shape) if t.mask is None else t.mask
    return float((clipped * used).sum() / max(used.sum(), 1e-9))


def camera_response(
    img: mi.TensorXf, t: Target, T: mi.TensorXf, gains: mi.TensorXf | None = None
) -> mi.TensorXf:
    """The render ``img`` as the camera that took ``t`` (decoded: ``T``) would record it:
    scaled by the exposure/white-balance ``gains`` (shape ``(1, 1, 1)`` or ``(1, 1, C)``, if
    any), then, for an LDR target, clipped in the pixels the photo clipped.

    Only there: where the photo measured a value below white, the render must equal it (and
    a render above it must come down, which a clip would hide); where it clipped a channel,
    the photo only says "at least this", a hinge ``min(I, T)`` in every channel of the pixel
    (the unclipped channels of a saturated pixel are bounds too: a camera's colour
    conversion and a JPEG's chroma subsampling mix the saturated channel into them).
    Clipping the render everywhere would also bias it: a noisy estimate near white is
    clipped more often from above than from below, so ``E[min(I, w)] < min(E[I], w)`` and
    the fit would drift upward."""
    if gains is not None:
        img = img * gains
    if t.ldr:
        h, w, c = T.shape
        clipped = dr.zeros(mi.TensorXf, (h, w, 1))
        for k in range(c):
            clipped = dr.maximum(
                clipped, dr.select(T[:, :, k : k + 1] >= t.white * CLIP_LEVEL, 1, 0)
            )
        img = dr.select(clipped > 0, dr.minimum(img, T), img)
    return img


def fit_gains(
    img: mi.TensorXf, target: Target, T: mi.TensorXf, M: mi.TensorXf | None, per_channel: bool
) -> mi.TensorXf:
    """Detached gains ``g = sum(m T) / sum(m I)`` over the used pixels the photo did not clip:
    one scale (unknown exposure) or one per channel (exposure and white balance).

    A ratio of sums rather than the least-squares ``sum(m I T) / sum(m I^2)``: with a Monte
    Carlo render ``I``, ``E[I^2] = E[I]^2 + Var(I)`` makes the least-squares gain too small
    (by ~20 % at 8 spp), and the fit then brightens the scene to make up for it; a sum of
    ``I`` is unbiased, so the ratio is consistent. Refitted each iteration (not stepped by
    Adam) and detached: at the true parameters the ratio is the true gain and the residual
    ``g I - T`` has zero mean, so the truth stays a fixed point of the descent."""
    img = dr.detach(img)
    h, wd, c = T.shape
    w = dr.ones(mi.TensorXf, (h, wd, 1)) if M is None else M
    if target.ldr:  # only pixels none of whose channels clipped
        for k in range(c):
            w = w * dr.select(T[:, :, k : k + 1] < target.white * CLIP_LEVEL, 1.0, 0.0)
    axis = (0, 1) if per_channel else None
    g = dr.sum(w * T, axis=axis) / dr.maximum(dr.sum(w * img, axis=axis), 1e-12)
    shape = (1, 1, img.shape[2]) if per_channel else (1, 1, 1)
    return dr.detach(mi.TensorXf(dr.ravel(g), shape))


#: ``exposure`` choices: no gains, one fitted scale, or one fitted gain per channel
EXPOSURE = {"none": None, "fit": False, "fit-rgb": True}


def photo_response(
    img: mi.TensorXf, t: Target, T: mi.TensorXf, M: mi.TensorXf | None, exposure: str = "none"
) -> mi.TensorXf:
    """The render as the camera of ``t`` would record it: gains fitted per ``exposure``
    (``none``, ``fit``: one scale, ``fit-rgb``: exposure and white balance), then clipped at
    white for LDR targets (see the module docstring)."""
    per_channel = EXPOSURE[t.exposure or exposure]
    gains = None if per_channel is None else fit_gains(img, t, T, M, per_channel)
    return camera_response(img, t, T, gains)
