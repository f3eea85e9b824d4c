"""Format rules of unblur.io: alpha, 16-bit in / 16-bit out, clipping notes, FITS, crafted sizes, integer scaling."""

import os
import struct
import sys
import tracemalloc
import warnings

import numpy as np
import pytest
import tifffile

import unblur.io as uio
from unblur.data import data_path
from unblur.errors import InputError
from unblur.io import open_image, read_image, write_image
from unblur.io.png import _unfilter, decode_png16, encode_png16

RNG = np.random.default_rng(18)


def _rgba8(h=12, w=10, opaque=False):
    a = RNG.integers(0, 256, (h, w, 4), dtype=np.uint8)
    a[..., 3] = 255 if opaque else np.where(np.arange(w) < w // 2, 255, 40)  # right half translucent
    return a


# --- alpha -------------------------------------------------------------------------------------------

def test_rgba_alpha_is_set_aside_and_written_back(tmp_path):
    import imageio.v3 as iio
    src = _rgba8()
    iio.imwrite(tmp_path / "in.png", src)
    rgb, meta = read_image(tmp_path / "in.png", with_metadata=True)
    assert rgb.shape == (12, 10, 3) and meta.axes == "YXC"
    np.testing.assert_array_equal(rgb, src[..., :3] / np.float32(255))
    np.testing.assert_array_equal(meta.alpha, src[..., 3] / np.float32(255))
    assert any("alpha channel set aside" in n and "50% of pixels not opaque" in n for n in meta.notes)
    notes = []
    write_image(tmp_path / "out.png", rgb, metadata=meta, notes=notes)
    np.testing.assert_array_equal(iio.imread(tmp_path / "out.png"), src)  # RGBA back, alpha unchanged
    assert notes == ["alpha channel of the source written back unchanged"]
    write_image(tmp_path / "out.tif", rgb, metadata=meta, bits=8, notes=notes)
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        assert tif.pages[0].extrasamples == (2,)  # unassociated alpha
        np.testing.assert_array_equal(tif.asarray(), src)
    notes.clear()
    write_image(tmp_path / "out.jpg", rgb, metadata=meta, notes=notes)
    assert notes == ["alpha channel not written (.jpg output holds none); write .png or .tif to keep it"]
    write_image(tmp_path / "gray.png", rgb[..., 0], metadata=meta, notes=notes)  # gray result: gray + alpha
    assert iio.imread(tmp_path / "gray.png").shape == (12, 10, 2)
    with pytest.warns(UserWarning, match="alpha channel set aside"):  # without metadata: not silent
        read_image(tmp_path / "in.png")


def test_opaque_alpha_is_dropped_with_a_note(tmp_path):
    import imageio.v3 as iio
    iio.imwrite(tmp_path / "o.png", _rgba8(opaque=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rgb, meta = read_image(tmp_path / "o.png", with_metadata=True)
    assert rgb.shape == (12, 10, 3) and meta.alpha is None
    assert meta.notes == ["o.png: alpha channel fully opaque, dropped"]
    notes = []
    write_image(tmp_path / "back.png", rgb, metadata=meta, notes=notes)
    assert iio.imread(tmp_path / "back.png").shape == (12, 10, 3) and notes == []


def test_16bit_gray_alpha_png_round_trip(tmp_path):
    la = RNG.integers(0, 65536, (9, 7, 2)).astype(np.uint16)
    (tmp_path / "la.png").write_bytes(encode_png16(la))
    gray, meta = read_image(tmp_path / "la.png", with_metadata=True)
    assert gray.shape == (9, 7) and meta.dtype == "uint16" and meta.axes == "YX"
    write_image(tmp_path / "back.png", gray, metadata=meta)
    np.testing.assert_array_equal(decode_png16((tmp_path / "back.png").read_bytes()), la)


# --- 16-bit in, 16-bit out -----------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(11, 13), (11, 13, 3)])
def test_16bit_png_in_gives_16bit_png_out(tmp_path, shape):
    src = RNG.integers(0, 65536, shape).astype(np.uint16)
    (tmp_path / "in.png").write_bytes(encode_png16(src))
    img, meta = read_image(tmp_path / "in.png", with_metadata=True)
    assert meta.dtype == "uint16"
    np.testing.assert_array_equal(img, src / np.float32(65535))  # not truncated to 8 bits
    write_image(tmp_path / "out.png", img, metadata=meta)
    np.testing.assert_array_equal(decode_png16((tmp_path / "out.png").read_bytes()), src)  # exact
    write_image(tmp_path / "out.tif", img, metadata=meta)
    assert tifffile.imread(tmp_path / "out.tif").dtype == np.uint16
    write_image(tmp_path / "f.tif", img, metadata=meta, bits=32)  # bits says otherwise
    assert tifffile.imread(tmp_path / "f.tif").dtype == np.float32
    write_image(tmp_path / "plain.png", img)  # no metadata: 8-bit as before
    with open(tmp_path / "plain.png", "rb") as f:
        assert f.read(25)[24] == 8


def test_8bit_and_float_sources_keep_their_defaults(tmp_path):
    import imageio.v3 as iio
    iio.imwrite(tmp_path / "g8.png", RNG.integers(0, 256, (8, 8), dtype=np.uint8))
    img, meta = read_image(tmp_path / "g8.png", with_metadata=True)
    write_image(tmp_path / "o8.png", img, metadata=meta)
    assert iio.imread(tmp_path / "o8.png").dtype == np.uint8
    tifffile.imwrite(tmp_path / "f.tif", RNG.random((8, 8), dtype=np.float32) * 3)
    img, meta = read_image(tmp_path / "f.tif", with_metadata=True)
    write_image(tmp_path / "of.tif", img, metadata=meta)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "of.tif"), img)  # float stays float, > 1 kept


def test_real_16bit_stack_round_trips_exactly(tmp_path):
    p = data_path("microscopy/sdeconv/pollen.tif")
    img, meta = read_image(p, with_metadata=True)
    write_image(tmp_path / "o.tif", img, metadata=meta)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "o.tif"), tifffile.imread(p))


