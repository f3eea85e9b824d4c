"""``unblur train denoiser|kernel-denoiser|deepblur``: train unblur's networks (see unblur.training).

The options of each trainer are generated from its config dataclass (:mod:`unblur.training.config`);
the trainer (and torch) is imported only when a run starts.
"""

from __future__ import annotations

import argparse
import importlib
import inspect

from ..training.config import TRAINERS, add_config_arguments, config_from_args

HELP = "train unblur's image denoiser / diffusion prior, the blur-kernel prior or deep-blur's networks"


def add_parser(sub) -> None:
    p = sub.add_parser("train", help=HELP, description=HELP)
    tsub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    for name, (cls, _, _) in TRAINERS.items():
        doc = inspect.cleandoc(cls.__doc__ or "")
        t = tsub.add_parser(name, help=doc.splitlines()[0], description=doc,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        add_config_arguments(t, cls)
        t.add_argument("--resume", nargs="?", const="auto", metavar="PATH",
                       help="continue from OUT/last.pt (or the checkpoint or run folder given)")


def run(args) -> int:
    cls, module, func = TRAINERS[args.what]
    cfg = config_from_args(cls, args)
    train = getattr(importlib.import_module(module), func)
    res = train(cfg, resume=args.resume)
    out = res.get("out", cfg.out)
    print(f"done: {res['steps']} steps in {res['wall_s'] / 60:.1f} min; checkpoints in {out} (last.pt, best.pt)")
    return 0
