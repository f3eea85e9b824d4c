"""Training data for the image denoiser: images held in memory, random patches with the 8 flips/rotations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..io import read_image

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def list_image_files(folder) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"training data folder not found: {folder}", "give a folder of PNG/JPEG/TIFF images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
    if not files:
        raise InputError(f"no images in {folder}", "give a folder of PNG/JPEG/TIFF images")
    return files


def to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """(H, W) or (H, W, C) float image -> (channels, H, W); colour to gray by ITU-R 601 luma."""
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[-1] == channels:
        return np.ascontiguousarray(np.moveaxis(img, -1, 0))
    if channels == 1:
        return (img[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[None]
    return np.repeat(img[..., :1], 3, axis=-1).transpose(2, 0, 1).copy()


def load_images(files, channels: int) -> list[torch.Tensor]:
    out = []
    for f in files:
        a = to_channels(read_image(f).astype(np.float32), channels)
        out.append(torch.from_numpy(np.clip(a, 0, 1)))
    return out


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """One of the 8 flips/rotations of the last two axes (k in 0..7)."""
    if k >= 4:
        x = x.flip(-1)
    return torch.rot90(x, k % 4, dims=(-2, -1))


def random_patches(images: list[torch.Tensor], batch: int, patch: int, gen: torch.Generator) -> torch.Tensor:
    """``(batch, C, patch, patch)`` random crops with random flips/rotations, drawn from ``gen``."""
    idx = torch.randint(0, len(images), (batch,), generator=gen)
    out = []
    for i in idx.tolist():
        img = images[i]
        H, W = img.shape[-2:]
        if H < patch or W < patch:
            raise InputError(f"an image of {H}x{W} is smaller than the patch size {patch}", "use a smaller --patch")
        y = int(torch.randint(0, H - patch + 1, (1,), generator=gen))
        x = int(torch.randint(0, W - patch + 1, (1,), generator=gen))
        k = int(torch.randint(0, 8, (1,), generator=gen))
        out.append(dihedral(img[:, y:y + patch, x:x + patch], k))
    return torch.stack(out)
