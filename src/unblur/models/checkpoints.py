"""Loading priors (``load_prior``, ``load_kernel_prior``) and unblur's one checkpoint format.

``spec`` is ``None``/``"default"`` (the network shipped in ``unblur/weights`` for the channel
count: ``unblur_denoiser_gray.pt`` or ``unblur_denoiser_color.pt``; a missing file raises
:class:`~unblur.errors.InputError`) or a file path whose kind is detected from its contents:

==========================  ===================================================================
unblur checkpoint (.pt)     ``{"format": "unblur", "kind": "denoiser"|"kernel-denoiser", ...}``
                            written by ``unblur train`` (training checkpoints load too)
KAIR DnCNN (.pth)           state dict ``model.0.weight`` .. ``model.N.bias``
KAIR DRUNet (.pth)          state dict ``m_head.weight``, ``m_down1...``, ``m_tail.weight``
scico flax DnCNN (.mpk)     msgpack ``{params: {conv_start, ConvBNBlock_i, conv_end}, batch_stats}``
guided-diffusion (.pt)      ADM UNet state dict (``time_embed.0.weight``, ``input_blocks...``),
                            e.g. ``ffhq_10m.pt``; wrapped by :class:`~unblur.diffusion.EpsilonDenoiser`
==========================  ===================================================================

Anything else (wrong kind, truncated, not a checkpoint) raises :class:`~unblur.errors.InputError`.
Every file is read with ``torch.load(weights_only=True)``: tensors, numbers, strings, lists and
dicts only, so a file cannot run code when it is opened; a file that holds anything else is refused.

**The unblur checkpoint format** (every network unblur trains: image denoiser, kernel denoiser,
deep-blur's IN and DN), built by :func:`make_checkpoint` and written by :func:`save_checkpoint`::

    {"format": "unblur",
     "kind": "denoiser" | "kernel-denoiser" | "deepblur-identify" | "deepblur-deblur",
     "config": {...},       # the network's constructor arguments (``model.config``)
     "model": {...},        # its state dict (CPU tensors)
     "step": int,           # optimiser steps done
     "meta": {...},         # JSON-friendly: steps, wall_s, loss, val, train_config
     ...}                   # kind-specific entries (deep-blur: "psf_model", its PSF model description)

A training checkpoint (``last.pt``) is the same dict plus the training state (``optimizer``,
``generator``, ``torch_rng``, ``history``, ``best``, ``wall_s``, ``train_config``); exporting drops
those (:data:`TRAINING_KEYS`).  :func:`read_checkpoint` reads either; a file without ``step`` takes
``meta["steps"]``, and deep-blur weight files of the earlier layout
``{"kind": "identify"|"deblur", "config", "state", "psf_model", "train"}`` are converted
(:func:`convert_legacy_deepblur`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from .base import Denoiser
from .dncnn import KairDnCNN, ScicoDnCNN
from .drunet import DRUNet
from .kernel_prior import KernelDenoiser
from .unblur_net import UnblurDenoiser

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
DEFAULT_WEIGHTS = {1: "unblur_denoiser_gray.pt", 3: "unblur_denoiser_color.pt"}
DEFAULT_KERNEL_WEIGHTS = {33: "unblur_kernel_denoiser_33.pt", 64: "unblur_kernel_denoiser_64.pt"}
FORMAT = "unblur"
KINDS = ("denoiser", "kernel-denoiser", "deepblur-identify", "deepblur-deblur")
TRAINING_KEYS = ("optimizer", "generator", "torch_rng", "history", "best", "wall_s", "train_config")


def _to_device(m: Denoiser, device) -> Denoiser:
    m = m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m.to(device) if device is not None else m


def load_prior(spec: str | Path | None = None, channels: int = 1, device=None) -> Denoiser:
    """A ready (eval mode, no grad) image prior ``D(x, sigma)``; see the module docstring for ``spec``."""
    if channels not in (1, 3):
        raise InputError(f"channels must be 1 or 3, got {channels}", "use 1 for gray, 3 for colour images")
    if spec is None or str(spec) == "default":
        path = WEIGHTS_DIR / DEFAULT_WEIGHTS[channels]
        if not path.exists():
            raise InputError(f"no shipped {'gray' if channels == 1 else 'colour'} unblur denoiser weights "
                             f"({path.name} is not in {WEIGHTS_DIR})",
                             "train one with 'unblur train denoiser' and pass its path, or pass a KAIR/scico/"
                             "guided-diffusion checkpoint path")
        spec = path
    m = _load_file(Path(spec))
    if isinstance(m, KernelDenoiser):
        raise InputError(f"{spec} is a kernel denoiser, not an image prior", "use load_kernel_prior for it")
    if channels not in m.channels:
        raise InputError(f"{spec} is a {'/'.join(map(str, m.channels))}-channel model, {channels} channel(s) asked",
                         "use a gray model for gray images and a colour model for RGB")
    return _to_device(m, device)


def load_kernel_prior(spec: str | Path | None = None, size: int = 33, device=None) -> KernelDenoiser:
    """The kernel denoiser for ``size`` x ``size`` kernels (shipped default, or an unblur checkpoint path)."""
    if spec is None or str(spec) == "default":
        name = DEFAULT_KERNEL_WEIGHTS.get(size)
        if name is None:
            near = min(DEFAULT_KERNEL_WEIGHTS, key=lambda s: abs(s - size))
            name = DEFAULT_KERNEL_WEIGHTS[near]
        path = WEIGHTS_DIR / name
        if not path.exists():
            raise InputError(f"no shipped kernel denoiser weights ({name} is not in {WEIGHTS_DIR})",
                             "train one with 'unblur train kernel-denoiser' and pass its path")
        spec = path
    m = _load_file(Path(spec))
    if not isinstance(m, KernelDenoiser):
        raise InputError(f"{spec} is not a kernel denoiser checkpoint", "give a file written by 'unblur train kernel-denoiser'")
    return _to_device(m, device)


# -- detection and loading ----------------------------------------------------------------------

def _load_file(path: Path) -> Denoiser:
    if not path.exists():
        raise InputError(f"checkpoint not found: {path}", "check the path")
    if not path.is_file():
        raise InputError(f"not a file: {path}", "give a checkpoint file")
    if path.suffix.lower() == ".mpk":
        return load_scico_mpk(path)
    obj = torch_load(path, "give a PyTorch .pt/.pth state dict, an unblur checkpoint or a scico .mpk file")
    return from_object(obj, str(path))


def from_object(obj, where: str = "checkpoint") -> Denoiser:
    """Build a denoiser from a loaded checkpoint object (detecting its kind; the channel count is the
    checkpoint's own: :func:`load_prior` checks it against the one asked for)."""
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return _load_unblur(obj, where)
    if is_legacy_deepblur(obj):
        raise InputError(f"{where} holds deep-blur {obj['kind']} weights, not an image prior",
                         "use them with the deepblur method (--identify-weights / --deblur-weights)")
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{where} is not a state dict of tensors", "give a KAIR, guided-diffusion or unblur checkpoint")
    sd = {k[7:] if k.startswith("module.") else k: v for k, v in obj.items()}
    try:
        if "model.0.weight" in sd:
            return _load_kair_dncnn(sd)
        if "m_head.weight" in sd:
            return _load_kair_drunet(sd)
        if "time_embed.0.weight" in sd and "input_blocks.0.0.weight" in sd:
            return _load_adm(sd)
    except (RuntimeError, KeyError, IndexError, ValueError) as e:
        raise InputError(f"{where}: keys or shapes do not match the detected architecture ({str(e)[:160]})",
                         "the file may be truncated or of a different configuration") from None
    raise InputError(f"{where}: unknown checkpoint kind (first keys: {', '.join(list(sd)[:3])})",
                     "supported: KAIR DnCNN/DRUNet, scico flax DnCNN (.mpk), guided-diffusion UNet, unblur")


def _load_kair_dncnn(sd: dict) -> KairDnCNN:
    idx = sorted(int(m.group(1)) for k in sd if (m := re.fullmatch(r"model\.(\d+)\.weight", k)))
    w0 = sd["model.0.weight"]
    depth = len(idx)
    m = KairDnCNN(channels=w0.shape[1], depth=depth, features=w0.shape[0])
    m.load_state_dict(sd)
    return m


def _load_kair_drunet(sd: dict) -> DRUNet:
    cin = sd["m_head.weight"].shape[1]
    nc = [sd["m_head.weight"].shape[0]] + [sd[f"m_down{i}.{_nb(sd)}.weight"].shape[0] for i in (1, 2, 3)]
    m = DRUNet(channels=cin - 1, nc=nc, nb=_nb(sd))
    m.load_kair(sd)
    return m


def _nb(sd) -> int:
    return len({k.split(".")[1] for k in sd if k.startswith("m_body.")})


def _load_adm(sd: dict) -> Denoiser:
    from ..diffusion.epsilon import EpsilonDenoiser
    from .adm_unet import FFHQ_CONFIG, ADMUNet
    cfg = dict(FFHQ_CONFIG)
    cfg["model_channels"] = sd["input_blocks.0.0.weight"].shape[0]
    cfg["in_channels"] = sd["input_blocks.0.0.weight"].shape[1]
    cfg["out_channels"] = sd["out.2.weight"].shape[0]
    net = ADMUNet(**cfg)
    net.load_state_dict(sd)
    return EpsilonDenoiser(net.eval(), channels=cfg["in_channels"])


def _load_unblur(obj: dict, where: str) -> Denoiser:
    kind, cfg, sd = obj.get("kind"), obj.get("config"), obj.get("model")
    if not isinstance(cfg, dict) or not isinstance(sd, dict):
        raise InputError(f"{where}: unblur checkpoint without config/model", "the file is damaged; re-export it")
    try:
        if kind == "denoiser":
            m = UnblurDenoiser(**cfg)
        elif kind == "kernel-denoiser":
            m = KernelDenoiser(**cfg)
        else:
            raise InputError(f"{where} holds {kind} weights, not a denoiser or kernel denoiser",
                             "use a file written by 'unblur train denoiser' or 'unblur train kernel-denoiser'")
        m.load_state_dict(sd)
    except (RuntimeError, TypeError) as e:
        raise InputError(f"{where}: weights do not match the stored config ({str(e)[:160]})",
                         "the file is damaged; re-export it") from None
    m.meta = obj.get("meta", {})
    return m


def save_unblur(model: Denoiser, path, kind: str, meta: dict | None = None) -> None:
    """Write ``model`` as an inference checkpoint of ``kind`` (see the module docstring) atomically."""
    save_checkpoint(make_checkpoint(kind, model.config, model.state_dict(), meta=meta), path)


# -- the unblur checkpoint format ------------------------------------------------------------------

def make_checkpoint(kind: str, config: dict, state_dict: dict, *, step: int = 0, meta: dict | None = None,
                    **extra) -> dict:
    """The one checkpoint dict (module docstring): ``extra`` holds kind-specific and training entries."""
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}")
    meta = dict(meta or {})
    return {"format": FORMAT, "kind": kind, "config": config,
            "model": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()},
            "step": int(step), "meta": meta, **extra}


