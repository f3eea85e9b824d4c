"""``unblur train deepblur --stage {identify,deblur}``: train deep-blur's IN, then its DN.

Options: :class:`unblur.training.config.DeepblurTrainConfig`; optimiser, learning-rate schedule,
gradient clipping, checkpoints, resume, ``--init`` and ``--export``: the one training loop
(:mod:`unblur.training.loop`).  Checkpoints and exported weights are unblur checkpoints of kind
``deepblur-identify`` / ``deepblur-deblur`` (:mod:`unblur.models.checkpoints`) that also store the
PSF model (``psf_model``, its eigen basis included).

PSF model (``--model``, see :mod:`.psf_model`): ``zernike`` (8 coefficients, Noll 4..11),
``eigen`` (``--rank`` eigen-PSF coefficients of the Zernike family drawn with amplitude ``--eta``,
``--family-samples`` PSFs, seed ``--seed``), or ``product-convolution`` (a ``--grid`` of control
points, each with ``--local-model`` coefficients: eigen or Zernike).  ``--resume`` and stage
``deblur`` (which takes the model of ``--identify-weights``) rebuild the stored model, so the model
options only matter for a new identification run.

Stage ``identify``: ``--loss gamma`` (the paper's) minimises the MSE on gamma in units of eta,
``|IN(y) - gamma|^2 / eta^2``, made invariant to the model's ambiguities (the sign of the even Zernike
coefficients, :func:`.identify.sign_invariant_mse`).  ``--loss psf`` minimises the relative squared
error of the PSF, ``||h(IN(y)) - h(gamma)||^2 / ||h(gamma)||^2`` (:func:`psf_loss`): it is
differentiable through the PSF model and invariant to every ambiguity of the model by construction,
and it is the quantity behind the PSF SNR used to evaluate IN; ``--loss both`` adds the two.
``--features`` picks IN's input features (:mod:`.identify`: ``image``, ``image+spectrum`` or ``welch``).
Stage ``deblur``: with IN frozen (``--identify-weights``), minimise ``||DN(y, A(IN(y))) - x||^2`` over
the field of view: DN is fed the *estimated* gamma, as in the paper, and the model's operator
(convolution or product-convolution).

Data: random gray crops of ``--data`` (default ``$UNBLUR_DATA/train/train400_gray``) with flips and
rotations, ``gamma ~ U[-eta, eta]^K`` (``--eta-dist uniform``: ``eta_i ~ U[0, eta]`` per image first, so
that every blur level up to eta is seen), Poisson-Gaussian noise (see :mod:`.simulate` for the units).
Validation: the loss on one fixed batch (fixed crops, blurs and noise); the lowest goes to ``best.pt``.

Reference: Debarnot & Weiss, "Deep-blur", Biological Imaging 2024 (sections 3.1-3.2, Algorithm 1).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
import torch.nn.functional as nn_f

from ...data import data_path
from ...errors import InputError, require
from ...models.checkpoints import read_checkpoint
from ...training.config import DeepblurTrainConfig, add_config_arguments, config_from_args
from ...training.loop import resolve_resume, run_training, setup_torch
from ...training.state import load_training_checkpoint
from .deblur import DeblurNet
from .identify import IdentificationNet
from .psf_model import (
    DEEPBLUR_NOLL,
    PSFModel,
    eigen_psf_model,
    parse_grid,
    product_convolution_model,
    psf_model_from_description,
    zernike_psf_model,
)
from .simulate import load_gray_images, make_batch

KINDS = {"identify": "deepblur-identify", "deblur": "deepblur-deblur"}
VAL_SEED = 12345


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


def build_identifier(n_params: int, width: int, eta: float, features: str = "image") -> IdentificationNet:
    return IdentificationNet(n_params, widths=(width, 2 * width, 4 * width, 8 * width), scale=eta, features=features)


def build_deblurrer(width: int, cg_iters: int = 20, lam: float = 0.05) -> DeblurNet:
    return DeblurNet(steps=4, lam=lam, cg_iters=cg_iters, widths=(width, 2 * width, 4 * width))


def network_from_config(stage: str, config: dict) -> torch.nn.Module:
    """IN (``stage="identify"``) or DN (``"deblur"``) of the stored ``config``."""
    if stage == "identify":
        return IdentificationNet(**config)
    if stage == "deblur":
        c = dict(config)
        return DeblurNet(steps=c["steps"], lam=c["lam"], cg_iters=c["cg_iters"], widths=c["widths"], blocks=c["blocks"])
    raise InputError(f"unknown deep-blur weights kind {stage!r}", "give deep-blur identify or deblur weights")


def psf_model_from_config(cfg: DeepblurTrainConfig) -> PSFModel:
    """The PSF model that ``--model`` and its options describe (a new identification run)."""
    local_kind = cfg.local_model if cfg.model == "product-convolution" else cfg.model
    if local_kind == "zernike":
        local = zernike_psf_model(cfg.optics, DEEPBLUR_NOLL, cfg.psf_size)
    else:
        local = eigen_psf_model(cfg.rank, cfg.optics, DEEPBLUR_NOLL, cfg.psf_size, cfg.eta, cfg.family_samples, cfg.seed)
    return product_convolution_model(local, parse_grid(cfg.grid)) if cfg.model == "product-convolution" else local


def load_weights(path, device="cpu") -> dict:
    """Deep-blur weights (IN or DN) as deep-blur's inference reads them.

    Returns ``{"kind": "identify"|"deblur", "config", "state", "psf_model", "train"}`` (``train``: the
    training config with ``steps``, ``wall_s`` and ``final_loss``) and ``"checkpoint"``, the file in the
    one unblur checkpoint format.  Read with ``weights_only=True`` (:func:`read_checkpoint`); weight
    files of the earlier deep-blur layout are converted.  ``device`` is accepted for compatibility;
    tensors are on the CPU.
    """
    ck = read_checkpoint(path, tuple(KINDS.values()))
    meta = ck.get("meta", {})
    train = {**meta.get("train_config", {}), "steps": ck["step"], "wall_s": meta.get("wall_s"),
             "final_loss": meta.get("loss")}
    return {"kind": ck["kind"].removeprefix("deepblur-"), "config": ck["config"], "state": ck["model"],
            "psf_model": ck["psf_model"], "train": train, "checkpoint": ck}


def model_from_weights(w: dict) -> torch.nn.Module:
    """The network (eval mode) of :func:`load_weights`'s result or of a deep-blur checkpoint dict."""
    net = network_from_config(w["kind"].removeprefix("deepblur-"), w["config"])
    net.load_state_dict(w["state"] if "state" in w else w["model"])
    return net.eval()