def test_png16_unfilters_all_five_filter_types():
    def reference_filter(raw, types, bpp):  # the PNG specification, byte by byte
        out, x = np.zeros_like(raw), raw.astype(int)
        for r, t in enumerate(types):
            for i in range(raw.shape[1]):
                a = x[r, i - bpp] if i >= bpp else 0
                b = x[r - 1, i] if r else 0
                c = x[r - 1, i - bpp] if r and i >= bpp else 0
                p = a + b - c
                paeth = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else b if abs(p - b) <= abs(p - c) else c
                out[r, i] = (x[r, i] - [0, a, b, (a + b) // 2, paeth][t]) % 256
        return out

    img = RNG.integers(0, 65536, (6, 5, 3)).astype(np.uint16)
    raw = img.astype(">u2").reshape(6, 15).view(np.uint8)
    for types in ([0, 1, 2, 1, 0, 2], [4, 3, 2, 1, 0, 4], [3] * 6, [4] * 6):
        filt = reference_filter(raw, types, 6).reshape(6, 5, 6).astype(np.int32)
        np.testing.assert_array_equal(_unfilter(filt, np.array(types)).reshape(6, 30), raw)


# --- clipping on integer output -----------------------------------------------------------------------

def test_integer_output_reports_the_clipped_share(tmp_path):
    img = np.full((10, 10), 0.5, np.float32)
    img[0, :3] = 1.7
    img[1, 0] = -0.2
    notes = []
    write_image(tmp_path / "a.tif", img, bits=16, notes=notes)
    assert notes == ["16-bit output clipped 3% of values above 1, 1% below 0 to [0, 1]; "
                     "write a float32 TIFF (bits 32, --bits 32) to keep them"]
    assert tifffile.imread(tmp_path / "a.tif")[0, 0] == 65535  # clipped, as stated
    with pytest.warns(UserWarning, match="8-bit output clipped 3% of values above 1"):
        write_image(tmp_path / "b.png", img)
    notes.clear()
    write_image(tmp_path / "c.tif", img, notes=notes)  # float32: nothing clipped, nothing said
    write_image(tmp_path / "d.png", np.clip(img, 0, 1), bits=16, notes=notes)
    assert notes == []


# --- FITS ----------------------------------------------------------------------------------------------

def _need_astropy():
    try:
        import astropy  # noqa: F401
    except ImportError:
        if not os.environ.get("UNBLUR_DATA_REQUIRED"):
            pytest.skip("astropy not installed (pip install 'unblur[fits]')")
        raise


@pytest.mark.parametrize("shape", [(9, 11), (4, 9, 11)])
def test_fits_write_and_read_back(tmp_path, shape):
    _need_astropy()
    from astropy.io import fits
    img = (RNG.random(shape) * 1000 - 5).astype(np.float64)
    write_image(tmp_path / "x.fits", img)
    with fits.open(tmp_path / "x.fits") as hdul:
        assert hdul[0].header["BITPIX"] == -32 and hdul[0].data.shape == shape  # float32 primary HDU / cube
    np.testing.assert_array_equal(read_image(tmp_path / "x.fits"), img.astype(np.float32))
    with pytest.raises(InputError, match="exists"):
        write_image(tmp_path / "x.fits", img)
    with pytest.raises(InputError, match="FITS output is float32"):
        write_image(tmp_path / "y.fits", img, bits=16)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["x.fits"]


def test_fits_without_astropy_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "astropy", None)
    monkeypatch.setitem(sys.modules, "astropy.io", None)
    with pytest.raises(InputError, match=r"writing FITS needs astropy.*; pip install 'unblur\[fits\]'"):
        write_image(tmp_path / "x.fits", np.zeros((4, 4), np.float32))
    assert list(tmp_path.iterdir()) == []


# --- crafted sizes -------------------------------------------------------------------------------------

def _crafted_tiff(path, w=1_000_000, h=1_000_000, compression=1):
    """A 186-byte TIFF whose one IFD claims w x h 8-bit pixels in one 64-byte strip."""
    tags = [(256, 4, w), (257, 4, h), (258, 3, 8), (259, 3, compression), (262, 3, 1),
            (273, 4, 8 + 2 + 12 * 9 + 4), (277, 3, 1), (278, 4, h), (279, 4, 64)]
    entry = lambda t, typ, v: struct.pack("<HHII", t, typ, 1, v) if typ == 4 else struct.pack("<HHIHH", t, typ, 1, v, 0)  # noqa: E731
    ifd = struct.pack("<H", len(tags)) + b"".join(entry(*t) for t in tags) + struct.pack("<I", 0)
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + bytes(64))
    return path


