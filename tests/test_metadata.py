"""Metadata: ImageJ / OME-TIFF / OME-Zarr axes and physical sizes, round trips, axis errors, PSF voxel matching."""

import json

import numpy as np
import pytest
import tifffile

from unblur.data import data_path
from unblur.errors import InputError
from unblur.io import read_image, write_image
from unblur.metadata import ImageMetadata, axis_order, match_psf_voxel, normalize_unit, resample_psf


@pytest.fixture
def zcyx():
    return np.random.default_rng(0).random((5, 2, 12, 10)).astype(np.float32)


def test_imagej_hyperstack_zcyx_two_channels(tmp_path, zcyx):
    p = tmp_path / "hyper.tif"
    tifffile.imwrite(p, zcyx, imagej=True, resolution=(1 / 0.065, 1 / 0.065),
                     metadata={"axes": "ZCYX", "spacing": 0.25, "unit": "micron", "Labels": ["DAPI", "GFP"] * 5})
    arr, meta = read_image(p, with_metadata=True)
    assert arr.shape == (5, 12, 10, 2)  # not (Z, C=2 as Y, ...)
    np.testing.assert_array_equal(arr, zcyx.transpose(0, 2, 3, 1))
    assert (meta.axes, meta.axes_read, meta.format) == ("ZYXC", "ZCYX", "imagej")
    np.testing.assert_allclose(meta.voxel_size(), (0.25, 0.065, 0.065), rtol=1e-6)
    assert meta.units == {"x": "micrometer", "y": "micrometer", "z": "micrometer"}
    assert meta.channel_names == ["DAPI", "GFP"] and meta.dtype == "float32"
    np.testing.assert_array_equal(read_image(p), arr)  # the plain call gives the same array


def test_ome_tiff_sizes_units_channels_and_time(tmp_path):
    data = np.arange(3 * 4 * 2 * 8 * 6, dtype=np.uint16).reshape(3, 4, 2, 8, 6)
    p = tmp_path / "t.ome.tif"
    tifffile.imwrite(p, data, ome=True, metadata={
        "axes": "TZCYX", "PhysicalSizeX": 65.0, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 65.0,
        "PhysicalSizeYUnit": "nm", "PhysicalSizeZ": 0.2, "TimeIncrement": 1.5,
        "Channel": {"Name": ["a", "b"], "EmissionWavelength": [520.0, 610.0], "ExcitationWavelength": [488.0, 561.0]}})
    arr, meta = read_image(p, with_metadata=True)
    assert arr.shape == (3, 4, 8, 6, 2) and meta.axes == "TZYXC"  # time points kept, leading
    np.testing.assert_allclose(arr, data.transpose(0, 1, 3, 4, 2) / 65535, rtol=1e-6)
    assert meta.units["x"] == "nanometer" and meta.sizes["x"] == 65.0
    np.testing.assert_allclose(meta.voxel_size(), (0.2, 0.065, 0.065))
    assert meta.sizes["t"] == 1.5 and meta.channel_names == ["a", "b"]
    assert meta.emission_wavelengths == [520.0, 610.0] and meta.excitation_wavelengths == [488.0, 561.0]
    one_t, m1 = read_image(_single_time(tmp_path, data), with_metadata=True)  # T of length 1 dropped
    assert one_t.shape == (4, 8, 6, 2) and m1.axes == "ZYXC"


def _single_time(tmp_path, data):
    p = tmp_path / "t1.ome.tif"
    tifffile.imwrite(p, data[:1], ome=True, metadata={"axes": "TZCYX"})
    return p


def test_plain_tiff_is_returned_as_stored(tmp_path):
    stack = np.random.default_rng(2).random((5, 9, 7)).astype(np.float32)
    tifffile.imwrite(tmp_path / "s.tif", stack)
    arr, meta = read_image(tmp_path / "s.tif", with_metadata=True)
    np.testing.assert_array_equal(arr, stack)
    assert meta.axes is None and meta.sizes == {} and meta.voxel_size(3) == (None, None, None)


def test_axes_that_cannot_be_interpreted(tmp_path):
    with pytest.raises(InputError, match=r"cannot interpret axes QAYX .*unknown axis Q, A"):
        axis_order("QAYX", (3, 4, 8, 8))
    assert axis_order("IYX", (5, 8, 8))[2:] == ("ZYX", ["axis I (5 planes) read as Z"])
    import zarr
    g = zarr.open_group(str(tmp_path / "odd.ome.zarr"), mode="w", zarr_format=2)
    g.create_array("0", shape=(2, 3, 8, 8), dtype="f4")
    g.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": "p"}, {"name": "q"}, {"name": "y"}, {"name": "x"}],
                               "datasets": [{"path": "0"}]}]
    with pytest.raises(InputError) as e:
        read_image(tmp_path / "odd.ome.zarr")
    assert "PQYX" in str(e.value) and "\n" not in str(e.value) and "; save the image" in str(e.value)


