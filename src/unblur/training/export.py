"""Export a training run's checkpoint to a small inference file (what ships in ``unblur/weights``).

``python -m unblur.training.export runs/denoiser_gray/best.pt src/unblur/weights/unblur_denoiser_gray.pt``
keeps the kind, the network config, the weights (float32) and a short ``meta`` (steps, wall time,
validation PSNR, the training config); optimizer state and history are dropped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from ..errors import InputError
from ..models.checkpoints import FORMAT
from .state import atomic_save


def export(src, dst) -> dict:
    obj = torch.load(str(src), map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise InputError(f"{src} is not an unblur checkpoint", "give runs/<name>/best.pt or last.pt")
    meta = dict(obj.get("meta", {}))
    out = {"format": FORMAT, "kind": obj["kind"], "config": obj["config"],
           "model": {k: v.float().contiguous() for k, v in obj["model"].items()}, "meta": meta}
    atomic_save(out, Path(dst))
    return meta


if __name__ == "__main__":
    print(export(sys.argv[1], sys.argv[2]))
