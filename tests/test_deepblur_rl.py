"""deep-blur with Richardson-Lucy as the second stage (``deblur="rl"``): IN's PSF, then RL; the PSF
model's forward operator updated in place (``out=``)."""

import numpy as np
import pytest
import torch

from unblur.api import blind_deconvolve
from unblur.blind.deepblur.api import identify_psf
from unblur.blind.deepblur.psf_model import product_convolution_model, zernike_psf_model
from unblur.errors import InputError
from unblur.solvers import richardson_lucy


def _image(shape=(72, 72), seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros(shape, np.float32)
    x[rng.integers(0, shape[0], 40), rng.integers(0, shape[1], 40)] = 1.0
    from scipy.ndimage import gaussian_filter
    return np.clip(gaussian_filter(x, 1.5) * 8, 0, 1).astype(np.float32)


def test_rl_second_stage_uses_the_identified_psf():
    y = _image()
    res = blind_deconvolve(y, "deepblur", deblur="rl", rl_iters=5)
    _, psf, _ = identify_psf(y)
    assert res.info["deblur"] == "rl" and res.info["nfe"] == 1
    np.testing.assert_allclose(res.kernel, psf, atol=1e-6)
    expected = richardson_lucy(y, psf, num_iter=5, boundary="valid")
    np.testing.assert_allclose(res.image, expected, atol=1e-5)
    dn = blind_deconvolve(y, "deepblur")
    assert dn.info["deblur"] == "dn" and not np.allclose(dn.image, res.image)


def test_rl_second_stage_colour_and_bad_choice():
    y = np.stack([_image(seed=s) for s in range(3)], -1)
    res = blind_deconvolve(y, "deepblur", deblur="rl", rl_iters=3)
    assert res.image.shape == y.shape and np.isfinite(res.image).all()
    with pytest.raises(InputError, match="not one of dn, rl"):
        blind_deconvolve(y[..., 0], "deepblur", deblur="wiener")


@pytest.mark.parametrize("grid, batch", [(None, 2), ("2x3", 1), ("2x3", 2)])
def test_psf_model_operator_updates_out_in_place(grid, batch):
    """``operator(psf, shape, out=op)`` returns ``op`` with the new PSFs: the same blur, adjoint-of-ones
    and gradient with respect to gamma as a newly built operator; another layout gets a new operator."""
    local = zernike_psf_model((1.2, 0.6, 0.1), (4, 5, 6, 7, 8), 9)
    model = local if grid is None else product_convolution_model(local, grid)
    g = torch.Generator().manual_seed(0)
    gamma_a, gamma_b = ((2 * torch.rand(batch, model.n_params, generator=g) - 1) * 0.15 for _ in range(2))
    x = torch.rand(batch, 1, 28, 32, generator=g)  # valid boundary: (20, 24) + 9 - 1
    y = torch.rand(batch, 1, 20, 24, generator=g)
    op = model.operator(model(gamma_a), (20, 24))
    ones_a = op.adjoint_of_ones(y).clone()  # fills the operator's A^T 1 cache
    gamma_b.requires_grad_(True)
    psf_b = model(gamma_b)
    same, fresh = model.operator(psf_b, (20, 24), out=op), model.operator(psf_b, (20, 24))
    assert same is op and fresh is not op
    torch.testing.assert_close(same.A(x), fresh.A(x), rtol=0, atol=1e-7)
    torch.testing.assert_close(same.A_adjoint(y), fresh.A_adjoint(y), rtol=0, atol=1e-7)
    torch.testing.assert_close(same.adjoint_of_ones(y), fresh.adjoint_of_ones(y), rtol=0, atol=1e-7)
    assert (same.adjoint_of_ones(y) - ones_a).abs().max() > 1e-3
    (g_same,) = torch.autograd.grad((same.A(x) ** 2).sum(), gamma_b, retain_graph=True)
    (g_fresh,) = torch.autograd.grad((fresh.A(x) ** 2).sum(), gamma_b)
    assert g_same.abs().max() > 0
    torch.testing.assert_close(g_same, g_fresh, rtol=1e-5, atol=1e-6)
    other = model.operator(psf_b.detach(), (22, 24), out=op)
    assert other is not op and other.out_shape == (22, 24) and op.out_shape == (20, 24)


def test_weights_of_the_wrong_network_are_refused():
    """Each slot reads its own checkpoint kind; with ``gamma`` given only the stored PSF model is used."""
    from unblur.blind.deepblur.api import DEBLUR_WEIGHTS, IDENTIFY_WEIGHTS, deepblur
    y = _image((48, 48))
    with pytest.raises(InputError, match="holds deepblur-deblur weights, not deepblur-identify weights"):
        identify_psf(y, weights=DEBLUR_WEIGHTS)
    with pytest.raises(InputError, match="holds deepblur-identify weights, not deepblur-deblur weights"):
        deepblur(y, deblur_weights=IDENTIFY_WEIGHTS)
    with pytest.raises(InputError, match="holds deepblur-deblur weights, not deepblur-identify weights"):
        deepblur(y, identify_weights=DEBLUR_WEIGHTS)
    gamma = np.linspace(-0.1, 0.1, len(identify_psf(y)[2]))
    a, b = deepblur(y, gamma=gamma), deepblur(y, gamma=gamma, identify_weights=DEBLUR_WEIGHTS)
    np.testing.assert_array_equal(a["image"], b["image"])
    assert a["image"].shape == y.shape and not np.allclose(a["image"], y, atol=1e-3)
