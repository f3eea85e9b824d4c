"""Training state on disk: atomic checkpoint writes, resume, learning-rate schedules.

A training checkpoint (``last.pt``) holds everything needed to continue bit-for-bit on the same
device: model and optimizer state, the step, the data generator's state, the config, the history
of validation PSNRs and the wall time spent so far.  It is also a valid unblur checkpoint
(``format="unblur"``), so ``load_prior(path)`` accepts it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from ..errors import InputError
from ..models.checkpoints import FORMAT


def atomic_save(obj, path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename (no half-written checkpoints)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def training_checkpoint(kind, model, optimizer, step, generator, config: dict, history: list, wall_s: float,
                        best: float | None) -> dict:
    return {"format": FORMAT, "kind": kind, "config": model.config,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(), "step": step, "generator": generator.get_state(),
            "train_config": config, "history": history, "wall_s": wall_s, "best": best,
            "meta": {"steps": step, "wall_s": round(wall_s, 1), "train_config": config}}


def load_training_checkpoint(path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.exists():
        raise InputError(f"no training checkpoint at {path}", "give the run folder or its last.pt")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise InputError(f"cannot read {path}: {type(e).__name__}", "the file is damaged; use an older checkpoint") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or "optimizer" not in obj:
        raise InputError(f"{path} is not an unblur training checkpoint", "give the last.pt of an 'unblur train' run")
    return obj


def cosine_lr(step: int, total: int, lr: float, lr_min: float, warmup: int = 0) -> float:
    """Linear warm-up for ``warmup`` steps, then cosine decay from ``lr`` to ``lr_min`` at ``total``."""
    if warmup and step < warmup:
        return lr * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * p))
