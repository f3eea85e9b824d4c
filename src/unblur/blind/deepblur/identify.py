"""Deep-blur identification network IN (Debarnot & Weiss 2024, section 3.1): blurred image -> gamma.

Architecture: a small ResNet encoder -- a 3x3 conv stem with batch-norm and ReLU, max-pooling, then
``len(widths)`` stages of two residual basic blocks (conv-BN-ReLU-conv-BN + skip), each stage but the
first halving the resolution (stride-2 conv, 1x1 projection on the skip), then adaptive average
pooling to 1x1 and a linear layer to the K operator parameters.  The paper uses a ResNet too; ours is
narrower so that it trains on a CPU.

Input normalisation (:func:`normalise`): each image is standardised by its own mean and standard
deviation, ``(y - mean(y)) / (std(y) + 1e-6)``.  This makes IN invariant to the image's gain and
offset: only the *shape* of the blur is read off the image.

Input features (``features``, stored in the config; weights without the key are ``"image"``):

* ``"image"``: the standardised image only (the paper's IN; one channel per image channel).
* ``"image+spectrum"``: the standardised image, plus the log power spectrum of the Hann-windowed
  standardised crop (:func:`log_spectrum`: fftshifted, DC at the centre, standardised per image),
  plus two channels of frequency coordinates (``fy``, ``fx`` in [-1, 1) on the shifted grid; CoordConv) so
  that the convolutions know *where* in the spectrum they look.  The power spectrum of ``y = h * x``
  is ``|H|^2 |X|^2``: the MTF of the PSF (its rings and zeros, their radii and anisotropy) is
  multiplied into the spectrum and is easy to read off its log; it is blind to ``h(r) -> h(-r)``
  (the signs of the odd coefficients), which the image channel still carries.  The input must then be
  a square or rectangular crop of the training size's order (the spectrum channel is as large as the image).
* ``"welch"``: the same four channels, but at a fixed ``WELCH_TILE x WELCH_TILE`` size whatever the
  image size: the log power spectrum is Welch's estimate (:func:`welch_log_spectrum`), the average of
  the spectra of ``WELCH_TILE``-pixel Hann-windowed tiles overlapping by half (each tile standardised),
  and the image channel is the central ``WELCH_TILE`` crop.  A single tile's periodogram has a
  relative standard deviation of 100 % per frequency; averaging T tiles divides it by about sqrt(T),
  so the MTF that IN reads gets cleaner as the image grows (9 tiles for a 128x128 crop, 121 for
  400x400), where the other modes can only average the per-tile *outputs*.  The whole image is read
  at once (no output tiling).

Sign convention: the PSF of the pupil phase ``phi_even + phi_odd`` equals the PSF of
``-phi_even + phi_odd`` (flip the pupil r -> -r and conjugate; valid for a centro-symmetric pupil),
so the signs of the even-order Zernike coefficients (radial order n even: Noll 4, 5, 6, 11, ...) can
only be known jointly up to a global flip.  We fix it by requiring the defocus-like *first even*
coefficient to be >= 0 (:func:`canonical_sign`): training targets are canonicalised, and so are the
predictions.  This applies to the Zernike model; each PSF model states its own convention
(``PSFModel.canonical`` in :mod:`.psf_model`: none for eigen-PSF coefficients, this one per control
point for a product-convolution of Zernike PSFs).
"""

from __future__ import annotations

import torch
from torch import nn

from ...errors import InputError
from ...psf.zernike import noll_to_nm


def even_mask(noll) -> torch.Tensor:
    """Boolean mask of the coefficients whose Zernike polynomial is even (radial order n even)."""
    return torch.tensor([noll_to_nm(int(j))[0] % 2 == 0 for j in noll])


def canonical_sign(gamma: torch.Tensor, noll) -> torch.Tensor:
    """Flip the even coefficients of each row so that the first even one is >= 0 (see module docstring)."""
    mask = even_mask(noll).to(gamma.device)
    if not bool(mask.any()):
        return gamma
    first = int(mask.nonzero()[0, 0])
    flip = torch.where(gamma[:, first:first + 1] < 0, -1.0, 1.0).to(gamma.dtype)
    return torch.where(mask, gamma * flip, gamma)


def sign_invariant_mse(pred: torch.Tensor, target: torch.Tensor, noll) -> torch.Tensor:
    """Mean over the batch of ``min(||pred - g||^2, ||pred - S g||^2) / K``, ``S`` flipping the even coefficients."""
    s = torch.where(even_mask(noll).to(target.device), -1.0, 1.0).to(target.dtype)
    e1 = ((pred - target) ** 2).mean(1)
    e2 = ((pred - s * target) ** 2).mean(1)
    return torch.minimum(e1, e2).mean()


