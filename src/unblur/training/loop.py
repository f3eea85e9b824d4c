"""The one optimisation loop shared by unblur's training commands (denoiser, kernel denoiser).

A trainer supplies what differs: how to draw a batch and compute its loss, how to validate, and how
to score a validation result.  This module does the rest, the same way for every network:
resume from ``last.pt`` (model, optimizer, data generator, history), warm-up + cosine learning rate,
tqdm progress, periodic validation with the best model written to ``best.pt``, an atomic ``last.pt``
every ``ckpt_minutes`` and on exit (also on Ctrl-C), and an optional ``max_minutes`` budget.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import InputError
from ..models.checkpoints import save_unblur
from .state import atomic_save, cosine_lr, load_training_checkpoint, training_checkpoint


@dataclass(kw_only=True)
class LoopConfig:
    """Options every trainer shares (each trainer's config adds its own and may change defaults)."""

    out: str
    steps: int = 10_000
    lr: float = 1e-3
    lr_min: float = 1e-5
    val_every: int = 500
    ckpt_minutes: float = 5.0
    max_minutes: float | None = None
    grad_clip: float | None = None
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    progress: bool = True


def run_training(kind: str, model: torch.nn.Module, cfg, *, batch_loss: Callable[[torch.Generator], torch.Tensor],
                 validate: Callable[[], dict], score: Callable[[dict], float], describe: Callable[[dict], str],
                 warmup: int, desc: str, resume: str | None = None, log=print) -> dict:
    """Train ``model`` for ``cfg.steps`` optimiser steps (or resume) and return a summary dict.

    ``cfg`` is a :class:`LoopConfig`; its ``grad_clip`` caps the gradient norm (a colour denoiser run
    at lr 1e-3 without it diverged).
    ``batch_loss(gen)`` draws a batch with ``gen`` and returns its loss; ``validate()`` returns a
    JSON-friendly dict, ``score(v)`` a number to maximise and ``describe(v)`` a log line.
    """
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    step, history, wall0, best = 0, [], 0.0, None
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        ck = load_training_checkpoint(resume)
        if ck.get("kind") != kind or ck["config"] != model.config:
            raise InputError(f"{resume}: checkpoint is for a different network ({ck.get('kind')}, {ck['config']})",
                             "resume with the same network options as the original run")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        gen.set_state(ck["generator"])
        step, history, wall0, best = ck["step"], ck["history"], ck["wall_s"], ck["best"]
        log(f"resumed from {resume} at step {step}")
    conf = asdict(cfg)
    t0 = last_ckpt = time.time()

    def wall():
        return wall0 + time.time() - t0

    def save():
        atomic_save(training_checkpoint(kind, model, opt, step, gen, conf, history, wall(), best), out / "last.pt")

    bar = None
    if cfg.progress:
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, initial=step, desc=desc, mininterval=5, dynamic_ncols=True)
    run_loss = None
    model.train()
    try:
        while step < cfg.steps:
            for g in opt.param_groups:
                g["lr"] = cosine_lr(step, cfg.steps, cfg.lr, cfg.lr_min, warmup)
            loss = batch_loss(gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            lv = float(loss.detach())
            if not math.isfinite(lv):
                raise RuntimeError(f"loss became {lv} at step {step}; lower --lr")
            run_loss = lv if run_loss is None else 0.98 * run_loss + 0.02 * lv
            if bar:
                bar.update(1)
                bar.set_postfix(loss=f"{run_loss:.4f}", refresh=False)
            if cfg.val_every and (step % cfg.val_every == 0 or step == cfg.steps):
                model.eval()
                with torch.no_grad():
                    v = validate()
                model.train()
                if v:
                    history.append({"step": step, "loss": run_loss, "psnr": v, "wall_s": wall()})
                    log(f"step {step}: loss {run_loss:.4f}  {describe(v)}")
                    if best is None or score(v) > best:
                        best = score(v)
                        save_unblur(model, out / "best.pt", kind,
                                    {"steps": step, "val_psnr": v, "wall_s": round(wall(), 1), "train_config": conf})
            if time.time() - last_ckpt > 60 * cfg.ckpt_minutes:
                save()
                last_ckpt = time.time()
            if cfg.max_minutes and time.time() - t0 > 60 * cfg.max_minutes:
                log(f"stopping at step {step}: --max-minutes {cfg.max_minutes} reached")
                break
    finally:
        if bar:
            bar.close()
        save()
    return {"steps": step, "wall_s": wall(), "loss": run_loss,
            "val": history[-1]["psnr"] if history else None, "best": best}