def save_checkpoint(obj: dict, path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(obj, tmp)
        tmp.replace(path)
    except BaseException:  # interrupted or disk full: no half-written .tmp left behind
        tmp.unlink(missing_ok=True)
        raise


def check_archive_size(path: Path) -> None:
    """Refuse a checkpoint archive whose records expand beyond twice the file's size (before reading it).

    ``torch.save`` stores its records uncompressed, so the records of a real checkpoint add up to
    less than the file.  A record compressed in a crafted file (a few MB claiming a tensor of 10^12
    values) would be inflated into memory by ``torch.load``: refused here from the zip directory
    alone, nothing allocated.  The tensor metadata is then checked by ``torch.load`` itself (a
    storage whose claimed size differs from its record's is an error before any allocation).
    Files in torch's legacy (non-zip) format carry no directory and are left to those checks.
    """
    import zipfile

    size = path.stat().st_size
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as z:
            claimed = sum(info.file_size for info in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise InputError(f"cannot read checkpoint {path}: {type(e).__name__}: {str(e)[:120]}",
                         "the file is truncated or not a checkpoint") from None
    if claimed > 2 * size + (1 << 20):
        raise InputError(f"{path} claims {claimed / 2**30:.3g} GiB of data in a {size / 2**20:.3g} MiB file "
                         "(compressed records; refused before reading)",
                         "give a checkpoint written by torch.save (records stored uncompressed)")


def torch_load(path: Path, fix: str):
    """``torch.load(path, weights_only=True)`` on CPU; any failure is a one-line :class:`InputError`.

    ``weights_only`` refuses pickled objects other than tensors and plain containers, so opening a
    crafted file cannot execute code; :func:`check_archive_size` refuses, before reading, a file
    whose data would expand far beyond its size.
    """
    check_archive_size(Path(path))
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise InputError(f"{path} holds Python objects other than tensors (refused: opening it could run code)",
                             "give a checkpoint written by unblur or a plain state dict") from None
        first = (str(e).strip().splitlines() or [""])[0][:120]
        raise InputError(f"cannot read checkpoint {path}: {type(e).__name__}: {first}", fix) from None


def is_legacy_deepblur(obj) -> bool:
    return isinstance(obj, dict) and obj.get("kind") in ("identify", "deblur") and "state" in obj and "psf_model" in obj


def convert_legacy_deepblur(obj: dict) -> dict:
    """Deep-blur weights of the earlier layout ``{kind, config, state, psf_model, train}`` in the one format."""
    train = dict(obj.get("train") or {})
    meta = {"steps": int(train.get("steps", 0)), "wall_s": train.get("wall_s"), "loss": train.get("final_loss"),
            "train_config": train}
    return make_checkpoint(f"deepblur-{obj['kind']}", obj["config"], obj["state"], step=meta["steps"], meta=meta,
                           psf_model=obj["psf_model"])


def read_checkpoint(path, kinds: tuple[str, ...] | None = None) -> dict:
    """An unblur checkpoint (inference or training) from ``path``; ``kinds`` restricts the kinds accepted.

    Raises :class:`InputError` for a missing file, a file that is not an unblur checkpoint, or one of
    another kind.  Deep-blur files of the earlier layout are converted (:func:`convert_legacy_deepblur`).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint not found: {path}", "check the path")
    obj = torch_load(path, "give a checkpoint written by 'unblur train'")
    if is_legacy_deepblur(obj):
        obj = convert_legacy_deepblur(obj)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or not isinstance(obj.get("model"), dict):
        raise InputError(f"{path} is not an unblur checkpoint", "give a file written by 'unblur train' (last.pt, "
                         "best.pt or an exported weights file)")
    if kinds is not None and obj.get("kind") not in kinds:
        raise InputError(f"{path} holds {obj.get('kind')} weights, not {' or '.join(kinds)} weights",
                         "give weights of the network this command uses")
    obj.setdefault("step", int(obj.get("meta", {}).get("steps", 0)))
    return obj


# -- scico flax msgpack --------------------------------------------------------------------------

def read_flax_msgpack(path) -> dict:
    """A flax msgpack file as nested dicts of numpy arrays (ext code 1 = [shape, dtype, bytes])."""
    import msgpack

    def hook(code, data):
        if code != 1:
            raise InputError(f"{path}: unsupported msgpack extension type {code}", "give a flax msgpack file")
        shape, dtype, buf = msgpack.unpackb(data)
        return np.frombuffer(buf, dtype=np.dtype(dtype)).reshape(shape)

    try:
        with open(path, "rb") as f:
            return msgpack.unpackb(f.read(), ext_hook=hook, strict_map_key=False)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001
        raise InputError(f"cannot read {path} as flax msgpack: {type(e).__name__}: {str(e)[:120]}",
                         "give a scico dncnn*.mpk file") from None


_SCICO_SIGMA = {"L": 0.06, "M": 0.10, "H": 0.20}


def load_scico_mpk(path) -> ScicoDnCNN:
    tree = read_flax_msgpack(path)
    try:
        p = tree["params"]
        k0 = p["conv_start"]["kernel"]
        depth = 2 + sum(1 for k in p if k.startswith("ConvBNBlock_"))
        cin, feat = k0.shape[2], k0.shape[3]
        cout = p["conv_end"]["kernel"].shape[3]
        noise_input = cout == cin and Path(path).stem.endswith("N")
        channels = cin // 2 if noise_input else cin
        m = ScicoDnCNN(channels, depth, feat, noise_input, _SCICO_SIGMA.get(Path(path).stem[-1:]))
        m.load_flax(tree)
    except (KeyError, TypeError, AttributeError, IndexError, RuntimeError) as e:
        raise InputError(f"{path}: not a scico DnCNN parameter tree ({type(e).__name__}: {str(e)[:100]})",
                         "give one of scico's dncnn*.mpk files") from None
    return m
