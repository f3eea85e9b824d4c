"""CLI with image metadata: named axes, voxel sizes kept on output, PSF voxel matching, ``unblur psf --like``,
time series, diagnostic maps of the diffusion samplers."""

import json

import numpy as np
import pytest
import tifffile

from conftest import gaussian_psf
from unblur.cli.main import main
from unblur.io import read_image, read_metadata, write_image
from unblur.metadata import ImageMetadata

UM = {k: "micrometer" for k in "zyx"}


def _gauss3(shape, sigmas):
    grids = np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij")
    p = np.exp(-sum(g**2 / (2 * s**2) for g, s in zip(grids, sigmas)))
    return (p / p.sum()).astype(np.float32)


@pytest.fixture
def hyper(tmp_path):
    """A Fiji hyperstack stored ZCYX (2 named channels), 0.1 µm pixels, 0.3 µm z step."""
    rng = np.random.default_rng(0)
    data = (0.2 + 0.5 * rng.random((6, 2, 24, 20))).astype(np.float32)
    p = tmp_path / "hyper.tif"
    tifffile.imwrite(p, data, imagej=True, resolution=(10.0, 10.0),
                     metadata={"axes": "ZCYX", "spacing": 0.3, "unit": "micron", "Labels": ["DAPI", "GFP"] * 6})
    return p, data


def _psf(path, psf, voxel=None):
    meta = None if voxel is None else ImageMetadata(axes="ZYX" if psf.ndim == 3 else "YX").with_voxel_size(voxel)
    write_image(path, psf, metadata=meta)
    return path


def _nothing_written(folder, keep):
    return sorted(p.name for p in folder.iterdir()) == sorted(keep)


def test_hyperstack_in_ome_tiff_out_keeps_axes_sizes_and_channels(tmp_path, hyper, capsys):
    img, data = hyper
    psf = _psf(tmp_path / "psf.tif", _gauss3((5, 7, 7), (1.0, 1.0, 1.0)), (0.3, 0.1, 0.1))
    out = tmp_path / "out.ome.tif"
    assert main(["deconvolve", str(img), "--psf", str(psf), "-o", str(out), "--num-iter", "3", "--no-progress"]) == 0
    assert "resampled" not in capsys.readouterr().out  # same voxel size: used as it is
    arr, meta = read_image(out, with_metadata=True)
    assert meta.format == "ome-tiff" and meta.axes == "ZYXC" and arr.shape == (6, 24, 20, 2)
    np.testing.assert_allclose(meta.voxel_size(), (0.3, 0.1, 0.1), rtol=1e-6)
    assert meta.channel_names == ["DAPI", "GFP"]
    # each channel restored on its own: the channels are not mixed up with Y (the shape rule would give C=20)
    ref = tmp_path / "c1.tif"
    write_image(tmp_path / "ch1.tif", data[:, 1], metadata=ImageMetadata(axes="ZYX", sizes={"z": 0.3, "y": 0.1, "x": 0.1},
                                                                         units=UM))
    assert main(["deconvolve", str(tmp_path / "ch1.tif"), "--psf", str(psf), "-o", str(ref), "--num-iter", "3",
                 "--no-progress"]) == 0
    np.testing.assert_allclose(arr[..., 1], read_image(ref), rtol=1e-4, atol=1e-6)
    log = json.loads((tmp_path / "out.ome.tif.json").read_text())
    assert log["image_axes"] == "ZYXC" and log["image_shape"] == [6, 24, 20, 2]
    # simulate keeps them too, into OME-Zarr
    z = tmp_path / "sim.ome.zarr"
    assert main(["simulate", str(img), "--psf", str(psf), "-o", str(z), "--sigma", "0.01"]) == 0
    arr, meta = read_image(z, with_metadata=True)
    assert meta.axes == "ZYXC" and arr.shape == (6, 24, 20, 2) and meta.channel_names == ["DAPI", "GFP"]
    np.testing.assert_allclose(meta.voxel_size(), (0.3, 0.1, 0.1), rtol=1e-6)


