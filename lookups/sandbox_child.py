"""The sandbox's other process: checks a program against an allow-list of Python, limits itself
(CPU, memory, files, processes), then runs the program's ``active(text, tokens)`` on each prompt
and writes one JSON line per prompt. ``lookups.sandbox`` starts it as a script with the
standard library only (``python -I -S``); the checks are also imported from there, so a program
is refused in the worker with the same reason as here.

The program sees a few builtins and three modules (``re``, ``string``, ``math``), each as a
namespace of its public functions and constants only: the real ``re`` module holds ``enum``,
and ``enum`` holds ``sys``. Attribute names that lead out of plain values (dunders, frames,
code objects, ``str.format``'s field lookups) are refused before the program runs.
"""

from __future__ import annotations

import ast
import json
import math
import re
import string
import sys
from types import SimpleNamespace
from typing import Any

MAX_SOURCE = 20_000
ENTRY = "active"

_MODULES: dict[str, Any] = {
    "re": re, "math": math, "string": string,
}
_PUBLIC = {
    "re": ["compile", "search", "match", "fullmatch", "findall", "finditer", "sub", "subn", "split",
           "escape", "IGNORECASE", "I", "MULTILINE", "M", "DOTALL", "S", "VERBOSE", "X", "ASCII", "A",
           "error"],
    "math": [name for name in dir(math) if not name.startswith("_")],
    "string": ["ascii_letters", "ascii_lowercase", "ascii_uppercase", "digits", "hexdigits",
               "octdigits", "punctuation", "printable", "whitespace", "capwords"],
}
_BUILTINS = [
    "abs", "all", "any", "bool", "chr", "dict", "divmod", "enumerate", "filter", "float", "frozenset",
    "int", "isinstance", "len", "list", "map", "max", "min", "ord", "range", "repr", "reversed", "round",
    "set", "slice", "sorted", "str", "sum", "tuple", "zip", "True", "False", "None",
    "Exception", "ValueError", "KeyError", "IndexError", "TypeError", "ZeroDivisionError", "AttributeError",
]
# Attribute names refused anywhere: dunders and private names, what frames, generators,
# coroutines, tracebacks and code objects expose, and the two string methods that look up
# attributes from a format string ("{0.__class__}".format(x)).
_DENIED_PREFIXES = ("_", "gi_", "cr_", "ag_", "f_", "tb_", "co_")
_DENIED_ATTRIBUTES = {"format", "format_map", "mro"}
_ALLOWED_NODES = (
    ast.Module, ast.FunctionDef, ast.arguments, ast.arg, ast.Return, ast.Assign, ast.AugAssign,
    ast.AnnAssign, ast.For, ast.While, ast.If, ast.Break, ast.Continue, ast.Pass, ast.Expr, ast.Import,
    ast.ImportFrom, ast.alias, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Call, ast.keyword,
    ast.IfExp, ast.Attribute, ast.Subscript, ast.Slice, ast.Starred, ast.Name, ast.Constant, ast.List,
    ast.Tuple, ast.Set, ast.Dict, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp,
    ast.comprehension, ast.JoinedStr, ast.FormattedValue, ast.Lambda, ast.Try, ast.ExceptHandler,
    ast.Raise, ast.Assert, ast.NamedExpr, ast.expr_context, ast.boolop, ast.operator, ast.unaryop, ast.cmpop,
)


class ProgramRefused(ValueError):
    """The program is not valid Python, uses what the allow-list refuses, or has no ``active``."""


