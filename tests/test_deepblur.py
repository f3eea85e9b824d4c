"""Deep-blur: IN/DN shapes, Algorithm 1 with identity prox, CG vs direct solve, training, shipped weights;
the eigen-PSF (Model 2.1) and product-convolution (Model 2.2) PSF models."""

import json
from functools import lru_cache, partial
from pathlib import Path

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
from unblur.blind.deepblur.psf_model import (
    DEEPBLUR_NOLL,
    OperatorBatch,
    eigen_psf_model,
    product_convolution_model,
    psf_model_from_description,
    zernike_psf_model,
)
from unblur.errors import InputError
from unblur.physics.product_convolution import ProductConvolution
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
    g = identify_tiled(net.eval(), torch.rand(1, 1, 70, 90), 32, partial(canonical_sign, noll=tuple(range(4, 12))))
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
    """A small DeepblurTrainConfig (``out`` is a path; resume is the Trainer's own argument)."""
    from unblur.training.config import DeepblurTrainConfig

    a = {"stage": stage, "steps": 10, "batch": 4, "size": 24, "psf_size": 9, "alpha_max": 0.0, "beta_max": 1e-4,
         "width": 4, "cg_iters": 5, "ckpt_minutes": 100.0, "rank": 4, "family_samples": 200, "progress": False,
         "val_every": 0}
    a.update(kw)
    a = {k: str(v) if isinstance(v, Path) else v for k, v in a.items()}
    return DeepblurTrainConfig(**a)


def _trainer(cfg, resume=None, **kw):
    from unblur.blind.deepblur.train import Trainer

    return Trainer(cfg, resume, **kw)


def _run(t):
    return t.run(log=lambda *_: None)


def _images():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(4, 1, 12, 12, generator=g)
    return [torch.nn.functional.interpolate(b[None], size=(64, 64), mode="bilinear")[0, 0] for b in base]


@pytest.mark.parametrize("stage", ["identify", "deblur"])
def test_training_steps_reduce_loss_and_resume(stage, tmp_path):
    from unblur.blind.deepblur.simulate import make_batch
    from unblur.training.state import load_training_checkpoint

    model = _small_model()
    kw = {}
    if stage == "deblur":
        t_in = _trainer(_args("identify", out=tmp_path / "in", steps=1), psf_model=model, images=_images())
        _run(t_in)
        t_in.export(tmp_path / "in.pt")
        kw = {"identify_weights": tmp_path / "in.pt"}
    t = _trainer(_args(stage, out=tmp_path / stage, steps=2, val_every=2, **kw), psf_model=model, images=_images())
    batch = make_batch(t.images, model, 4, 24, 0.15, 0.0, 1e-4, torch.Generator().manual_seed(5))
    _assert_a_few_steps_reduce_the_loss(t, batch)
    res = _run(t)
    assert res["steps"] == 2 and np.isfinite(res["loss"]) and np.isfinite(res["val"]["loss"])
    assert (tmp_path / stage / "best.pt").exists()  # validation on a fixed batch keeps the best model
    # a resumed run rebuilds the checkpoint's network and weights, and continues the step count
    t2 = _trainer(_args(stage, out=tmp_path / stage, steps=3, **kw), resume="auto", psf_model=model,
                  images=_images())
    ck = load_training_checkpoint(tmp_path / stage)
    assert ck["kind"] == f"deepblur-{stage}" and ck["step"] == 2 and "psf_model" in ck
    assert _run(t2)["steps"] == 3
    t3 = _trainer(_args(stage, out=tmp_path / stage, steps=2, **kw), resume="auto", psf_model=model, images=_images())
    _run(t3)  # no step left: loads the saved state only
    for p, q in zip(t2.net.parameters(), t3.net.parameters()):
        torch.testing.assert_close(p, q)


