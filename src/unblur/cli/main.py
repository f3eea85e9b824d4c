"""``unblur`` command line.  Exit codes: 0 success, 2 bad input, 1 failure, 130 interrupted (SIGINT,
Ctrl-C), 143 terminated (SIGTERM); an interrupted command leaves no partial output (see
:mod:`unblur.signals`; a training run keeps its resume checkpoint and says so).

Each subcommand lives in its own module with ``add_parser(subparsers)`` and ``run(args)``; add new
ones to ``COMMANDS``.  Modules import numpy, torch and the methods inside ``run()`` only, so that
``unblur --help``, ``--version`` and ``unblur methods`` start fast.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
import warnings

from ..errors import InputError
from ..signals import Interrupted, handle_termination, held_during_import

COMMANDS = ["deconvolve", "blind", "simulate", "methods", "train", "psf", "bench"]
DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
METHOD_COMMANDS = ("deconvolve", "blind")  # their --help shows the options of the --method given in argv


def build_parser(argv=()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unblur",
        description="Deconvolution of images and stacks: known PSF (deconvolve), unknown PSF (blind), PSF models (psf).",
        epilog="Run 'unblur COMMAND --help' for the options of a command.")
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"unblur {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = {}
    for name in COMMANDS:
        mod = importlib.import_module(f"unblur.cli.{name}")
        if name in METHOD_COMMANDS:
            mod.add_parser(sub, argv)
        else:
            mod.add_parser(sub)
        modules[name] = mod
    parser.set_defaults(_modules=modules)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
    try:
        with handle_termination(), held_during_import("torch"):  # torch's C++ start-up is not interruptible
            return int(args._modules[args.command].run(args) or 0)
    except InputError as e:
        print(f"unblur {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into a command that stopped reading (e.g. head)
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as e:
        signum = e.signum if isinstance(e, Interrupted) else 2
        note = (e.note if isinstance(e, Interrupted) else None) or "no partial output was written"
        what = "terminated (SIGTERM)" if signum == 15 else "interrupted"
        print(f"unblur {args.command}: {what}; {note}", file=sys.stderr)
        return 128 + signum
    except Exception as e:  # noqa: BLE001
        if isinstance(e, OSError) and e.errno in DISK_FULL:  # a full disk is not a bug: one line
            where = f" writing {e.filename}" if e.filename else ""
            print(f"unblur {args.command}: error: disk full{where}; free space or choose another folder", file=sys.stderr)
            return 2
        import traceback  # a bug: keep the traceback for the report
        traceback.print_exc()
        print(f"unblur {args.command}: failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
