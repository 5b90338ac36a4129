"""Backups as files on a host, found with one ``stat``/``find`` script per run through the
host's testinfra connection (``local://`` for this machine), under ``timeout``. Read-only: the
restore test's copy of a remote dump is a ``cat``.
"""

from __future__ import annotations

import math
import posixpath
import re
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from opscheck.judge import ProbeError
from opscheck.probes.backup import Backup, File
from opscheck.units import format_value

if TYPE_CHECKING:
    from testinfra.host import Host

MAX_FILES = 20_000  # listing lines read per run: a backup folder with more is summed in part
# A dump on a remote host comes here through its ssh connection, held in memory on the way.
COPY_LIMIT = 1024**3

_GLOB = re.compile(r"(\*|\?|\[!?[A-Za-z0-9_.-]+\])")


def shell_glob(pattern: str) -> str:
    """``pattern`` for sh: glob characters bare, everything else quoted."""
    parts = _GLOB.split(pattern)
    return "".join(p if i % 2 else shlex.quote(p) for i, p in enumerate(parts) if p)


# What ``test`` tells of a match that is neither a file nor a directory: (test, kind, phrase).
_KINDS = (
    ("-p", "fifo", "is a FIFO (named pipe), not a regular file"),
    ("-S", "socket", "is a socket, not a regular file"),
    ("-c", "char", "is a character device, not a regular file"),
    ("-b", "block", "is a block device, not a regular file"),
)
_SAID = {kind: phrase for _, kind, phrase in _KINDS}
_SAID["dangling"] = "is a symbolic link to a file that does not exist"
_SAID["other"] = "is not a regular file"


def _listing(patterns: Sequence[str]) -> str:
    """One sh script: per match ``F i size mtime path`` (a file) or ``D i mtime path`` (a
    directory) followed by ``f 0 size mtime path`` per file in it, or ``X i kind path`` (a FIFO,
    socket, device or dangling link: told by ``test``, never opened: reading a FIFO waits for a
    writer forever)."""
    kinds = "; ".join(f'[ {test} "$p" ] && k={kind}' for test, kind, _ in _KINDS)
    lines = []
    for index, pattern in enumerate(patterns):
        lines.append(
            f"for p in {shell_glob(pattern)}; do "
            f'if [ -d "$p" ]; then echo "D {index} $(stat -L -c %Y -- "$p") $p"; '
            f"find \"$p/\" -type f -exec stat -L -c 'f 0 %s %Y %n' {{}} +; "
            f'elif [ -f "$p" ]; then stat -L -c \'F {index} %s %Y %n\' -- "$p"; '
            f'elif [ -e "$p" ] || [ -L "$p" ]; then k=other; {kinds}; [ -e "$p" ] || k=dangling; '
            f'echo "X {index} $k $p"; fi; done'
        )
    return "; ".join(lines)


class HostFiles:
    """Backups as files on a host, read through its testinfra connection (``stat``, ``find``)."""

    noun = "files"

    def __init__(self, host: Host, where: str, timeout: float, remote: bool) -> None:
        self.host = host
        self.where = where
        self.timeout = timeout
        self.remote = remote  # False: this machine, where Python reads SQLite files itself

    def find(self, rendered: Sequence[str]) -> tuple[list[list[Backup]], list[str]]:
        status, out, problems = tool(self, _listing(rendered), self.timeout, f"head -n {MAX_FILES}")
        if status == 124:
            raise ProbeError(f"listing the backups took over {self.timeout:g} s (timeout)")
        found: list[list[Backup]] = [[] for _ in rendered]
        for index, backup in _parse_listing(out):
            found[index].append(backup)
        return found, problems

    def show(self, rendered: str) -> str:
        return rendered

    def fetch(self, file: File, folder: Path, deadline: float) -> Path:
        """The file on this machine, for the restore test: copied here from a remote host."""
        if not self.remote:
            return Path(file.path)
        if file.size > COPY_LIMIT:
            raise ProbeError(
                f"{file.path} is {format_value(file.size, 'size')}: the restore test copies at "
                f"most {format_value(COPY_LIMIT, 'size')} from a host (restore it from S3 or "
                "where it lies)"
            )
        seconds = ceil_seconds(deadline - time.monotonic())
        result = self.host.run(f"timeout {seconds} cat -- {shlex.quote(file.path)}")
        if result.rc:
            raise ProbeError(f"copying {file.path} from {self.where}: {result.stderr.strip()}")
        target = folder / file.name
        target.write_bytes(result.stdout_bytes)
        return target


def _parse_listing(out: str) -> list[tuple[int, Backup]]:
    backups: list[tuple[int, Backup]] = []
    folder: tuple[int, str, float, list[File]] | None = None

    def close() -> None:
        if folder is not None:
            index, path, mtime, files = folder
            name = posixpath.basename(path) + "/"
            backups.append((index, Backup(path + "/", name, tuple(files), True, mtime)))

    for line in out.splitlines():
        tag, _, rest = line.partition(" ")
        if tag == "D":
            close()
            index, mtime, path = rest.split(" ", 2)
            folder = (int(index), posixpath.normpath(path), float(mtime), [])
        elif tag in ("F", "f"):
            index, size_text, mtime, path = rest.split(" ", 3)
            file = File(posixpath.normpath(path), int(size_text), float(mtime))
            if tag == "f" and folder is not None:
                folder[3].append(file)
            elif tag == "F":
                close()
                folder = None
                backups.append((int(index), Backup(file.path, file.name, (file,))))
        elif tag == "X":
            close()
            folder = None
            index, kind, path = rest.split(" ", 2)
            path = posixpath.normpath(path)
            said = _SAID.get(kind, _SAID["other"])
            backups.append((int(index), Backup(path, posixpath.basename(path), (), not_file=said)))
    close()
    return backups


def tool(
    store: HostFiles, command: str, seconds: float, pipe: str = ""
) -> tuple[int, str, list[str]]:
    """Run ``command`` on the store's host under ``timeout``: (exit status, stdout, stderr lines).

    Piped into ``pipe``, the command's own status still counts (sh has no pipefail).
    """
    line = f"timeout {ceil_seconds(seconds)} sh -c {shlex.quote(command)}"
    if pipe:
        line = f'{{ {line} || echo "opscheck-exit $?" >&2; }} | {pipe}'
    result = store.host.run(line)
    errors = [e for e in result.stderr.splitlines() if e.strip()]
    status = result.rc
    if pipe:
        marks = [e for e in errors if e.startswith("opscheck-exit ")]
        status = int(marks[-1].split()[1]) if marks else 0
        errors = [e for e in errors if not e.startswith("opscheck-exit ")]
    if status in (126, 127):
        name = command.split()[0]
        hint = INSTALL.get(name, "")
        raise ProbeError(f"{name}: not found on {store.where}{hint}: {'; '.join(errors)[:200]}")
    return status, result.stdout, errors


INSTALL = {
    "pg_restore": " (Debian: apt-get install postgresql-client)",
    "sqlite3": " (Debian: apt-get install sqlite3)",
}


def ceil_seconds(value: float) -> int:
    return max(1, math.ceil(value))
