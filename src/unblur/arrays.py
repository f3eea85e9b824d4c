"""Array layout conversions between the numpy API and the torch core.

Conventions (see docs/conventions.md):

* numpy, 2D gray ``(H, W)``; 2D colour ``(H, W, C)``; 3D stack ``(Z, Y, X)``; 3D multichannel
  ``(Z, Y, X, C)``.
* torch, ``(B, C, H, W)`` for 2D and ``(B, C, Z, Y, X)`` for 3D (torch's own ``(N, C, D, H, W)``
  order, so a numpy stack maps to torch by adding two leading axes, without transposing).
* Whether a 3-D numpy array is a colour image or a stack is decided by the PSF: a 2-D PSF makes
  ``(H, W, C)`` a colour image, a 3-D PSF makes ``(Z, Y, X)`` a stack.  Without a PSF, pass
  ``spatial_ndim`` explicitly.
* Compute dtype is float32; results go back in the caller's floating dtype (float64 in, float64
  out; integer input gives float32), as scikit-image does.
* Integer arrays are scaled like integer files (:func:`unblur.io.read_image`): divided by their
  type's maximum (uint8 by 255, uint16 by 65535; bool is 0 or 1), so ``uint8`` and the same
  picture read from a PNG give the same result (:func:`integer_scale`).
* Devices: :func:`resolve_device` validates ``device`` once (a clear error when CUDA is asked for
  and absent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .errors import InputError, require
from .io._backends import integer_scale as numpy_integer_scale


@dataclass(frozen=True)
class Layout:
    """How a numpy array maps to a torch batch, so that results go back in the same form."""

    spatial_ndim: int
    channels_last: bool  # numpy array had a trailing channel axis
    was_torch: bool
    batch: bool  # torch input already had a batch axis (always true for torch input)
    numpy_dtype: np.dtype | None
    torch_dtype: torch.dtype | None = None  # dtype of a torch input

    def to_output(self, x: torch.Tensor):
        """Convert a (B, C, *spatial) result back to the caller's layout and floating dtype."""
        if self.was_torch:
            if self.torch_dtype is not None and self.torch_dtype.is_floating_point and x.dtype != self.torch_dtype:
                return x.to(self.torch_dtype)
            return x
        arr = x.detach().cpu().numpy()
        if self.numpy_dtype is not None and self.numpy_dtype.kind == "f" and arr.dtype != self.numpy_dtype:
            arr = arr.astype(self.numpy_dtype)
        arr = arr[0]
        if self.channels_last:
            arr = np.moveaxis(arr, 0, -1)
        else:
            arr = arr[0]
        return np.ascontiguousarray(arr)


def check_finite(a, what: str = "image") -> None:
    """Refuse NaN or Inf values with a clear message."""
    if isinstance(a, torch.Tensor):
        if bool(torch.isfinite(a).all()):  # the common case: one pass, no count
            return
        bad = int((~torch.isfinite(a)).sum())
    else:
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
    require(bad == 0, f"{what} contains {bad} NaN or Inf value(s)",
            "replace them (e.g. with the local median or 0) before deconvolving; rl, rl-tv and tv-admm can leave "
            "them out of the fit as missing data (missing='mask', --missing mask)")