def _meta():
    return ImageMetadata(axes="ZYXC", sizes={"x": 0.1, "y": 0.1, "z": 0.3},
                         units={"x": "micrometer", "y": "micrometer", "z": "micrometer"},
                         channel_names=["GFP", "RFP"], emission_wavelengths=[510.0, 600.0])


@pytest.mark.parametrize("name,fmt", [("o.tif", "imagej"), ("o.ome.tif", "ome-tiff"),
                                      ("o.ome.zarr", "ome-zarr"), ("o.zarr", "zarr")])
def test_round_trip_keeps_array_and_metadata(tmp_path, zcyx, name, fmt):
    img = zcyx.transpose(0, 2, 3, 1) * 100 - 3  # float values outside [0, 1] kept
    write_image(tmp_path / name, img, metadata=_meta())
    arr, meta = read_image(tmp_path / name, with_metadata=True)
    np.testing.assert_array_equal(arr, img)
    assert meta.axes == "ZYXC" and meta.format == fmt and meta.channel_names == ["GFP", "RFP"]
    np.testing.assert_allclose(meta.voxel_size(), (0.3, 0.1, 0.1), rtol=1e-6)
    assert {meta.units[k] for k in "xyz"} == {"micrometer"}
    if fmt == "ome-tiff":
        assert meta.emission_wavelengths == [510.0, 600.0]
    arr2, meta2 = read_image(write_image(tmp_path / ("again_" + name), arr, metadata=meta), with_metadata=True)
    np.testing.assert_array_equal(arr2, img)
    assert (meta2.sizes, meta2.units, meta2.axes, meta2.channel_names) == (meta.sizes, meta.units, meta.axes, meta.channel_names)


def test_ome_zarr_follows_ngff(tmp_path, zcyx):
    write_image(tmp_path / "a.ome.zarr", zcyx.transpose(0, 2, 3, 1), metadata=_meta())
    attrs = json.loads((tmp_path / "a.ome.zarr" / ".zattrs").read_text())
    ms = attrs["multiscales"][0]
    assert ms["version"] == "0.4"
    assert [(a["name"], a["type"]) for a in ms["axes"]] == [("c", "channel"), ("z", "space"), ("y", "space"), ("x", "space")]
    assert [a.get("unit") for a in ms["axes"]] == [None, "micrometer", "micrometer", "micrometer"]
    assert ms["datasets"][0]["coordinateTransformations"] == [{"type": "scale", "scale": [1.0, 0.3, 0.1, 0.1]}]
    assert [c["label"] for c in attrs["omero"]["channels"]] == ["GFP", "RFP"]


def test_ome_tif_name_without_metadata_is_ome(tmp_path):
    stack = np.random.default_rng(3).random((3, 8, 6)).astype(np.float32)
    write_image(tmp_path / "x.ome.tif", stack)
    with tifffile.TiffFile(tmp_path / "x.ome.tif") as tif:
        assert tif.is_ome and tif.series[0].axes == "ZYX"


def test_16bit_imagej_with_metadata(tmp_path):
    img = np.linspace(0, 1, 3 * 8 * 6, dtype=np.float32).reshape(3, 8, 6)
    meta = ImageMetadata(axes="ZYX", sizes={"x": 0.2, "y": 0.2, "z": 0.5}, units=dict.fromkeys("xyz", "micrometer"))
    write_image(tmp_path / "u.tif", img, bits=16, metadata=meta)
    assert tifffile.imread(tmp_path / "u.tif").dtype == np.uint16
    arr, m = read_image(tmp_path / "u.tif", with_metadata=True)
    assert m.dtype == "uint16" and np.abs(arr - img).max() <= 0.5 / 65535 + 1e-7
    assert m.voxel_size() == pytest.approx((0.5, 0.2, 0.2))


def test_metadata_axes_must_match_the_array(tmp_path):
    with pytest.raises(InputError, match="metadata axes ZYXC do not match"):
        write_image(tmp_path / "a.tif", np.zeros((4, 8, 8), np.float32), metadata=_meta())
    assert list(tmp_path.iterdir()) == []


def test_real_imagej_psf_voxel_size():
    p = data_path("microscopy/redlionfish/PSF_RFI_8bit.tif")
    arr, meta = read_image(p, with_metadata=True)
    assert arr.shape == (61, 32, 32) and meta.axes == "ZYX" and meta.units["z"] == "nanometer"
    assert meta.voxel_size() == pytest.approx((0.3, 0.3, 0.3), rel=1e-3)  # rational resolution tags


