"""Deep-image-prior blind deconvolution (issue 7): generators, losses, metrics, the fitting loop, API."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from unblur.blind.dip import selfdeblur, vdip
from unblur.blind.dip.api import estimate_kernel_size
from unblur.blind.dip.fit import (
    PRESETS,
    FitConfig,
    SelfDeblurObjective,
    VDIPObjective,
    downsample,
    downsample_noise_gain,
    fit,
    levels,
    scaled_kernel_size,
    upsample_kernel,
)
from unblur.blind.dip.generators import (
    FAST,
    FULL,
    GeneratorConfig,
    ImageGenerator,
    KernelGenerator,
    count_parameters,
)
from unblur.blind.dip.losses import ELBO, blur_valid, dark_channel, ssim
from unblur.blind.dip.metrics import isnr, psnr_nb
from unblur.errors import InputError
from unblur.metrics import kernel_error, shift_tolerant
from unblur.physics.convolution import Convolution
from unblur.registry import get_method

torch.set_num_threads(1)
TINY = GeneratorConfig(down=(8, 16, 16), up=(8, 16, 16), skip=(4, 4, 4), kernel_hidden=200)


def expected_image_params(c: GeneratorConfig, out=1):
    n = 0
    for i in range(len(c.down)):
        cin = c.in_channels if i == 0 else c.down[i - 1]
        d, u, s = c.down[i], c.up[i], c.skip[i]
        do = c.up[i + 1] if i + 1 < len(c.down) else d
        n += 9 * cin * d + d + 2 * d + 9 * d * d + d + 2 * d          # encoder: two 3x3 convs + BN
        n += cin * s + s + 2 * s                                          # skip: 1x1 conv + BN
        n += 2 * (s + do) + 9 * (s + do) * u + u + 2 * u + u * u + u + 2 * u  # decoder
    return n + c.up[0] * out + out


@pytest.mark.parametrize("cfg", [FULL, FAST, TINY])
def test_image_generator_shape_and_parameter_count(cfg):
    g = ImageGenerator(cfg)
    assert count_parameters(g) == expected_image_params(cfg)
    z = torch.rand(1, cfg.in_channels, 45, 38)  # odd, non-multiple-of-32 sizes
    with torch.no_grad():
        x = g(z)
    assert x.shape == (1, 1, 45, 38)
    assert float(x.min()) > 0 and float(x.max()) < 1  # sigmoid output
    assert ImageGenerator(cfg, out_channels=2)(z, sigmoid=False).shape == (1, 2, 45, 38)


def test_full_generators_match_the_paper_sizes():
    assert count_parameters(ImageGenerator(FULL)) == 2265489
    assert count_parameters(KernelGenerator(25, FULL)) == 200 * 1000 + 1000 + 1000 * 625 + 625


def test_kernel_generator_nonnegative_and_normalised():
    kg = KernelGenerator(9, FULL)
    with torch.no_grad():
        k = kg(torch.rand(200))
    assert k.shape == (9, 9)
    assert float(k.min()) >= 0
    assert abs(float(k.sum()) - 1) < 1e-5


def test_blur_valid_matches_the_valid_convolution_operator():
    g = torch.Generator().manual_seed(0)
    x, k = torch.rand(1, 1, 30, 27, generator=g), torch.rand(7, 7, generator=g)
    ref = Convolution(k, (24, 21), "valid").A(x)
    assert torch.allclose(blur_valid(x, k), ref, atol=1e-5)


def test_losses():
    a = torch.rand(1, 1, 32, 32)
    assert abs(float(ssim(a, a)) - 1) < 1e-6
    assert float(ssim(a, torch.rand(1, 1, 32, 32))) < 0.5
    assert float(dark_channel(torch.ones(1, 1, 20, 20)).min()) == 1.0
    # ELBO is finite and differentiable in both the mean and the std channel
    out = torch.zeros(1, 2, 22, 22, requires_grad=True)
    y = torch.rand(1, 1, 16, 16)
    k = torch.full((7, 7), 1 / 49)
    for prior in ("sparse", "extreme"):
        loss = ELBO(prior, 0.01)(out, k, y, torch.Generator().manual_seed(0))
        loss.backward()
        assert torch.isfinite(loss) and out.grad[:, 0].abs().sum() > 0 and out.grad[:, 1].abs().sum() > 0


def test_kernel_error_is_shift_invariant():
    k = np.zeros((9, 9))
    k[4, 2:7] = 1
    k /= k.sum()
    assert kernel_error(np.roll(k, (2, -1), (0, 1)), k) < 1e-9
    assert kernel_error(np.pad(k, 3), k) < 1e-9
    dirac = np.zeros((9, 9))
    dirac[4, 4] = 1
    assert kernel_error(dirac, k) > 0.9


def test_isnr_of_the_blurred_image_is_zero_and_of_the_sharp_positive():
    rng = np.random.default_rng(0)
    sharp = rng.random((48, 48))
    blurred = np.roll(sharp, 2, 0) * 0.5 + sharp * 0.5
    assert abs(isnr(blurred, blurred, sharp, crop=4, max_shift=3)) < 1e-9
    assert isnr(np.roll(sharp, 1, 1), blurred, sharp, crop=4, max_shift=3) > 20


def _tiny_case():
    from skimage import data, transform
    img = transform.resize(data.camera().astype(np.float32) / 255, (54, 54), anti_aliasing=True).astype(np.float32)
    kt = np.zeros((7, 7))
    kt[3, 1:6] = 1
    kt[2, 5] = kt[4, 1] = 1
    kt = (kt / kt.sum()).astype(np.float32)
    y = blur_valid(torch.from_numpy(img)[None, None], torch.from_numpy(kt))
    y = (y + 0.01 * torch.randn(y.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    return img[3:-3, 3:-3], y, kt


def test_tiny_blind_fit_recovers_sharper_image_and_closer_kernel():
    sharp, y, kt = _tiny_case()
    cfg = FitConfig(iterations=400, switch_iter=200, refine_iters=100, generator=TINY, lr_kernel=1e-3,
                    channels_last=False)
    res = fit(y, 7, SelfDeblurObjective(cfg.switch_iter), cfg, seed=0)
    yn = y[0, 0].numpy()
    p_blur = shift_tolerant(yn, sharp, crop=4, max_shift=3)["psnr"]
    p_est = shift_tolerant(res.image, sharp, crop=4, max_shift=3)["psnr"]
    dirac = np.zeros((7, 7))
    dirac[3, 3] = 1
    assert p_est > p_blur + 1.0, (p_est, p_blur)
    assert kernel_error(res.kernel, kt) < 0.49 * kernel_error(dirac, kt)
    assert res.kernel.min() >= 0 and abs(res.kernel.sum() - 1) < 1e-4
    assert psnr_nb(res.image, yn, crop=4, max_shift=3) < 40


def test_determinism_with_a_seed():
    _, y, _ = _tiny_case()
    cfg = FitConfig(iterations=15, switch_iter=5, refine_iters=5, generator=TINY, pretrain_iters=3)
    obj = VDIPObjective(ELBO("sparse", 0.01), 3, 10)
    a, b = fit(y, 7, obj, cfg, seed=3), fit(y, 7, obj, cfg, seed=3)
    c = fit(y, 7, obj, cfg, seed=4)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.kernel, b.kernel)
    assert not np.array_equal(a.image, c.image)


def test_stopping_rule_on_kernel_change_ends_early():
    _, y, _ = _tiny_case()
    cfg = FitConfig(iterations=200, switch_iter=100, refine_iters=0, generator=TINY, lr_kernel=0.0,
                    stop_tol=1e-6, stop_check=10, stop_patience=2, min_iters=0)
    res = fit(y, 7, SelfDeblurObjective(100), cfg, seed=0)
    assert res.iterations == 30  # the kernel cannot move with lr 0: stops after 2 calm checks


def test_api_colour_seeds_and_errors():
    rng = np.random.default_rng(0)
    img = rng.random((40, 40, 3)).astype(np.float32)
    out, info = selfdeblur(img, 7, iterations=4, refine_iters=2, seeds=2, threads=1)
    assert out.shape == img.shape and info["kernel"].shape == (7, 7)
    assert set(info["seeds"]) >= {"kernel_disagreement_mean", "consistent"}
    out, info = vdip(img[..., 0], 7, prior="extreme", iterations=4, refine_iters=0)
    assert out.shape == (40, 40)
    with pytest.raises(InputError):
        selfdeblur(img, 31)  # kernel too large for the image
    with pytest.raises(InputError):
        selfdeblur(img * 255, 7)
    with pytest.raises(InputError):
        vdip(img, 7, prior="dark")
    assert estimate_kernel_size((255, 255)) == 25 and estimate_kernel_size((40, 40)) == 7


def test_registry_entries():
    for name in ("selfdeblur", "vdip-sparse", "vdip-extreme"):
        m = get_method(name)
        assert m.kind == "blind" and "kernel_size" in m.defaults()


def test_kernel_resampling_for_coarse_to_fine():
    assert [scaled_kernel_size(25, s) for s in (0.25, 0.5, 1.0)] == [7, 13, 25]
    assert scaled_kernel_size(7, 0.25) == 3
    dirac = torch.zeros(7, 7)
    dirac[3, 3] = 1
    up = upsample_kernel(dirac, 13, 0.5)
    assert up.shape == (13, 13) and abs(float(up.sum()) - 1) < 1e-6 and float(up.min()) >= 0
    assert int(up.argmax()) == 6 * 13 + 6  # centre stays the centre
    line = torch.zeros(7, 7)
    line[3, 1:6] = 0.2
    up = upsample_kernel(line, 13, 0.5)
    # twice as long (coarse columns 1..5 -> fine columns 1..11), the coarse row spread over fine rows 5..7
    assert abs(float(up[5:8].sum()) - 1) < 1e-6 and int(up.sum(1).argmax()) == 6
    assert float(up[6, 1]) > 0 and float(up[6, 11]) > 0 and float(up[6, 0]) == 0 and float(up[6, 12]) == 0
    assert downsample(torch.rand(1, 1, 48, 40), 0.5).shape == (1, 1, 24, 20)


def _c2f_config(**kw):
    return FitConfig(iterations=150, switch_iter=75, refine_iters=50, generator=TINY, lr_kernel=1e-3,
                     channels_last=False, pyramid=(0.5,), pyramid_iters=(300,), warmup_iters=20, init_iters=100,
                     **kw)


def test_coarse_to_fine_fit_kernel_closer_than_dirac_and_deterministic():
    sharp, y, kt = _tiny_case()
    cfg = _c2f_config()
    res = fit(y, 7, SelfDeblurObjective(cfg.switch_iter), cfg, seed=0)
    assert res.kernel.shape == (7, 7) and res.kernel.min() >= 0 and abs(res.kernel.sum() - 1) < 1e-4
    assert res.level_iterations == [300, 150]
    dirac = np.zeros((7, 7))
    dirac[3, 3] = 1
    assert kernel_error(res.kernel, kt) < 0.49 * kernel_error(dirac, kt), kernel_error(res.kernel, kt)
    p_blur = shift_tolerant(y[0, 0].numpy(), sharp, crop=4, max_shift=3)["psnr"]
    assert shift_tolerant(res.image, sharp, crop=4, max_shift=3)["psnr"] > p_blur + 1.0
    short = replace(cfg, iterations=10, switch_iter=5, refine_iters=3, pyramid_iters=(10,), warmup_iters=3,
                    init_iters=5)
    a, b = (fit(y, 7, SelfDeblurObjective(5), short, seed=3) for _ in range(2))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.kernel, b.kernel)
    assert not np.array_equal(a.kernel, fit(y, 7, SelfDeblurObjective(5), short, seed=4).kernel)


def test_coarse_to_fine_preset_and_pyramid_checks():
    rng = np.random.default_rng(0)
    out, info = selfdeblur(rng.random((140, 140)).astype(np.float32), 7, preset="fast-c2f", iterations=6,
                           refine_iters=2, threads=1)
    assert out.shape == (140, 140) and info["level_iterations"] == [10, 10, 6] and info["kernel"].shape == (7, 7)
    # a 1/4-scale object narrower than the 5-level generator accepts (33 px) is skipped
    assert [lv.scale for lv in levels((100, 100), 7, PRESETS["fast-c2f"])] == [0.5, 1.0]
    _, y, _ = _tiny_case()
    for bad in ({"pyramid": (0.5, 0.25), "pyramid_iters": (5, 5)}, {"pyramid": (0.5,), "pyramid_iters": ()}):
        with pytest.raises(InputError):
            fit(y, 7, SelfDeblurObjective(5), FitConfig(iterations=5, generator=TINY, **bad))


def test_vdip_objective_at_coarse_scale_uses_the_downsampled_noise_level():
    # the coarse-to-fine levels fit an antialiased downsampled image, whose noise is weaker
    noise = torch.randn(1, 1, 256, 256, generator=torch.Generator().manual_seed(0)) * 0.04
    for scale in (0.5, 0.25):
        measured = float(downsample(noise, scale)[..., 4:-4, 4:-4].std()) / 0.04
        gain = downsample_noise_gain((256, 256), scale)
        assert abs(measured / gain - 1) < 0.1, (scale, measured, gain)
    assert downsample_noise_gain((64, 64), 1.0) == pytest.approx(1.0)
    obj = VDIPObjective(ELBO("sparse", 0.04), 3, 10)
    coarse = obj.for_downsampled(0.5)
    assert coarse.elbo.noise_sigma == pytest.approx(0.02) and coarse.elbo.var2 == pytest.approx(2 * 0.02**2)
    assert (coarse.pretrain, coarse.switch_iter, coarse.elbo.prior) == (3, 10, "sparse")
    assert obj.elbo.noise_sigma == 0.04  # the full-resolution objective is unchanged
    assert obj.for_downsampled(0.1).elbo.var2 == pytest.approx(2 * 0.005**2)  # the floor still applies
    sd = SelfDeblurObjective(5)
    assert sd.for_downsampled(0.25) is sd
