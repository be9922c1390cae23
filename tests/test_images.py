"""Image IO: EXR/HDR linear, PNG/JPEG sRGB (8/16 bit, grey, alpha), errors."""

from __future__ import annotations

import imageio.v3 as iio
import mitsuba as mi
import numpy as np
import pytest

from pathdiff.images import linear_to_srgb, read_image, srgb_to_linear, write_image

RNG = np.random.default_rng(0)
IMG = RNG.random((5, 7, 3)).astype(np.float32)


def test_srgb_curves():
    np.testing.assert_allclose(
        linear_to_srgb([0.0, 0.0031308, 0.18, 1.0]), [0, 0.04045, 0.4614, 1], atol=1e-4
    )
    np.testing.assert_allclose(
        srgb_to_linear([0.0, 0.04045, 0.5, 1.0]), [0, 0.0031308, 0.21404, 1], atol=1e-5
    )
    x = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(srgb_to_linear(linear_to_srgb(x)), x, atol=1e-6)
    assert np.all(np.diff(linear_to_srgb(x)) > 0)
    np.testing.assert_array_equal(linear_to_srgb([-1.0, 2.0]), [0, 1])


def test_exr_round_trip_is_exact(tmp_path):
    path = write_image(tmp_path / "sub" / "dir" / "a.exr", IMG * 10)  # creates parent dirs
    back = read_image(path)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, IMG * 10)


def test_hdr_round_trip(tmp_path):
    # RGBE: 8-bit mantissas sharing the largest channel's exponent
    back = read_image(write_image(tmp_path / "a.hdr", IMG))
    assert np.all(np.abs(back - IMG) <= IMG.max(axis=2, keepdims=True) / 128)


def test_png_round_trip(tmp_path):
    back = read_image(write_image(tmp_path / "a.png", IMG))
    assert back.shape == IMG.shape and back.dtype == np.float32
    np.testing.assert_allclose(linear_to_srgb(back), linear_to_srgb(IMG), atol=0.5 / 255 + 1e-6)
    stored = iio.imread(tmp_path / "a.png")  # sRGB-encoded 8-bit
    np.testing.assert_array_equal(stored, np.round(linear_to_srgb(IMG) * 255))


def test_jpeg_round_trip(tmp_path):
    smooth = np.broadcast_to(np.linspace(0, 1, 32, dtype=np.float32)[None, :, None], (16, 32, 3))
    back = read_image(write_image(tmp_path / "a.jpg", smooth))
    assert back.shape == smooth.shape
    np.testing.assert_allclose(linear_to_srgb(back), linear_to_srgb(smooth), atol=4 / 255)


def test_png_16_bit_grey_and_alpha(tmp_path):
    srgb16 = (RNG.random((4, 5, 3)) * 65535).astype(np.uint16)
    mi.Bitmap(srgb16).write(str(tmp_path / "a16.png"))
    np.testing.assert_allclose(
        read_image(tmp_path / "a16.png"), srgb_to_linear(srgb16 / 65535), atol=1e-6
    )
    grey = (RNG.random((4, 5)) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "grey.png", grey)
    expected = np.repeat(srgb_to_linear(grey / 255)[..., None], 3, axis=2)
    np.testing.assert_allclose(read_image(tmp_path / "grey.png"), expected, atol=1e-6)
    iio.imwrite(tmp_path / "grey_alpha.png", np.stack([grey, grey // 2], axis=2))
    np.testing.assert_allclose(read_image(tmp_path / "grey_alpha.png"), expected, atol=1e-6)
    rgba = np.concatenate([IMG, np.full((5, 7, 1), 0.5, np.float32)], axis=2)
    mi.Bitmap(rgba).write(str(tmp_path / "rgba.exr"))
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.exr"), IMG)


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image not found: .*none.png"):
        read_image(tmp_path / "none.png")
    with pytest.raises(ValueError, match="unsupported output type '.tiff'"):
        write_image(tmp_path / "a.tiff", IMG)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image .*broken.png"):
        read_image(tmp_path / "broken.png")
