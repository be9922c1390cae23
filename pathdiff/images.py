"""Image files: linear float images in, EXR (linear) or PNG/JPEG (sRGB 8-bit) out."""

from __future__ import annotations

import os

import mitsuba as mi
import numpy as np

LINEAR = (".exr", ".hdr", ".pfm")
DISPLAY = (".png", ".jpg", ".jpeg")


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """Decode sRGB-encoded values in [0, 1] to linear radiance."""
    x = np.asarray(x, dtype=np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Encode linear values as sRGB in [0, 1] (clipped)."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055).astype(np.float32)


def _rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return img[..., :3]


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as linear float32 ``(H, W, 3)``: EXR/HDR as stored, PNG/JPEG decoded
    from sRGB (8 or 16 bit)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image not found: {path}")
    ext = os.path.splitext(path)[1].lower()
    if ext in LINEAR:
        return _rgb(np.array(mi.Bitmap(path), dtype=np.float32))
    if ext not in DISPLAY:
        raise ValueError(f"unsupported image type {ext!r} for {path}: use EXR, HDR, PNG or JPEG")
    import imageio.v3 as iio

    data = iio.imread(path)
    scale = np.iinfo(data.dtype).max if np.issubdtype(data.dtype, np.integer) else 1.0
    return srgb_to_linear(_rgb(data.astype(np.float32) / scale))


def write_image(path: str | os.PathLike, img: np.ndarray) -> str:
    """Write ``img`` (linear) by extension: EXR linear float, PNG/JPEG sRGB 8-bit."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in LINEAR + DISPLAY:
        raise ValueError(f"unsupported output type {ext!r}: use .exr, .png or .jpg")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    img = _rgb(img)
    if ext in LINEAR:
        mi.Bitmap(img).write(path)
    else:
        import imageio.v3 as iio

        iio.imwrite(path, np.round(linear_to_srgb(img) * 255).astype(np.uint8))
    return path
