"""Deep-blur inference: :func:`identify_psf` (gamma and PSF only) and :func:`deepblur` (also the sharp image).

Weights: by default the files shipped in ``unblur/weights`` (``deepblur_identify.pt``,
``deepblur_deblur.pt``; see ``deepblur_MODEL_CARD.md``).  They were trained for the Zernike model
of ``unblur.psf.zernike`` with the optics stored in the file (NA, wavelength, pixel in um) and
gray images in [0, 1].  Passing other ``optics`` evaluates the PSF of the identified gamma with those
optics, which is only meaningful when the pupil cut-off ``NA / wavelength * pixel`` is close to the
training one (:func:`cutoff_mismatch` states the rule; a warning says so otherwise).
:func:`training_optics` reads the optics of a weights file and :func:`optics_for_pixel_size` builds
the optics of an image whose pixel size alone is known (the CLI takes it from the image's metadata).  Weights trained for another PSF model (eigen-PSF or product-convolution,
see :mod:`.psf_model`) carry that model, eigen basis included; ``optics`` is refused for them.

Images larger than the training crop are handled by tiling the identification and averaging the
canonicalised gamma over tiles (:func:`.identify.identify_tiled`).  A product-convolution model is
identified on the whole image instead (its control points are positions in the image, so the image
should have about the training crop size).  An IN with ``features="welch"`` also reads the whole image:
it averages the spectra of its tiles itself (:func:`.identify.welch_log_spectrum`).  Deblurring runs on the whole image with the ``valid``
boundary (the object is estimated ``k - 1`` pixels beyond the edge and cropped) and the model's
operator.  Colour images are identified and deblurred on their channel mean / per channel.
"""

from __future__ import annotations

import time
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ...errors import require
from ...models.checkpoints import read_checkpoint
from .identify import identify_tiled
from .psf_model import model_optics, parse_optics, psf_model_from_description, zernike_psf_model
from .train import KINDS, model_from_weights

WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
IDENTIFY_WEIGHTS = WEIGHTS_DIR / "deepblur_identify.pt"
DEBLUR_WEIGHTS = WEIGHTS_DIR / "deepblur_deblur.pt"
#: Pupil cut-offs ``f_c / f_c_trained`` the shipped identification weights cover (:func:`cutoff_mismatch`).
CUTOFF_RANGE = (0.75, 1.35)


@lru_cache(maxsize=4)
def _load(path: str, kinds: tuple[str, ...], device: str = "cpu"):
    """``(network in eval mode on device, checkpoint)`` of a weights file of one of ``kinds`` (weights only, no code)."""
    ck = read_checkpoint(Path(path), kinds)
    return model_from_weights(ck).to(device), ck


def _device(device) -> torch.device:
    """The torch device of the networks (:func:`unblur.arrays.resolve_device`; ``None`` is the CPU)."""
    from ...arrays import resolve_device

    return resolve_device(device) or torch.device("cpu")


def _train_size(ck: dict) -> int:
    """The crop size the network was trained on (the checkpoint's training config)."""
    size = ck["meta"].get("train_config", {}).get("size")
    require(size is not None, "these weights do not say their training crop size", "give tile= explicitly")
    return int(size)


def _as_gray_tensor(image, device=None) -> tuple[torch.Tensor, bool]:
    a = np.asarray(image, dtype=np.float32)
    require(a.ndim in (2, 3), f"deep-blur takes a 2-D gray or (H, W, C) colour image, got shape {a.shape}",
            "give a single 2-D image (take one slice of a stack)")
    colour = a.ndim == 3
    t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, 0) if colour else a[None]))[None]
    require(bool(torch.isfinite(t).all()), "image contains NaN or infinite values", "clean the image first")
    require(float(t.max() - t.min()) > 1e-6, "the image is flat (constant or fully saturated): there is no blur to identify",
            "give an image with structure")
    return (t.to(device) if device is not None else t), colour


def _psf_model_for(ck: dict, optics):
    desc = ck["psf_model"]
    if optics is None or desc["kind"] != "zernike":
        require(optics is None, f"optics apply to the Zernike model only; these weights hold the {desc['kind']} model",
                "drop the optics option: the PSF model is stored in the weights")
        return psf_model_from_description(desc)
    na, wl, px = parse_optics(optics)
    problem = cutoff_mismatch((na, wl, px), desc["optics"])
    if problem:
        warnings.warn(problem + ": gamma and the PSF may be wrong")
    return zernike_psf_model((na, wl, px), desc["noll"], desc["psf_size"])