FEATURES = ("image", "image+spectrum", "welch")
WELCH_TILE = 64
WELCH_MAX_TILES = 256


def log_spectrum(yn: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Standardised log power spectrum of the Hann-windowed ``yn (B, C, H, W)``, DC at ``(H // 2, W // 2)``.

    ``p = |FFT(w yn)|^2 / sum(w^2)`` (about 1 per frequency on average for a unit-variance input),
    ``log(p + eps)``, then each image's map is standardised (mean 0, std 1).
    """
    H, W = yn.shape[-2:]
    win = torch.outer(torch.hann_window(H, periodic=False, dtype=yn.dtype, device=yn.device),
                      torch.hann_window(W, periodic=False, dtype=yn.dtype, device=yn.device))
    f = torch.fft.fft2(yn * win)
    p = (f.real**2 + f.imag**2) / (win**2).sum().clamp_min(1e-12)
    s = torch.fft.fftshift(torch.log(p + eps), dim=(-2, -1))
    return normalise(s)


def welch_log_spectrum(yn: torch.Tensor, tile: int = WELCH_TILE, eps: float = 1e-3,
                       max_tiles: int = WELCH_MAX_TILES) -> torch.Tensor:
    """Welch estimate of the log power spectrum of ``yn (B, C, H, W)`` (H, W >= ``tile``): ``(B, C, tile, tile)``.

    Tiles of ``tile`` pixels with stride ``tile // 2`` (at most ``max_tiles``, evenly subsampled), each
    standardised, Hann-windowed and transformed; the mean of their ``|FFT|^2 / sum(w^2)``, then
    ``log(. + eps)``, fftshifted (DC at ``tile // 2``) and standardised per image, as :func:`log_spectrum`.
    """
    B, C, H, W = yn.shape
    if min(H, W) < tile:
        raise InputError(f"image {H}x{W} is smaller than the {tile}-pixel Welch tile", f"use an image of at least {tile}x{tile}")
    t = yn.unfold(2, tile, tile // 2).unfold(3, tile, tile // 2)  # (B, C, nY, nX, tile, tile)
    t = t.reshape(B, C, -1, tile, tile)
    if t.shape[2] > max_tiles:
        t = t[:, :, torch.linspace(0, t.shape[2] - 1, max_tiles).round().long()]
    mean = t.mean((-2, -1), keepdim=True)
    std = t.std((-2, -1), keepdim=True)
    t = (t - mean) / (std + 1e-6)
    win = torch.outer(torch.hann_window(tile, periodic=False, dtype=yn.dtype, device=yn.device),
                      torch.hann_window(tile, periodic=False, dtype=yn.dtype, device=yn.device))
    f = torch.fft.fft2(t * win)
    p = ((f.real**2 + f.imag**2) / (win**2).sum().clamp_min(1e-12)).mean(2)
    return normalise(torch.fft.fftshift(torch.log(p + eps), dim=(-2, -1)))


def welch_features(x: torch.Tensor, tile: int = WELCH_TILE) -> torch.Tensor:
    """IN input of ``features="welch"``: central ``tile`` crop of the standardised ``x``, its Welch log
    spectrum and the frequency coordinates: ``(B, 2 C + 2, tile, tile)``."""
    B, _, H, W = x.shape
    spec = welch_log_spectrum(x, tile)
    i, j = (H - tile) // 2, (W - tile) // 2
    return torch.cat([x[:, :, i:i + tile, j:j + tile], spec, frequency_coordinates(B, tile, tile, x)], 1)


def frequency_coordinates(B: int, H: int, W: int, like: torch.Tensor) -> torch.Tensor:
    """``(B, 2, H, W)``: ``fy, fx`` in [-1, 1) (twice the frequency in cycles/pixel) on the fftshifted grid."""
    fy = 2 * torch.fft.fftshift(torch.fft.fftfreq(H, dtype=like.dtype, device=like.device))
    fx = 2 * torch.fft.fftshift(torch.fft.fftfreq(W, dtype=like.dtype, device=like.device))
    grid = torch.stack(torch.meshgrid(fy, fx, indexing="ij"))
    return grid[None].expand(B, 2, H, W)


def normalise(y: torch.Tensor) -> torch.Tensor:
    """Per-image standardisation ``(y - mean) / (std + 1e-6)`` over channels and pixels."""
    flat = y.flatten(1)
    mean = flat.mean(1).view(-1, 1, 1, 1)
    std = flat.std(1).view(-1, 1, 1, 1)
    return (y - mean) / (std + 1e-6)


class _Block(nn.Module):
    """ResNet basic block: conv-BN-ReLU-conv-BN plus a (projected) skip, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = (nn.Identity() if stride == 1 and cin == cout else
                     nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x):
        return torch.relu(self.body(x) + self.skip(x))


class IdentificationNet(nn.Module):
    """ResNet encoder ``(B, 1, H, W) -> (B, K)``; any H, W >= 16 (adaptive pooling; >= ``WELCH_TILE`` for
    ``features="welch"``).

    ``scale`` multiplies the linear head's output (set to eta so that the head works in O(1) units).
    ``features``: the input features (module docstring); ``"image"`` is the paper's IN.
    """

    def __init__(self, n_params: int, widths=(16, 32, 64, 128), in_channels: int = 1, scale: float = 1.0,
                 features: str = "image"):
        super().__init__()
        if features not in FEATURES:
            raise InputError(f"unknown IN features {features!r}", f"use one of {', '.join(FEATURES)}")
        self.config = {"n_params": int(n_params), "widths": list(widths), "in_channels": int(in_channels),
                       "scale": float(scale)}
        if features != "image":  # old configs have no key: they stay byte-identical
            self.config["features"] = features
        self.features = features
        w0 = widths[0]
        c_stem = in_channels if features == "image" else 2 * in_channels + 2
        self.stem = nn.Sequential(nn.Conv2d(c_stem, w0, 3, 1, 1, bias=False), nn.BatchNorm2d(w0),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(2))
        blocks, cin = [], w0
        for i, w in enumerate(widths):
            blocks += [_Block(cin, w, 1 if i == 0 else 2), _Block(w, w, 1)]
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(cin, n_params)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if y.ndim != 4 or y.shape[1] != self.config["in_channels"]:
            raise InputError(f"identification input must be (B, {self.config['in_channels']}, H, W), got {tuple(y.shape)}")
        x = normalise(y)
        if self.features == "image+spectrum":
            B, _, H, W = x.shape
            x = torch.cat([x, log_spectrum(x), frequency_coordinates(B, H, W, x)], 1)
        elif self.features == "welch":
            x = welch_features(x)
        h = self.blocks(self.stem(x))
        return self.head(self.pool(h).flatten(1)) * self.config["scale"]


def tile_starts(n: int, tile: int, overlap: float = 0.5) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, n)`` with about ``overlap`` overlap."""
    if n <= tile:
        return [0]
    step = max(1, round(tile * (1 - overlap)))
    starts = list(range(0, n - tile + 1, step))
    if starts[-1] != n - tile:
        starts.append(n - tile)
    return starts


@torch.no_grad()
def identify_tiled(net: IdentificationNet, y: torch.Tensor, tile: int, canonical, overlap: float = 0.5,
                   max_tiles: int = 64) -> torch.Tensor:
    """gamma for each image of ``y (B, 1, H, W)``, averaging IN over tiles of the training size.

    Rule: images no larger than ``tile`` are read whole; larger ones are cut into ``tile x tile``
    tiles overlapping by ``overlap`` (at most ``max_tiles``, evenly subsampled), each tile's estimate
    is mapped to its canonical form by ``canonical`` (the PSF model's sign convention, e.g.
    :func:`canonical_sign`), and the estimates are averaged.  This assumes the blur is the same over
    the image (a convolution model; product-convolution models are read whole, see ``api``).  Tiles
    whose standard deviation is below 1% of the image's are skipped (flat background carries no blur
    information), unless all are.
    """
    B, _, H, W = y.shape
    boxes = [(i, j) for i in tile_starts(H, tile, overlap) for j in tile_starts(W, tile, overlap)]
    if len(boxes) > max_tiles:
        idx = torch.linspace(0, len(boxes) - 1, max_tiles).round().long().tolist()
        boxes = [boxes[k] for k in idx]
    th, tw = min(tile, H), min(tile, W)
    tiles = torch.stack([y[:, :, i:i + th, j:j + tw] for i, j in boxes], 1)  # (B, T, C, th, tw)
    est = canonical(net(tiles.flatten(0, 1))).view(B, len(boxes), -1)
    std = tiles.flatten(2).std(2)
    keep = (std >= 0.01 * y.flatten(1).std(1, keepdim=True)).to(est.dtype)
    keep = torch.where(keep.sum(1, keepdim=True) > 0, keep, torch.ones_like(keep))
    return (est * keep[..., None]).sum(1) / keep.sum(1, keepdim=True)
