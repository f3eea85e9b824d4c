"""I/O: round trips (PNG 8/16-bit, TIFF float32/uint16, stacks, RGB), atomic writes, overwrite rule, PSF loading."""

import os
import warnings

import numpy as np
import pytest
import tifffile

from unblur.errors import InputError
from unblur.io import preview_png, read_image, read_psf, write_image


@pytest.fixture
def img():
    return np.random.default_rng(0).random((20, 24)).astype(np.float32)


@pytest.mark.parametrize("suffix,bits,tol", [(".png", 8, 0.5 / 255), (".png", 16, 0.5 / 65535),
                                             (".tif", 16, 0.5 / 65535), (".tif", None, 0.0), (".npy", None, 0.0)])
def test_round_trip_gray(tmp_path, img, suffix, bits, tol):
    p = write_image(tmp_path / f"a{suffix}", img, bits=bits)
    back = read_image(p)
    assert back.dtype == np.float32 and back.shape == img.shape
    assert np.abs(back - img).max() <= tol + 1e-7
    if suffix == ".tif" and bits == 16:
        assert tifffile.imread(p).dtype == np.uint16


def test_jpeg_round_trip(tmp_path):
    smooth = np.tile(np.linspace(0.1, 0.9, 32, dtype=np.float32), (24, 1))
    back = read_image(write_image(tmp_path / "a.jpg", smooth))
    assert back.shape == smooth.shape and np.abs(back - smooth).mean() < 0.01
    with pytest.raises(InputError, match="JPEG holds only 8-bit"):
        write_image(tmp_path / "b.jpg", smooth, bits=16)
    assert sorted(os.listdir(tmp_path)) == ["a.jpg"]


def test_float_tiff_keeps_values_outside_unit_range(tmp_path):
    a = np.array([[-3.5, 0.0], [1e4, 7.25]], np.float32)
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "a.tif", a)), a)
    clipped = read_image(write_image(tmp_path / "b.png", a))  # 8-bit: clip to [0, 1]
    np.testing.assert_array_equal(clipped, [[0, 0], [1, 1]])


def test_stack_and_rgb(tmp_path):
    rng = np.random.default_rng(1)
    stack = rng.random((5, 12, 10)).astype(np.float32)
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "s.tif", stack)), stack)
    rgb = rng.random((12, 10, 3)).astype(np.float32)
    for name, tol in (("c.png", 0.5 / 255), ("c.tif", 0)):
        back = read_image(write_image(tmp_path / name, rgb))
        assert back.shape == (12, 10, 3) and np.abs(back - rgb).max() <= tol + 1e-7
    rgba = np.concatenate([rgb, np.ones((12, 10, 1), np.float32)], -1)
    assert read_image(write_image(tmp_path / "d.png", rgba)).shape == (12, 10, 3)  # alpha dropped


def test_no_overwrite_without_force(tmp_path, img):
    p = write_image(tmp_path / "a.tif", img)
    with pytest.raises(InputError, match="exists"):
        write_image(p, img * 2)
    np.testing.assert_array_equal(read_image(p), img)
    write_image(p, img * 2, overwrite=True)
    np.testing.assert_allclose(read_image(p), img * 2)


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="cannot write"):
        write_image(tmp_path / "stack.png", np.zeros((3, 8, 8, 5), np.float32))
    assert os.listdir(tmp_path) == []

    def half_write(path, data, **kw):  # the writer dies after writing part of the temp file
        with open(path, "wb") as f:
            f.write(b"II*\x00partial")
        raise OSError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", half_write)
    with pytest.raises(OSError, match="disk full"):
        write_image(tmp_path / "x.tif", np.zeros((4, 4), np.float32))
    assert os.listdir(tmp_path) == []
    write_image(tmp_path / "keep.npy", np.zeros((4, 4), np.float32))
    with pytest.raises(OSError):
        write_image(tmp_path / "keep.tif", np.ones((4, 4), np.float32))
    assert os.listdir(tmp_path) == ["keep.npy"]


def test_preview_png(tmp_path, img):
    p = preview_png(tmp_path / "cmp.png", [("a", img), ("b", img[:10])])
    arr = read_image(p)
    assert arr.shape == (20, 24 + 4 + 24, 3)
    assert np.all(arr[:, 24:28] == 1) and np.all(arr[10:, 28:] == 1)  # white gap, shorter panel padded white
    np.testing.assert_array_equal(arr[..., 0], arr[..., 2])  # gray panels: gray RGB
    lo, hi = np.percentile(img, [0.5, 99.5])  # each panel percentile-scaled to [0, 1], 8-bit
    np.testing.assert_allclose(arr[:, :24, 0], np.clip((img - lo) / (hi - lo), 0, 1), atol=0.5 / 255 + 1e-6)


def test_read_psf_normalises_clips_and_warns(tmp_path):
    psf = np.ones((5, 5), np.float32)
    psf[0, 0] = -1.0
    tifffile.imwrite(tmp_path / "p.tif", psf)
    with pytest.warns(UserWarning) as rec:
        out = read_psf(tmp_path / "p.tif")
    msgs = " ".join(str(w.message) for w in rec)
    assert "clipped negative" in msgs and "normalised to sum 1" in msgs
    assert out.min() == 0 and abs(out.sum() - 1) < 1e-6 and out[2, 2] == pytest.approx(1 / 24)
    notes = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_psf(tmp_path / "p.tif", report=notes)  # notes collected instead of warnings
    assert len(notes) == 2
    with pytest.raises(InputError, match="negative"):
        read_psf(tmp_path / "p.tif", negative="refuse")


def test_read_psf_recentres(tmp_path):
    psf = np.zeros((7, 7), np.float32)
    psf[1, 5] = 1
    tifffile.imwrite(tmp_path / "p.tif", psf)
    notes = []
    out = read_psf(tmp_path / "p.tif", center="integer", report=notes)
    assert out[3, 3] == 1 and any("re-centred" in n for n in notes)
