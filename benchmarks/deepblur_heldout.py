"""Held-out evaluation (set12 crops of the training size, eta 0.15) of a deep-blur IN export (any PSF model): gamma loss and PSF SNR vs gamma = 0.

A study of the identification network itself (its gamma loss on simulated batches), which no
registered method exposes: it loads the weights and runs the network directly.

    python benchmarks/deepblur_heldout.py WEIGHTS [N]
"""
import sys

import unblur  # noqa: F401  (sets OMP_WAIT_POLICY before torch is imported)

import torch

from unblur.blind.deepblur.psf_model import psf_model_from_description
from unblur.blind.deepblur.simulate import load_gray_images, make_batch
from unblur.blind.deepblur.train import model_from_weights
from unblur.data import data_path
from unblur.models.checkpoints import read_checkpoint

torch.set_num_threads(1)
ck = read_checkpoint(sys.argv[1], ("deepblur-identify",))
n = int(sys.argv[2]) if len(sys.argv) > 2 else 96
model = psf_model_from_description(ck["psf_model"])
net = model_from_weights(ck)
size, eta = ck["meta"]["train_config"]["size"], 0.15
images = load_gray_images(data_path("test/set12"), size + model.psf_size - 1)


def snr(h, h_hat):  # per case, over all PSFs of the case
    d = (h - h_hat).flatten(1).norm(dim=1)
    return 20 * torch.log10(h.flatten(1).norm(dim=1) / d)


for name, amax, bmax in (("noiseless", 0.0, 0.0), ("training noise", 0.02, 0.0004)):
    b = make_batch(images, model, n, size, eta, amax, bmax, torch.Generator().manual_seed(123))
    with torch.no_grad():
        g_hat = model.canonical(net(b["y"]))
        zero = torch.zeros_like(g_hat)
        l_in = float(model.gamma_loss(g_hat, b["gamma"])) / eta**2
        l_0 = float(model.gamma_loss(zero, b["gamma"])) / eta**2
        s_in, s_0 = snr(b["psf"], model(g_hat)), snr(b["psf"], model(zero))
    print(f"{name:15s} n={n}: gamma loss IN {l_in:.4f} vs zero {l_0:.4f}; PSF SNR IN {s_in.mean():.2f} dB "
          f"vs gamma=0 {s_0.mean():.2f} dB (median {s_in.median():.2f} vs {s_0.median():.2f}); "
          f"IN better in {float((s_in > s_0).float().mean()) * 100:.0f}% of cases")