def test_units():
    assert [normalize_unit(u) for u in ("um", "µm", "micron", "\\u00B5m", "nm", "pixel", None)] == \
        ["micrometer"] * 4 + ["nanometer", None, None]


def _gauss(shape, voxel, sigma):
    """Gaussian PSF integrated over each pixel (as a camera pixel records it), sum 1."""
    from scipy.special import erf
    p = np.ones(())
    for n, v, s in zip(shape, voxel, sigma):
        edges = (np.arange(n + 1) - n // 2 - 0.5) * v / (s * np.sqrt(2))
        p = np.multiply.outer(p, np.diff(erf(edges)))
    return p / p.sum()


@pytest.mark.parametrize("src,dst", [((0.1, 0.05, 0.05), (0.2, 0.1, 0.1)),   # finer PSF -> coarser image
                                     ((0.3, 0.1, 0.1), (0.15, 0.05, 0.05))])  # coarser PSF -> finer image
def test_resample_psf_matches_analytic_psf(src, dst):
    sigma = (0.6, 0.2, 0.2)  # micrometres
    psf = _gauss((31, 41, 41), src, sigma)
    out = resample_psf(psf, src, dst)
    assert all(n % 2 == 1 for n in out.shape) and abs(out.sum() - 1) < 1e-5
    assert all(abs(m * b - n * a) <= b + 1e-9 for m, n, a, b in zip(out.shape, psf.shape, src, dst))  # same extent
    assert np.unravel_index(out.argmax(), out.shape) == tuple(n // 2 for n in out.shape)
    ref = _gauss(out.shape, dst, sigma)
    assert np.abs(out - ref).max() < 0.03 * ref.max()
    naive = resample_psf(psf, src, src)  # no change in size: the same PSF
    np.testing.assert_allclose(naive, psf, atol=1e-7)


def test_match_psf_voxel_notes_and_refusal():
    psf = _gauss((9, 15, 15), (0.2, 0.1, 0.1), (0.4, 0.15, 0.15)).astype(np.float32)
    same, notes = match_psf_voxel(psf, (0.2, 0.1, 0.1), (0.2, 0.1, 0.1))
    assert same is psf and notes == []
    out, notes = match_psf_voxel(psf, (0.2, 0.1, 0.1), (0.4, 0.2, 0.2), max_shape=(64, 5, 64))
    assert out.shape == (5, 5, 7) and "resampled" in notes[0] and "(9, 15, 15) -> (5, 5, 7)" in notes[0]  # y cropped to 5
    img_meta = ImageMetadata(axes="ZYX", sizes={"x": 0.1, "y": 0.1}, units={"x": "micrometer", "y": "micrometer"})
    kept, notes = match_psf_voxel(psf, (0.2, 0.1, 0.1), img_meta)
    assert kept is psf and notes == ["image voxel size along z unknown: assumed equal to the PSF's (0.2 µm)"]
    with pytest.raises(InputError, match="image voxel size along z is unknown"):
        match_psf_voxel(psf, (0.2, 0.1, 0.1), img_meta, unknown="refuse")


def test_reads_ngff_05_time_series(tmp_path):
    import zarr
    data = np.random.default_rng(7).random((2, 3, 4, 8, 6)).astype(np.float32)  # t, c, z, y, x
    g = zarr.open_group(str(tmp_path / "v5.ome.zarr"), mode="w", zarr_format=3)
    g.create_array("s0", shape=data.shape, chunks=(1, 1, 2, 8, 6), dtype="f4")[...] = data
    axes = [{"name": "t", "type": "time", "unit": "second"}, {"name": "c", "type": "channel"}] + \
        [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"]
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": [
        {"path": "s0", "coordinateTransformations": [{"type": "scale", "scale": [2.0, 1.0, 250.0, 65.0, 65.0]}]}]}]}
    arr, meta = read_image(tmp_path / "v5.ome.zarr", with_metadata=True)
    assert arr.shape == (2, 4, 8, 6, 3) and meta.axes == "TZYXC" and meta.axes_read == "TCZYX"
    np.testing.assert_array_equal(arr, data.transpose(0, 2, 3, 4, 1))
    assert meta.voxel_size() == pytest.approx((0.25, 0.065, 0.065)) and meta.sizes["t"] == 2.0
    from unblur.io import open_image
    np.testing.assert_array_equal(open_image(tmp_path / "v5.ome.zarr")[1, 2:4, :, 1:3, 0], data[1, 0, 2:4, :, 1:3])