def check_source(source: str) -> ast.Module:
    """The program's syntax tree, or ``ProgramRefused`` naming the first thing refused."""
    if len(source) > MAX_SOURCE:
        raise ProgramRefused(f"the program has {len(source)} characters, over the limit of {MAX_SOURCE}")
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as error:
        line = getattr(error, "lineno", None)
        raise ProgramRefused(f"not valid Python ({'line ' + str(line) + ': ' if line else ''}"
                             f"{getattr(error, 'msg', None) or error})") from None
    for node in ast.walk(tree):
        where = f"line {getattr(node, 'lineno', '?')}"
        if not isinstance(node, _ALLOWED_NODES):
            raise ProgramRefused(f"{where}: {type(node).__name__} is not allowed in a program")
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            raise ProgramRefused(f"{where}: the name {node.id!r} is not allowed (names starting with _)")
        if isinstance(node, ast.Attribute) and (node.attr.startswith(_DENIED_PREFIXES)
                                                or node.attr in _DENIED_ATTRIBUTES):
            raise ProgramRefused(f"{where}: the attribute {node.attr!r} is not allowed")
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name not in _MODULES:
                    raise ProgramRefused(f"{where}: import of {alias.name!r} (only {', '.join(_MODULES)})")
        if isinstance(node, ast.ImportFrom):
            if node.level or node.module not in _MODULES:
                raise ProgramRefused(f"{where}: import from {node.module!r} (only {', '.join(_MODULES)})")
            for alias in node.names:
                if alias.name not in _PUBLIC[node.module]:
                    raise ProgramRefused(f"{where}: {node.module}.{alias.name} is not available")
    if not any(isinstance(n, ast.FunctionDef) and n.name == ENTRY for n in tree.body):
        raise ProgramRefused(f"the program defines no function {ENTRY}(text, tokens)")
    return tree


def _namespaces() -> dict[str, SimpleNamespace]:
    return {name: SimpleNamespace(**{attr: getattr(module, attr) for attr in _PUBLIC[name]})
            for name, module in _MODULES.items()}


def _globals() -> dict[str, Any]:
    import builtins

    modules = _namespaces()

    def restricted_import(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
        if level or name not in modules:
            raise ImportError(f"only {', '.join(modules)} can be imported")
        return modules[name]

    safe = {name: getattr(builtins, name) for name in _BUILTINS}
    safe["__import__"] = restricted_import
    return {"__builtins__": safe, "__name__": "program", **modules}


NOBODY = 65534


def _limit(cpu_s: int, memory_mb: int) -> None:
    """No new files or processes, at most ``memory_mb`` of address space and ``cpu_s`` CPU
    seconds. Set before the program is even parsed; the hard limits cannot be raised again.
    Started as root (which the process limit does not bind), it becomes ``nobody`` first."""
    import os
    import resource

    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (0, 0))  # stdin, stdout and stderr stay open


def _answer(function: Any, text: str, tokens: list[str]) -> dict[str, Any]:
    try:
        value = function(text, list(tokens))
    except MemoryError:
        return {"error": "ran out of memory (the sandbox's limit)"}
    except RecursionError:
        return {"error": "raised RecursionError (recursion too deep)"}
    except Exception as error:  # the program's own failure, reported as its reason
        return {"error": f"raised {type(error).__name__}: {error}"[:300]}
    if type(value) is not bool:
        return {"error": f"returned {type(value).__name__}, not bool"}
    return {"value": value}


def main() -> None:
    job = json.loads(sys.stdin.readline())
    _limit(job["cpu_s"], job["memory_mb"])
    out = sys.stdout
    sys.setrecursionlimit(200)
    try:
        code = compile(check_source(job["source"]), "<program>", "exec")
        scope = _globals()
        exec(code, scope)  # noqa: S102 - the point of the sandbox
        function = scope.get(ENTRY)
        if not callable(function):
            raise ProgramRefused(f"{ENTRY} is not a function")
    except MemoryError:
        out.write(json.dumps({"error": "ran out of memory while loading"}) + "\n")
        return
    except Exception as error:
        out.write(json.dumps({"error": str(error) if isinstance(error, ProgramRefused)
                              else f"loading raised {type(error).__name__}: {error}"[:300]}) + "\n")
        return
    out.write('{"loaded": true}\n')
    out.flush()
    for text, tokens in job["prompts"]:
        out.write(json.dumps(_answer(function, text, tokens)) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