def training_optics(weights=None) -> tuple[float, float, float]:
    """The optics the identification weights were trained for: ``(NA, wavelength_um, pixel_um)``.

    Read from the PSF model stored in ``weights`` (default: the shipped IN, NA 1.2, wavelength
    0.6 um, pixel 0.1 um, pupil cut-off ``NA / wavelength * pixel = 0.2`` cycles/pixel).  An eigen-PSF
    or product-convolution model gives the optics of the Zernike family it was built from.

    >>> training_optics()
    (1.2, 0.6, 0.1)
    """
    _, ck = _load(str(weights or IDENTIFY_WEIGHTS), (KINDS["identify"],))
    optics = model_optics(ck["psf_model"])
    require(optics is not None, f"the weights {weights or IDENTIFY_WEIGHTS} do not record the optics they were trained for",
            "give the optics explicitly (NA,wavelength,pixel)")
    return optics


def cutoff_mismatch(optics, trained) -> str | None:
    """One line saying why ``optics`` lie outside what weights trained for ``trained`` cover, or None.

    Both are ``(NA, wavelength_um, pixel_um)``.  The identification network sees the blur in pixels, so
    what matters is the pupil cut-off ``f_c = NA / wavelength * pixel`` (cycles/pixel).  Rule: ``optics``
    are covered when ``CUTOFF_RANGE[0] <= f_c / f_c_trained <= CUTOFF_RANGE[1]``
    (:data:`CUTOFF_RANGE`: the range over which the PSF SNR of the shipped weights, the PSF evaluated
    with the image's own cut-off, was measured within about 1 dB of the matched case; BENCHMARKS.md,
    "Deep-blur").  Outside it the identification still runs and :func:`identify_psf` warns.
    """
    na, wl, px = parse_optics(optics)
    tna, twl, tpx = (float(v) for v in trained)
    fc, tfc = na / wl * px, tna / twl * tpx
    lo, hi = CUTOFF_RANGE
    if lo <= fc / tfc <= hi:
        return None
    return (f"pupil cut-off {fc:.3g} cycles/pixel (NA {na:g}, wavelength {wl:g} µm, pixel {px:.4g} µm) is outside "
            f"{lo:g}-{hi:g} x the {tfc:.3g} the weights were trained for (NA {tna:g}, wavelength {twl:g} µm, pixel {tpx:g} µm)")


def optics_for_pixel_size(pixel_um: float, weights=None) -> tuple[float, float, float] | None:
    """Optics of an image whose pixel size is known but not its NA and wavelength.

    Returns ``(NA, wavelength_um, pixel_um)`` with the training NA and wavelength of ``weights``
    (:func:`training_optics`) and the given pixel size, for the ``optics`` parameter of
    :func:`identify_psf` / :func:`deepblur`; None when the weights' PSF model takes no optics
    (eigen-PSF, product-convolution: their PSFs are stored in pixels).

    Rule: a pixel size whose cut-off ``f_c = NA / wavelength * pixel`` exceeds 0.5 cycles/pixel is
    refused (``InputError``: the pupil does not fit in the sampled band); a cut-off outside
    :data:`CUTOFF_RANGE` times the training one is accepted, and :func:`identify_psf` /
    :func:`deepblur` then warn in one line (:func:`cutoff_mismatch`).

    >>> optics_for_pixel_size(0.11)
    (1.2, 0.6, 0.11)
    """
    require(pixel_um is not None and float(pixel_um) > 0, f"pixel size must be > 0 µm, got {pixel_um}",
            "give the pixel size in micrometres")
    _, ck = _load(str(weights or IDENTIFY_WEIGHTS), (KINDS["identify"],))
    if ck["psf_model"].get("kind") != "zernike":
        return None
    na, wl, tpx = training_optics(weights)
    fc = na / wl * float(pixel_um)
    require(fc <= 0.5, f"pixel {float(pixel_um):.4g} µm gives a pupil cut-off {fc:.3g} cycles/pixel with the training "
            f"NA {na:g} and wavelength {wl:g} µm, above the 0.5 that pixels can sample",
            f"resample the image to pixels of about {tpx:g} µm, or give the optics explicitly (NA,wavelength,pixel)")
    return na, wl, float(pixel_um)


