"""Deep-blur: IN/DN shapes, Algorithm 1 with identity prox, CG vs direct solve, training, shipped weights."""

import argparse

import numpy as np
import pytest
import torch

from unblur.blind.deepblur.deblur import DeblurNet, data_prox
from unblur.blind.deepblur.identify import (
    IdentificationNet,
    canonical_sign,
    identify_tiled,
    tile_starts,
)
from unblur.blind.deepblur.psf_model import zernike_psf_model
from unblur.physics.convolution import Convolution, psf_to_otf

torch.set_num_threads(1)


def _small_model(size=9):
    return zernike_psf_model((1.2, 0.6, 0.1), (4, 5, 6, 7, 8), size)


def test_shapes():
    net = IdentificationNet(8, widths=(4, 8, 8, 8), scale=0.15)
    assert net(torch.rand(3, 1, 40, 52)).shape == (3, 8)
    dn = DeblurNet(steps=2, widths=(4, 8), cg_iters=3)
    psf = _small_model()(torch.zeros(2, 5))
    op = Convolution(psf, (20, 24), "valid")
    out = dn(torch.rand(2, 1, 20, 24), op)
    assert out.shape == (2, 1, 20, 24)
    g = identify_tiled(net.eval(), torch.rand(1, 1, 70, 90), 32, tuple(range(4, 12)))
    assert g.shape == (1, 8)
    assert tile_starts(90, 32)[-1] == 90 - 32 and tile_starts(20, 32) == [0]


def test_sign_convention_keeps_psf():
    model = zernike_psf_model((1.2, 0.6, 0.1), (4, 5, 6, 7, 8, 9, 10, 11), 21)
    g = torch.tensor([[-0.1, 0.05, -0.08, 0.07, -0.03, 0.02, 0.1, 0.06]])
    c = canonical_sign(g, model.noll)
    assert c[0, 0] > 0 and torch.allclose(c[0, 3:7], g[0, 3:7]) and torch.allclose(c[0, [1, 2, 7]], -g[0, [1, 2, 7]])
    torch.testing.assert_close(model(c), model(g), atol=1e-6, rtol=0)
    # the odd coefficients are not ambiguous: flipping one of them changes the PSF
    g2 = g.clone()
    g2[0, 3] *= -1
    assert (model(g2) - model(g)).abs().max() > 1e-3


def test_cg_prox_matches_direct_solve():
    torch.manual_seed(0)
    psf = torch.rand(3, 3)
    psf /= psf.sum()
    op = Convolution(psf, (5, 6), "valid")  # object 7x8
    n_in = 7 * 8
    A = torch.stack([op.A(e.view(1, 1, 7, 8)).flatten() for e in torch.eye(n_in)], 1).double()  # (30, 56)
    y = torch.rand(1, 1, 5, 6)
    v = torch.rand(1, 1, 7, 8)
    lam = 0.05
    direct = torch.linalg.solve(A.T @ A + lam * torch.eye(n_in, dtype=torch.float64),
                                A.T @ y.flatten().double() + lam * v.flatten().double())
    cg = data_prox(op, op.A_adjoint(y), v, lam, cg_iters=200, tol=1e-10)
    np.testing.assert_allclose(cg.flatten().numpy(), direct.numpy(), atol=1e-4)
    cg0 = data_prox(op, op.A_adjoint(y), None, lam, cg_iters=200, tol=1e-10)
    direct0 = torch.linalg.solve(A.T @ A + lam * torch.eye(n_in, dtype=torch.float64), A.T @ y.flatten().double())
    np.testing.assert_allclose(cg0.flatten().numpy(), direct0.numpy(), atol=1e-4)


@pytest.mark.parametrize("steps", [0, 1, 4])
def test_dr_with_identity_prox_is_iterated_regularised_inverse(steps):
    """Identity PN: x_T = prox_f^n(0), n = max(T, 1) -- iterated Tikhonov of order n.

    In Fourier (circular boundary) its filter is ``H* / (|H|^2 + lam) * sum_{i<n} r^i``, ``r = lam / (|H|^2 + lam)``;
    n = 1 is the plain regularised inverse ``(A^T A + lam I)^-1 A^T``.
    """
    torch.manual_seed(1)
    psf = _small_model(7)(torch.full((1, 5), 0.05))[0, 0]
    y = torch.rand(1, 1, 16, 16)
    op = Convolution(psf, (16, 16), "circular")
    lam = 0.02
    dn = DeblurNet(steps=max(steps, 1), lam=lam, cg_iters=300)
    with torch.no_grad():
        x = dn(y, op, prox=[lambda z: z] * steps)
    H = psf_to_otf(psf, (16, 16)).to(torch.complex128)
    r = lam / (H.abs() ** 2 + lam)
    filt = H.conj() / (H.abs() ** 2 + lam) * sum(r**i for i in range(max(steps, 1)))
    ref = torch.fft.irfftn(torch.fft.rfftn(y.double(), dim=(-2, -1)) * filt, s=(16, 16), dim=(-2, -1))
    np.testing.assert_allclose(x.numpy(), ref.float().numpy(), atol=2e-4)
    if steps == 0:  # the plain regularised inverse (A^T A + lam I)^-1 A^T y
        plain = torch.fft.irfftn(torch.fft.rfftn(y.double(), dim=(-2, -1)) * H.conj() / (H.abs() ** 2 + lam),
                                 s=(16, 16), dim=(-2, -1))
        np.testing.assert_allclose(x.numpy(), plain.float().numpy(), atol=2e-4)


