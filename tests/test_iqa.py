"""NIQE and BRISQUE against reference implementations; AGGD fit; LPIPS with synthetic weights.

Reference numbers (hard-coded; the packages are not unblur dependencies): computed once with
scikit-video 1.1.11 (``skvideo.measure.niqe``; ``scipy.misc.imresize(mode="F", interp="bicubic")``,
removed from SciPy, re-created with Pillow 13 ``Image.resize(BICUBIC)`` on a float image, as SciPy <= 1.2
did; ``np.int``/``np.float`` aliased to the builtins) and brisque 0.2.0 (``BRISQUE().score`` on the gray
image repeated on 3 channels, opencv-python-headless 5.0.0.93; its feature list converted with
``np.ravel`` before scaling, which NumPy 2 needs).  Inputs: gray PNGs of the shared data in [0, 1]
(``/255``), as they are ("sharp") and ``scipy.ndimage.gaussian_filter(image, 2.0)`` ("gauss2").
scikit-video computes in float32, hence NIQE's tolerance.
"""

import numpy as np
import pytest
from scipy import ndimage

REFERENCE = [  # (file, variant, NIQE scikit-video, BRISQUE brisque 0.2.0)
    ("test/set12/01.png", "sharp", 30.992448806762695, 1.0173926353851073),
    ("test/set12/01.png", "gauss2", 30.928638458251953, 67.62183462117648),
    ("test/set12/05.png", "sharp", 27.692535400390625, 12.30431214130735),
    ("test/set12/05.png", "gauss2", 36.219112396240234, 63.45670309841407),
    ("test/bsd68_gray/test001.png", "sharp", 11.926700592041016, 16.566240266930066),
    ("test/bsd68_gray/test001.png", "gauss2", 18.358469009399414, 63.36809868378313),
]


def _load(shared_data, rel, variant):
    import imageio.v3 as iio
    a = iio.imread(shared_data(rel)).astype(np.float64) / 255
    return ndimage.gaussian_filter(a, 2.0) if variant == "gauss2" else a


@pytest.mark.parametrize("rel,variant,niqe_ref,brisque_ref", REFERENCE)
def test_against_reference(shared_data, rel, variant, niqe_ref, brisque_ref):
    from unblur.iqa import brisque, niqe
    shared_data("iqa/brisque_svm.txt")
    img = _load(shared_data, rel, variant)
    assert brisque(img) == pytest.approx(brisque_ref, abs=1e-6)
    assert niqe(img) == pytest.approx(niqe_ref, rel=2e-3)


def test_blur_raises_brisque(shared_data):
    from unblur.iqa import brisque
    shared_data("iqa/brisque_svm.txt")
    img = _load(shared_data, "test/set12/05.png", "sharp")
    scores = [brisque(ndimage.gaussian_filter(img, s)) for s in (0.01, 1.0, 2.0)]
    assert scores[0] < scores[1] < scores[2]


def test_colour_equals_its_luma(shared_data):
    from unblur.iqa import brisque
    shared_data("iqa/brisque_svm.txt")
    g = _load(shared_data, "test/set12/05.png", "sharp")
    assert brisque(np.repeat(g[..., None], 3, -1)) == pytest.approx(brisque(g), abs=1e-9)


def test_aggd_fit_recovers_parameters():
    """Samples of a known AGGD: shape and left/right spreads recovered by the moment fit."""
    from scipy import special

    from unblur.iqa import aggd_fit
    rng = np.random.default_rng(0)
    nu, sl, sr = 1.3, 0.5, 1.0
    n = 400_000
    # |x| ~ beta * G^(1/nu) with G ~ Gamma(1/nu): a generalised Gaussian half on each side
    k = np.sqrt(special.gamma(1 / nu) / special.gamma(3 / nu))
    g = rng.gamma(1 / nu, 1.0, n) ** (1 / nu)
    left = rng.random(n) < sl / (sl + sr)
    x = np.where(left, -k * sl * g, k * sr * g)
    fit_nu, eta, fit_l, fit_r = aggd_fit(x)
    assert fit_nu == pytest.approx(nu, rel=0.03)
    assert fit_l == pytest.approx(sl, rel=0.02) and fit_r == pytest.approx(sr, rel=0.02)
    assert eta == pytest.approx(np.mean(x), rel=0.05)
    assert aggd_fit(x, "grid")[0] == pytest.approx(fit_nu, abs=2e-3)


def test_niqe_refuses_small_images():
    from unblur.errors import InputError
    from unblur.iqa import niqe_features
    with pytest.raises(InputError, match="NIQE needs"):
        niqe_features(np.zeros((100, 300)))


def test_lpips_with_synthetic_weights(tmp_path):
    import torch

    from unblur.iqa import _ALEX, lpips
    g = torch.Generator().manual_seed(0)
    sd = {}
    for i, (cin, cout, k, _, _) in enumerate(_ALEX):
        sd[f"features.{i}.weight"] = torch.randn(cout, cin, k, k, generator=g) * 0.05
        sd[f"features.{i}.bias"] = torch.zeros(cout)
        sd[f"lin{i}.model.1.weight"] = torch.rand(1, cout, 1, 1, generator=g)
    f = tmp_path / "lpips.pt"
    torch.save(sd, f)
    rng = np.random.default_rng(0)
    x = ndimage.gaussian_filter(rng.random((64, 64)), 2)
    assert lpips(x, x, f) == pytest.approx(0.0, abs=1e-9)
    near, far = lpips(x + 0.01 * rng.standard_normal(x.shape), x, f), lpips(ndimage.gaussian_filter(x, 3), x, f)
    assert 0 < near < far