def test_psf_resampled_to_the_image_voxel_size_or_assumed_equal(tmp_path, hyper, capsys):
    img, _ = hyper
    fine = _psf(tmp_path / "fine.tif", _gauss3((9, 13, 13), (2.0, 2.0, 2.0)), (0.15, 0.05, 0.05))
    out = tmp_path / "o.tif"
    assert main(["deconvolve", str(img), "--psf", str(fine), "-o", str(out), "--num-iter", "2", "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert "PSF resampled from voxel 0.15 x 0.05 x 0.05 µm to the image's 0.3 x 0.1 x 0.1 µm" in said
    log = json.loads((tmp_path / "o.tif.json").read_text())
    assert log["psf_shape"] == [5, 7, 7] and any("resampled" in n for n in log["psf_notes"])
    assert read_metadata(out).axes == "ZYXC"  # a plain .tif output is an ImageJ hyperstack with the sizes
    np.testing.assert_allclose(read_metadata(out).voxel_size(), (0.3, 0.1, 0.1), rtol=1e-6)
    plain = _psf(tmp_path / "plain.tif", _gauss3((5, 7, 7), (1.0, 1.0, 1.0)))  # no voxel size
    assert main(["deconvolve", str(img), "--psf", str(plain), "-o", str(tmp_path / "p.tif"), "--num-iter", "2",
                 "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert "PSF voxel size along z unknown: assumed equal to the image's (0.3 µm)" in said
    assert json.loads((tmp_path / "p.tif.json").read_text())["psf_shape"] == [5, 7, 7]


def test_bad_metadata_is_one_line_and_writes_nothing(tmp_path, hyper, capsys):
    img, _ = hyper
    coarse = _psf(tmp_path / "coarse.tif", _gauss3((5, 9, 9), (1.0, 1.0, 1.0)), (0.6, 0.4, 0.4))  # 4x finer image
    bad = tmp_path / "bad.ome.tif"
    tifffile.imwrite(bad, np.zeros((2, 3, 8, 8), np.float32), ome=True, metadata={"axes": "QAYX"})
    p2 = tmp_path / "p2.tif"
    write_image(p2, gaussian_psf(5, 1.0))
    keep = sorted(p.name for p in tmp_path.iterdir())
    cases = [(["deconvolve", str(img), "--psf", str(coarse)], "larger than the image"),
             (["deconvolve", str(bad), "--psf", str(p2)], "cannot interpret axes QAYX"),
             (["simulate", str(img), "--psf", str(p2)], "is a 3-D stack (ZYXC) but PSF p2.tif is 2-D"),
             (["psf", "widefield", "--na", "1", "--wavelength", "0.5", "--like", str(p2)], "gives no physical pixel size"),
             (["psf", "zernike", "--na", "1", "--wavelength", "0.5"], "missing --pixel-size")]
    for argv, message in cases:
        assert main(argv + ["-o", str(tmp_path / "x.tif")]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
        assert _nothing_written(tmp_path, keep)


def test_psf_like_takes_the_voxel_size_and_records_it(tmp_path, hyper, capsys):
    img, _ = hyper
    out = tmp_path / "wf.tif"
    assert main(["psf", "widefield", "--size", "9", "--nz", "5", "--na", "1.0", "--wavelength", "0.5",
                 "--refractive-index", "1.33", "--like", str(img), "-o", str(out), "--no-preview"]) == 0
    assert "pixel size 0.1 µm and z step 0.3 µm taken from hyper.tif's metadata" in capsys.readouterr().out
    meta = read_metadata(out)
    assert meta.axes == "ZYX"
    np.testing.assert_allclose(meta.voxel_size(), (0.3, 0.1, 0.1), rtol=1e-6)
    # the user's value wins; only the missing one is taken
    assert main(["psf", "widefield", "--size", "9", "--nz", "5", "--na", "1.0", "--wavelength", "0.5",
                 "--refractive-index", "1.33", "--like", str(img), "--pixel-size", "0.05", "-o",
                 str(tmp_path / "wf2.tif"), "--no-preview"]) == 0
    assert "z step 0.3 µm taken from hyper.tif's metadata" in capsys.readouterr().out
    np.testing.assert_allclose(read_metadata(tmp_path / "wf2.tif").voxel_size(), (0.3, 0.05, 0.05), rtol=1e-6)
    # a 2-D image gives no z step: a widefield stack then needs --z-step
    flat = tmp_path / "flat.tif"
    write_image(flat, np.ones((16, 16), np.float32), metadata=ImageMetadata(axes="YX").with_voxel_size((0.1, 0.1)))
    assert main(["psf", "widefield", "--na", "1.0", "--wavelength", "0.5", "--refractive-index", "1.33",
                 "--like", str(flat), "-o", str(tmp_path / "wf3.tif")]) == 2
    assert "missing --z-step" in capsys.readouterr().err and not (tmp_path / "wf3.tif").exists()
    # unitless kinds are written as before (no physical size)
    assert main(["psf", "gaussian", "--sigma", "1", "--size", "7", "-o", str(tmp_path / "g.tif"), "--no-preview"]) == 0
    assert read_metadata(tmp_path / "g.tif").voxel_size(2) == (None, None)


def test_time_points_are_restored_one_by_one(tmp_path, capsys):
    rng = np.random.default_rng(1)
    data = (0.1 + rng.random((2, 3, 16, 16))).astype(np.float32)  # T, Z, Y, X
    img = tmp_path / "t.ome.tif"
    tifffile.imwrite(img, data, ome=True, metadata={"axes": "TZYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1,
                                                    "PhysicalSizeZ": 0.3})
    psf = _psf(tmp_path / "psf.tif", _gauss3((3, 5, 5), (0.8, 1.0, 1.0)), (0.3, 0.1, 0.1))
    out = tmp_path / "o.ome.tif"
    assert main(["deconvolve", str(img), "--psf", str(psf), "-o", str(out), "--num-iter", "3", "--no-progress"]) == 0
    arr, meta = read_image(out, with_metadata=True)
    assert arr.shape == (2, 3, 16, 16) and meta.axes == "TZYX"
    for t in range(2):
        write_image(tmp_path / f"f{t}.tif", data[t])
        assert main(["deconvolve", str(tmp_path / f"f{t}.tif"), "--psf", str(psf), "-o", str(tmp_path / f"r{t}.tif"),
                     "--num-iter", "3", "--no-progress"]) == 0
        np.testing.assert_allclose(arr[t], read_image(tmp_path / f"r{t}.tif"), rtol=1e-4, atol=1e-6)
    assert len(json.loads((tmp_path / "o.ome.tif.json").read_text())["info"]["per_time_point"]) == 2
    assert main(["simulate", str(img), "--psf", str(psf), "-o", str(tmp_path / "s.tif"), "--seed", "2"]) == 0
    sim = read_image(tmp_path / "s.tif")
    assert sim.shape == (2, 3, 16, 16) and not np.allclose(sim[0] - data[0], sim[1] - data[1])  # seeds 2 and 3


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:32, :32]
    base = 0.5 + 0.3 * np.sin(xx / 4.0) * np.cos(yy / 5.0)
    rgb = np.stack([base, base[::-1], base.T], -1) + 0.01 * rng.standard_normal((32, 32, 3))
    write_image(tmp_path / "rgb.tif", rgb.astype(np.float32))
    write_image(tmp_path / "gray.tif", rgb[..., 0].astype(np.float32))
    write_image(tmp_path / "k.tif", gaussian_psf(5, 1.0))
    write_image(tmp_path / "k3.tif", np.stack([gaussian_psf(5, s) for s in (0.8, 1.0, 1.2)], -1))
    return tmp_path


TINY = ["--method", "rl-diffusion", "--N", "2", "--L", "2", "--M", "2", "--no-progress", "--no-preview"]


def test_diagnostic_maps_written_only_on_request(photo):
    d = photo
    assert main(["deconvolve", str(d / "gray.tif"), "--psf", str(d / "k.tif"), "-o", str(d / "a.tif"), *TINY]) == 0
    assert not (d / "a.tif.residual.tif").exists() and not (d / "a.tif.spread.tif").exists()
    assert main(["deconvolve", str(d / "gray.tif"), "--psf", str(d / "k.tif"), "-o", str(d / "b.tif"), *TINY,
                 "--diagnostics", "--seeds", "2"]) == 0
    res, spread = read_image(d / "b.tif.residual.tif"), read_image(d / "b.tif.spread.tif")
    assert res.shape == spread.shape == (32, 32) and res.dtype == np.float32
    assert np.isfinite(res).all() and spread.min() >= 0 and spread.max() > 0
    assert tifffile.imread(d / "b.tif.residual.tif").dtype == np.float32
    log = json.loads((d / "b.tif.json").read_text())
    assert log["diagnostic_maps"] == {"residual_map": str(d / "b.tif.residual.tif"),
                                      "seed_spread": str(d / "b.tif.spread.tif")}
    assert str(d / "b.tif.residual.tif") in log["outputs"] and str(d / "b.tif.spread.tif") in log["sha256"]
    assert "residual_map" not in log["info"] and "seed_spread" not in log["info"]
    assert "residual_outlier_share" in log["info"]  # the summary numbers stay
    # an existing map is not replaced without --force (checked before the work)
    assert main(["deconvolve", str(d / "gray.tif"), "--psf", str(d / "k.tif"), "-o", str(d / "c.tif"), *TINY]) == 0
    (d / "c.tif.residual.tif").write_bytes(b"x")
    (d / "c.tif").unlink(), (d / "c.tif.json").unlink()
    assert main(["deconvolve", str(d / "gray.tif"), "--psf", str(d / "k.tif"), "-o", str(d / "c.tif"), *TINY,
                 "--diagnostics"]) == 2
    assert (d / "c.tif.residual.tif").read_bytes() == b"x" and not (d / "c.tif").exists()


def test_blind_diffusion_method_writes_its_diagnostic_maps(photo):
    """``unblur blind --method fast-em --diagnostics --seeds 2``: the residual map of the returned image and
    kernel (NaN in the kernel's border band) and the spread of the seeds, beside the image, in the log."""
    d = photo
    args = ["blind", str(d / "gray.tif"), "--method", "fast-em", "--kernel-size", "5", "--steps", "2",
            "--init-kernel", "dirac", "--no-progress", "--no-preview"]
    assert main([*args, "-o", str(d / "a.tif")]) == 0
    assert not (d / "a.tif.residual.tif").exists() and not (d / "a.tif.spread.tif").exists()
    assert main([*args, "-o", str(d / "b.tif"), "--diagnostics", "--seeds", "2"]) == 0
    res, spread = read_image(d / "b.tif.residual.tif"), read_image(d / "b.tif.spread.tif")
    assert res.shape == spread.shape == (32, 32) and res.dtype == np.float32
    assert np.isnan(res[:2]).all() and np.isnan(res[:, -2:]).all() and np.isfinite(res[2:-2, 2:-2]).all()
    assert spread.min() >= 0 and spread.max() > 0
    log = json.loads((d / "b.tif.json").read_text())
    assert log["diagnostic_maps"] == {"residual_map": str(d / "b.tif.residual.tif"),
                                      "seed_spread": str(d / "b.tif.spread.tif")}
    assert "residual_map" not in log["info"] and log["info"]["seeds"] == [0, 1]
    assert np.array_equal(read_image(d / "a.tif"), read_image(d / "b.tif"))  # the result is the first seed's


def test_dps_default_mean_of_two_samples_writes_no_map_unless_asked(photo):
    d = photo
    dps = ["--method", "dps", "--steps", "3", "--no-progress", "--no-preview"]
    assert main(["deconvolve", str(d / "gray.tif"), "--psf", str(d / "k.tif"), "-o", str(d / "m.tif"), *dps]) == 0
    assert not (d / "m.tif.spread.tif").exists()  # the default seeds make the mean, not a map
    info = json.loads((d / "m.tif.json").read_text())["info"]
    assert info["averaged"] == 2 and info["nfe"] == 6 and info["seed_spread_mean"] > 0
    assert main(["deconvolve", str(d / "gray.tif"), "--psf", str(d / "k.tif"), "-o", str(d / "n.tif"), *dps,
                 "--seeds", "2"]) == 0
    assert read_image(d / "n.tif.spread.tif").shape == (32, 32)
    np.testing.assert_array_equal(read_image(d / "m.tif"), read_image(d / "n.tif"))


def test_diagnostic_maps_per_channel_psf_are_stacked_on_the_last_axis(photo):
    d = photo
    assert main(["deconvolve", str(d / "rgb.tif"), "--psf", str(d / "k3.tif"), "-o", str(d / "o.tif"), *TINY,
                 "--diagnostics"]) == 0
    assert read_image(d / "o.tif.residual.tif").shape == (32, 32, 3)
    log = json.loads((d / "o.tif.json").read_text())
    assert len(log["info"]["per_channel"]) == 3
    assert all("residual_map" not in c for c in log["info"]["per_channel"])


def test_photo_keeps_its_colour_profile_and_exif_through_the_cli(tmp_path):
    from PIL import Image, ImageCms
    rng = np.random.default_rng(3)
    rgb = np.kron(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), np.ones((6, 6, 1), np.uint8))
    exif = Image.Exif()
    exif[0x010F] = "unblur-test"
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(rgb).save(tmp_path / "p.jpg", exif=exif.tobytes(), icc_profile=profile, dpi=(240, 240))
    np.save(tmp_path / "k.npy", gaussian_psf(7, 1.2))
    assert main(["deconvolve", str(tmp_path / "p.jpg"), "--psf", str(tmp_path / "k.npy"), "--method", "rl",
                 "-o", str(tmp_path / "out.jpg"), "--no-preview"]) == 0
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.info.get("icc_profile") == profile and out.getexif()[0x010F] == "unblur-test"
        assert tuple(round(v) for v in out.info["dpi"]) == (240, 240)


def test_fits_header_survives_the_cli(tmp_path):
    pytest.importorskip("astropy")
    from astropy.io import fits
    rng = np.random.default_rng(4)
    hdu = fits.PrimaryHDU((rng.random((40, 36)) * 100).astype(np.float32))
    hdu.header.update(OBJECT="NGC 1300", CRVAL1=49.92, CTYPE1="RA---TAN")
    hdu.writeto(tmp_path / "sky.fits")
    np.save(tmp_path / "k.npy", gaussian_psf(7, 1.2))
    assert main(["deconvolve", str(tmp_path / "sky.fits"), "--psf", str(tmp_path / "k.npy"), "--method", "rl",
                 "-o", str(tmp_path / "out.fits"), "--no-preview"]) == 0
    with fits.open(tmp_path / "out.fits") as hdul:
        assert hdul[0].header["OBJECT"] == "NGC 1300" and hdul[0].header["CRVAL1"] == 49.92
        assert hdul[0].data.shape == (40, 36)


def test_rgb_tiff_photo_stays_one_rgb_page_with_its_profile(tmp_path):
    from PIL import ImageCms
    rgb = (np.random.default_rng(5).random((40, 36, 3)) * 60000).astype(np.uint16)
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    tifffile.imwrite(tmp_path / "p.tif", rgb, photometric="rgb", iccprofile=profile)
    np.save(tmp_path / "k.npy", gaussian_psf(5, 1.0))
    assert main(["deconvolve", str(tmp_path / "p.tif"), "--psf", str(tmp_path / "k.npy"), "--method", "rl",
                 "-o", str(tmp_path / "out.tif"), "--no-preview"]) == 0
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:  # not a 3-page ImageJ hyperstack
        page = tif.pages[0]
        assert len(tif.pages) == 1 and page.photometric == 2 and page.shape == (40, 36, 3)
        assert page.dtype == np.uint16 and bytes(page.tags[34675].value) == profile
