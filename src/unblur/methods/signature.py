"""A method's parameters read from its function's source, without importing the function.

The registry names a function as ``"package.module:function"``.  Its keyword parameters, their
literal defaults and annotations, and the first sentence of each numpydoc ``Parameters`` entry are
read from the module's source with :mod:`ast`, so that ``unblur --help`` and ``unblur methods`` need
neither torch nor the method's code.

Understood annotations: ``int``, ``float``, ``bool``, ``str``, ``X | None`` / ``Optional[X]`` (the
parameter may be None), unions with other types (the first of int/float/bool/str is the option's
type) and ``Literal["a", "b"]`` (choices).  Defaults are literals (numbers, strings, None, booleans,
tuples) or simple arithmetic on them (``49 / 255``).  Without an annotation the type is the
default's (``str`` when the default is None).

Example
-------
>>> params = read_parameters("unblur.methods.deepblur:deepblur")
>>> p = next(p for p in params if p.name == "rl_iters")
>>> p.type, p.default
(<class 'int'>, 30)
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

SIMPLE_TYPES = {"int": int, "float": float, "bool": bool, "str": str}
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos}
_ABBREVIATION = re.compile(r"\b(e\.g|i\.e|et al|cf|vs|eqs?|Eqs?|Fig|approx|resp|no)$")


@dataclass(frozen=True)
class Param:
    """One keyword parameter of a method: CLI option ``--name`` (underscores become dashes)."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple | None = None


class SignatureError(ValueError):
    """The function's source cannot be read as a registry contract (a bug in unblur, not user input)."""


def module_path(module: str) -> Path:
    """Source file of ``module``, found without importing it (nor its parent packages, for unblur's own)."""
    parts = module.split(".")
    if parts[0] == "unblur":
        root = Path(__file__).resolve().parents[1]
        base = root.joinpath(*parts[1:])
        for p in (base.with_suffix(".py"), base / "__init__.py"):
            if p.is_file():
                return p
        raise SignatureError(f"no source file for module {module}")
    import importlib.util  # a third-party module: its parents are imported to find it

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        raise SignatureError(f"no source file for module {module}")
    return Path(spec.origin)


def literal(node: ast.AST) -> Any:
    """Value of a literal default, allowing + - * / // ** between literals (e.g. ``49 / 255``)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](literal(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](literal(node.left), literal(node.right))
    if isinstance(node, ast.Tuple):
        return tuple(literal(e) for e in node.elts)
    raise SignatureError(f"default {ast.unparse(node)!r} is not a literal")


def _name(node: ast.AST) -> str:
    """``Literal`` for both ``Literal`` and ``typing.Literal``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _union_members(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union_members(node.left) + _union_members(node.right)
    if isinstance(node, ast.Subscript) and _name(node.value) in ("Optional", "Union"):
        inner = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        members = [m for e in inner for m in _union_members(e)]
        return members + ([ast.Constant(None)] if _name(node.value) == "Optional" else [])
    return [node]


def annotation_type(node: ast.AST | None, default: Any) -> tuple[type, tuple | None]:
    """(option type, choices) of an annotation; the default's type when there is none."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # a string annotation
        node = ast.parse(node.value, mode="eval").body
    choices = None
    kind = None
    for m in _union_members(node) if node is not None else []:
        if isinstance(m, ast.Subscript) and _name(m.value) == "Literal":
            values = m.slice.elts if isinstance(m.slice, ast.Tuple) else [m.slice]
            choices = tuple(literal(v) for v in values)
            kind = kind or type(choices[0])
        elif _name(m) in SIMPLE_TYPES:
            kind = kind or SIMPLE_TYPES[_name(m)]
    if kind is None:
        kind = type(default) if isinstance(default, (bool, int, float, str)) else str
    return kind, choices


def plain(text: str) -> str:
    """reStructuredText markup removed: ````x```` -> x, ``:mod:`~a.b``` -> b, ``:func:`a.b``` -> a.b."""
    text = re.sub(r":\w+:`(~?)([^`]+)`", lambda m: m.group(2).split(".")[-1] if m.group(1) else m.group(2), text)
    return text.replace("``", "")


def first_sentence(text: str) -> str:
    """The text up to the first full stop that ends a sentence (not ``e.g.``); the whole text if none."""
    for m in re.finditer(r"\.(?=\s|$)", text):
        before = text[:m.start()]
        if not _ABBREVIATION.search(before):
            return before.strip() + "."
    return text.strip()


def numpydoc_parameters(doc: str | None) -> dict[str, str]:
    """Description of each entry of a numpydoc ``Parameters`` section (``a, b : type`` gives both)."""
    lines = (doc or "").expandtabs().splitlines()
    out: dict[str, str] = {}
    start = next((i + 2 for i in range(len(lines) - 1)
                  if lines[i].strip() == "Parameters" and set(lines[i + 1].strip()) == {"-"}), None)
    if start is None:
        return out
    base = None
    names: list[str] = []
    for i in range(start, len(lines)):
        line = lines[i]
        if i + 1 < len(lines) and line.strip() and set(lines[i + 1].strip()) == {"-"}:
            break  # the next section
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        base = indent if base is None else base
        if indent <= base:
            head = line.split(" : ")[0] if " : " in line else line.rstrip(":")
            names = [n.strip().lstrip("*") for n in head.split(",") if n.strip()]
            for n in names:
                out[n] = ""
        else:
            for n in names:
                out[n] = (out[n] + " " + line.strip()).strip()
    return out


@lru_cache(maxsize=None)
def _module_tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def function_node(target: str) -> ast.FunctionDef:
    """The ``def`` of ``"module:function"``, found at the top level of the module's source."""
    module, _, name = target.partition(":")
    tree = _module_tree(module_path(module))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise SignatureError(f"{target}: no top-level function {name!r} in {module}")


def keyword_defaults(node: ast.FunctionDef) -> list[tuple[str, ast.AST | None, ast.AST]]:
    """``(name, annotation, default node)`` of every parameter that has a default, in order."""
    a = node.args
    positional = a.posonlyargs + a.args
    with_defaults = list(zip(positional[len(positional) - len(a.defaults):], a.defaults))
    with_defaults += [(arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
    return [(arg.arg, arg.annotation, d) for arg, d in with_defaults]


def read_parameters(target: str, skip: tuple[str, ...] = ()) -> tuple[Param, ...]:
    """The options of ``"module:function"``: its keyword parameters except the names in ``skip``."""
    node = function_node(target)
    helps = numpydoc_parameters(ast.get_docstring(node))
    params = []
    for name, ann, dnode in keyword_defaults(node):
        if name in skip:
            continue
        default = literal(dnode)
        kind, choices = annotation_type(ann, default)
        params.append(Param(name, kind, default, plain(first_sentence(helps.get(name, ""))), choices))
    return tuple(params)


def parameter_names(target: str) -> tuple[str, ...]:
    """Every parameter name of ``"module:function"`` (positional ones included)."""
    a = function_node(target).args
    return tuple(x.arg for x in a.posonlyargs + a.args + a.kwonlyargs)


__all__ = ["Param", "SignatureError", "read_parameters", "parameter_names", "numpydoc_parameters", "first_sentence", "plain"]
