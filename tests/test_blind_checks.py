"""Blind methods: the result checks (discrepancy, collapse, support), bad input refused or warned about for
every blind method, warm starts (init_kernel) and --device for the torch-based ones."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage

import unblur
from unblur.blind.checks import DISCREPANCY_LIMIT, blind_checks, check_blind_input, initial_kernel
from unblur.errors import InputError
from unblur.metrics import kernel_error
from unblur.models.base import GaussianSmoother

SIGMA = 0.01


def _sharp(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(np.kron(rng.random((n // 8, n // 8)), np.ones((8, 8))), 0.7)


def _kernel(size=7):
    k = np.zeros((size, size))
    for i in range(size):  # a diagonal stroke with a bend: a small camera-shake-like kernel
        k[size // 2 + (i - size // 2) // 2, i] = 1.0 + 0.5 * (i % 2)
    return k / k.sum()


def _blurred(x, k, sigma=SIGMA, seed=1):
    y = ndimage.convolve(x, k, mode="wrap")
    return y + sigma * np.random.default_rng(seed).standard_normal(y.shape)


# -- blind_checks ---------------------------------------------------------------------------------

def test_checks_accept_a_good_result():
    x, k = _sharp(), _kernel()
    y = _blurred(x, k)
    c = blind_checks(y, x, k, noise_sigma=SIGMA)
    assert 0.8 < c["discrepancy"] < 1.2  # the residual is the noise
    assert not c["kernel_collapsed"] and c["ok"] and c["warnings"] == []
    assert c["kernel_support"] == [4, 7] and c["noise_sigma_source"] == "given"


def test_checks_flag_a_collapsed_result():
    """The no-blur solution: the blurred image itself with a Dirac kernel explains the data but did nothing."""
    x, k = _sharp(), _kernel()
    y = _blurred(x, k)
    dirac = np.zeros((7, 7))
    dirac[3, 3] = 1
    c = blind_checks(y, y, dirac)
    assert c["kernel_collapsed"] and c["kernel_peak"] == 1.0 and c["kernel_support"] == [1, 1]
    assert not c["ok"] and any("collapsed" in w for w in c["warnings"])


def test_checks_flag_a_kernel_that_does_not_explain_the_data():
    x, k = _sharp(), _kernel()
    y = _blurred(x, k)
    wrong = np.ones((7, 7)) / 49
    c = blind_checks(y, x, wrong, noise_sigma=SIGMA)
    assert c["discrepancy"] > DISCREPANCY_LIMIT and any("discrepancy" in w for w in c["warnings"])


def test_checks_colour_and_even_kernel():
    x, k = _sharp(), _kernel()
    xc = np.stack([x, 0.5 * x, 1 - x], -1)
    yc = np.stack([_blurred(xc[..., c], k, seed=c) for c in range(3)], -1)
    assert blind_checks(yc, xc, k, noise_sigma=SIGMA)["discrepancy"] < 1.2
    k8 = np.zeros((8, 8))
    k8[2:6, 4] = 0.25  # centre pixel n // 2 = 4
    y8 = np.fft.ifft2(np.fft.fft2(x) * np.fft.fft2(np.roll(np.pad(k8, ((0, 56), (0, 56))), (-4, -4), (0, 1)))).real
    assert blind_checks(y8, x, k8, noise_sigma=SIGMA)["discrepancy"] < 0.05


# -- bad input ------------------------------------------------------------------------------------

def _nan_image():
    y = _sharp()
    y[5, 7] = np.nan
    return y


REFUSED = {
    "nan": (_nan_image, {}, "NaN"),
    "flat": (lambda: np.full((64, 64), 0.5), {}, "flat|constant"),
    "saturated": (lambda: np.ones((64, 64)), {}, "flat|constant"),
    "kernel over a third": (_sharp, {"kernel_size": 23}, "larger than a third"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_check_blind_input_refuses(case):
    make, kw, match = REFUSED[case]
    with pytest.raises(InputError, match=match):
        check_blind_input(make(), **kw)


@pytest.mark.parametrize("image, match", [
    (np.tile(np.linspace(0, 1, 64), (64, 1)), "no edge"),                           # a ramp: blur leaves it unchanged
    (0.5 + SIGMA * np.random.default_rng(0).standard_normal((64, 64)), "no edge"),   # noise only
    (np.clip(2 * _sharp(), 0, 1), "saturated"),
])
def test_check_blind_input_warns(image, match):
    with pytest.warns(UserWarning, match=match):
        notes = check_blind_input(image, 7)
    assert any(match in n for n in notes)


def test_check_blind_input_quiet_on_a_blurred_image():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_blind_input(_blurred(_sharp(), _kernel()), 7) == []


BLIND_ARGS = {
    "fast-em": dict(kernel_size=7, steps=2, prior=GaussianSmoother(), regularizer="l2"),
    "diffusion-em": dict(kernel_size=7, steps=2, em_iters=1, prior=GaussianSmoother(), regularizer="l2"),
    "selfdeblur": dict(kernel_size=7, iterations=2, refine_iters=1),
    "vdip-sparse": dict(kernel_size=7, iterations=2, refine_iters=1),
    "vdip-extreme": dict(kernel_size=7, iterations=2, refine_iters=1),
    "l0": dict(kernel_size=7),
    "deepblur": dict(),
}


@pytest.mark.parametrize("method, case", [(m, c) for m in BLIND_ARGS for c in ("nan", "flat", "saturated", "kernel over a third")
                                          if c != "kernel over a third" or "kernel_size" in BLIND_ARGS[m]])
def test_every_blind_method_refuses_bad_input(method, case):  # deep-blur has no kernel size to refuse
    make, kw, match = REFUSED[case]
    args = {**BLIND_ARGS[method], **kw}
    with pytest.raises(InputError, match=match):
        unblur.blind_deconvolve(make(), method=method, **args)


@pytest.mark.parametrize("method", ["fast-em", "selfdeblur", "deepblur"])
def test_blind_methods_report_checks_and_warn_without_edges(method):
    ramp = np.tile(np.linspace(0.2, 0.8, 64), (64, 1))
    with pytest.warns(UserWarning, match="no edge"):
        r = unblur.blind_deconvolve(ramp, method=method, **BLIND_ARGS[method])
    assert any("no edge" in n for n in r.info["notes"])
    c = r.info["checks"]
    assert {"discrepancy", "kernel_collapsed", "kernel_support", "kernel_peak", "ok", "warnings"} <= set(c)


# -- warm starts ----------------------------------------------------------------------------------

def test_initial_kernel_resizes_and_refuses():
    notes = []
    k = initial_kernel(np.pad(_kernel(7), 2), 7, np.zeros((64, 64)), notes=notes)
    assert k.shape == (7, 7) and abs(k.sum() - 1) < 1e-6 and "resized" in notes[0]
    assert kernel_error(k, _kernel(7)) < 1e-6  # zero border dropped: the same kernel
    small = initial_kernel(_kernel(5), 9, notes=notes)
    assert small.shape == (9, 9) and kernel_error(small, _kernel(5)) < 1e-6
    with pytest.raises(InputError, match="larger than a third"):
        initial_kernel(np.ones((25, 25)), 7, np.zeros((64, 64)))
    with pytest.raises(InputError, match="negative"):
        initial_kernel(-_kernel(7), 7)
    with pytest.raises(InputError, match="unknown init_kernel"):
        initial_kernel("dirac", 7, np.zeros((64, 64)))


def test_initial_kernel_l0():
    x, k = _sharp(96), _kernel(7)
    notes = []
    k0 = initial_kernel("l0", 9, _blurred(x, k), noise_sigma=SIGMA, notes=notes)
    assert k0.shape == (9, 9) and "l0" in notes[0]
    assert kernel_error(k0, k) < kernel_error(np.ones((1, 1)), k)


def test_fast_em_warm_start_replaces_the_dirac():
    from unblur.blind.diffusion_em.em_run import start_blind

    x, k = _sharp(), _kernel()
    y = np.clip(_blurred(x, k), 0, 1)
    kw = dict(guidance="pigdm", particles=1, kernel_size=7, steps=4, noise_sigma=SIGMA, seed=0, prior=GaussianSmoother(),
              kernel_prior=None, regularizer="l2", lam=None, beta=1e3, hqs_iters=10)
    _, state = start_blind(y, init_kernel=2 * np.pad(k, 1), **kw)  # resized and normalised
    assert np.allclose(state.kernel.numpy(), k, atol=1e-6)
    args = dict(kernel_size=7, steps=4, prior=GaussianSmoother(), regularizer="l2", noise_sigma=SIGMA)
    warm = unblur.blind_deconvolve(y, method="fast-em", init_kernel=np.pad(k, 1), mstep_start=0.5, **args)
    assert warm.info["init_kernel"] == "array" and any("resized" in n for n in warm.info["notes"])
    assert warm.info["first_mstep"] == 2 and len(warm.info["kernel_history"]) == 2  # held for 2 of the 4 steps
    with pytest.raises(InputError, match="mstep_start"):
        unblur.blind_deconvolve(y, method="fast-em", mstep_start=1.0, **args)


@pytest.mark.parametrize("method", ["selfdeblur", "vdip-sparse"])
def test_dip_warm_start_prefits_the_kernel_network(method):
    x, k = _sharp(), _kernel()
    y = np.clip(_blurred(x, k), 0, 1)
    r = unblur.blind_deconvolve(y, method=method, kernel_size=7, preset="fast-c2f", iterations=3, refine_iters=1,
                                init_kernel=k)
    assert r.info["init_kernel"] == "array" and len(r.info["level_iterations"]) == 1  # the pyramid is skipped
    assert kernel_error(r.kernel, k) < 0.05  # the generator starts at (and after 3 steps is still near) the kernel


# -- devices --------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["selfdeblur", "deepblur"])
def test_device_cpu_runs(method):
    r = unblur.blind_deconvolve(_sharp(), method=method, device="cpu", **BLIND_ARGS[method])
    assert r.image.shape == (64, 64) and np.isfinite(r.image).all()
    assert unblur.registry.get_method(method).capabilities.device


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("method", ["selfdeblur", "vdip-sparse", "deepblur", "fast-em"])
def test_device_cuda_refused_without_gpu(method):
    with pytest.raises(InputError, match="CUDA"):
        unblur.blind_deconvolve(_sharp(), method=method, device="cuda", **BLIND_ARGS[method])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_deepblur_api_refuses_cuda_without_gpu():
    from unblur.blind.deepblur import api

    with pytest.raises(InputError, match="CUDA"):
        api.identify_psf(_sharp(), device="cuda")
    with pytest.raises(InputError, match="CUDA"):
        api.deepblur(_sharp(), device="cuda")


def test_deepblur_output_is_non_negative(monkeypatch):
    from unblur.blind.deepblur import api

    real = api.deepblur

    def negative(*a, **kw):
        r = real(*a, **kw)
        r["image"] = r["image"] - 0.5  # a network output that dips below 0
        return r

    monkeypatch.setattr(api, "deepblur", negative)
    r = unblur.blind_deconvolve(_sharp(), method="deepblur")
    assert r.image.min() >= 0 and any("negative pixel" in n for n in r.info["notes"])


# -- CLI ------------------------------------------------------------------------------------------

def _cli_image(tmp_path):
    from unblur.io import write_image

    img = tmp_path / "y.tif"
    write_image(img, np.clip(_blurred(_sharp(), _kernel()), 0, 1).astype(np.float32))
    return img


def test_cli_init_kernel_refused_for_other_methods(tmp_path, capsys):
    from unblur.cli.main import main

    img = _cli_image(tmp_path)
    for method in ("l0", "deepblur"):
        assert main(["blind", str(img), "--method", method, "--init-kernel", "l0", "-o", str(tmp_path / f"{method}.tif")]) == 2
        assert "takes no --init-kernel" in capsys.readouterr().err


def test_cli_init_kernel_file_too_large(tmp_path, capsys):
    from unblur.cli.main import main
    from unblur.io import write_image

    img = _cli_image(tmp_path)
    write_image(tmp_path / "k.tif", np.ones((31, 31), np.float32) / 961)
    argv = ["blind", str(img), "--method", "selfdeblur", "--init-kernel", str(tmp_path / "k.tif"), "-o", str(tmp_path / "o.tif")]
    assert main(argv) == 2
    assert "larger than a third" in capsys.readouterr().err and not (tmp_path / "o.tif").exists()


def test_cli_warns_on_a_collapsed_kernel_and_logs_the_checks(tmp_path, capsys):
    """A Dirac warm start and 2 iterations: the kernel stays a Dirac, which the CLI must say."""
    from unblur.cli.main import main
    from unblur.io import write_image

    img = _cli_image(tmp_path)
    dirac = np.zeros((7, 7), np.float32)
    dirac[3, 3] = 1
    write_image(tmp_path / "k.tif", dirac)
    out = tmp_path / "o.tif"
    argv = ["blind", str(img), "--method", "selfdeblur", "--kernel-size", "7", "--iterations", "2", "--refine-iters", "1",
            "--init-kernel", str(tmp_path / "k.tif"), "-o", str(out), "--no-progress"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warning: the kernel collapsed towards a Dirac" in err
    assert "note: init_kernel 7x7" not in err  # the right size: no resize note
    log = next(p for p in tmp_path.iterdir() if p.name.startswith("o.") and p.suffix == ".json")
    data = json.loads(log.read_text())
    assert data["info"]["checks"]["kernel_collapsed"] is True and data["params"]["init_kernel"].endswith("k.tif")


def test_fast_em_periodizes_a_non_periodic_image():
    """A valid-mode blur (a photograph) is extended to a smooth periodic image and the result cropped back."""
    x, k = _sharp(80), _kernel()
    y = np.clip(ndimage.convolve(x, k, mode="reflect")[5:69, 3:67] + 0.01 * np.random.default_rng(0).standard_normal((64, 64)), 0, 1)
    args = dict(kernel_size=7, steps=2, prior=GaussianSmoother(), regularizer="l2", noise_sigma=SIGMA)
    per = unblur.blind_deconvolve(y, method="fast-em", boundary="periodize", **args)
    circ = unblur.blind_deconvolve(y, method="fast-em", boundary="circular", **args)
    assert per.image.shape == circ.image.shape == y.shape and per.info["boundary"] == "periodize"
    assert all(p.shape == y.shape for p in per.info["particles"])
    assert circ.info["boundary"] == "circular"


def test_cli_init_kernel_wrong_size_is_resized_with_a_note(tmp_path, capsys):
    from unblur.cli.main import main
    from unblur.io import write_image

    img = _cli_image(tmp_path)
    write_image(tmp_path / "k.tif", np.pad(_kernel(), 2).astype(np.float32))
    argv = ["blind", str(img), "--method", "selfdeblur", "--kernel-size", "7", "--iterations", "2", "--refine-iters", "1",
            "--init-kernel", str(tmp_path / "k.tif"), "-o", str(tmp_path / "o.tif"), "--no-progress"]
    assert main(argv) == 0
    assert "note: init_kernel 11x11 resized to the method's 7x7 support" in capsys.readouterr().err
