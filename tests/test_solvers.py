"""Classical solvers: Richardson-Lucy (positivity, flux, zeros, stopping, acceleration, RL-TV, 3-D),
Wiener, Tikhonov (CG vs Fourier), conjugate gradient, and agreement with scikit-image."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from scipy.ndimage import gaussian_filter
from skimage.restoration import richardson_lucy as sk_rl

from conftest import gaussian_psf
from unblur.errors import InputError
from unblur.metrics import psnr
from unblur.physics.convolution import Convolution, convolve
from unblur.solvers import richardson_lucy, rl_tv, tikhonov, wiener
from unblur.solvers.cg import conjugate_gradient
from unblur.physics.operator import gradient_normal as _grad_ata
from unblur.solvers.richardson_lucy import rl_iterations


def scene(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((n, n), np.float32)
    x[n // 4: n // 2, n // 4: 3 * n // 4] = 0.8
    x[n // 2 + 4: n - 8, 8: n // 3] = 0.5
    x += gaussian_filter(rng.random((n, n)), 2).astype(np.float32) * 0.4
    return np.clip(x, 0, 1).astype(np.float32)


def blur(x, psf, boundary="circular"):
    return convolve(torch.from_numpy(x)[None, None], torch.from_numpy(psf), boundary)[0, 0].numpy()


@pytest.fixture(scope="module")
def blurred():
    x = scene()
    psf = gaussian_psf(9, 1.6)
    y = blur(x, psf) + 0.005 * np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    return x, np.clip(y, 0, None).astype(np.float32), psf


# ---------------------------------------------------------------- Richardson-Lucy properties
@settings(max_examples=15, deadline=None)
@given(n=st.integers(8, 24), k=st.integers(1, 7), seed=st.integers(0, 1000), zeros=st.booleans())
def test_rl_positive_and_flux_preserving(n, k, seed, zeros):
    """Circular RL: x >= 0 and sum(A x_k) == sum(y) after every step, also with zero regions."""
    rng = np.random.default_rng(seed)
    y = rng.random((n, n)) * 10
    if zeros:
        y[: n // 2] = 0
    psf = rng.random((k, k)) + 0.01
    psf /= psf.sum()
    op = Convolution(torch.from_numpy(psf), (n, n), "circular")
    yt = torch.from_numpy(y)[None, None]
    fluxes = []

    def check(it, x, info):
        assert bool((x >= 0).all()) and bool(torch.isfinite(x).all())
        fluxes.append(float(op.A(x).sum()))

    from unblur.optim import Progress
    rl_iterations(op, yt, yt + 1e-3, 10, progress=Progress(10, "t", False, check))
    np.testing.assert_allclose(fluxes, y.sum(), rtol=1e-9)


@pytest.mark.parametrize("boundary", ["circular", "valid", "zero", "replicate", "reflect"])
def test_rl_black_image_no_nan(boundary):
    psf = gaussian_psf(5, 1.0)
    out = richardson_lucy(np.zeros((16, 16), np.float32), psf, 10, boundary=boundary)
    assert np.all(out == 0)
    y = np.zeros((16, 16), np.float32)
    y[4:8, 4:8] = 1
    for accel in (None, "biggs-andrews"):
        out = richardson_lucy(y, psf, 20, boundary=boundary, acceleration=accel, init="flat")
        assert np.isfinite(out).all() and (out >= 0).all()
        assert out[12:, 12:].max() < 1e-3  # dark regions stay dark


def test_rl_negative_pixels_clipped_with_warning():
    y = np.full((16, 16), 0.5, np.float32)
    y[0, :3] = -0.2
    with pytest.warns(UserWarning, match="3 negative pixel"):
        out = richardson_lucy(y, gaussian_psf(3, 1.0), 5)
    assert (out >= 0).all()


def test_rl_improves_and_matches_skimage(blurred):
    x, y, psf = blurred
    ours = richardson_lucy(y, psf, 30, boundary="zero", init="flat", normalize=False, clip=True)
    ref = sk_rl(y, psf, num_iter=30, clip=True)
    assert np.abs(ours - ref).max() < 1e-4
    good = richardson_lucy(y, psf, 30, boundary="circular")
    assert psnr(good, x) > psnr(y, x) + 2.0


def test_rl_stopping_rules(blurred):
    x, y, psf = blurred
    _, info = richardson_lucy(y, psf, 500, boundary="circular", stop="relative-change", tol=1e-3, return_info=True)
    assert info["stopped_by"] == "relative-change" and 2 < info["iterations"] < 500
    # discrepancy: stops once the residual is at the noise level (true sigma 0.005)
    out, info = richardson_lucy(y, psf, 500, boundary="circular", stop="discrepancy", noise_sigma=0.005,
                                return_info=True)
    assert info["stopped_by"] == "discrepancy" and info["iterations"] < 500
    res = np.sqrt(np.mean((blur(out, psf) - y) ** 2))
    assert 0.8 * 0.005 < res <= 0.0051
    _, info = richardson_lucy(y, psf, 7, boundary="circular", return_info=True)
    assert info == {**info, "iterations": 7, "stopped_by": "num_iter"}


def test_biggs_andrews_faster(blurred):
    x, y, psf = blurred
    target = psnr(richardson_lucy(y, psf, 40, boundary="circular"), x)
    hits = {}
    for accel in (None, "biggs-andrews"):
        curve = []
        richardson_lucy(y, psf, 40, boundary="circular", acceleration=accel,
                        callback=lambda it, xk, info: curve.append(psnr(xk[0, 0].numpy(), x)))
        hits[accel] = next(i for i, p in enumerate(curve) if p >= target - 1e-6) + 1
    assert hits[None] == 40 and hits["biggs-andrews"] <= 25


def test_rl_tv_smoother_than_rl(blurred):
    x, y, psf = blurred
    plain = richardson_lucy(y, psf, 100, boundary="circular")
    tv = rl_tv(y, psf, 100, lambda_tv=0.01, boundary="circular")
    tv_norm = lambda a: np.abs(np.diff(a, axis=0)).sum() + np.abs(np.diff(a, axis=1)).sum()  # noqa: E731
    assert tv_norm(tv) < 0.95 * tv_norm(plain)
    assert psnr(tv, x) > psnr(y, x)
    with pytest.raises(ValueError):
        rl_tv(y, psf, 5, lambda_tv=0)


def test_rl_3d_stack():
    rng = np.random.default_rng(0)
    x = gaussian_filter(rng.random((12, 24, 24)), 1.5).astype(np.float32)
    x = (x - x.min()) / (x.max() - x.min())
    psf = gaussian_psf(5, 1.0, ndim=3)
    y = blur(x, psf, "circular").astype(np.float32)
    out = richardson_lucy(y, psf, 30, boundary="circular")
    assert out.shape == x.shape and psnr(out, x) > psnr(y, x) + 1.0
    np.testing.assert_allclose(blur(out, psf).sum(), y.sum(), rtol=1e-4)


def test_torch_in_torch_out_and_colour(blurred):
    x, y, psf = blurred
    t = torch.from_numpy(np.stack([y, y * 0.5]))[None]  # (1, 2, H, W)
    out = richardson_lucy(t, psf, 5, boundary="circular")
    assert isinstance(out, torch.Tensor) and out.shape == t.shape
    rgb = np.stack([y, 0.5 * y, 0.25 * y], -1)
    out_rgb = richardson_lucy(rgb, psf, 5, boundary="circular")
    assert out_rgb.shape == rgb.shape
    np.testing.assert_allclose(out_rgb[..., 1], 0.5 * out_rgb[..., 0], rtol=1e-3, atol=1e-5)
    w = wiener(t, psf, balance=1e-2)
    assert isinstance(w, torch.Tensor) and w.shape == t.shape


# ---------------------------------------------------------------- linear methods
@pytest.mark.parametrize("boundary", ["circular", "reflect"])
def test_wiener_improves(blurred, boundary):
    x, y, psf = blurred
    out, info = wiener(y, psf, boundary=boundary, return_info=True)
    assert psnr(out, x) > psnr(y, x) + 1.5
    assert 0.002 < info["noise_sigma"] < 0.01


@pytest.mark.parametrize("boundary", ["circular", "reflect", "valid"])
def test_tikhonov_improves(blurred, boundary):
    x, y, psf = blurred
    out = tikhonov(y, psf, lam=2e-3, boundary=boundary)
    assert out.shape == y.shape
    assert psnr(out, x) > psnr(y, x) + 1.5


@pytest.mark.parametrize("reg", ["identity", "gradient"])
def test_tikhonov_cg_matches_fourier_on_circular(blurred, reg):
    _, y, psf = blurred
    lam = 1e-2
    fourier = tikhonov(y.astype(np.float64), psf, lam=lam, reg=reg, boundary="circular")
    op = Convolution(torch.from_numpy(psf).double(), y.shape, "circular")
    yt = torch.from_numpy(y).double()[None, None]
    L = (lambda v: v) if reg == "identity" else _grad_ata
    cg = conjugate_gradient(lambda v: op.AtA(v) + lam * L(v), op.A_adjoint(yt), max_iter=300, tol=1e-10)
    np.testing.assert_allclose(cg[0, 0].numpy(), fourier, atol=1e-4)


def test_conjugate_gradient_batched():
    g = torch.Generator().manual_seed(0)
    M = torch.randn(2, 6, 6, generator=g, dtype=torch.float64)
    M = M @ M.transpose(1, 2) + 6 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(2, 6, generator=g, dtype=torch.float64)
    x = conjugate_gradient(lambda v: torch.einsum("bij,bj->bi", M, v), b, max_iter=50, tol=1e-12)
    np.testing.assert_allclose(x.numpy(), torch.linalg.solve(M, b).numpy(), atol=1e-9)


def test_biggs_andrews_on_flowdec_bars(shared_data):
    """Real 3-D data (flowdec bars-25pct): accelerated RL reaches plain RL's 60-iteration PSNR in <= 30."""
    from unblur.io import read_image
    root = shared_data("microscopy/flowdec/bars-25pct")
    y, psf, truth = (read_image(root / f"{n}.tif") for n in ("data", "kernel", "actual"))
    scale = float(truth.sum() / y.sum())
    curves = {}
    for accel in (None, "biggs-andrews"):
        c = []
        with pytest.warns(UserWarning, match="normalised"):
            richardson_lucy(y, psf, 60, boundary="circular", acceleration=accel,
                            callback=lambda it, x, info: c.append(psnr(x[0, 0].numpy() * scale, truth, float(truth.max()))))
        curves[accel] = np.array(c)
    target = curves[None][-1]
    assert target > curves[None][0] + 2.0
    first = int(np.nonzero(curves["biggs-andrews"] >= target)[0][0]) + 1
    assert first <= 30


