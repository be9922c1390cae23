"""Image losses for gradients and optimization (Dr.Jit tensors in, scalar ``mi.Float`` out)."""

from __future__ import annotations

from collections.abc import Callable

import drjit as dr
import mitsuba as mi

from .inputs import InputError


def l1(img: mi.TensorXf, target: mi.TensorXf) -> mi.Float:
    """Mean absolute error."""
    return dr.mean(dr.abs(img - target), axis=None)


def l2(img: mi.TensorXf, target: mi.TensorXf) -> mi.Float:
    """Mean squared error."""
    return dr.mean(dr.square(img - target), axis=None)


def rel_l2(img: mi.TensorXf, target: mi.TensorXf, eps: float = 1e-2) -> mi.Float:
    """Relative squared error ``(I - T)² / (detach(I)² + eps)``, robust to HDR targets."""
    return dr.mean(dr.square(img - target) / (dr.square(dr.detach(img)) + eps), axis=None)


def _downsample(img: mi.TensorXf) -> mi.TensorXf:
    h, w, c = img.shape
    h2, w2 = h // 2, w // 2
    x = img[: 2 * h2, : 2 * w2, :]
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def multiscale_l1(img: mi.TensorXf, target: mi.TensorXf, levels: int = 4) -> mi.Float:
    """L1 summed over an image pyramid (box-downsampled by 2 per level)."""
    total = l1(img, target)
    for _ in range(levels - 1):
        if min(img.shape[0], img.shape[1]) < 2:
            break
        img, target = _downsample(img), _downsample(target)
        total += l1(img, target)
    return total


def mean(img: mi.TensorXf, target: mi.TensorXf | None = None) -> mi.Float:
    """Mean pixel value (no target): the gradient is the summed derivative image / size."""
    return dr.mean(img, axis=None)


LOSSES: dict[str, Callable] = {
    "l1": l1,
    "l2": l2,
    "rel_l2": rel_l2,
    "multiscale_l1": multiscale_l1,
    "mean": mean,
}


def get_loss(loss: str | Callable) -> Callable:
    """A loss function by name, or ``loss`` itself if callable."""
    if callable(loss):
        return loss
    if loss not in LOSSES:
        raise InputError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[loss]
