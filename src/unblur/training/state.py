"""Training state on disk (resume) and the learning-rate schedule.

A training checkpoint (``last.pt``) is an unblur checkpoint (:mod:`unblur.models.checkpoints`: the
one format, built by ``make_checkpoint``) plus everything needed to continue bit-for-bit on the same
device: optimizer state, the data generator's and torch's random states, the config, the history of
validation results and the wall time spent so far.  ``load_prior(path)`` accepts it as it is.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..errors import InputError
from ..models.checkpoints import make_checkpoint, read_checkpoint, save_checkpoint

atomic_save = save_checkpoint  # one atomic writer for every checkpoint


def training_checkpoint(kind, model, optimizer, step, generator, config: dict, history: list, wall_s: float,
                        best: float | None, loss: float | None = None, **extra) -> dict:
    """``make_checkpoint`` of ``model`` with the training state; ``extra``: kind-specific entries."""
    meta = {"steps": step, "wall_s": round(wall_s, 1), "loss": loss, "train_config": config}
    return make_checkpoint(kind, model.config, model.state_dict(), step=step, meta=meta,
                           optimizer=optimizer.state_dict(), generator=generator.get_state(),
                           torch_rng=torch.get_rng_state(), train_config=config, history=history, wall_s=wall_s,
                           best=best, **extra)


def load_training_checkpoint(path, kinds: tuple[str, ...] | None = None) -> dict:
    """The training checkpoint at ``path`` (a run folder means its ``last.pt``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.exists():
        raise InputError(f"no training checkpoint at {path}", "give the run folder or its last.pt")
    obj = read_checkpoint(path, kinds)
    if "optimizer" not in obj:
        raise InputError(f"{path} is not an unblur training checkpoint", "give the last.pt of an 'unblur train' run")
    return obj


def cosine_lr(step: int, total: int, lr: float, lr_min: float, warmup: int = 0) -> float:
    """Linear warm-up for ``warmup`` steps, then cosine decay from ``lr`` to ``lr_min`` at ``total``.

    At step ``s >= warmup``: ``lr_min + (lr - lr_min) (1 + cos(pi p)) / 2`` with
    ``p = (s - warmup) / (total - warmup)``; during warm-up ``lr (s + 1) / warmup``.
    """
    if warmup and step < warmup:
        return lr * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * p))
