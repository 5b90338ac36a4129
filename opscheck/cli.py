"""``opscheck``: run the checks from any directory.

    opscheck morning --inventory /etc/opscheck/inventory.toml --archive
    opscheck -m "evening and backup" -n 4

is ``pytest -m morning …`` with opscheck's own ``pytest.ini`` and checkout as pytest's root, so
the suites, their markers and options are found wherever it is run; relative paths (the inventory,
``--reports-dir``) are relative to the current directory, as in any command. Every pytest option
works; the exit code is pytest's (0 OK, 1 a check failed, 4 configuration wrong or nothing to
check).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import opscheck

_SCHEDULE = re.compile(r"[a-z][a-z0-9_-]*")


def checkout() -> Path:
    """The folder holding opscheck's pytest.ini, conftest.py and suites/ (the package's parent)."""
    return Path(opscheck.__file__).resolve().parents[1]


def checkout_ini() -> Path | None:
    root = checkout()
    ini = root / "pytest.ini"
    return ini if ini.is_file() and (root / "suites").is_dir() else None


def run(args: list[str], rerun: bool = False) -> int:
    """Run pytest rooted at opscheck's checkout; a first bare word is the schedule (``-m``).

    ``rerun``: a misrooted ``pytest`` run started this one in its own process, after importing
    opscheck itself, which pytest's assertion rewriting would warn about (the suites judge with
    ``limits``, not ``assert``)."""
    import pytest

    ini = checkout_ini()
    if ini is None:
        print(
            f"opscheck: no suites beside the installed package in {checkout()}: install "
            "opscheck from its checkout (pip install -e <checkout>)",
            file=sys.stderr,
        )
        return int(pytest.ExitCode.USAGE_ERROR)
    if args and _SCHEDULE.fullmatch(args[0]) and not Path(args[0]).exists():
        args = ["-m", args[0], *args[1:]]
    root = ["-c", str(ini), "--rootdir", str(ini.parent)]
    if rerun:
        root += ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    return int(pytest.main([*root, *args]))


def main() -> None:
    sys.exit(run(sys.argv[1:]))