def test_shipped_weights_beat_zero(shared_data):
    """The shipped IN identifies held-out blurs of Set12 images far better than the aberration-free PSF
    (measured: squared PSF error 0.06-0.075 of the zero-coefficient PSF's on these three images)."""
    from unblur.blind.deepblur.api import IDENTIFY_WEIGHTS, identify_psf
    from unblur.io import read_image

    assert IDENTIFY_WEIGHTS.exists(), f"shipped deep-blur weights missing: {IDENTIFY_WEIGHTS}"
    folder = shared_data("test/set12")
    files = sorted(folder.glob("*.png"))[:3]
    assert len(files) == 3, f"expected Set12 images in {folder}"
    model = zernike_psf_model((1.2, 0.6, 0.1), (4, 5, 6, 7, 8, 9, 10, 11), 31)
    g = torch.Generator().manual_seed(3)
    err_net, err_zero = [], []
    for f in files:
        x = torch.from_numpy(np.asarray(read_image(f), np.float32))[None, None][..., :158, :158]
        gamma = (2 * torch.rand(1, 8, generator=g) - 1) * 0.15
        h = model(gamma)
        y = Convolution(h, (128, 128), "valid").A(x)
        _, psf, _ = identify_psf(y[0, 0].numpy())
        h0 = model(torch.zeros(1, 8))
        err_net.append(float(((torch.from_numpy(psf) - h[0, 0]) ** 2).sum()))
        err_zero.append(float(((h0 - h) ** 2).sum()))
    assert all(a < 0.25 * b for a, b in zip(err_net, err_zero)), (err_net, err_zero)


def test_registry_entry_and_bad_input():
    from unblur.api import blind_deconvolve
    from unblur.blind.deepblur.api import DEBLUR_WEIGHTS, IDENTIFY_WEIGHTS, identify_psf

    assert IDENTIFY_WEIGHTS.exists() and DEBLUR_WEIGHTS.exists(), "shipped deep-blur weights missing"
    img = np.random.default_rng(0).random((48, 56)).astype(np.float32)
    r = blind_deconvolve(img, method="deepblur")
    assert r.image.shape == img.shape and r.kernel.shape == (31, 31)
    assert abs(float(r.kernel.sum()) - 1) < 1e-4 and len(r.info["gamma"]) == 8 and r.info["gamma"][0] >= 0
    with pytest.raises(InputError):
        identify_psf(np.zeros((4, 8, 8, 8), np.float32))
    with pytest.raises(InputError):
        identify_psf(img, optics="1.2,0.6")


# -- Model 2.1 (eigen-PSF) and Model 2.2 (product-convolution) ----------------------------------------


@lru_cache(maxsize=None)
def _eigen_model():
    return eigen_psf_model(rank=4, optics=(1.2, 0.6, 0.1), noll=DEEPBLUR_NOLL, psf_size=9, eta=0.15, n_samples=200, seed=0)


def _new_model(kind):
    if kind == "eigen":
        return _eigen_model()
    local = _eigen_model() if kind == "pc-eigen" else zernike_psf_model((1.2, 0.6, 0.1), DEEPBLUR_NOLL, 9)
    return product_convolution_model(local, (2, 3))


@pytest.mark.parametrize("kind", ["eigen", "pc-eigen", "pc-zernike"])
def test_new_models_give_psfs(kind):
    model = _new_model(kind)
    n_points = 1 if kind == "eigen" else 6
    k_local = 4 if kind in ("eigen", "pc-eigen") else 8
    assert model.n_params == n_points * k_local
    gamma = (2 * torch.rand(3, model.n_params, generator=torch.Generator().manual_seed(0)) - 1) * 0.3
    h = model(gamma)
    assert h.shape == (3, n_points, 9, 9) and float(h.min()) >= 0
    torch.testing.assert_close(h.sum((-2, -1)), torch.ones(3, n_points))
    assert model.psf_array(h[0]).shape == ((9, 9) if kind == "eigen" else (2, 3, 9, 9))
    # each control point's PSF is the local model's PSF of its own coefficients (row-major over the grid)
    if kind != "eigen":
        local = psf_model_from_description(model.description["local"])
        torch.testing.assert_close(h[1, 4], local(gamma[1:2, 4 * k_local:5 * k_local])[0, 0])