def test_rl_valid_boundary_on_bundled_example_improves():
    """Regression: A^T 1 ~ 1e-10 (and negative round-off) at the corners of the extended object once
    made the 'valid' update explode to an all-zero image on the bundled example."""
    from pathlib import Path

    from unblur.io import read_image
    from unblur.metrics import psnr

    ex = Path(__file__).resolve().parents[1] / "examples"
    sharp, blurred, psf = (read_image(ex / n) for n in ("sharp.png", "blurred.tif", "psf.tif"))
    for boundary in ("valid", "reflect"):
        restored = richardson_lucy(blurred, psf, 30, boundary=boundary)
        assert np.isfinite(restored).all()
        assert psnr(restored, sharp) > psnr(blurred, sharp) + 2.0, boundary
        assert abs(restored.mean() / blurred.mean() - 1) < 0.01


@pytest.mark.parametrize("boundary", ["zero", "valid", "circular"])
def test_rl_grid_reuse_equals_plain_adjoint(boundary, monkeypatch):
    """The inner loop writes y / A x into one zero-padded FFT grid (no autograd); with a gradient
    through the loop it uses plain A^T: both give the same iterates, zeros in the data included
    (same FFT backend on both sides, so that only the loop differs)."""
    monkeypatch.setenv("UNBLUR_FFT", "torch")
    rng = np.random.default_rng(3)
    y = torch.from_numpy(rng.uniform(0, 1, (1, 1, 40, 36)).astype(np.float32))
    y[..., :6, :] = 0  # an empty band: exercises the guarded ratio
    psf = torch.from_numpy(gaussian_psf(9, 1.5))
    op = Convolution(psf, (40, 36), boundary)
    x0 = op.initial_object(y).clamp_min(1e-3) if boundary == "valid" else torch.full_like(y, 0.5)
    fast, _ = rl_iterations(op, y, x0, 15)
    slow, _ = rl_iterations(op, y, x0.clone().requires_grad_(True), 15)
    assert torch.allclose(fast, slow.detach(), rtol=1e-5, atol=1e-6)