def _args(stage, **kw):
    a = {"stage": stage, "data": None, "out": None, "resume": False, "steps": 10, "batch": 4, "size": 24,
         "psf_size": 9, "optics": "1.2,0.6,0.1", "eta": 0.15, "alpha_max": 0.0, "beta_max": 1e-4, "lr": 1e-3,
         "width": 4, "identify_weights": None, "cg_iters": 5, "lam": 0.05, "checkpoint_minutes": 100.0,
         "export": None, "device": "cpu", "threads": None, "seed": 0}
    a.update(kw)
    return argparse.Namespace(**a)


def _images():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(4, 1, 12, 12, generator=g)
    return [torch.nn.functional.interpolate(b[None], size=(64, 64), mode="bilinear")[0, 0] for b in base]


@pytest.mark.parametrize("stage", ["identify", "deblur"])
def test_training_steps_reduce_loss_and_resume(stage, tmp_path):
    from unblur.blind.deepblur.simulate import make_batch
    from unblur.blind.deepblur.train import Trainer

    model = _small_model()
    kw = {}
    if stage == "deblur":
        t_in = Trainer(_args("identify", out=tmp_path / "in"), psf_model=model, images=_images())
        t_in.export(tmp_path / "in.pt")
        kw = {"identify_weights": tmp_path / "in.pt"}
    t = Trainer(_args(stage, out=tmp_path / stage, **kw), psf_model=model, images=_images())
    batch = make_batch(t.images, model, 4, 24, 0.15, 0.0, 1e-4, torch.Generator().manual_seed(5))
    t.net.train()
    before = float(t.loss(batch).detach())
    for _ in range(12):  # overfit one fixed batch: the loss must go down
        t.opt.zero_grad()
        t.loss(batch).backward()
        t.opt.step()
    after = float(t.loss(batch).detach())
    assert after < 0.9 * before
    t.run(steps=2)
    t2 = Trainer(_args(stage, out=tmp_path / stage, resume=True, **kw), psf_model=model, images=_images())
    assert t2.step == 2
    for p, q in zip(t.net.parameters(), t2.net.parameters()):
        torch.testing.assert_close(p, q)


def test_shipped_weights_beat_zero(shared_data):
    from unblur.blind.deepblur.api import IDENTIFY_WEIGHTS, identify_psf
    from unblur.io import read_image

    if not IDENTIFY_WEIGHTS.exists():
        pytest.skip("no shipped deep-blur weights")
    folder = shared_data("test/set12")
    files = sorted(folder.glob("*.png"))[:3]
    model = zernike_psf_model((1.2, 0.6, 0.1), (4, 5, 6, 7, 8, 9, 10, 11), 31)
    g = torch.Generator().manual_seed(3)
    err_net, err_zero = 0.0, 0.0
    for f in files:
        x = torch.from_numpy(np.asarray(read_image(f), np.float32))[None, None][..., :158, :158]
        gamma = (2 * torch.rand(1, 8, generator=g) - 1) * 0.15
        h = model(gamma)
        y = Convolution(h, (128, 128), "valid").A(x)
        _, psf, _ = identify_psf(y[0, 0].numpy())
        h0 = model(torch.zeros(1, 8))
        err_net += float(((torch.from_numpy(psf) - h[0, 0]) ** 2).sum())
        err_zero += float(((h0 - h) ** 2).sum())
    assert err_net < err_zero


def test_registry_entry_and_bad_input():
    from unblur.api import blind_deconvolve
    from unblur.blind.deepblur.api import DEBLUR_WEIGHTS, IDENTIFY_WEIGHTS, identify_psf
    from unblur.errors import InputError

    if not (IDENTIFY_WEIGHTS.exists() and DEBLUR_WEIGHTS.exists()):
        pytest.skip("no shipped deep-blur weights")
    img = np.random.default_rng(0).random((48, 56)).astype(np.float32)
    r = blind_deconvolve(img, method="deepblur")
    assert r.image.shape == img.shape and r.kernel.shape == (31, 31)
    assert abs(float(r.kernel.sum()) - 1) < 1e-4 and len(r.info["gamma"]) == 8 and r.info["gamma"][0] >= 0
    with pytest.raises(InputError):
        identify_psf(np.zeros((4, 8, 8, 8), np.float32))
    with pytest.raises(InputError):
        identify_psf(img, optics="1.2,0.6")