def test_eigen_model_reproduces_its_family_better_than_the_mean():
    model = _eigen_model()
    family = zernike_psf_model((1.2, 0.6, 0.1), DEEPBLUR_NOLL, 9)
    g = torch.Generator().manual_seed(7)  # PSFs not among those the basis was computed from
    h = family((2 * torch.rand(20, 8, generator=g) - 1) * 0.15)
    gamma = model.fn.project(h)
    assert gamma.shape == (20, 4) and 0.05 < float(gamma.std()) < 0.15  # units: U[-eta, eta] has std 0.087
    err = ((model(gamma) - h) ** 2).flatten(1).sum(1)
    err_mean = ((model(torch.zeros(1, 4)) - h) ** 2).flatten(1).sum(1)
    assert float(err.sum()) < 0.6 * float(err_mean.sum()) and float((err < err_mean).float().mean()) >= 0.9


def _adjoint_gap(op, batch):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(batch, 1, *op.in_shape, generator=g)
    y = torch.rand(batch, 1, *op.out_shape, generator=g)
    lhs, rhs = (op.A(x) * y).sum(), (x * op.A_adjoint(y)).sum()
    return float((lhs - rhs).abs() / lhs.abs())


def test_product_convolution_operator():
    model = _new_model("pc-eigen")
    gamma = (2 * torch.rand(2, model.n_params, generator=torch.Generator().manual_seed(2)) - 1) * 0.15
    psf = model(gamma)
    op1 = model.operator(psf[:1], (20, 24), "valid")
    assert isinstance(op1, ProductConvolution) and op1.in_shape == (28, 32) and op1.out_shape == (20, 24)
    op2 = model.operator(psf, (20, 24), "valid")
    assert isinstance(op2, OperatorBatch)
    assert _adjoint_gap(op1, 1) < 1e-5 and _adjoint_gap(op2, 2) < 1e-5
    x = torch.rand(2, 1, 28, 32, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(op2.A(x)[1:], model.operator(psf[1:], (20, 24)).A(x[1:]))  # item b uses its own blur
    # the same coefficients at every control point: a plain convolution by that PSF
    same = gamma[:1, :4].repeat(1, 6)
    h = model(same)
    conv = Convolution(h[:, :1], (20, 24), "valid")
    torch.testing.assert_close(model.operator(h, (20, 24)).A(x[:1]), conv.A(x[:1]), atol=1e-5, rtol=1e-4)


def _new_args(kind, **kw):
    model = {"eigen": "eigen", "pc-eigen": "product-convolution", "pc-zernike": "product-convolution"}[kind]
    return _args("identify", model=model, local_model="zernike" if kind == "pc-zernike" else "eigen", grid="2x2", **kw)


def _assert_a_few_steps_reduce_the_loss(t, batch, steps: int = 12):
    """12 Adam steps of a Trainer's network on one fixed batch lower its loss by at least 10 %."""
    from unblur.training.loop import train_step

    t.net.train()
    opt = torch.optim.Adam(t.net.parameters(), lr=1e-3)
    before = float(t.loss(batch).detach())
    for _ in range(steps):
        train_step(t.net, opt, t.loss(batch))
    assert float(t.loss(batch).detach()) < 0.9 * before


@pytest.mark.parametrize("kind", ["eigen", "pc-eigen"])
def test_new_models_training_reduces_identification_loss(kind, tmp_path):
    from unblur.blind.deepblur.simulate import make_batch

    t = _trainer(_new_args(kind, out=tmp_path), images=_images())
    assert t.psf_model.description["kind"] == ("eigen" if kind == "eigen" else "product-convolution")
    batch = make_batch(t.images, t.psf_model, 4, 24, 0.15, 0.0, 1e-4, torch.Generator().manual_seed(5))
    assert batch["y"].shape == (4, 1, 24, 24) and batch["psf"].shape[1] == (1 if kind == "eigen" else 4)
    _assert_a_few_steps_reduce_the_loss(t, batch)


@pytest.mark.parametrize("kind", ["eigen", "pc-eigen"])
def test_new_models_checkpoint_round_trip(kind, tmp_path):
    from unblur.blind.deepblur.api import deepblur, identify_psf
    from unblur.blind.deepblur.train import load_weights

    t = _trainer(_new_args(kind, out=tmp_path / "in", steps=1), images=_images())
    _run(t)
    t.export(tmp_path / "in.pt")
    gamma = (2 * torch.rand(2, t.psf_model.n_params, generator=torch.Generator().manual_seed(4)) - 1) * 0.15
    rebuilt = psf_model_from_description(load_weights(tmp_path / "in.pt")["psf_model"])
    torch.testing.assert_close(rebuilt(gamma), t.psf_model(gamma), atol=0, rtol=0)
    # resuming with other basis options keeps the checkpoint's basis
    t2 = _trainer(_new_args(kind, out=tmp_path / "in", seed=5, family_samples=100), resume=True, images=_images())
    torch.testing.assert_close(t2.psf_model(gamma), t.psf_model(gamma), atol=0, rtol=0)
    # stage deblur takes IN's model and trains DN with its operator
    td = _trainer(_args("deblur", out=tmp_path / "dn", identify_weights=tmp_path / "in.pt", steps=1), images=_images())
    torch.testing.assert_close(td.psf_model(gamma), t.psf_model(gamma), atol=0, rtol=0)
    assert np.isfinite(_run(td)["loss"])
    td.export(tmp_path / "dn.pt")
    # inference with these weights
    img = np.random.default_rng(0).random((30, 34)).astype(np.float32)
    g, psf, noll = identify_psf(img, weights=tmp_path / "in.pt")
    assert g.shape == (t.psf_model.n_params,) and noll == ()
    assert psf.shape == ((9, 9) if kind == "eigen" else (2, 2, 9, 9)) and abs(psf.sum((-2, -1)) - 1).max() < 1e-5
    r = deepblur(img, identify_weights=tmp_path / "in.pt", deblur_weights=tmp_path / "dn.pt")
    assert r["image"].shape == img.shape and r["psf"].shape == psf.shape
    # the same weights from the command line: PSF (a row-major stack for the control-point grid) and gamma
    from unblur.cli.main import main
    from unblur.io import read_image, write_image
    write_image(tmp_path / "b.tif", img)
    assert main(["psf", "identify", str(tmp_path / "b.tif"), "--weights", str(tmp_path / "in.pt"),
                 "-o", str(tmp_path / "p.tif")]) == 0
    np.testing.assert_allclose(read_image(tmp_path / "p.tif"), psf.reshape(-1, 9, 9).squeeze(), atol=1e-6)
    log = json.loads((tmp_path / "p.tif.json").read_text())
    np.testing.assert_allclose(log["gamma"], g, atol=1e-6)
    assert main(["blind", str(tmp_path / "b.tif"), "--method", "deepblur", "--identify-weights", str(tmp_path / "in.pt"),
                 "--deblur-weights", str(tmp_path / "dn.pt"), "-o", str(tmp_path / "s.tif")]) == 0
    assert read_image(tmp_path / "s_kernel.tif").shape == psf.reshape(-1, 9, 9).squeeze().shape


# -- issue 8, s4: PSF-space identification loss, spectrum input features, lr schedule -----------------

def test_psf_loss_zero_at_truth_and_sign_invariant():
    from unblur.blind.deepblur.train import psf_loss

    model = zernike_psf_model((1.2, 0.6, 0.1), DEEPBLUR_NOLL, 15)
    g = (2 * torch.rand(3, 8, generator=torch.Generator().manual_seed(2)) - 1) * 0.15
    psf = model(g)
    assert float(psf_loss(model, g, psf)) < 1e-10
    flipped = torch.where(torch.tensor([j in (4, 5, 6, 11) for j in DEEPBLUR_NOLL]), -g, g)  # even coefficients
    other = g + 0.05
    assert float(psf_loss(model, flipped, psf)) < 1e-10
    l_other = float(psf_loss(model, other, psf))
    assert l_other > 1e-3
    torch.testing.assert_close(psf_loss(model, other, psf), psf_loss(model, other, model(flipped)))


@pytest.mark.parametrize("loss,features", [("psf", "image"), ("both", "image+spectrum")])
def test_new_losses_and_features_train_and_export(loss, features, tmp_path):
    from unblur.blind.deepblur.simulate import make_batch
    from unblur.blind.deepblur.train import load_weights, model_from_weights

    kw = {"loss": loss, "features": features, "lr_schedule": "cosine", "max_minutes": None, "steps": 3}
    t = _trainer(_args("identify", out=tmp_path / "in", **kw), psf_model=_small_model(), images=_images())
    assert t.net.config.get("features", "image") == features
    batch = make_batch(t.images, t.psf_model, 4, 24, 0.15, 0.0, 1e-4, torch.Generator().manual_seed(5))
    _assert_a_few_steps_reduce_the_loss(t, batch)
    _run(t)
    t.export(tmp_path / "in.pt")
    w = load_weights(tmp_path / "in.pt")
    assert w["train"]["loss"] == loss and w["config"].get("features", "image") == features
    assert w["checkpoint"]["format"] == "unblur" and "optimizer" not in w["checkpoint"]
    net = model_from_weights(w)
    y = torch.rand(2, 1, 24, 30)
    torch.testing.assert_close(net(y), t.net.eval()(y))
    # resuming without the feature option rebuilds the checkpoint's network
    t2 = _trainer(_args("identify", out=tmp_path / "in", loss=loss, steps=3), resume=True, psf_model=_small_model(),
                  images=_images())
    assert t2.net.config.get("features", "image") == features and _run(t2)["steps"] == 3


def test_old_identify_config_loads_as_image_features():
    from unblur.blind.deepblur.identify import log_spectrum

    net = IdentificationNet(8, widths=(4, 8, 8, 8), scale=0.15)
    assert "features" not in net.config  # configs of the paper's IN are unchanged
    old = dict(net.config)
    net2 = IdentificationNet(**old)
    net2.load_state_dict(net.state_dict())
    y = torch.rand(2, 1, 32, 32)
    torch.testing.assert_close(net2.eval()(y), net.eval()(y))
    with pytest.raises(InputError, match="unknown IN features"):
        IdentificationNet(8, widths=(4, 8, 8, 8), features="nope")
    s = log_spectrum(torch.randn(2, 1, 16, 20))
    assert s.shape == (2, 1, 16, 20) and abs(float(s.mean())) < 1e-4


def test_lr_schedule():
    """Constant lr, or warm-up over 2 % of the steps then cosine decay to --lr-min (0 for deep-blur)."""
    from unblur.training.loop import learning_rate

    assert learning_rate(_args("identify", steps=1000), 500) == 1e-3
    cfg = _args("identify", steps=1000, lr_schedule="cosine")
    f = [learning_rate(cfg, s) / 1e-3 for s in range(1000)]
    assert f[0] < 0.1 and abs(max(f) - 1) < 1e-6 and f[-1] < 1e-4 and f[500] < f[100]
    assert f[19] == pytest.approx(1.0) and f[9] == pytest.approx(0.5)  # 20 warm-up steps


def test_eta_dist_uniform_trains(tmp_path):
    t = _trainer(_args("identify", out=tmp_path, loss="psf", eta_dist="uniform", steps=2), psf_model=_small_model(),
                 images=_images())
    res = _run(t)
    assert res["steps"] == 2 and np.isfinite(res["loss"])


# -- issue 8, s5: Welch-averaged spectrum features, --init ------------------------------------------------

def test_welch_spectrum_reads_the_mtf_better_than_one_tile():
    from unblur.blind.deepblur.identify import WELCH_TILE, log_spectrum, welch_log_spectrum

    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 1, 256, 256, generator=g)
    f = torch.fft.fftfreq(256)
    H = torch.exp(-2 * (torch.pi * 2.0) ** 2 * (f[:, None] ** 2 + f[None] ** 2))  # Gaussian blur, sigma 2 px
    y = torch.fft.ifft2(torch.fft.fft2(x) * H).real
    ft = torch.fft.fftshift(torch.fft.fftfreq(WELCH_TILE))
    truth = -4 * (torch.pi * 2.0) ** 2 * (ft[:, None] ** 2 + ft[None] ** 2)  # log |H|^2 on the tile's grid
    keep = truth > -6  # where the MTF is above the windowing floor

    def corr(s):
        a, b = s[0, 0][keep], truth[keep]
        return float(((a - a.mean()) * (b - b.mean())).mean() / (a.std() * b.std()))

    c_welch = corr(welch_log_spectrum(y))
    c_tile = corr(log_spectrum(y[..., 96:160, 96:160]))
    assert c_welch > 0.95 and c_welch > c_tile + 0.05, (c_welch, c_tile)


