"""Benchmark scripts split over processes: every N-th case from the I-th (``--shard I/N``), rows saved per shard
(``--save FILE``) and merged into one table (``--merge FILES``)."""

from __future__ import annotations

import argparse
import pickle
from collections import defaultdict
from pathlib import Path

from ..errors import require


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """``--shard I/N``, ``--save FILE`` and ``--merge FILE...`` on a script's parser."""
    ap.add_argument("--shard", default="0/1", type=_argument, help="I/N: every N-th case from the I-th")
    ap.add_argument("--save", type=Path, help="write this shard's rows (pickle) for --merge")
    ap.add_argument("--merge", type=Path, nargs="+", help="print the table of saved shards instead of running")


def parse(text: str) -> tuple[int, int]:
    """``"I/N"`` as ``(I, N)`` with ``0 <= I < N``."""
    try:
        i, n = (int(s) for s in text.split("/"))
    except ValueError:
        i, n = -1, 0
    require(0 <= i < n, f"--shard must be I/N with 0 <= I < N, got {text!r}", "e.g. --shard 0/2 and --shard 1/2")
    return i, n


def _argument(text: str) -> tuple[int, int]:
    try:
        return parse(text)
    except ValueError as e:  # InputError: argparse prints its message
        raise argparse.ArgumentTypeError(str(e)) from None


def rows_of(args, run) -> dict:
    """The rows to print: merged from ``args.merge``, or ``run(args.shard)`` (saved to ``args.save`` if given)."""
    if args.merge:
        rows = defaultdict(list)
        for f in args.merge:
            for key, r in pickle.loads(f.read_bytes()).items():
                rows[key] += r
        return dict(rows)
    rows = run(args.shard)
    if args.save:
        args.save.write_bytes(pickle.dumps(rows))
    return rows
