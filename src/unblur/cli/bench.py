"""``unblur bench``: run a benchmark suite (shipped or a TOML file) over a folder of images, with a report."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

HELP = "run a benchmark suite through the registry; results (JSONL), HTML report, BENCHMARKS.md section"


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help=HELP, description=HELP,
                       epilog="examples:\n  unblur bench --list\n  unblur bench smoke --data my_images/ --out bench_smoke\n"
                              "  unblur bench blind-camera-shake --full --workers 2 --out bcs --resume\n"
                              "  unblur bench smoke --markdown BENCHMARKS.md",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", nargs="?", help="a shipped suite (see --list) or the path of a suite .toml file")
    p.add_argument("--list", action="store_true", help="list the shipped suites and exit")
    p.add_argument("--data", type=Path, default=None,
                   help="folder of sharp images (or of the suite's data) replacing the suite's folders under the data root")
    p.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                   help="run only these methods (labels or registry names; a registry name not in the suite runs with its defaults)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: bench-SUITE)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out: only cases without a result run")
    p.add_argument("--workers", type=int, default=1, help="cases run in parallel (local Dask process pool; default 1)")
    p.add_argument("--scheduler", default=None,
                   help="'sync', 'threads', 'processes' or a dask.distributed address tcp://HOST:PORT")
    p.add_argument("--full", action="store_true", help="the paper-size protocol (the suite's [full] settings)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a suite setting, e.g. --set dataset.limit=8 --set dataset.crop=128 (repeatable)")
    p.add_argument("--markdown", type=Path, default=None, metavar="FILE",
                   help="(re)write this suite's section of FILE (e.g. BENCHMARKS.md) between its markers")
    p.add_argument("--lpips-weights", type=Path, default=None, help="LPIPS weights file (enables the lpips metric)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--report-only", action="store_true",
                   help="run no case: write the report (and --markdown) from the results in --out so far")


def _list() -> int:
    from ..bench import describe, load_suite, shipped_suites
    for name in shipped_suites():
        d = describe(load_suite(name))
        print(f"{name:22s} {d['kind']:9s} {d['description']}")
        print(f"{'':22s} {'':9s} methods: {', '.join(d['methods'])}")
    return 0


def run(args) -> int:
    from ..errors import require
    if args.list:
        return _list()
    require(args.suite is not None, "no suite given", "name a suite (unblur bench --list) or a suite .toml file")
    from ..bench import load_suite, run_suite, select_methods
    suite = select_methods(load_suite(args.suite, full=args.full, overrides=args.overrides), args.methods)
    out = args.out or Path(f"bench-{suite.name}")
    command = "unblur bench " + _command(args)
    from ..signals import Interrupted
    try:
        res = run_suite(suite, out, data=args.data, workers=args.workers, scheduler=args.scheduler, resume=args.resume,
                        progress=not args.no_progress, command=command, lpips_weights=args.lpips_weights,
                        report_only=args.report_only)
    except KeyboardInterrupt as e:
        signum = e.signum if isinstance(e, Interrupted) else 2
        raise Interrupted(signum, f"the finished cases are kept in {out / 'results.jsonl'}; "
                                  f"rerun the same command with --resume to continue") from None
    from ..bench.summary import markdown_tables
    print(markdown_tables(res["summary"]))
    print(f"\nresults: {out / 'results.jsonl'}\nreport:  {res['report']}")
    if args.markdown is not None:
        from ..bench.report import markdown_block, update_markdown
        if args.report_only and res["workers"] != args.workers:  # the command that made the results
            command = "unblur bench " + _command(argparse.Namespace(**{**vars(args), "workers": res["workers"]}))
        update_markdown(args.markdown, suite.name, markdown_block(suite, res["records"], command, res["machine"], res["started"],
                                                                  res["workers"]))
        print(f"updated: {args.markdown} (section of suite {suite.name})")
    return 0


def _command(args) -> str:
    """The command line that reproduces the run of ``args`` (``--resume`` and ``--no-progress`` left out)."""
    parts = [str(args.suite)]
    for flag, v in (("--data", args.data), ("--out", args.out), ("--workers", args.workers if args.workers != 1 else None),
                    ("--scheduler", args.scheduler), ("--markdown", args.markdown), ("--lpips-weights", args.lpips_weights)):
        if v is not None:
            parts += [flag, str(v)]
    if args.methods:
        parts += ["--methods", *args.methods]
    parts += [f"--set={o}" for o in args.overrides]
    parts += ["--full"] if args.full else []
    return " ".join(shlex.quote(p) for p in parts)


def main(argv=None) -> int:
    """Run ``unblur bench`` from this module alone (argv without the leading 'bench')."""
    from ..errors import InputError
    parser = argparse.ArgumentParser(prog="unblur")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    try:
        return run(args)
    except InputError as e:
        print(f"unblur bench: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