class Trainer:
    """deep-blur's trainer for the one loop: the PSF model, the data and the network of a stage.

    It supplies :meth:`batch_loss` and :meth:`validate` to :func:`unblur.training.loop.run_training`
    (:meth:`run`).  ``psf_model`` and ``images`` (a list of 2-D tensors) replace the ones the options
    describe (tests, scripts).  ``resume``: ``"auto"``/``True`` (the run folder) or a checkpoint path.
    """

    def __init__(self, cfg: DeepblurTrainConfig, resume=None, psf_model: PSFModel | None = None, images=None):
        require(cfg.stage in KINDS, f"unknown --stage {cfg.stage!r}", "use identify or deblur")
        if cfg.out is None:
            cfg = dataclasses.replace(cfg, out=str(Path("runs") / f"deepblur_{cfg.stage}"))
        self.cfg, self.kind = cfg, KINDS[cfg.stage]
        self.device = setup_torch(cfg)
        self.resume = resolve_resume(resume, cfg.out)
        ck = load_training_checkpoint(self.resume, (self.kind,)) if self.resume is not None else None
        w_in = None
        if cfg.stage == "deblur":
            require(cfg.identify_weights is not None, "stage deblur needs --identify-weights",
                    "train stage identify first")
            w_in = read_checkpoint(cfg.identify_weights, (KINDS["identify"],))
        self.psf_model = psf_model or self._initial_psf_model(ck, w_in)
        if images is None:
            folder = cfg.data or data_path("train/train400_gray")
            images = load_gray_images(folder, cfg.size + self.psf_model.psf_size - 1)
        self.images = images
        if ck is not None:  # the checkpoint's network, whatever the options say
            self.net = network_from_config(cfg.stage, ck["config"])
        elif cfg.stage == "identify":
            self.net = build_identifier(self.psf_model.n_params, cfg.width, cfg.eta, cfg.features)
        else:
            self.net = build_deblurrer(cfg.width, cfg.cg_iters, cfg.lam)
        self.net.to(self.device)
        self.identifier = None
        if w_in is not None:
            self.identifier = model_from_weights(w_in).to(self.device)
            for p in self.identifier.parameters():
                p.requires_grad_(False)
        self._val_batch = None

    def _initial_psf_model(self, ck: dict | None, w_in: dict | None) -> PSFModel:
        """IN's model for stage deblur, the checkpoint's on resume, else the options'."""
        if w_in is not None:
            return psf_model_from_description(w_in["psf_model"])
        if ck is not None:
            return psf_model_from_description(ck["psf_model"])
        return psf_model_from_config(self.cfg)

    def batch(self, gen: torch.Generator) -> dict:
        """A training batch drawn with ``gen``: ``y``, ``x``, ``gamma``, ``psf`` (see :func:`.simulate.make_batch`)."""
        c = self.cfg
        eta = torch.rand(c.batch, 1, generator=gen) * c.eta if c.eta_dist == "uniform" else c.eta
        return make_batch(self.images, self.psf_model, c.batch, c.size, eta, c.alpha_max, c.beta_max, gen, self.device)

    def loss(self, batch: dict) -> torch.Tensor:
        """Stage identify: the ``--loss`` of IN's estimate; stage deblur: the MSE of DN's restoration."""
        c = self.cfg
        if c.stage == "identify":
            pred = self.net(batch["y"])
            loss = 0.0
            if c.loss in ("gamma", "both"):
                loss = self.psf_model.gamma_loss(pred, batch["gamma"]) / c.eta**2
            if c.loss in ("psf", "both"):
                scales = tuple(int(v) for v in str(c.psf_scales).split(","))
                loss = loss + psf_loss(self.psf_model, pred, batch["psf"], scales)
            return loss
        with torch.no_grad():
            psf = self.psf_model(self.psf_model.canonical(self.identifier(batch["y"])))
        op = self.psf_model.operator(psf, (c.size, c.size), "valid")
        x_hat = self.net(batch["y"], op)
        return ((x_hat - op.crop_object(batch["x"])) ** 2).mean()

    def batch_loss(self, gen: torch.Generator) -> torch.Tensor:
        return self.loss(self.batch(gen))

    def validate(self) -> dict:
        """``{"loss": ...}`` on one fixed batch (drawn once with seed ``VAL_SEED``)."""
        if self._val_batch is None:
            self._val_batch = self.batch(torch.Generator().manual_seed(VAL_SEED))
        return {"loss": float(self.loss(self._val_batch))}

    def run(self, log=print) -> dict:
        """Train with the one loop; returns its summary (``steps``, ``wall_s``, ``loss``, ``val``, ``best``)."""
        summary = run_training(
            self.kind, self.net, self.cfg, batch_loss=self.batch_loss, validate=self.validate,
            score=lambda v: -v["loss"], describe=lambda v: f"validation loss {v['loss']:.4g}",
            desc=f"deepblur {self.cfg.stage}", resume=self.resume, extra={"psf_model": self.psf_model.description},
            log=log)
        self.resume = resolve_resume(True, self.cfg.out)  # a further run() continues this one
        return {**summary, "out": self.cfg.out}

    def export(self, path) -> dict:
        """Write the inference weights of the run's ``last.pt`` to ``path``; returns their ``meta``."""
        from ...training.export import export
        return export(Path(self.cfg.out) / "last.pt", path)


def train_deepblur(cfg: DeepblurTrainConfig, resume=None, log=print, psf_model=None, images=None) -> dict:
    """Train (or resume) one deep-blur stage with the one loop and return its summary (with ``out``)."""
    return Trainer(cfg, resume, psf_model, images).run(log=log)


def main(argv=None) -> int:
    """``python -m unblur.blind.deepblur.train``: the same options as ``unblur train deepblur``."""
    p = argparse.ArgumentParser(prog="python -m unblur.blind.deepblur.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p, DeepblurTrainConfig)
    p.add_argument("--resume", nargs="?", const="auto", metavar="PATH", help="continue from OUT/last.pt")
    args = p.parse_args(argv)
    try:
        res = train_deepblur(config_from_args(DeepblurTrainConfig, args), resume=args.resume)
    except InputError as e:
        print(f"error: {e}")
        return 2
    print(json.dumps({"stage": args.stage, "steps": res["steps"], "wall_s": round(res["wall_s"], 1),
                      "loss": res["loss"], "checkpoint": str(Path(res["out"]) / "last.pt")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