def test_crafted_huge_tiff_is_refused_before_allocation(tmp_path):
    p = _crafted_tiff(tmp_path / "huge.tif")
    tracemalloc.start()
    for reader in (read_image, open_image):
        with pytest.raises(InputError) as e:
            reader(p)
        msg = str(e.value)
        assert "\n" not in msg and "claims 1000000 x 1000000 = 1e+12" in msg and "the file holds 186 bytes" in msg
    assert tracemalloc.get_traced_memory()[1] < 10 * 2**20
    tracemalloc.stop()
    deflated = _crafted_tiff(tmp_path / "zip.tif", compression=8)  # compressed: bounded by the memory limit
    with pytest.raises(InputError, match=r"claims 1000000 x 1000000 = 1e\+12 values \(4.55 TiB .*more than"):
        read_image(deflated)


def test_crafted_npy_header_is_refused(tmp_path):
    p = tmp_path / "huge.npy"
    with open(p, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)})
        f.write(bytes(64))
    with pytest.raises(InputError, match="cannot read huge.npy|claims 1000000 x 1000000"):
        read_image(p)


def test_large_file_refused_whole_but_read_block_by_block(tmp_path, monkeypatch):
    stack = RNG.integers(0, 65535, (8, 64, 64), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "big.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    monkeypatch.setattr(uio, "MAX_READ_BYTES", 2**17)  # 128 KiB: less than the 8 x 64 x 64 x 6 bytes needed
    with pytest.raises(InputError, match=r"claims 8 x 64 x 64 .* more than the read limit unblur.io.MAX_READ_BYTES"):
        read_image(tmp_path / "big.tif")
    lazy = open_image(tmp_path / "big.tif")
    np.testing.assert_array_equal(lazy.read(np.s_[3:5, 10:20]), stack[3:5, 10:20] / np.float32(65535))


# --- integer scaling agrees between files and arrays (docs/conventions.md) -----------------------------

def test_integer_arrays_are_written_as_integer_files_are_read(tmp_path):
    u8 = RNG.integers(0, 256, (6, 7), dtype=np.uint8)
    import imageio.v3 as iio
    write_image(tmp_path / "a.png", u8)
    np.testing.assert_array_equal(iio.imread(tmp_path / "a.png"), u8)  # not clipped to 0/255
    u16 = RNG.integers(0, 65536, (6, 7)).astype(np.uint16)
    write_image(tmp_path / "b.tif", u16)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "b.tif"), u16 / np.float32(65535))
    np.save(tmp_path / "c.npy", u16)
    np.testing.assert_array_equal(read_image(tmp_path / "c.npy"), u16 / np.float32(65535))
    np.save(tmp_path / "d.npy", u16 > 30000)
    np.testing.assert_array_equal(read_image(tmp_path / "d.npy"), (u16 > 30000).astype(np.float32))