def test_scikit_image_habits(blurred):
    """Everything after psf is keyword-only in wiener/tikhonov; float64 in gives float64 out."""
    x, y, psf = blurred
    with pytest.raises(TypeError):
        wiener(y, psf, 0.1)  # scikit-image's third argument is balance: refuse rather than misread it
    with pytest.raises(TypeError):
        tikhonov(y, psf, 1e-3)
    y64 = y.astype(np.float64)
    for out in (wiener(y64, psf, balance=1e-2), tikhonov(y64, psf, lam=1e-2), richardson_lucy(y64, psf, 3)):
        assert out.dtype == np.float64
    assert richardson_lucy(y, psf, 3).dtype == np.float32
    assert richardson_lucy((y * 255).astype(np.uint8), psf, 3).dtype == np.float32
    t = torch.from_numpy(y64)[None, None]
    assert richardson_lucy(t, psf, 3).dtype == torch.float64
    # string spellings of "no rule" / "no acceleration" are the same as None
    a = richardson_lucy(y, psf, 4, stop="none", acceleration="none")
    np.testing.assert_array_equal(a, richardson_lucy(y, psf, 4, stop=None, acceleration=None))


def test_resolve_device():
    from unblur.arrays import resolve_device
    from unblur.errors import InputError

    assert resolve_device(None) is None and resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(InputError, match="unknown device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA was requested but this torch has no GPU"):
            resolve_device("cuda")
        with pytest.raises(InputError, match="CUDA was requested"):
            richardson_lucy(np.ones((8, 8), np.float32), np.ones((3, 3)), 2, device="cuda")


