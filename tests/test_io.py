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
    with pytest.warns(UserWarning, match="8-bit output clipped 50% of values above 1, 25% below 0"):
        clipped = read_image(write_image(tmp_path / "b.png", a))  # 8-bit: clip to [0, 1], said
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


def test_preview_png_reduces_large_panels_alike(tmp_path):
    rng = np.random.default_rng(0)
    big = rng.random((50, 70)).astype(np.float32)
    p = preview_png(tmp_path / "cmp.png", [("a", big), ("b", big[:30, :30])], max_side=20)
    arr = read_image(p)
    assert arr.shape == (12, 17 + 4 + 7, 3)  # both reduced by ceil(70 / 20) = 4
    blocks = big[:48, :68].reshape(12, 4, 17, 4).mean(axis=(1, 3))
    lo, hi = np.percentile(blocks, [0.5, 99.5])
    np.testing.assert_allclose(arr[:, :17, 0], np.clip((blocks - lo) / (hi - lo), 0, 1), atol=0.5 / 255 + 1e-6)


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


# --- block-wise reading and streamed writing -------------------------------------------------------

import pickle  # noqa: E402
import tracemalloc  # noqa: E402

from unblur.data import data_path  # noqa: E402
from unblur.io import create_output, open_image  # noqa: E402
from unblur.metadata import ImageMetadata  # noqa: E402


@pytest.mark.parametrize("compression", [None, "zlib"])  # memory map / tifffile's Zarr view
def test_open_image_reads_blocks_in_unblur_order(tmp_path, compression):
    data = np.random.default_rng(4).integers(0, 65535, (6, 2, 16, 12), dtype=np.uint16)
    p = tmp_path / "h.tif"
    tifffile.imwrite(p, data, imagej=True, metadata={"axes": "ZCYX"}, compression=compression)
    lazy = open_image(p)
    assert lazy.shape == (6, 16, 12, 2) and lazy.dtype == np.float32 and lazy.metadata.axes == "ZYXC"
    whole = data.transpose(0, 2, 3, 1).astype(np.float32) / 65535
    np.testing.assert_array_equal(lazy.read(np.s_[1:4, 3:9, 2:5]), whole[1:4, 3:9, 2:5])
    np.testing.assert_array_equal(lazy[2, :, 5], whole[2, :, 5])  # integer indices drop axes
    np.testing.assert_array_equal(lazy[..., 1], whole[..., 1])
    np.testing.assert_array_equal(lazy.read(), read_image(p))
    twin = pickle.loads(pickle.dumps(lazy))  # a worker gets the path and reopens the file
    np.testing.assert_array_equal(twin.read(np.s_[5]), whole[5])
    lazy.close()


def test_open_image_on_shared_compressed_stack():
    p = data_path("microscopy/sdeconv/pollen.tif")  # uint16, PackBits-compressed pages
    lazy = open_image(p)
    assert lazy.shape == (32, 256, 256) and lazy.metadata.dtype == "uint16"
    np.testing.assert_array_equal(lazy.read(np.s_[10:12, 100:140, 7:50]), read_image(p)[10:12, 100:140, 7:50])


@pytest.mark.parametrize("name", ["s.tif", "s.ome.tif", "s.ome.zarr", "s.zarr"])
def test_create_output_streams_blocks_atomically(tmp_path, name):
    rng = np.random.default_rng(5)
    stack = rng.random((6, 20, 16, 2)).astype(np.float32) * 5
    meta = ImageMetadata(axes="ZYXC", sizes={"x": 0.1, "y": 0.1, "z": 0.4}, units=dict.fromkeys("xyz", "micrometer"),
                         channel_names=["a", "b"])
    out = create_output(tmp_path / name, stack.shape, metadata=meta, chunks=(2, 10, 8, 2))
    assert out.partial.exists() and not (tmp_path / name).exists()
    for z in (4, 0, 2):  # any order; blocks aligned to the Zarr chunks
        out.write(np.s_[z:z + 2], stack[z:z + 2])
    assert not (tmp_path / name).exists()
    assert out.finalize() == tmp_path / name and not out.partial.exists()
    arr, m = read_image(tmp_path / name, with_metadata=True)
    np.testing.assert_array_equal(arr, stack)
    assert m.axes == "ZYXC" and m.voxel_size() == pytest.approx((0.4, 0.1, 0.1)) and m.channel_names == ["a", "b"]
    assert sorted(q.name for q in tmp_path.iterdir()) == [name]