def _identify(net, ck: dict, model, image, tile: int | None, overlap: float, device=None) -> torch.Tensor:
    """Canonical gamma ``(1, K)`` on the CPU of ``image`` (gray mean of colour); tiling rule in the module docstring."""
    y, _ = _as_gray_tensor(image, device)
    y = y.mean(1, keepdim=True)
    require(min(y.shape[-2:]) >= 16, f"image {tuple(y.shape[-2:])} is too small to identify a blur", "use at least 16x16")
    whole = model.space_varying or getattr(net, "features", "image") == "welch"  # welch averages spectra inside IN
    tile = max(y.shape[-2:]) if whole else tile or _train_size(ck)
    return identify_tiled(net, y, tile, model.canonical, overlap).cpu()


def identify_psf(image, optics=None, weights=None, tile: int | None = None, overlap: float = 0.5, device=None):
    """Identify the PSF parameters of the blur of ``image`` (Zernike coefficients with the shipped weights).

    Returns ``(gamma, psf, noll)``: ``gamma`` (K,) (Zernike: in waves, even coefficients
    sign-canonicalised: the first even one >= 0), the PSF ``(k, k)`` it implies (sum 1; a
    product-convolution model gives its control-point PSFs ``(gy, gx, k, k)``), and the Noll indices
    (empty for non-Zernike models).  ``tile`` defaults to the training crop size.  ``device``: where
    the network runs (cpu, cuda, ...; default cpu; :func:`unblur.arrays.resolve_device`); the PSF
    model is evaluated on the CPU.
    """
    dev = _device(device)
    net, ck = _load(str(weights or IDENTIFY_WEIGHTS), (KINDS["identify"],), str(dev))
    model = _psf_model_for(ck, optics)
    gamma = _identify(net, ck, model, image, tile, overlap, dev)
    with torch.no_grad():
        psf = model.psf_array(model(gamma)[0])
    return gamma[0].numpy(), psf.numpy(), model.noll


def deepblur(image, optics=None, identify_weights=None, deblur_weights=None, tile: int | None = None,
             gamma=None, device=None):
    """Blind deblurring: identify gamma with IN, then restore with DN fed ``A(gamma)``.

    ``gamma`` (optional) skips the identification (non-blind use of DN).  ``device``: where the
    networks run (as in :func:`identify_psf`).  Returns a dict with ``image`` (same layout as the
    input, float32; DN's output is not clipped), ``gamma``, ``psf`` (as in :func:`identify_psf`),
    ``noll`` and ``time_s``.
    """
    t0 = time.time()
    dev = _device(device)
    # with gamma given only the PSF model stored in the file is used (either network's file holds it)
    kinds = (KINDS["identify"],) if gamma is None else tuple(KINDS.values())
    net, ck = _load(str(identify_weights or IDENTIFY_WEIGHTS), kinds, str(dev))
    model = _psf_model_for(ck, optics)
    if gamma is None:
        g = _identify(net, ck, model, image, tile, 0.5, dev)
    else:
        g = torch.as_tensor(np.asarray(gamma, dtype=np.float32)).reshape(1, -1)
        require(g.shape[1] == model.n_params, f"gamma needs {model.n_params} values, got {g.shape[1]}")
        g = model.canonical(g)
    with torch.no_grad():
        psf = model(g)
    dn, _ = _load(str(deblur_weights or DEBLUR_WEIGHTS), (KINDS["deblur"],), str(dev))
    y, colour = _as_gray_tensor(image, dev)
    y = y.transpose(0, 1)  # channels as a batch
    require(min(y.shape[-2:]) >= model.psf_size,
            f"image {tuple(y.shape[-2:])} is smaller than the PSF ({model.psf_size}x{model.psf_size})")
    op = model.operator(psf.to(dev), tuple(y.shape[-2:]), "valid")
    with torch.no_grad():
        x = dn(y, op).transpose(0, 1)[0].cpu()
    out = np.moveaxis(x.numpy(), 0, -1) if colour else x[0].numpy()
    gamma_out = g[0].numpy() if gamma is None else np.asarray(gamma, np.float32).reshape(-1)
    return {"image": out.astype(np.float32), "gamma": gamma_out.astype(np.float32),
            "psf": model.psf_array(psf[0]).numpy(), "noll": list(model.noll), "time_s": time.time() - t0}


__all__ = ["CUTOFF_RANGE", "DEBLUR_WEIGHTS", "IDENTIFY_WEIGHTS", "cutoff_mismatch", "deepblur", "identify_psf",
           "optics_for_pixel_size", "training_optics"]
