"""Getting a prior ``D(x, sigma)`` for a solver and counting its network evaluations.

``prior`` may be a :class:`~unblur.models.base.Denoiser` (Python callers), ``None`` (the embedded
unblur network) or a string spec / checkpoint path understood by :func:`unblur.models.load_prior`
(e.g. the DPS ``ffhq_10m.pt``).  Loading is lazy so that importing the solvers never loads weights.
"""

from __future__ import annotations

import warnings

import torch

from ..errors import InputError


class CountedPrior:
    """Wraps a denoiser: counts calls (``nfe``, one per batched network evaluation) and adapts channels.

    A gray image with a colour-only prior is replicated to 3 channels and the output averaged back; a
    colour image with a gray prior is denoised channel by channel.  ``border`` pixels of reflection are
    added around the image before denoising and cropped after: CNNs with zero-padded convolutions
    otherwise bias the border, which iterative solvers (PnP-ADMM's dual variable) amplify.
    """

    def __init__(self, denoiser, border: int = 8):
        self.denoiser = denoiser
        self.nfe = 0
        self.border = border
        self.channels = tuple(getattr(denoiser, "channels", (1, 3)))

    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor:
        self.nfe += 1
        b = min(self.border, x.shape[-1] - 1, x.shape[-2] - 1)
        if b <= 0:
            return self._denoise(x, sigma)
        out = self._denoise(torch.nn.functional.pad(x, (b, b, b, b), mode="reflect"), sigma)
        return out[..., b:-b, b:-b]

    def _denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        c = x.shape[1]
        if c not in self.channels and c == 1 and 3 in self.channels:
            return self.denoiser(x.expand(-1, 3, -1, -1), sigma).mean(1, keepdim=True)
        if c not in self.channels and c == 3 and 1 in self.channels:  # gray prior: channel by channel
            s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
            s = s.repeat_interleave(3) if s.numel() > 1 else s
            return self.denoiser(x.reshape(-1, 1, *x.shape[2:]), s).reshape(x.shape)
        return self.denoiser(x, sigma)


def resolve_prior(prior, channels: int, device=None) -> CountedPrior:
    """A :class:`CountedPrior` for ``prior`` (Denoiser object, ``None`` or a spec/path string)."""
    if prior is None or isinstance(prior, str):
        from ..models import load_prior

        try:
            den = load_prior(prior, channels=channels, device=device)
        except InputError as err:
            if channels != 3 or prior is None:
                raise
            try:  # a gray checkpoint denoises a colour image channel by channel
                den = load_prior(prior, channels=1, device=device)
            except InputError:
                raise err from None
            warnings.warn(f"{prior}: gray prior applied to each colour channel separately", stacklevel=3)
    elif isinstance(prior, torch.nn.Module) or callable(prior):
        den = prior
    else:
        raise InputError(f"prior must be a Denoiser, a checkpoint path or None, got {type(prior).__name__}",
                         "pass a path to a supported checkpoint, or None for the embedded network")
    if isinstance(den, torch.nn.Module):
        den = den.to(device) if device is not None else den
        den.eval()
        for p in den.parameters():
            p.requires_grad_(False)
    return CountedPrior(den)