def test_wiener_estimates_noise_on_every_channel(blurred):
    """Colour input: the noise sigma is estimated per channel and averaged (not on the channel mean,
    which is sqrt(C) too small for independent noise)."""
    x, y, psf = blurred
    rng = np.random.default_rng(5)
    clean = np.stack([blur(x, psf)] * 3, -1)
    noisy = (clean + 0.03 * rng.standard_normal(clean.shape)).astype(np.float32)
    _, info = wiener(noisy, psf, return_info=True)
    assert abs(info["noise_sigma"] - 0.03) < 0.004


# ---------------------------------------------------------------- RL in one in-place FFT grid
@pytest.mark.parametrize("shape,k", [((30, 34), (5, 7)), ((10, 16, 14), (3, 5, 4))])
@pytest.mark.parametrize("boundary", ["valid", "circular", "zero"])
@pytest.mark.parametrize("accel,otf", [("none", "stored"), ("biggs-andrews", "computed"), ("biggs-andrews", "stored")])
def test_rl_grid_step_equals_generic_step(shape, k, boundary, accel, otf):
    """The in-place grid RL (GridStep, driver-owned Biggs-Andrews) gives the generic step's iterates and
    stopping iteration, with a background and per-channel PSFs."""
    import sys
    from unblur.optim.driver import StoppingRule
    from unblur.physics.convolution import Convolution
    R = sys.modules["unblur.solvers.richardson_lucy"]
    g = torch.Generator().manual_seed(2)
    psf = torch.rand((2,) + k, generator=g)
    psf /= psf.sum(tuple(range(1, psf.ndim)), keepdim=True)
    op = Convolution(psf, shape, boundary)
    y = torch.rand((1, 2) + shape, generator=g) * 5
    x0 = op.initial_object(y) + 0.01
    runs = []
    for lean in (True, False):
        supported = R.GridStep.supported
        if not lean:
            R.GridStep.supported = staticmethod(lambda *a: False)
        try:
            runs.append(R.rl_iterations(op, y, x0, 12, acceleration=accel, background=0.1, otf=otf, state="full",
                                        stop=StoppingRule("relative-change", tol=3e-3)))
        finally:
            R.GridStep.supported = supported
    (a, ia), (b, ib) = runs
    assert ia == ib and ia["iterations"] >= 3
    # rtol: at the valid object's corners A^T 1 is ~1e-3 of its maximum, where the FFT's round-off
    # (generic step) is ~1e-4 relative and the separable sum (grid step) is exact
    torch.testing.assert_close(a, b, rtol=2e-4, atol=2e-5 * float(b.max()))
    assert float(x0.min()) >= 0.01   # x0 not overwritten unless asked