# --- picture metadata: ICC profile, EXIF, dpi ----------------------------------------------------------

def _photo_jpeg(path, orientation=1, gray=False):
    """A JPEG with an sRGB (or gray) ICC profile, EXIF (camera make/model, orientation) and 300 dpi."""
    from PIL import Image, ImageCms
    rgb = np.kron(RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "unblur-test", "model 1", orientation
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    img = Image.fromarray(rgb[..., 0] if gray else rgb)
    img.save(path, exif=exif.tobytes(), icc_profile=None if gray else profile, dpi=(300, 300), quality=95)
    return profile


@pytest.mark.parametrize("name, bits", [("out.jpg", None), ("out.png", None), ("out16.png", 16)])
def test_icc_profile_exif_and_dpi_are_written_back(tmp_path, name, bits):
    from PIL import Image
    profile = _photo_jpeg(tmp_path / "in.jpg", orientation=6)
    img, meta = read_image(tmp_path / "in.jpg", with_metadata=True)
    assert meta.icc_profile == profile and meta.exif.startswith(b"Exif\x00\x00") and meta.dpi == (300.0, 300.0)
    notes = []
    write_image(tmp_path / name, img, metadata=meta, bits=bits, notes=notes)
    assert notes == []
    with Image.open(tmp_path / name) as out:
        assert out.info.get("icc_profile") == profile
        tags = out.getexif()
        assert tags[0x010F] == "unblur-test" and tags[0x0110] == "model 1" and tags[0x0112] == 6
        assert tuple(round(v) for v in out.info["dpi"]) == (300, 300)
    back, meta2 = read_image(tmp_path / name, with_metadata=True)  # and unblur reads them again
    assert meta2.icc_profile == profile and meta2.exif == meta.exif and meta2.dpi == (300.0, 300.0)
    if bits == 16:
        assert meta2.dtype == "uint16"


def test_jpeg_output_is_high_quality_without_chroma_subsampling(tmp_path):
    from PIL import Image, JpegImagePlugin
    smooth = np.clip(np.add.outer(np.linspace(0, 1, 64), np.linspace(0, 0.5, 64)), 0, 1)
    rgb = np.stack([smooth, smooth.T, 1 - smooth], -1).astype(np.float32)
    write_image(tmp_path / "q.jpg", rgb)
    with Image.open(tmp_path / "q.jpg") as im:
        assert JpegImagePlugin.get_sampling(im) == 0  # 4:4:4
    assert np.abs(read_image(tmp_path / "q.jpg") - rgb).max() < 4 / 255  # quality 95, not Pillow's 75


def test_picture_metadata_an_output_cannot_hold_is_named(tmp_path):
    _photo_jpeg(tmp_path / "in.jpg", orientation=6)
    img, meta = read_image(tmp_path / "in.jpg", with_metadata=True)
    notes = []
    write_image(tmp_path / "gray.png", img[..., 0], metadata=meta, notes=notes)  # an RGB profile, a gray output
    assert notes == ["ICC colour profile of the source not written: it describes RGB data, the output has 1 channel(s)"]
    from PIL import Image
    with Image.open(tmp_path / "gray.png") as out:
        assert "icc_profile" not in out.info and out.getexif()[0x0112] == 6  # EXIF still kept
    notes.clear()
    write_image(tmp_path / "out.tif", img, metadata=meta, notes=notes)  # a plain RGB TIFF holds the profile
    assert len(notes) == 1 and "the source's EXIF not written (.tif output" in notes[0]
    assert "orientation is lost" in notes[0]
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        page = tif.pages[0]
        assert len(tif.pages) == 1 and page.photometric == 2 and page.shape == img.shape  # RGB, one page
        assert bytes(page.tags[34675].value) == meta.icc_profile and page.tags["XResolution"].value == (300, 1)
    notes.clear()
    write_image(tmp_path / "out.npy", img, metadata=meta, notes=notes)
    assert len(notes) == 1 and "ICC colour profile and EXIF not written (.npy output" in notes[0]
    notes.clear()
    write_image(tmp_path / "plain.png", img, notes=notes)  # no metadata given: nothing to say
    assert notes == []


def test_gray_jpeg_keeps_its_exif(tmp_path):
    from PIL import Image
    _photo_jpeg(tmp_path / "g.jpg", gray=True)
    img, meta = read_image(tmp_path / "g.jpg", with_metadata=True)
    assert img.ndim == 2 and meta.icc_profile is None and meta.exif is not None
    write_image(tmp_path / "g_out.jpg", img, metadata=meta)
    with Image.open(tmp_path / "g_out.jpg") as out:
        assert out.mode == "L" and out.getexif()[0x010F] == "unblur-test"


def test_tiff_icc_profile_is_read_and_carried_to_a_png(tmp_path):
    from PIL import Image, ImageCms
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    tifffile.imwrite(tmp_path / "scan.tif", RNG.integers(0, 65536, (16, 12, 3)).astype(np.uint16),
                     photometric="rgb", iccprofile=profile)
    img, meta = read_image(tmp_path / "scan.tif", with_metadata=True)
    assert meta.icc_profile == profile
    write_image(tmp_path / "scan.png", img, metadata=meta)
    with Image.open(tmp_path / "scan.png") as out:
        assert out.info.get("icc_profile") == profile


def test_fits_header_is_carried_to_a_fits_output(tmp_path):
    _need_astropy()
    from astropy.io import fits
    data = RNG.integers(0, 3000, (12, 10)).astype(np.int16)
    hdu = fits.PrimaryHDU(data)
    hdu.header.update(OBJECT="M51", EXPTIME=120.0, BUNIT="adu", CTYPE1="RA---TAN", CTYPE2="DEC--TAN",
                      CRVAL1=202.47, CRVAL2=47.19, CRPIX1=5.0, CRPIX2=6.0, CDELT1=-1e-4, CDELT2=1e-4)
    hdu.header["BZERO"], hdu.header["BSCALE"] = 32768, 1  # stored as unsigned 16-bit
    hdu.header["HISTORY"] = "flat-fielded"
    hdu.writeto(tmp_path / "m51.fits")
    img, meta = read_image(tmp_path / "m51.fits", with_metadata=True)
    assert meta.fits_header and "M51" in meta.fits_header
    notes = []
    restored = img * 1.5
    write_image(tmp_path / "out.fits", restored, metadata=meta, notes=notes)
    assert notes == []
    with fits.open(tmp_path / "out.fits") as hdul:
        h = hdul[0].header
        assert h["OBJECT"] == "M51" and h["EXPTIME"] == 120.0 and h["CRVAL1"] == 202.47 and h["CTYPE2"] == "DEC--TAN"
        assert "flat-fielded" in str(h["HISTORY"]) and h["BITPIX"] == -32
        assert "BZERO" not in h and "BSCALE" not in h  # they described the stored integers
        np.testing.assert_array_equal(hdul[0].data, restored.astype(np.float32))
    write_image(tmp_path / "cube.fits", np.stack([img, img]), metadata=meta, notes=notes)  # other axes: no WCS
    assert notes == ["FITS header of the source not written: it describes 2 axes, the output has 3"]
    notes.clear()
    write_image(tmp_path / "view.png", img / img.max(), metadata=meta, notes=notes)
    assert notes == ["FITS header of the source (WCS, exposure) not written (.png output); write .fits to keep it"]


def test_cmyk_jpeg_is_read_as_rgb_not_as_rgb_plus_alpha(tmp_path):
    from PIL import Image
    rgb = np.kron(RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8))
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "print.jpg", quality=100)
    img, meta = read_image(tmp_path / "print.jpg", with_metadata=True)
    assert img.shape == (32, 32, 3) and meta.alpha is None
    assert meta.notes == ["print.jpg: CMYK converted to RGB, approximate colours; convert it to RGB with its "
                          "colour profile first for exact colours"]
    assert np.abs(img - rgb / np.float32(255)).mean() < 0.03  # the colours, not C, M, Y read as R, G, B
    cmyk = np.zeros((8, 8, 4), np.uint8)
    tifffile.imwrite(tmp_path / "print.tif", cmyk, photometric="separated")
    with pytest.raises(InputError, match="CMYK .* TIFF.*convert it to RGB"):
        read_image(tmp_path / "print.tif")