def test_welch_features_shape_and_small_image_error():
    net = IdentificationNet(8, widths=(4, 8, 8, 8), scale=0.15, features="welch")
    assert net.config["features"] == "welch"
    out = net.eval()(torch.rand(2, 1, 100, 130))
    assert out.shape == (2, 8) and torch.isfinite(out).all()
    with pytest.raises(InputError, match="smaller than the 64-pixel Welch tile"):
        net(torch.rand(1, 1, 50, 80))


def test_init_from_exported_weights(tmp_path):
    from unblur.training.loop import train_step

    big = [torch.nn.functional.interpolate(im[None, None], size=(96, 96), mode="bilinear")[0, 0] for im in _images()]
    t = _trainer(_args("identify", out=tmp_path / "a", size=64, features="image+spectrum", loss="psf", steps=2),
                 psf_model=_small_model(), images=big)
    _run(t)
    t.export(tmp_path / "a.pt")
    t2 = _trainer(_args("identify", out=tmp_path / "b", size=64, features="welch", loss="psf", init=tmp_path / "a.pt",
                        steps=0), psf_model=_small_model(), images=big)
    assert t2.net.config["features"] == "welch"
    _run(t2)  # no step: the run starts from (and saves) the --init weights
    for k, v in t.net.state_dict().items():
        torch.testing.assert_close(t2.net.state_dict()[k], v)
    # --grad-clip: a clipped SGD step barely moves the weights, an unclipped one does
    before = {k: v.clone() for k, v in t2.net.state_dict().items() if v.dtype.is_floating_point and "running" not in k}
    g = torch.Generator().manual_seed(0)

    def moved(clip):
        t2.net.load_state_dict({**t2.net.state_dict(), **before})
        train_step(t2.net, torch.optim.SGD(t2.net.parameters(), lr=1e-3), t2.batch_loss(g), clip)
        return max(float((t2.net.state_dict()[k] - v).abs().max()) for k, v in before.items())

    assert moved(1e-12) < 1e-12 < moved(None)
    with pytest.raises(InputError, match="holds deepblur-identify weights, not deepblur-deblur weights"):
        _run(_trainer(_args("deblur", out=tmp_path / "d", size=64, identify_weights=tmp_path / "a.pt",
                            init=tmp_path / "a.pt"), psf_model=_small_model(), images=big))
    with pytest.raises(InputError, match="does not fit this network"):
        _run(_trainer(_args("identify", out=tmp_path / "c", size=64, width=8, init=tmp_path / "a.pt"),
                      psf_model=_small_model(), images=big))
