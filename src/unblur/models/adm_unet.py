"""The guided-diffusion ("ADM", Dhariwal & Nichol 2021) UNet, written here with the checkpoint's names.

This is the epsilon-prediction network of ``ffhq_10m.pt`` used by DPS, BlindDPS and Fast Diffusion
EM.  Its configuration there (:data:`FFHQ_CONFIG`): 256x256 RGB, ``model_channels`` 128, one
residual block per level, ``channel_mult`` (1, 1, 2, 2, 4, 4), self-attention at the 16x16
resolution (downsampling factor 16) with 64 channels per head, residual blocks for up/down
sampling, scale-shift (FiLM) conditioning on the timestep embedding, ``learn_sigma`` (6 output
channels: epsilon, then the variance interpolation, which unblur ignores), float32.

Structure (as in the paper's code release; the parameter names are what a state dict must match):

* ``time_embed``: sinusoidal embedding of the timestep (``model_channels`` wide, cos then sin,
  max period 10000) -> Linear -> SiLU -> Linear (4 x ``model_channels``).
* ``input_blocks``: conv 3x3, then per level ``num_res_blocks`` x [ResBlock (+ attention)] and,
  except at the last level, a downsampling ResBlock (average pooling inside the block).
* ``middle_block``: ResBlock, attention, ResBlock.
* ``output_blocks``: per level (reversed) ``num_res_blocks + 1`` x [ResBlock on the concatenation
  with the matching input-block activation (+ attention)], the last one of a level followed by an
  upsampling ResBlock (nearest-neighbour inside the block).
* ``out``: GroupNorm(32) -> SiLU -> conv 3x3.

ResBlock: ``in_layers`` (GroupNorm, SiLU, conv), ``emb_layers`` (SiLU, Linear to 2 x out channels:
scale and shift), ``out_layers`` (GroupNorm, SiLU, Dropout, conv), ``h = norm(h) * (1 + scale) +
shift``; ``skip_connection`` a 1x1 conv when the width changes.  Attention: GroupNorm, a 1x1 conv
to q, k, v in the "legacy" head-major layout ``(heads, 3, head_channels)``, scaled dot-product
attention, 1x1 ``proj_out``, residual.

Use :class:`unblur.diffusion.EpsilonDenoiser` to turn the network into a ``D(x, sigma)`` denoiser.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import require

FFHQ_CONFIG = dict(image_size=256, in_channels=3, model_channels=128, out_channels=6, num_res_blocks=1,
                   attention_resolutions=(16,), channel_mult=(1, 1, 2, 2, 4, 4), num_head_channels=64,
                   resblock_updown=True, use_scale_shift_norm=True)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], -1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], -1)
    return emb


class GroupNorm32(nn.GroupNorm):
    def forward(self, x):
        return super().forward(x.float()).type(x.dtype)


def _norm(ch):
    return GroupNorm32(32, ch)


class ADMResBlock(nn.Module):
    def __init__(self, ch: int, emb_ch: int, out_ch: int | None = None, up: bool = False, down: bool = False,
                 scale_shift: bool = True, dropout: float = 0.0):
        super().__init__()
        out_ch = out_ch or ch
        self.up, self.down, self.scale_shift = up, down, scale_shift
        self.in_layers = nn.Sequential(_norm(ch), nn.SiLU(), nn.Conv2d(ch, out_ch, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_ch, 2 * out_ch if scale_shift else out_ch))
        self.out_layers = nn.Sequential(_norm(out_ch), nn.SiLU(), nn.Dropout(dropout),
                                        nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip_connection = nn.Identity() if out_ch == ch else nn.Conv2d(ch, out_ch, 1)

    def _resample(self, x):
        if self.up:
            return F.interpolate(x, scale_factor=2, mode="nearest")
        if self.down:
            return F.avg_pool2d(x, 2)
        return x

    def forward(self, x, emb):
        if self.up or self.down:
            h = self.in_layers[:-1](x)
            h = self.in_layers[-1](self._resample(h))
            x = self._resample(x)
        else:
            h = self.in_layers(x)
        e = self.emb_layers(emb).type(h.dtype)[..., None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h


class ADMAttention(nn.Module):
    def __init__(self, ch: int, head_channels: int = 64):
        super().__init__()
        self.heads = ch // head_channels
        self.norm = _norm(ch)
        self.qkv = nn.Conv1d(ch, 3 * ch, 1)
        self.proj_out = nn.Conv1d(ch, ch, 1)

    def forward(self, x):
        b, c, *sp = x.shape
        x = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(x))
        length = qkv.shape[-1]
        ch = c // self.heads
        q, k, v = qkv.reshape(b * self.heads, 3 * ch, length).split(ch, dim=1)
        scale = 1 / math.sqrt(math.sqrt(ch))
        w = torch.softmax(torch.einsum("bct,bcs->bts", q * scale, k * scale).float(), dim=-1).type(q.dtype)
        a = torch.einsum("bts,bcs->bct", w, v).reshape(b, c, length)
        return (x + self.proj_out(a)).reshape(b, c, *sp)


class EmbedSequential(nn.ModuleList):
    """A sequence whose ResBlocks also take the timestep embedding."""

    def forward(self, x, emb):
        for m in self:
            x = m(x, emb) if isinstance(m, ADMResBlock) else m(x)
        return x


class ADMUNet(nn.Module):
    """``eps = ADMUNet(**FFHQ_CONFIG)(x_t, t)`` with x_t in [-1, 1] VP units, integer timesteps t."""

    def __init__(self, image_size=256, in_channels=3, model_channels=128, out_channels=6, num_res_blocks=1,
                 attention_resolutions=(16,), channel_mult=(1, 1, 2, 2, 4, 4), num_head_channels=64,
                 resblock_updown=True, use_scale_shift_norm=True, dropout=0.0):
        super().__init__()
        # guided-diffusion's other resampling (separate Downsample/Upsample layers) is not written here:
        # no checkpoint unblur reads uses it, so it is refused rather than left as a stub
        require(resblock_updown, "resblock_updown=False (Downsample/Upsample layers) is not supported",
                "use the ffhq_10m.pt configuration (FFHQ_CONFIG: up/down sampling inside residual blocks)")
        self.config = dict(image_size=image_size, in_channels=in_channels, model_channels=model_channels,
                           out_channels=out_channels, num_res_blocks=num_res_blocks,
                           attention_resolutions=tuple(attention_resolutions), channel_mult=tuple(channel_mult),
                           num_head_channels=num_head_channels)
        self.model_channels = model_channels
        emb = 4 * model_channels
        ss = use_scale_shift_norm
        self.time_embed = nn.Sequential(nn.Linear(model_channels, emb), nn.SiLU(), nn.Linear(emb, emb))
        ch = int(channel_mult[0] * model_channels)
        self.input_blocks = nn.ModuleList([EmbedSequential([nn.Conv2d(in_channels, ch, 3, padding=1)])])
        chans, ds = [ch], 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [ADMResBlock(ch, emb, int(mult * model_channels), scale_shift=ss, dropout=dropout)]
                ch = int(mult * model_channels)
                if ds in attention_resolutions:
                    layers.append(ADMAttention(ch, num_head_channels))
                self.input_blocks.append(EmbedSequential(layers))
                chans.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(EmbedSequential([ADMResBlock(ch, emb, ch, down=True, scale_shift=ss,
                                                                      dropout=dropout)]))
                chans.append(ch)
                ds *= 2
        self.middle_block = EmbedSequential([ADMResBlock(ch, emb, scale_shift=ss, dropout=dropout),
                                             ADMAttention(ch, num_head_channels),
                                             ADMResBlock(ch, emb, scale_shift=ss, dropout=dropout)])
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                ich = chans.pop()
                layers = [ADMResBlock(ch + ich, emb, int(model_channels * mult), scale_shift=ss, dropout=dropout)]
                ch = int(model_channels * mult)
                if ds in attention_resolutions:
                    layers.append(ADMAttention(ch, num_head_channels))
                if level and i == num_res_blocks:
                    layers.append(ADMResBlock(ch, emb, ch, up=True, scale_shift=ss, dropout=dropout))
                    ds //= 2
                self.output_blocks.append(EmbedSequential(layers))
        self.out = nn.Sequential(_norm(ch), nn.SiLU(), nn.Conv2d(int(channel_mult[0] * model_channels),
                                                                 out_channels, 3, padding=1))

    def forward(self, x, t):
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0])
        emb = self.time_embed(timestep_embedding(t, self.model_channels))
        hs, h = [], x
        for blk in self.input_blocks:
            h = blk(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for blk in self.output_blocks:
            h = blk(torch.cat([h, hs.pop()], 1), emb)
        return self.out(h)
