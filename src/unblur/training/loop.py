"""The one optimisation loop behind every ``unblur train`` command (denoiser, kernel denoiser, deep-blur).

A trainer supplies what differs: the network, how to draw a batch and compute its loss, and
optionally how to validate and score a validation result (and kind-specific checkpoint entries such
as deep-blur's PSF model).  This module does the rest, the same way for every network: resume from
``last.pt`` (model, optimizer, data generator, torch's random state, history), a start from other
weights (``init``), Adam with a constant or warm-up + cosine learning rate, optional gradient-norm
clipping, tqdm progress, periodic validation with the best model written to ``best.pt``, an atomic
``last.pt`` every ``ckpt_minutes`` and on exit (also on SIGINT/Ctrl-C and SIGTERM: the run then raises
:class:`unblur.signals.Interrupted` whose note names the checkpoint to resume from), a ``max_minutes``
budget for the run, and an optional export of the final model's inference weights.  Options: :class:`.config.LoopConfig`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from ..errors import InputError
from ..models.checkpoints import make_checkpoint, read_checkpoint, save_checkpoint
from ..signals import Interrupted, deferred, handle_termination
from .config import LoopConfig
from .state import cosine_lr, load_training_checkpoint, training_checkpoint

__all__ = ["LoopConfig", "learning_rate", "run_training", "setup_torch", "train_step"]


def setup_torch(cfg: LoopConfig) -> torch.device:
    """Apply ``threads`` and ``seed`` (the initialisation's randomness) and check ``device``."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if str(cfg.device).startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {cfg.device} asked but no CUDA device is available", "use --device cpu")
    torch.manual_seed(cfg.seed)
    return torch.device(cfg.device)


def resolve_resume(resume, out) -> Path | None:
    """``--resume`` without a path (``"auto"`` or ``True``) means the run folder ``out``."""
    if not resume:
        return None
    return Path(out) if resume is True or resume == "auto" else Path(resume)


def learning_rate(cfg: LoopConfig, step: int) -> float:
    """The learning rate at ``step`` (0-based): ``cfg.lr``, or :func:`.state.cosine_lr` with ``cfg.warmup``
    (2 % of ``cfg.steps`` when not given)."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    warmup = cfg.warmup if cfg.warmup is not None else max(1, int(0.02 * cfg.steps))
    return cosine_lr(step, cfg.steps, cfg.lr, cfg.lr_min, warmup)


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor,
               grad_clip: float | None = None) -> float:
    """One optimiser step on ``loss``; the gradient norm is capped at ``grad_clip`` when given (> 0)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return float(loss.detach())


def load_init(model: torch.nn.Module, kind: str, path) -> dict:
    """Load the weights of checkpoint ``path`` (of the same ``kind``) into ``model`` for a new run."""
    ck = read_checkpoint(path)
    if ck["kind"] != kind:
        raise InputError(f"{path} holds {ck['kind']} weights, not {kind} weights",
                         "give weights of the network this run trains")
    try:
        model.load_state_dict(ck["model"])
    except RuntimeError as err:
        raise InputError(f"{path} does not fit this network ({err.args[0].splitlines()[0]})",
                         "use weights of a network with the same widths and options") from None
    return ck


def run_training(kind: str, model: torch.nn.Module, cfg: LoopConfig, *,
                 batch_loss: Callable[[torch.Generator], torch.Tensor],
                 validate: Callable[[], dict] | None = None, score: Callable[[dict], float] | None = None,
                 describe: Callable[[dict], str] | None = None, desc: str = "train", resume=None,
                 extra: dict | None = None, log=print) -> dict:
    """Train ``model`` for ``cfg.steps`` optimiser steps (or resume) and return a summary dict.

    ``batch_loss(gen)`` draws a batch with ``gen`` and returns its loss.  ``validate()`` (run in eval
    mode without gradients every ``cfg.val_every`` steps) returns a JSON-friendly dict, ``score(v)`` a
    number to maximise and ``describe(v)`` a log line.  ``extra``: kind-specific entries stored in
    every checkpoint.  ``resume``: a ``last.pt`` or a run folder.  Returns ``steps``, ``wall_s``
    (training wall time over resumes), ``loss`` (running mean), ``val`` (last validation), ``best``.
    """
    extra = dict(extra or {})
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    step, history, wall0, best, run_loss = 0, [], 0.0, None, None
    resume = resolve_resume(resume, out)
    if resume is not None:
        ck = load_training_checkpoint(resume)
        if ck["kind"] != kind or ck["config"] != model.config:
            raise InputError(f"{resume}: checkpoint is for a different network ({ck['kind']}, {ck['config']})",
                             "resume with the same network options as the original run")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        gen.set_state(ck["generator"])
        if "torch_rng" in ck:
            torch.set_rng_state(ck["torch_rng"])
        step, history, wall0, best = ck["step"], ck["history"], ck["wall_s"], ck["best"]
        run_loss = ck["meta"].get("loss")
        log(f"resumed from {resume} at step {step}")
    elif cfg.init:
        load_init(model, kind, cfg.init)
    conf = asdict(cfg)
    t0 = last_ckpt = time.time()

    def wall():
        return wall0 + time.time() - t0

    def save():
        save_checkpoint(training_checkpoint(kind, model, opt, step, gen, conf, history, wall(), best, run_loss,
                                            **extra), out / "last.pt")

    bar = None
    if cfg.progress:
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, initial=step, desc=desc, mininterval=5, dynamic_ncols=True)
    model.train()
    stopped_by = None
    device_type = next(model.parameters()).device.type
    bf16 = cfg.precision == "bf16"
    try:
        with handle_termination():  # SIGTERM like Ctrl-C: stop, write last.pt below, say so
            while step < cfg.steps:
                for g in opt.param_groups:
                    g["lr"] = learning_rate(cfg, step)
                with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=bf16):
                    loss = batch_loss(gen)
                lv = train_step(model, opt, loss.float(), cfg.grad_clip)
                step += 1
                if not math.isfinite(lv):
                    raise RuntimeError(f"loss became {lv} at step {step}; lower --lr or set --grad-clip")
                run_loss = lv if run_loss is None else 0.98 * run_loss + 0.02 * lv
                if bar:
                    bar.update(1)
                    bar.set_postfix(loss=f"{run_loss:.4g}", refresh=False)
                if cfg.val_every and (step % cfg.val_every == 0 or step == cfg.steps):
                    v = {}
                    if validate is not None:
                        model.eval()
                        with torch.no_grad():
                            v = validate()
                        model.train()
                    history.append({"step": step, "loss": run_loss, "val": v, "wall_s": wall()})
                    log(f"step {step}: loss {run_loss:.4g}  {describe(v) if v and describe else ''}".rstrip())
                    if v and score is not None and (best is None or score(v) > best):
                        best = score(v)
                        meta = {"steps": step, "val": v, "wall_s": round(wall(), 1), "loss": run_loss, "train_config": conf}
                        save_checkpoint(make_checkpoint(kind, model.config, model.state_dict(), step=step, meta=meta,
                                                        **extra), out / "best.pt")
                if time.time() - last_ckpt > 60 * cfg.ckpt_minutes:
                    save()
                    last_ckpt = time.time()
                if cfg.max_minutes and time.time() - t0 > 60 * cfg.max_minutes:
                    log(f"stopping at step {step}: --max-minutes {cfg.max_minutes} reached")
                    break
    except KeyboardInterrupt as e:
        stopped_by = e
    finally:
        if bar:
            bar.close()
        with deferred():  # a second signal waits until last.pt is complete
            save()
    if stopped_by is not None:
        signum = stopped_by.signum if isinstance(stopped_by, Interrupted) else 2
        note = f"resume checkpoint {out / 'last.pt'} written at step {step}; continue with --resume"
        raise Interrupted(signum, note) from None
    if cfg.export:
        from .export import export
        export(out / "last.pt", cfg.export)
    return {"steps": step, "wall_s": wall(), "loss": run_loss,
            "val": history[-1]["val"] if history else None, "best": best}
