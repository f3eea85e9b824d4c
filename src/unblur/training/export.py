"""Export a training run's checkpoint to a small inference file (what ships in ``unblur/weights``).

``python -m unblur.training.export runs/denoiser_gray/best.pt src/unblur/weights/unblur_denoiser_gray.pt``
keeps the kind, the network config, the weights (floating tensors as float32), the step, kind-specific entries (deep-blur's
PSF model) and ``meta`` (steps, wall time, last loss, validation, the training config); the training
state (optimizer, random states, history) is dropped.  The result is in the one unblur checkpoint
format (:mod:`unblur.models.checkpoints`).
"""

from __future__ import annotations

import sys

from ..models.checkpoints import TRAINING_KEYS, make_checkpoint, read_checkpoint, save_checkpoint


def export(src, dst) -> dict:
    """Write the inference part of checkpoint ``src`` to ``dst`` (atomically); return its ``meta``."""
    obj = read_checkpoint(src)
    extra = {k: v for k, v in obj.items()
             if k not in TRAINING_KEYS and k not in ("format", "kind", "config", "model", "step", "meta")}
    out = make_checkpoint(obj["kind"], obj["config"], {k: v.float() if v.is_floating_point() else v for k, v in obj["model"].items()},
                          step=obj["step"], meta=obj.get("meta", {}), **extra)
    save_checkpoint(out, dst)
    return out["meta"]


if __name__ == "__main__":
    print(export(sys.argv[1], sys.argv[2]))