def test_rl_grid_memory_model():
    """Modelled peak of the in-place RL: data + iterate(s) + FFT buffer (+ OTF); 'auto' stays within the target."""
    import sys
    from unblur.physics.convolution import Convolution
    R = sys.modules["unblur.solvers.richardson_lucy"]
    op = Convolution(torch.ones(15, 31, 31) / (15 * 31 * 31), (64, 1024, 1024), "circular")
    assert R.GridStep.memory_multiple(op) == pytest.approx(1 + 1 + 2 * 513 / 512)
    assert R.GridStep.memory_multiple(op, "biggs-andrews", "computed") == pytest.approx(1 + 3 + 513 / 512)
    op = Convolution(torch.ones(15, 31, 31) / (15 * 31 * 31), (64, 1024, 1024), "valid")
    assert op.fft_shape == (80, 1056, 1056) and op.in_shape == (78, 1054, 1054)
    assert R.GridStep.memory_multiple(op) < R.MEMORY_TARGET < R.GridStep.memory_multiple(op, "biggs-andrews")


def test_rl_lean_biggs_andrews_state():
    """Biggs-Andrews with its state on the data window in bfloat16 ("lean", chosen by "auto" where the
    float32 state would exceed the memory target): as accurate as the full state on a 3-D valid problem,
    and still faster than plain RL."""
    import sys
    R = sys.modules["unblur.solvers.richardson_lucy"]
    rng = np.random.default_rng(3)
    truth = np.zeros((20, 40, 40), np.float32)
    truth[tuple(rng.integers(0, s, 60) for s in truth.shape)] = 1.0
    truth = gaussian_filter(truth, 1.0) * 3000 + 20
    kz, ky = np.meshgrid(np.arange(7) - 3, np.arange(11) - 5, indexing="ij")
    psf = np.exp(-(kz[..., None] ** 2) / 4 - (ky[..., None] ** 2 + (np.arange(11) - 5) ** 2) / 8).astype(np.float32)
    psf /= psf.sum()
    op = Convolution(torch.from_numpy(psf), (14, 30, 30), "valid")
    y = rng.poisson(op.A(torch.from_numpy(truth)[None, None])[0, 0].numpy()).astype(np.float32)
    inner = truth[3:17, 5:35, 5:35]
    lean = R.GridStep(op, torch.from_numpy(y)[None, None], eps=1e-9, state="lean")
    assert lean.state_dtype == torch.bfloat16 and lean.state_region[2:] == (slice(3, 17), slice(5, 35), slice(5, 35))
    assert R.GridStep.memory_multiple(op, "biggs-andrews", "computed", "lean") < \
        R.GridStep.memory_multiple(op, "biggs-andrews", "computed", "full")
    scores = {}
    for state, accel in (("full", "biggs-andrews"), ("lean", "biggs-andrews"), ("full", None)):
        x0 = op.initial_object(torch.from_numpy(y)[None, None]) + 1e-3
        x, _ = rl_iterations(op, torch.from_numpy(y)[None, None], x0, 12, acceleration=accel, state=state)
        scores[state, accel] = psnr(op.crop_object(x)[0, 0].numpy(), inner, float(inner.max()))
    assert scores["lean", "biggs-andrews"] >= scores["full", "biggs-andrews"] - 0.1
    assert scores["lean", "biggs-andrews"] > scores["full", None] + 0.3