@pytest.mark.parametrize("name", ["e.tif", "e.ome.zarr"])
def test_create_output_removes_partial_on_error_and_resumes(tmp_path, name):
    with pytest.raises(RuntimeError, match="worker died"):
        with create_output(tmp_path / name, (4, 8, 8)) as out:
            out.write(np.s_[0:2], np.ones((2, 8, 8)))
            raise RuntimeError("worker died")
    assert list(tmp_path.iterdir()) == []
    first = create_output(tmp_path / name, (4, 8, 8), chunks=(2, 8, 8))
    first.write(np.s_[0:2], np.full((2, 8, 8), 3.0))  # the run is interrupted here
    again = create_output(tmp_path / name, (4, 8, 8), chunks=(2, 8, 8), resume=True)
    again.write(np.s_[2:4], np.full((2, 8, 8), 7.0))
    np.testing.assert_array_equal(read_image(again.finalize())[:, 0, 0], [3, 3, 7, 7])
    with pytest.raises(InputError, match="exists"):
        create_output(tmp_path / name, (4, 8, 8))
    fresh = create_output(tmp_path / name, (4, 8, 8), overwrite=True)  # a stale partial is replaced
    fresh.abort()
    assert [q.name for q in tmp_path.iterdir()] == [name]


def test_writer_pickles_and_scales_integers(tmp_path):
    out = create_output(tmp_path / "u.tif", (3, 8, 8), dtype=np.uint16)
    twin = pickle.loads(pickle.dumps(out))  # what a worker process receives
    twin.write(np.s_[1], np.full((8, 8), 0.5))
    twin.write(np.s_[2], np.full((8, 8), 2.0))  # clipped to 1
    assert out.clip_note() is None and twin.clip_note().startswith("16-bit output clipped 50% of values above 1, 0% below 0")
    out.finalize()
    stored = tifffile.imread(tmp_path / "u.tif")
    assert stored.dtype == np.uint16 and stored[:, 0, 0].tolist() == [0, 32768, 65535]


def test_streaming_copy_holds_one_plane(tmp_path):
    shape = (32, 128, 128)
    src = tmp_path / "big.tif"
    tifffile.imwrite(src, np.random.default_rng(6).random(shape, dtype=np.float32), imagej=True, metadata={"axes": "ZYX"})
    lazy = open_image(src)
    tracemalloc.start()
    with create_output(tmp_path / "copy.tif", lazy.shape, metadata=lazy.metadata) as out:
        for z in range(shape[0]):
            out.write(np.s_[z], lazy.read(np.s_[z]) * 2)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    whole = np.prod(shape) * 4
    assert peak < whole / 8, f"peak {peak} bytes for a {whole}-byte stack"
    np.testing.assert_allclose(read_image(tmp_path / "copy.tif"), read_image(src) * 2)


def test_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(InputError, match=r"no space left to write big.tif \(0.00 GiB\); free disk space"):
        create_output(tmp_path / "big.tif", (4, 16, 16))
    assert list(tmp_path.iterdir()) == []
    out = create_output(tmp_path / "z.ome.zarr", (4, 16, 16), chunks=(1, 16, 16))
    monkeypatch.setattr(type(out._array().arr), "__setitem__", lambda self, k, v: full(0, 0, 0))
    with pytest.raises(InputError, match="no space left to write z.ome.zarr"):
        with out:
            out.write(np.s_[0], np.ones((16, 16)))
    assert list(tmp_path.iterdir()) == []
