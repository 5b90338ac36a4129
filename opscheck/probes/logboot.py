"""The log scanner's source (opscheck/probes/_logscan.py) without its docstrings and comments:
a third less for a host's ``python3 -S -c`` to compile (opscheck.probes.logs._boot).

Stripped when this module is imported, which is in the main thread: opscheck.measure imports it
(``IMPORTS["logs"]``) before its measuring threads start, and a check measured in its test runs
there. CPython 3.11 keeps the AST constructor's recursion depth in shared state, so a thread
building Python AST objects while any other thread does (another parse, 3.11's own traceback
formatting) can fail with "SystemError: AST constructor recursion depth mismatch" -- seen in
`make demo` with the parse done in a measuring thread, even under a lock of its own.
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
