"""Image files: linear float images in, EXR (linear) or PNG/JPEG (sRGB 8-bit) out; masks
(alpha channels or separate files) and resampling to a film size."""

from __future__ import annotations

import os

import mitsuba as mi
import numpy as np

from .inputs import InputError, MissingFileError

LINEAR = (".exr", ".hdr", ".pfm")
DISPLAY = (".png", ".jpg", ".jpeg")


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """Decode sRGB-encoded values in [0, 1] to linear radiance."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Encode linear values as sRGB in [0, 1] (clipped)."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055).astype(np.float32)


def _rgb(img: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` float32: grey (with or without alpha) expanded, alpha dropped."""
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[2] < 3:
        img = np.repeat(img[..., :1], 3, axis=2)
    return img[..., :3]


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as linear float32 ``(H, W, 3)``: EXR/HDR/PFM as stored, PNG/JPEG
    (8 or 16 bit) decoded from sRGB."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError(f"image not found: {path}")
    ext = os.path.splitext(path)[1].lower()
    if ext not in LINEAR + DISPLAY:
        raise InputError(f"unsupported image type {ext!r} for {path}: use EXR, HDR, PNG or JPEG")
    try:
        data = np.array(mi.Bitmap(path))
    except RuntimeError as e:
        raise InputError(f"cannot read image {path}: {str(e).splitlines()[0]}") from e
    if ext in LINEAR:
        return _rgb(data)
    scale = np.iinfo(data.dtype).max if np.issubdtype(data.dtype, np.integer) else 1.0
    return srgb_to_linear(_rgb(data.astype(np.float32) / scale))


def _raw(path: str) -> np.ndarray:
    """Stored channels ``(H, W, C)``: PNG/JPEG scaled to [0, 1] (not decoded), EXR as stored."""
    if os.path.splitext(path)[1].lower() in LINEAR:
        data = np.array(mi.Bitmap(path), dtype=np.float32)
    else:
        import imageio.v3 as iio

        data = iio.imread(path)
        scale = np.iinfo(data.dtype).max if np.issubdtype(data.dtype, np.integer) else 1.0
        data = data.astype(np.float32) / scale
    return data[..., None] if data.ndim == 2 else data


def read_alpha(path: str | os.PathLike) -> np.ndarray | None:
    """The alpha channel ``(H, W)`` of an image with 2 or 4 channels, else ``None``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError(f"image not found: {path}")
    data = _raw(path)
    return data[..., -1].copy() if data.shape[2] in (2, 4) else None


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A mask ``(H, W)`` in [0, 1] from a file: its alpha channel if it has one, else its
    first channel, not sRGB-decoded (black: ignored, white: used)."""
    path = os.fspath(path)
    alpha = read_alpha(path)
    return np.clip(alpha if alpha is not None else _raw(path)[..., 0], 0, 1)


def _resample_matrix(n_out: int, n_in: int) -> np.ndarray:
    """``(n_out, n_in)`` weights: box-filter overlap when shrinking, linear when enlarging."""
    x = np.arange(n_in)[None, :]
    if n_out <= n_in:
        edges = np.linspace(0, n_in, n_out + 1)
        w = np.minimum(edges[1:, None], x + 1) - np.maximum(edges[:-1, None], x)
    else:
        centers = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        w = 1 - np.abs(centers[:, None] - x)
    w = np.clip(w, 0, None)
    return (w / w.sum(1, keepdims=True)).astype(np.float32)


def resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resample an ``(H, W)`` or ``(H, W, C)`` image to ``(height, width)``, per axis: area
    average when shrinking (no aliasing), bilinear when enlarging."""
    img = np.asarray(img, dtype=np.float32)
    if img.shape[:2] == (height, width):
        return img
    rows = _resample_matrix(height, img.shape[0])
    cols = _resample_matrix(width, img.shape[1])
    return np.einsum("ij,jk...,lk->il...", rows, img, cols, optimize=True).astype(np.float32)


def write_image(path: str | os.PathLike, img: np.ndarray) -> str:
    """Write ``img`` (linear) by extension: EXR linear float, PNG/JPEG sRGB 8-bit."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in LINEAR + DISPLAY:
        raise InputError(f"unsupported output type {ext!r}: use .exr, .png or .jpg")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    img = _rgb(img)
    if ext in LINEAR:
        mi.Bitmap(img).write(path)
    else:
        import imageio.v3 as iio

        data = np.round(linear_to_srgb(img) * 255).astype(np.uint8)
        iio.imwrite(path, data, **({"quality": 95} if ext != ".png" else {}))
    return path