def resolve_device(device) -> torch.device | None:
    """Validate a device (``None``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"auto"`` or a
    :class:`torch.device`) and return it as a :class:`torch.device` (``None`` stays ``None``: the
    input's own device).  ``"auto"`` is CUDA when available, else the CPU.

    Raises :class:`~unblur.errors.InputError` for an unknown name or an accelerator this torch lacks.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device is None:
        return None
    if isinstance(device, str) and device.strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"unknown device {device!r}", "use 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'") from None
    if dev.type == "cuda":
        require(torch.cuda.is_available(), "CUDA was requested but this torch has no GPU",
                "run without --device cuda or install a CUDA build of torch")
        require(dev.index is None or dev.index < torch.cuda.device_count(),
                f"GPU {dev.index} was requested but this machine has {torch.cuda.device_count()}",
                "use --device cuda:0 or another existing GPU")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        require(mps is not None and mps.is_available(), "MPS was requested but this torch cannot use it",
                "run without --device mps")
    elif dev.type != "cpu":
        raise InputError(f"device {device!r} is not supported", "use 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'")
    return dev


def integer_scale(dtype) -> float | None:
    """The divisor that maps an integer ``dtype`` (numpy or torch) to [0, 1]: its maximum (uint8: 255,
    uint16: 65535, int16: 32767); ``None`` for floating-point and bool dtypes (used as they are).

    >>> integer_scale(np.uint8), integer_scale(np.float32)
    (255, None)
    """
    if isinstance(dtype, torch.dtype):
        if dtype.is_floating_point or dtype.is_complex or dtype == torch.bool:
            return None
        return int(torch.iinfo(dtype).max)
    return numpy_integer_scale(dtype)


def to_batch(image, spatial_ndim: int, dtype=torch.float32, device=None,
             allow_nonfinite: bool = False) -> tuple[torch.Tensor, Layout]:
    """numpy ``(H,W)``, ``(H,W,C)``, ``(Z,Y,X)``, ``(Z,Y,X,C)`` or torch ``(B,C,*spatial)`` -> torch batch.

    ``device`` is checked by :func:`resolve_device`; the result keeps the caller's dtype in its
    :class:`Layout` so that :meth:`Layout.to_output` can return the same floating dtype (float32 for
    integer input).  Integer input is divided by its type's maximum (:func:`integer_scale`), as
    integer files are when read.
    """
    require(spatial_ndim in (2, 3), f"spatial_ndim must be 2 or 3, got {spatial_ndim}")
    device = resolve_device(device)
    if isinstance(image, torch.Tensor):
        require(image.ndim == spatial_ndim + 2,
                f"torch input must have shape (B, C, {'H, W' if spatial_ndim == 2 else 'Z, Y, X'}), got {tuple(image.shape)}",
                "add batch/channel axes with x[None, None]")
        x = image.to(dtype=dtype, device=device)
        scale = integer_scale(image.dtype)
        if scale is not None:
            x = x / scale
        layout = Layout(spatial_ndim, False, True, True, None, image.dtype)
    else:
        arr = np.asarray(image)
        require(arr.dtype.kind in "biuf", f"image dtype {arr.dtype} is not numeric", "pass a real-valued array")
        if arr.ndim == spatial_ndim:
            channels_last = False
            arr = arr[None]
        elif arr.ndim == spatial_ndim + 1:
            channels_last = True
            arr = np.moveaxis(arr, -1, 0)
        else:
            raise InputError(
                f"image has {arr.ndim} axes but the PSF is {spatial_ndim}-D",
                f"give a {spatial_ndim}-D image (or {spatial_ndim}-D plus a trailing channel axis) with a {spatial_ndim}-D PSF",
            )
        x = torch.from_numpy(np.ascontiguousarray(arr)).to(dtype=dtype, device=device)[None]
        scale = integer_scale(arr.dtype)
        if scale is not None:
            x = x / scale
        layout = Layout(spatial_ndim, channels_last, False, False, arr.dtype)
    if not allow_nonfinite:
        check_finite(x, "image")
    spatial = x.shape[2:]
    require(min(spatial) >= 2 and int(np.prod(spatial)) >= 4,
            f"image is too small ({tuple(spatial)} pixels)", "give an image of at least a few pixels per axis")
    return x, layout


def as_tensor(a, dtype=torch.float32, device=None) -> torch.Tensor:
    """numpy or torch -> torch tensor of ``dtype`` on ``device`` (no layout change)."""
    if isinstance(a, torch.Tensor):
        return a.to(dtype=dtype, device=device)
    return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)
