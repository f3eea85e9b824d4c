"""Every example in README.md and in the public docstrings runs (doctest); README commands parse."""

import doctest
import importlib
import re
import shlex
from pathlib import Path

import pytest

import unblur
from unblur.registry import list_methods

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _run(test: doctest.DocTest) -> None:
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{test.name}: {result.failed} of {result.attempted} examples failed"


def test_readme_python_examples(monkeypatch):
    monkeypatch.chdir(ROOT)  # the examples read the bundled examples/ files
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert blocks and all(">>>" in b for b in blocks)
    for i, block in enumerate(blocks):
        test = doctest.DocTestParser().get_doctest(block, {}, f"README.md python block {i}", "README.md", 0)
        assert test.examples
        _run(test)


def _public_docstring_tests():
    objects = [getattr(unblur, n) for n in unblur.__all__ if n != "__version__"]
    objects += [importlib.import_module(m) for m in ("unblur.api", "unblur.registry", "unblur.methods.signature")]
    objects += [m.func for m in list_methods()]
    finder = doctest.DocTestFinder(recurse=False)
    tests, seen = [], set()
    for obj in objects:
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        for t in finder.find(obj, getattr(obj, "__name__", repr(obj))):  # globals: the object's module
            if t.examples:
                tests.append(t)
    return tests


@pytest.mark.parametrize("test", _public_docstring_tests(), ids=lambda t: t.name)
def test_public_docstring_examples(test):
    _run(test)


def _readme_commands():
    cmds = []
    for block in re.findall(r"\n    (unblur .*?)(?:\s+#.*)?(?=\n)", README):
        cmds.append(shlex.split(block)[1:])
    return cmds


@pytest.mark.parametrize("argv", _readme_commands(), ids=lambda a: " ".join(a[:3]))
def test_readme_commands_are_valid(argv):
    """Each README command line parses, and its method options belong to the method it names."""
    from unblur.cli import common
    from unblur.cli.main import build_parser
    args = build_parser(argv).parse_args(argv)
    if args.command in ("deconvolve", "blind"):
        kind = "nonblind" if args.command == "deconvolve" else "blind"
        methods = list_methods(kind)
        method = next(m for m in methods if m.name == args.method)
        common.method_params_from_args(args, method, methods)
