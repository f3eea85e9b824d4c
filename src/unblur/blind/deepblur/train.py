"""``unblur train deepblur --stage {identify,deblur}``: train deep-blur's IN, then its DN.

PSF model (``--model``, see :mod:`.psf_model`): ``zernike`` (8 coefficients, Noll 4..11),
``eigen`` (``--rank`` eigen-PSF coefficients of the Zernike family drawn with amplitude ``--eta``,
``--family-samples`` PSFs, seed ``--seed``), or ``product-convolution`` (a ``--grid`` of control
points, each with ``--local-model`` coefficients: eigen or Zernike).  The model, with its eigen
basis, is stored in every checkpoint and export; ``--resume`` and stage ``deblur`` (which takes the
model of ``--identify-weights``) rebuild it from there, so the model options only matter for a new
identification run.

Stage ``identify``: ``--loss gamma`` (the paper's) minimises the MSE on gamma in units of eta,
``|IN(y) - gamma|^2 / eta^2``, made invariant to the model's ambiguities (the sign of the even Zernike
coefficients, :func:`.identify.sign_invariant_mse`).  ``--loss psf`` minimises the relative squared
error of the PSF, ``||h(IN(y)) - h(gamma)||^2 / ||h(gamma)||^2`` (:func:`psf_loss`; differentiable
through the PSF model, invariant to every ambiguity of the model by construction, and the quantity
behind the PSF SNR that we report); ``--loss both`` adds the two.  ``--features`` picks IN's input
features (:mod:`.identify`: ``image`` or ``image+spectrum``).  The defaults are the paper's; the shipped IN uses
``--loss psf --features image+spectrum --eta-dist uniform`` (the gamma loss alone stays on the plateau of
the best constant prediction in a CPU budget; see the model card).
Stage ``deblur``: with IN frozen (``--identify-weights``), minimise ``||DN(y, A(IN(y))) - x||^2`` over
the field of view -- DN is fed the *estimated* gamma, as in the paper, and the model's operator
(convolution or product-convolution).

Data: random gray crops of ``--data`` (default ``$UNBLUR_DATA/train/train400_gray``) with flips and
rotations, ``gamma ~ U[-eta, eta]^K`` (``--eta-dist uniform``: ``eta_i ~ U[0, eta]`` per image first, so
that every blur level up to eta is seen), Poisson-Gaussian noise (see :mod:`.simulate` for the units).
Adam, lr ``--lr`` (1e-3), constant or (``--lr-schedule cosine``) a cosine decay over ``--steps``
after a linear warm-up over the first 2% of them.  ``--max-minutes`` stops a run after that much
training wall time (counted over resumes; a checkpoint is written).  A checkpoint (model, optimiser, step, RNG state, wall time, loss log) is written
atomically to ``--out/last.pt`` every ``--checkpoint-minutes`` and at the end; ``--resume`` continues
from it.  ``--export FILE`` writes the inference weights (model + config + PSF model description);
``--resume --steps 0 --export FILE`` exports the last checkpoint of a stopped run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as nn_f
from tqdm import tqdm

from ...data import data_path
from ...errors import InputError, require
from .deblur import DeblurNet
from .identify import FEATURES, IdentificationNet
from .psf_model import (
    DEEPBLUR_NOLL,
    MODEL_KINDS,
    PSFModel,
    eigen_psf_model,
    parse_grid,
    product_convolution_model,
    psf_model_from_description,
    zernike_psf_model,
)
from .simulate import load_gray_images, make_batch

HELP = "train deep-blur's identification (IN) or deblurring (DN) network"
LOSSES = ("gamma", "psf", "both")


def _opt(args, name: str, default):
    """An option that older argument namespaces (scripts, tests) may lack."""
    return getattr(args, name, default)


def psf_loss(psf_model: PSFModel, pred: torch.Tensor, psf: torch.Tensor, scales=(1,)) -> torch.Tensor:
    """Mean over the batch of ``||h(pred) - psf||^2 / ||psf||^2`` (all PSFs of an image together).

    ``scales``: the relative error is averaged over the PSFs summed over ``s x s`` pixel blocks for each
    ``s`` (``(1,)``: the plain PSF error; ``(1, 2, 4)``: a pyramid, whose coarse levels compare the
    PSFs' overall shapes and vary more smoothly with gamma).
    """
    h = psf_model(pred)
    total = 0.0
    for s in scales:
        a, b = (h, psf) if s == 1 else (nn_f.avg_pool2d(h.flatten(0, 1)[:, None], s, ceil_mode=True),
                                         nn_f.avg_pool2d(psf.flatten(0, 1)[:, None], s, ceil_mode=True))
        a, b = a.reshape(len(h), -1), b.reshape(len(h), -1)
        total = total + (((a - b) ** 2).sum(1) / (b**2).sum(1).clamp_min(1e-30)).mean()
    return total / len(scales)


def lr_factor(step: int, total: int, schedule: str) -> float:
    """Multiplier of the base lr at ``step`` (0-based) of ``total``: 1, or warm-up then cosine decay."""
    if schedule == "constant" or total <= 0:
        return 1.0
    warm = max(1, int(0.02 * total))
    if step < warm:
        return (step + 1) / warm
    t = min(1.0, (step - warm) / max(1, total - warm))
    return 0.5 * (1 + math.cos(math.pi * t))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stage", choices=("identify", "deblur"), required=True)
    p.add_argument("--data", type=Path, default=None, help="folder of training images (default train/train400_gray)")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/deepblur_STAGE)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--steps", type=int, default=20000, help="total optimisation steps")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=64, help="crop size of the observed image y")
    p.add_argument("--psf-size", type=int, default=31)
    p.add_argument("--optics", default="1.2,0.6,0.1", help="NA,wavelength_um,pixel_um of the Zernike model")
    p.add_argument("--model", choices=MODEL_KINDS, default="zernike", help="PSF model that gamma parametrises")
    p.add_argument("--rank", type=int, default=8, help="number of eigen-PSFs (eigen models)")
    p.add_argument("--family-samples", type=int, default=1000,
                   help="Zernike PSFs sampled to compute the eigen-PSFs (eigen models)")
    p.add_argument("--grid", default="2x2", help="GYxGX control points (product-convolution)")
    p.add_argument("--local-model", choices=("eigen", "zernike"), default="eigen",
                   help="PSF model at each control point (product-convolution)")
    p.add_argument("--eta", type=float, default=0.15, help="gamma ~ U[-eta, eta]")
    p.add_argument("--eta-dist", choices=("fixed", "uniform"), default="fixed",
                   help="fixed: gamma ~ U[-eta, eta]; uniform: each image draws eta_i ~ U[0, eta] first "
                        "(all blur levels up to eta are seen)")
    p.add_argument("--alpha-max", type=float, default=0.05, help="Poisson term of the noise variance")
    p.add_argument("--beta-max", type=float, default=0.0225, help="Gaussian variance (0.15^2: std up to 0.15)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant",
                   help="constant lr, or warm-up + cosine decay to 0 over --steps")
    p.add_argument("--loss", choices=LOSSES, default="gamma",
                   help="identification loss: gamma MSE (paper), relative PSF error, or their sum")
    p.add_argument("--psf-scales", default="1",
                   help="block sizes of the PSF loss pyramid, e.g. 1,2,4 (--loss psf/both)")
    p.add_argument("--features", choices=FEATURES, default="image", help="IN input features (stage identify)")
    p.add_argument("--init", type=Path, default=None,
                   help="start a new run from exported weights of the same stage (same widths; for IN the same number "
                        "of parameters; IN features image+spectrum and welch share the stem, so either may start the other)")
    p.add_argument("--grad-clip", type=float, default=None,
                   help="cap the gradient norm at this value (off by default; a DN fine-tuning run at lr 1e-3 "
                        "without it diverged after 3600 steps, see BENCHMARKS.md, deep-blur, session 5)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this much training wall time")
    p.add_argument("--width", type=int, default=16, help="first-stage width of the networks")
    p.add_argument("--identify-weights", type=Path, default=None, help="IN weights (stage deblur)")
    p.add_argument("--cg-iters", type=int, default=20, help="CG iterations per data-prox solve (stage deblur)")
    p.add_argument("--lam", type=float, default=0.05, help="initial DR weight lambda of every step (learned; stage deblur)")
    p.add_argument("--checkpoint-minutes", type=float, default=3.0)
    p.add_argument("--export", type=Path, default=None, help="write inference weights here at the end")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)


def add_parser(sub) -> None:
    """Register ``deepblur`` under ``unblur train``'s subparsers."""
    p = sub.add_parser("deepblur", help=HELP, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(_run=run)


def save_atomic(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def build_identifier(n_params: int, width: int, eta: float, features: str = "image") -> IdentificationNet:
    return IdentificationNet(n_params, widths=(width, 2 * width, 4 * width, 8 * width), scale=eta, features=features)


def build_deblurrer(width: int, cg_iters: int = 20, lam: float = 0.05) -> DeblurNet:
    return DeblurNet(steps=4, lam=lam, cg_iters=cg_iters, widths=(width, 2 * width, 4 * width))


def psf_model_from_args(a) -> PSFModel:
    """The PSF model that ``--model`` and its options describe (a new identification run)."""
    local_kind = a.local_model if a.model == "product-convolution" else a.model
    if local_kind == "zernike":
        local = zernike_psf_model(a.optics, DEEPBLUR_NOLL, a.psf_size)
    else:
        local = eigen_psf_model(a.rank, a.optics, DEEPBLUR_NOLL, a.psf_size, a.eta, a.family_samples, a.seed)
    return product_convolution_model(local, parse_grid(a.grid)) if a.model == "product-convolution" else local


def load_weights(path: Path, device="cpu") -> dict:
    """An exported weights file: ``{"kind", "config", "state", "psf_model", "train"}``."""
    require(Path(path).exists(), f"weights file {path} not found", "train with `unblur train deepblur` or use the shipped weights")
    return torch.load(path, map_location=device, weights_only=False)


def model_from_weights(w: dict):
    if w["kind"] == "identify":
        net = IdentificationNet(**w["config"])
    elif w["kind"] == "deblur":
        c = dict(w["config"])
        net = DeblurNet(steps=c["steps"], lam=c["lam"], cg_iters=c["cg_iters"], widths=c["widths"], blocks=c["blocks"])
    else:
        raise InputError(f"unknown weights kind {w['kind']!r}")
    net.load_state_dict(w["state"])
    return net.eval()


class Trainer:
    """One training run (both stages share the data pipeline and the checkpoint logic)."""

    def __init__(self, args, psf_model=None, images=None):
        self.args = a = args
        torch.manual_seed(a.seed)
        if a.threads:
            torch.set_num_threads(a.threads)
        self.device = torch.device(a.device)
        self.out = a.out or Path("runs") / f"deepblur_{a.stage}"
        ck = self._read_checkpoint() if a.resume else None
        if ck is not None and "features" in ck.get("args", {}):
            a.features = ck["args"]["features"]  # the checkpoint's network, whatever the options say
        w_in = None
        if a.stage == "deblur":
            require(a.identify_weights is not None, "stage deblur needs --identify-weights", "train stage identify first")
            w_in = load_weights(a.identify_weights, self.device)
        self.psf_model = psf_model or self._initial_psf_model(ck, w_in)
        if images is None:
            folder = a.data or data_path("train/train400_gray")
            images = load_gray_images(folder, a.size + self.psf_model.psf_size - 1)
        self.images = images
        self.g = torch.Generator().manual_seed(a.seed)
        if a.stage == "identify":
            self.net = build_identifier(self.psf_model.n_params, a.width, a.eta,
                                        _opt(a, "features", "image")).to(self.device)
            self.identifier = None
        else:
            self.identifier = model_from_weights(w_in).to(self.device)
            for p in self.identifier.parameters():
                p.requires_grad_(False)
            self.net = build_deblurrer(a.width, a.cg_iters, a.lam).to(self.device)
        init = _opt(a, "init", None)
        if init is not None and ck is None:
            w0 = load_weights(init, self.device)
            require(w0["kind"] == a.stage, f"{init} holds {w0['kind']} weights, not {a.stage} weights",
                    f"give weights exported by a --stage {a.stage} run")
            try:
                self.net.load_state_dict(w0["state"])
            except RuntimeError as err:
                raise InputError(f"{init} does not fit this network ({err.args[0].splitlines()[0]})",
                                 "use weights with the same --width and PSF model") from None
        self.opt = torch.optim.Adam(self.net.parameters(), lr=a.lr)
        self.step, self.wall, self.log = 0, 0.0, []
        if ck is not None:
            self._load(ck)

    # -- checkpoints ----------------------------------------------------------------------------
    def _initial_psf_model(self, ck: dict | None, w_in: dict | None) -> PSFModel:
        """The IN's model for stage deblur, the checkpoint's on resume (older ones have none), else the options'."""
        if w_in is not None:
            return psf_model_from_description(w_in["psf_model"])
        if ck is not None and "psf_model" in ck:
            return psf_model_from_description(ck["psf_model"])
        return psf_model_from_args(self.args)

    def _state(self) -> dict:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict(), "step": self.step, "wall_s": self.wall,
                "rng": self.g.get_state(), "torch_rng": torch.get_rng_state(), "log": self.log,
                "psf_model": self.psf_model.description,
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(self.args).items() if not k.startswith("_")}}

    def _read_checkpoint(self) -> dict:
        path = self.out / "last.pt"
        require(path.exists(), f"no checkpoint to resume at {path}", "drop --resume or give the right --out")
        return torch.load(path, map_location=self.device, weights_only=False)

    def _load(self, ck: dict) -> None:
        self.net.load_state_dict(ck["net"])
        self.opt.load_state_dict(ck["opt"])
        self.step, self.wall, self.log = ck["step"], ck["wall_s"], ck["log"]
        self.g.set_state(ck["rng"])
        torch.set_rng_state(ck["torch_rng"])

    def checkpoint(self) -> None:
        save_atomic(self._state(), self.out / "last.pt")

    def export(self, path: Path) -> None:
        a = self.args
        save_atomic({"kind": a.stage, "config": self.net.config, "state": self.net.state_dict(),
                     "psf_model": self.psf_model.description,
                     "train": {"steps": self.step, "wall_s": round(self.wall, 1), "size": a.size, "batch": a.batch,
                               "eta": a.eta, "alpha_max": a.alpha_max, "beta_max": a.beta_max, "lr": a.lr,
                               "seed": a.seed, "final_loss": self.log[-1][1] if self.log else None,
                               "loss": _opt(a, "loss", "gamma"), "psf_scales": _opt(a, "psf_scales", "1"),
                               "eta_dist": _opt(a, "eta_dist", "fixed"),
                               "features": _opt(a, "features", "image"), "lr_schedule": _opt(a, "lr_schedule", "constant"),
                               "init": None if _opt(a, "init", None) is None else str(_opt(a, "init", None))}},
                    path)

    # -- one step -----------------------------------------------------------------------------------
    def loss(self, batch) -> torch.Tensor:
        a = self.args
        if a.stage == "identify":
            kind = _opt(a, "loss", "gamma")
            pred = self.net(batch["y"])
            loss = 0.0
            if kind in ("gamma", "both"):
                loss = self.psf_model.gamma_loss(pred, batch["gamma"]) / a.eta**2
            if kind in ("psf", "both"):
                scales = tuple(int(v) for v in str(_opt(a, "psf_scales", "1")).split(","))
                loss = loss + psf_loss(self.psf_model, pred, batch["psf"], scales)
            return loss
        with torch.no_grad():
            psf = self.psf_model(self.psf_model.canonical(self.identifier(batch["y"])))
        op = self.psf_model.operator(psf, (a.size, a.size), "valid")
        x_hat = self.net(batch["y"], op)
        return ((x_hat - op.crop_object(batch["x"])) ** 2).mean()

    def train_step(self) -> float:
        a = self.args
        self.net.train()
        eta = a.eta
        if _opt(a, "eta_dist", "fixed") == "uniform":
            eta = torch.rand(a.batch, 1, generator=self.g) * a.eta
        batch = make_batch(self.images, self.psf_model, a.batch, a.size, eta, a.alpha_max, a.beta_max, self.g, self.device)
        f = lr_factor(self.step, a.steps, _opt(a, "lr_schedule", "constant"))
        for group in self.opt.param_groups:
            group["lr"] = a.lr * f
        loss = self.loss(batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        clip = _opt(a, "grad_clip", None)
        if clip:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), clip)
        self.opt.step()
        self.step += 1
        return float(loss.detach())

    def run(self, steps: int | None = None) -> list[float]:
        a = self.args
        total = steps if steps is not None else a.steps
        losses, last_ck, t_prev = [], time.time(), time.time()
        bar = tqdm(range(self.step, total), initial=self.step, total=total, desc=f"deepblur {a.stage}", mininterval=5)
        for _ in bar:
            losses.append(self.train_step())
            now = time.time()
            self.wall += now - t_prev
            t_prev = now
            if self.step % 50 == 0:
                self.log.append((self.step, sum(losses[-50:]) / len(losses[-50:]), round(self.wall, 1)))
                bar.set_postfix(loss=f"{self.log[-1][1]:.4g}")
            if now - last_ck > 60 * a.checkpoint_minutes:
                self.checkpoint()
                last_ck = now
            max_min = _opt(a, "max_minutes", None)
            if max_min is not None and self.wall >= 60 * max_min:
                break
        self.checkpoint()
        if a.export:
            self.export(a.export)
        return losses


def run(args) -> int:
    trainer = Trainer(args)
    trainer.run()
    print(json.dumps({"stage": args.stage, "steps": trainer.step, "wall_s": round(trainer.wall, 1),
                      "last_loss": trainer.log[-1][1] if trainer.log else None, "checkpoint": str(trainer.out / "last.pt")}))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m unblur.blind.deepblur.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
