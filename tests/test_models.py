"""The Denoiser interface of unblur's networks: shapes, dtypes, gray/colour, sigma broadcasting, determinism."""

import pytest
import torch

from unblur.diffusion import EpsilonDenoiser, VPSchedule
from unblur.errors import InputError
from unblur.models import DRUNet, KairDnCNN, KernelDenoiser, UnblurDenoiser
from unblur.models.unblur_net import edm_coefficients


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny networks: run with one thread (see conftest.one_torch_thread)."""


def small_unblur(channels):
    torch.manual_seed(0)
    return UnblurDenoiser(channels, nc=(8, 16, 16, 16), nb=1).eval()


@pytest.mark.parametrize("channels", [1, 3])
def test_unblur_denoiser_shapes_and_dtype(channels):
    m = small_unblur(channels)
    x = torch.rand(2, channels, 37, 29)  # sizes not multiples of 8
    y = m(x, 0.1)
    assert y.shape == x.shape and y.dtype == torch.float32 and torch.isfinite(y).all()


def test_sigma_broadcasting_matches_per_image_calls():
    m = small_unblur(1)
    x = torch.rand(3, 1, 16, 16)
    s = torch.tensor([0.01, 0.1, 5.0])
    batched = m(x, s)
    single = torch.cat([m(x[i:i + 1], float(s[i])) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-5)
    assert torch.allclose(m(x, 0.1), m(x, torch.full((3,), 0.1)), atol=1e-6)
    with pytest.raises(InputError):
        m(x, torch.tensor([0.1, 0.2]))
    with pytest.raises(InputError):
        m(x, -0.1)


def test_channel_and_shape_errors():
    m = small_unblur(1)
    with pytest.raises(InputError):
        m(torch.rand(1, 3, 16, 16), 0.1)
    with pytest.raises(InputError):
        m(torch.rand(16, 16), 0.1)


def test_determinism_same_seed_same_weights_and_output():
    a, b = small_unblur(3), small_unblur(3)
    x = torch.rand(1, 3, 24, 24)
    assert torch.equal(a(x, 0.05), b(x, 0.05))


def test_edm_limits():
    """c_skip -> 1, c_out -> sigma at small sigma (identity + residual); D -> sd*F + 0.5 at large sigma."""
    c_skip, c_out, c_in, _ = edm_coefficients(torch.tensor([1e-4, 100.0]))
    assert abs(float(c_skip[0]) - 1) < 1e-6 and abs(float(c_out[0]) - 1e-4) < 1e-7
    assert float(c_skip[1]) < 1e-5 and abs(float(c_out[1]) - 0.25) < 1e-3
    m = small_unblur(1)
    x = torch.rand(1, 1, 16, 16)
    assert torch.allclose(m(x, 0.0), x, atol=1e-3)  # sigma = 0: (almost) the identity


def test_other_architectures_interface():
    x = torch.rand(1, 1, 20, 20)
    assert KairDnCNN(1, depth=5, features=8)(x, 0.1).shape == x.shape
    assert DRUNet(1, nc=(8, 8, 8, 8), nb=1)(x, 0.1).shape == x.shape
    k = torch.rand(2, 1, 33, 33)
    assert KernelDenoiser(33)(k / k.sum((-2, -1), keepdim=True), 3e-3).shape == k.shape


class _OracleEps(torch.nn.Module):
    """An epsilon network that knows the clean image x0' (in [-1, 1]): eps = (x_t - sqrt(ab) x0') / sqrt(1-ab)."""

    def __init__(self, x0, schedule):
        super().__init__()
        self.x0, self.s = x0, schedule

    def forward(self, x_t, t):
        ls = torch.sqrt((1 - self.s.alphas_cumprod) / self.s.alphas_cumprod).float().log()
        tt = torch.as_tensor(t, dtype=torch.float32).reshape(-1)
        i0 = tt.floor().long().clamp(0, 998)
        lsig = ls[i0] + (tt - i0) * (ls[i0 + 1] - ls[i0])
        ab = (1 / (1 + lsig.exp() ** 2)).view(-1, 1, 1, 1)
        eps = (x_t - ab.sqrt() * self.x0) / (1 - ab).sqrt()
        return torch.cat([eps, torch.zeros_like(eps)], 1)  # learn_sigma layout


def test_epsilon_denoiser_maps_sigma_and_range():
    """With an oracle epsilon network, the adapter must return the clean image for any sigma."""
    sch = VPSchedule()
    x0 = torch.rand(2, 3, 8, 8)
    d = EpsilonDenoiser(_OracleEps(2 * x0 - 1, sch), sch, channels=3)
    for sigma in (0.01, 0.3, 5.0, torch.tensor([0.02, 20.0])):
        y = x0 + torch.as_tensor(sigma).view(-1, 1, 1, 1) * torch.randn_like(x0)
        assert torch.allclose(d(y, sigma), x0, atol=2e-3), sigma
    t = d.t_continuous(torch.tensor([float(sch.sigma(0)), float(sch.sigma(500)), float(sch.sigma(999))]))
    assert torch.allclose(t, torch.tensor([0.0, 500.0, 999.0]), atol=1e-2)
    assert 70 < d.sigma_max < 90
