"""The log scanner's source (opscheck/probes/_logscan.py) without its docstrings and comments:
a third less for a host's ``python3 -S -c`` to compile (opscheck.probes.logs._boot).

Stripped when this module is imported, in the main thread: opscheck.measure imports it
(``IMPORTS["logs"]``) before its measuring threads start. Parsing in a thread is safe as well
on the Pythons whose AST constructor is not thread-safe (CPython gh-106905: "SystemError: AST
constructor recursion depth mismatch"), since a run's collector does not run by itself there
(opscheck/gcfreeze.py).
"""

from __future__ import annotations

import ast

from opscheck.probes.logs import SCANNER


def _stripped(text: str) -> str:
    tree = ast.parse(text)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


SOURCE = _stripped(SCANNER.read_text())