# --- missing data (NaN pixels) ----------------------------------------------------------------------------

def _with_missing(seed=0):
    """A blurred natural crop (valid blur, noise 1%), 2% isolated NaN pixels and a 20-px NaN border."""
    from skimage import data
    rng = np.random.default_rng(seed)
    x = data.camera()[100:228, 100:228].astype(np.float32) / 255
    k = gaussian_psf(9, 1.8)
    y = np.clip(convolve(torch.from_numpy(np.pad(x, 4, mode="reflect"))[None, None], torch.from_numpy(k),
                         "circular")[0, 0, 4:-4, 4:-4].numpy() + rng.normal(0, 0.01, x.shape).astype(np.float32), 0, None)
    holed = y.copy()
    bad = rng.random(y.shape) < 0.02
    holed[bad] = np.nan
    holed[:, :20] = np.nan
    return x, k, y, holed, bad


def test_rl_leaves_missing_pixels_out_of_the_fit():
    x, k, y, holed, bad = _with_missing()
    with pytest.raises(InputError, match="missing='mask'"):  # the default refuses, and names the option
        richardson_lucy(holed, k, 30)
    full = richardson_lucy(y, k, 30)
    with pytest.warns(UserWarning, match=r"NaN/Inf pixel\(s\) .* left out of the fit as missing data"):
        out, info = richardson_lucy(holed, k, 30, missing="mask", return_info=True)
    assert out.shape == y.shape and out.dtype == np.float32 and "missing data" in info["notes"][0]
    assert np.isnan(out[:, :14]).all() and np.isfinite(out[:, 20:]).all()  # NaN only where no data reaches
    inner = np.s_[:, 30:]
    err = lambda a: float(np.abs(a[inner] - x[inner]).mean())  # noqa: E731
    assert err(out) < err(full) + 0.002  # as good as with every pixel observed
    zero_filled = richardson_lucy(np.nan_to_num(holed, nan=0.0), k, 30)
    assert err(zero_filled) > err(out) + 0.01  # what "replace them with 0" gives
    seen = bad & np.isfinite(out)
    assert np.abs(out[seen] - x[seen]).mean() < 0.04  # the missing pixels themselves are estimated
    same = richardson_lucy(y, k, 30, missing="mask")  # nothing missing: the plain result
    np.testing.assert_array_equal(same, full)
    # the discrepancy rule over the observed pixels: as many iterations as with every pixel observed
    runs = [richardson_lucy(a, k, 300, stop="discrepancy", return_info=True, **kw)[1]["iterations"]
            for a, kw in ((y, {}), (holed, {"missing": "mask"}))]
    assert runs[0] < 300 and abs(runs[1] - runs[0]) <= 1, runs


def test_rl_tv_missing_data_and_colour():
    x, k, y, holed, bad = _with_missing(1)
    rgb = np.stack([holed, holed * 0.8, holed * 0.6], -1)
    with pytest.warns(UserWarning, match="missing data"):
        out = rl_tv(rgb, k, 20, missing="mask")
    assert out.shape == rgb.shape and np.isnan(out[:, :14]).all() and np.isfinite(out[:, 20:]).all()


def test_tv_admm_missing_data():
    from unblur.solvers.tv import tv_admm
    x, k, y, holed, bad = _with_missing(2)
    full = tv_admm(y, k, noise_sigma=0.01, num_iter=40)
    out = tv_admm(holed, k, noise_sigma=0.01, num_iter=40, missing="mask")
    assert np.isnan(out[:, :14]).all() and np.isfinite(out[:, 20:]).all()
    inner = np.s_[:, 30:]
    err = lambda a: float(np.abs(a[inner] - x[inner]).mean())  # noqa: E731
    assert err(out) < err(full) + 0.003, (err(out), err(full))
    assert err(tv_admm(np.nan_to_num(holed, nan=0.0), k, noise_sigma=0.01, num_iter=40)) > err(out) + 0.01
