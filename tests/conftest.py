"""Shared fixtures.  ``data`` resolves files under the data root and fails (CI) or skips (local)."""

import numpy as np
import pytest

from unblur.data import data_required, data_root


@pytest.fixture
def shared_data():
    """Callable: ``shared_data("test/set12")`` -> Path, skipping unless UNBLUR_DATA_REQUIRED is set."""

    def get(relative):
        p = data_root() / relative
        if not p.exists():
            if data_required():
                pytest.fail(f"required data file missing: {p} (UNBLUR_DATA={data_root()})")
            pytest.skip(f"data not available: {p}")
        return p

    return get


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test (tiny networks: fastest, and no contention on shared CI cores)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def gaussian_psf(size=15, sigma=2.0, ndim=2):
    r = np.arange(size) - size // 2
    grids = np.meshgrid(*([r] * ndim), indexing="ij")
    p = np.exp(-sum(g**2 for g in grids) / (2 * sigma**2))
    return (p / p.sum()).astype(np.float32)
