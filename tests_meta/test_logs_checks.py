"""Every logs check against real log files and a real journal, on this machine and over ssh.

The files are written here with timestamps relative to now (errors inside and outside the
window), in the formats programs write: ISO 8601 application logs, JSON lines with a level,
syslog's auth.log (sshd, sudo), nginx's access log; rotated siblings (``api.log.1``, ``.gz``),
date-templated names, a file over its size limit, one never rotated, a multi-hundred-MB log.
The journal is a real journal file, written by systemd's own journal writer
(``systemd-journal-remote``) and read by ``journalctl``. Remote means through a real sshd on
127.0.0.1, where the scanner runs on the far side.

fail2ban: a real fail2ban needs its daemon, so the check is tested where the client is absent
(it skips with the reason) and its parser on the output format of fail2ban 1.0 (Debian 12).
"""

from __future__ import annotations

import calendar
import gzip
import importlib.util
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import testinfra
import testinfra.host

from opscheck import config as cfg
from opscheck.config import LOG_PRESETS, LogsTarget
from opscheck.judge import ProbeError
from opscheck.probes import _logscan as scanner
from opscheck.probes import logs as probes
from opscheck.testbed.sshd import Sshd, host_block, toml_value

# The count and capacity checks; ratios and [[logs.stats]] (suites/logs/test_logs_ratios.py,
# test_logs_stats.py) are tested in tests_meta/test_logs_stats.py.
LOGS = tuple(
    f"suites/logs/test_logs_{name}.py" for name in ("available", "capacity", "errors", "security")
)
HOUR = 3600.0
JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"


def forget_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    """New testinfra hosts from here on: the host fixture gives a host's commands a copy of the
    environment taken at its first use, and these tests change PATH (no grep, no python3, a
    shim) for the commands of local:// after it was used."""
    monkeypatch.setattr(testinfra.host.Host, "_host_cache", {})


@pytest.fixture(autouse=True)
def fresh_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own testinfra hosts (see forget_hosts)."""
    forget_hosts(monkeypatch)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A real OpenSSH server for the session (of this xdist worker)."""
    with Sshd(tmp_path_factory.mktemp("sshd-logs")) as server:
        yield server


# -- writing logs as programs do -----------------------------------------------------------------


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def syslog(t: float) -> str:
    return time.strftime("%b %e %H:%M:%S", time.localtime(t))  # local time, no year


def clf(t: float) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(t))


def write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def app_errors(now: float, count: int, ago: float = HOUR) -> list[str]:
    """``count`` errors within the last ``ago`` seconds, each with a stack frame: 21 of 37
    (rounded down) payments failing, the others upstream timeouts."""
    lines = []
    for i in range(count):
        t = now - ago + i * ago / (count + 1)
        if i < count * 21 // 37:
            text = (
                f"ERROR payment {1000 + i * 7} failed for user "
                f"{os.urandom(4).hex()}-{os.urandom(2).hex()}-4{os.urandom(2).hex()[1:]}-"
                f"a{os.urandom(2).hex()[1:]}-{os.urandom(6).hex()} from 10.1.{i}.{i * 3 % 250}"
            )
        else:
            text = (
                f"ERROR upstream timed out after {3000 + i} ms (request_id=0x{os.urandom(4).hex()})"
            )
        lines += [f"{iso(t)} {text}", f"    at app.payments.charge(payments.py:{40 + i})"]
    return lines


def info_lines(now: float, count: int, span: float, width: int = 60) -> list[str]:
    return [
        f"{iso(now - span + i * span / count)} INFO GET /api/items/{i} 200 {'x' * width}"
        for i in range(count)
    ]


def logs_block(
    name: str,
    path: Path | str | None = None,
    host: str | None = None,
    patterns: tuple[dict[str, Any], ...] = (),
    **fields: Any,
) -> str:
    """One ``[[logs]]`` table with its ``[[logs.patterns]]``."""
    lines = ["[[logs]]", f"name = {toml_value(name)}"]
    if path is not None:
        lines.append(f"path = {toml_value(str(path))}")
    if host:
        lines.append(f"host = {toml_value(host)}")
    lines += [f"{key} = {toml_value(value)}" for key, value in fields.items()]
    for pattern in patterns:
        lines.append("[[logs.patterns]]")
        lines += [f"{key} = {toml_value(value)}" for key, value in pattern.items()]
    return "\n".join(lines) + "\n"


@dataclass
class Where:
    """Logs on this machine (no ``host``) or on the ssh host ``box``."""

    host: str | None
    sshd: Sshd

    def inventory(self, *blocks: str) -> str:
        head = self.sshd.host_block("box") if self.host else ""
        return head + "".join(blocks)


@pytest.fixture(params=["local", "ssh"])
def where(request: pytest.FixtureRequest, sshd: Sshd) -> Where:
    return Where("box" if request.param == "ssh" else None, sshd)


def said(result: dict[str, Any]) -> str:
    return str(result.get("message") or result.get("reason") or "")


def outcomes(results: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: r["outcome"] for name, r in results.items()}


def source(target: LogsTarget, host: Any = None) -> probes.LogSource:
    """A probe-level source on this machine, as the fixture builds it."""
    return probes.LogSource(target, host or testinfra.get_host("local://")).open()


def logs_target(**fields: Any) -> LogsTarget:
    """A ``[[logs]]`` target as the inventory validates it (patterns given as tables)."""
    return LogsTarget.model_validate({"name": "t", **fields})


# -- healthy ------------------------------------------------------------------------------------


def test_healthy_logs_pass_every_check(suite, where, tmp_path):
    now = time.time()
    app = tmp_path / "app"
    api = write(
        app / "api.log",
        info_lines(now, 40, 20 * HOUR)[:-5] + app_errors(now, 3) + info_lines(now, 5, 600),
    )
    # Yesterday's rotated file is full of errors, all of them before the window.
    write(app / "api.log.1", app_errors(now - 30 * HOUR, 50))
    backend = write(
        app / "backend.jsonl",
        [
            json.dumps({"timestamp": iso(now - 2 * HOUR + i * 60), "level": level, "message": msg})
            for i, (level, msg) in enumerate(
                [("info", "started")] * 5 + [("error", "db pool exhausted")] * 2 + [("info", "ok")]
            )
        ],
    )
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    daily = write(app / f"worker-{today}.log", [f"{iso(now - 60)} WARN queue slow"] * 5)
    auth = write(
        app / "auth.log",
        [
            f"{syslog(now - 900)} web1 sshd[811]: Accepted publickey for deploy from 10.0.0.5 "
            "port 50122 ssh2: ED25519 SHA256:abc",
            f"{syslog(now - 800)} web1 sshd[812]: Failed password for deploy from 10.0.0.9 "
            "port 50201 ssh2",
            f"{syslog(now - 700)} web1 sudo:   deploy : TTY=pts/0 ; PWD=/home/deploy ; "
            "USER=root ; COMMAND=/usr/bin/systemctl restart api",
            f"{syslog(now - 600)} web1 sudo:   deploy : TTY=pts/0 ; PWD=/home/deploy ; "
            "USER=root ; COMMAND=/usr/bin/journalctl -u api",
        ],
    )
    files = [api, app / "api.log.1", backend, daily, auth]
    before = {f: (f.stat().st_atime_ns, f.stat().st_mtime_ns) for f in files}
    inventory = where.inventory(
        logs_block("api", api, where.host, ({"name": "errors", "pattern": "ERROR", "crit": 10},)),
        logs_block(
            "backend",
            backend,
            where.host,
            ({"name": "errors", "level": "error", "crit": 5},),
            format="json",
        ),
        logs_block(
            "worker",
            str(app / "worker-{date:%Y-%m-%d}.log"),
            where.host,
            ({"name": "errors", "preset": "errors", "warn": 1},),
        ),
        logs_block(
            "auth",
            auth,
            where.host,
            (
                {"name": "logins", "preset": "failed_logins", "crit": 5},
                {"name": "sudo", "preset": "sudo", "warn": 5},
            ),
        ),
    )
    result = suite.run(inventory, "", paths=LOGS)
    results = suite.results()
    assert outcomes(results) == dict.fromkeys(results, "passed"), {
        n: said(r) for n, r in results.items()
    }
    result.assert_outcomes(passed=4 + 3 + 2 + 3 * 4)
    measured = {n.removeprefix("test_"): r["measured"] for n, r in results.items()}
    assert measured["error_lines_within_limits[api/errors]"] == (
        "3 lines matching ERROR in the last 24 h"
    )
    assert measured["error_lines_within_limits[backend/errors]"] == (
        "2 lines at level error in the last 24 h"
    )
    assert measured["error_lines_within_limits[worker/errors]"] == (
        "0 lines matching errors in the last 24 h"
    )
    assert measured["security_lines_within_limits[auth/logins]"] == (
        "1 line matching failed_logins in the last 24 h"
    )
    assert measured["security_lines_within_limits[auth/sudo]"] == (
        "2 lines matching sudo in the last 24 h"
    )
    assert re.fullmatch(
        re.escape(f"{app}/worker-{{date:%Y-%m-%d}}.log: 1 file, ")
        + r"\d+ B, last written (\d+ ms|\d+\.\d s) ago",
        measured["log_source_present[worker]"],
    )
    assert re.fullmatch(
        rf"{re.escape(str(api))} \d+\.\d KB", measured["log_files_below_size_limit[api]"]
    )
    assert re.fullmatch(
        rf"{re.escape(str(app))} \d+\.\d KB", measured["log_folders_below_size_limit[api]"]
    )
    assert re.fullmatch(
        rf"{re.escape(str(api))} holds 20\.0 h of lines \(.+ UTC to .+ UTC\)",
        measured["log_files_rotated[api]"],
    )
    # The detail is what an operator reads next: the share of lines and what repeats.
    detail = results["test_error_lines_within_limits[api/errors]"]["detail"]
    # api.log begins 20 h ago: the 24 h window reaches into api.log.1, whose errors are older
    rotated = f"from 2 files: {api}, {api}.1"
    assert re.match(rf"3 of \d+ lines \(\d.*%\) since .+ UTC; read .+ {rotated}\n", detail)
    assert detail.splitlines()[1:] == [
        "top messages, numbers, ids, addresses and times folded:",
        "      2  <time> ERROR upstream timed out after <n> ms (request_id=<hex>)",
        "      1  <time> ERROR payment <n> failed for user <uuid> from <ip>",
    ]
    # Read-only: the scanner changed nothing, not even the files' access times.
    assert {f: (f.stat().st_atime_ns, f.stat().st_mtime_ns) for f in files} == before


# -- broken -------------------------------------------------------------------------------------

BROKEN_LIMITS = """
[logs.file_size]
crit = "1MB"
[logs.dir_size]
crit = "1MB"
[logs.file_span]
crit = "26h"
"""


def test_broken_logs_fail_each_check_with_its_reason(suite, where, tmp_path):
    now = time.time()
    logs = tmp_path / "logs"
    # 50 errors yesterday (outside the window) and 37 in the last hour, in one file that was
    # never rotated (30 h of lines) and has grown past 1 MB.
    api = write(
        logs / "api.log",
        app_errors(now - 29 * HOUR, 50, HOUR)
        + info_lines(now - HOUR, 12_000, 27 * HOUR, width=100)
        + app_errors(now, 37),
    )
    backend = write(
        logs / "backend.jsonl",
        [
            json.dumps({"timestamp": iso(now - 50 * HOUR + i), "level": "error", "message": "old"})
            for i in range(6)
        ]
        + [
            json.dumps({"timestamp": iso(now - HOUR + i * 60), "level": level, "message": msg})
            for i, (level, msg) in enumerate(
                [("error", f"job {n} crashed") for n in range(12)]
                + [("info", "retrying after error 503")] * 4  # "error" in an info message
            )
        ],
    )
    auth_lines = [
        f"{syslog(now - 30 * HOUR + i)} web1 sshd[{900 + i}]: Failed password for root from "
        f"198.51.100.{i} port {40000 + i} ssh2"
        for i in range(10)
    ]
    for i in range(20):
        auth_lines.append(
            f"{syslog(now - 1800 + i * 30)} web1 sshd[{1000 + i}]: Failed password for root "
            f"from 203.0.113.{i % 5} port {50000 + i * 11} ssh2"
        )
    for i in range(5):
        auth_lines.append(
            f"{syslog(now - 600 + i)} web1 sshd[{1100 + i}]: Invalid user admin from "
            f"203.0.113.{i} port {52000 + i}"
        )
    for i, user in enumerate(["alice", "alice", "bob", "alice"]):
        auth_lines.append(
            f"{syslog(now - 300 + i)} web1 sudo:    {user} : TTY=pts/{i} ; PWD=/home/{user} ; "
            f"USER=root ; COMMAND=/usr/bin/cat /etc/shadow"
        )
    auth = write(logs / "auth.log", auth_lines)
    attacks = [
        "GET /items?id=1%20UNION%20SELECT%20password%20FROM%20users HTTP/1.1",
        "GET /login?user=admin%27%20or%201=1-- HTTP/1.1",
        "GET /search?q=x'+or+'1'='1 HTTP/1.1",
        "GET /search?q=<script>alert(document.cookie)</script> HTTP/1.1",
        "GET /profile?name=%3Cscript%3Ealert(1)%3C/script%3E HTTP/1.1",
        "GET /static/../../../../etc/passwd HTTP/1.1",
        "GET /download?file=..%2f..%2fconfig.php HTTP/1.1",
    ]
    access_lines = [
        f'198.51.100.{i} - - [{clf(now - 72 * HOUR + i)}] "{attacks[i]}" 404 153 "-" "sqlmap/1.7"'
        for i in range(5)
    ]
    for i in range(300):
        request, status = f"GET /api/items/{i} HTTP/1.1", 200
        if i % 40 == 7 and i // 40 < len(attacks):
            request = attacks[i // 40]
            status = 400
        elif i % 50 == 3:
            status = 429
        access_lines.append(
            f'203.0.113.{i % 9} - - [{clf(now - HOUR + i)}] "{request}" {status} 512 "-" '
            f'"Mozilla/5.0 (X11; Linux x86_64)"'
        )
    access = write(logs / "access.log", access_lines)
    missing = str(tmp_path / "gone" / "api-{date:%Y-%m-%d}.log")
    inventory = where.inventory(
        logs_block("api", api, where.host, ({"name": "errors", "pattern": "ERROR", "crit": 10},)),
        logs_block(
            "backend",
            backend,
            where.host,
            ({"name": "errors", "level": ["error", "fatal"], "crit": 5},),
            format="json",
        ),
        logs_block(
            "auth",
            auth,
            where.host,
            (
                {"name": "logins", "preset": "failed_logins", "crit": 20},
                {"name": "sudo", "preset": "sudo", "warn": 2},
            ),
        ),
        logs_block(
            "access",
            access,
            where.host,
            (
                {"name": "attacks", "preset": "attacks", "crit": 0},
                {"name": "throttled", "preset": "rate_limited", "warn": 3},
            ),
        ),
        logs_block("gone", missing, where.host, ({"name": "errors", "pattern": "ERROR"},)),
    )
    suite.run(inventory, BROKEN_LIMITS, paths=LOGS)
    results = suite.results()
    message = {n.removeprefix("test_"): said(r) for n, r in results.items()}
    assert outcomes(results) == {
        "test_log_source_present[api]": "passed",
        "test_log_source_present[backend]": "passed",
        "test_log_source_present[auth]": "passed",
        "test_log_source_present[access]": "passed",
        "test_log_source_present[gone]": "failed",
        "test_error_lines_within_limits[api/errors]": "failed",
        "test_error_lines_within_limits[backend/errors]": "failed",
        "test_error_lines_within_limits[gone/errors]": "failed",
        "test_security_lines_within_limits[auth/logins]": "failed",
        "test_security_lines_within_limits[auth/sudo]": "warned",
        "test_security_lines_within_limits[access/attacks]": "failed",
        "test_security_lines_within_limits[access/throttled]": "warned",
        **{
            f"test_log_files_below_size_limit[{t}]": "passed" for t in ("backend", "auth", "access")
        },
        "test_log_files_below_size_limit[api]": "failed",
        "test_log_files_below_size_limit[gone]": "failed",
        **{
            f"test_log_folders_below_size_limit[{t}]": "failed"
            for t in ("api", "backend", "auth", "access")
        },
        "test_log_folders_below_size_limit[gone]": "failed",
        # every file here holds more than a day of lines: none was rotated
        **{f"test_log_files_rotated[{t}]": "failed" for t in ("api", "backend", "auth", "access")},
        "test_log_files_rotated[gone]": "failed",
    }, message
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    gone = str(tmp_path / "gone" / f"api-{today}.log")
    assert message["error_lines_within_limits[api/errors]"] == (
        "api: 37 lines matching ERROR in the last 24 h > crit 10"
    )
    assert message["error_lines_within_limits[backend/errors]"] == (
        "backend: 12 lines at level error|fatal in the last 24 h > crit 5"
    )
    assert message["security_lines_within_limits[auth/logins]"] == (
        "auth: 25 lines matching failed_logins in the last 24 h > crit 20"
    )
    assert message["security_lines_within_limits[auth/sudo]"] == (
        "auth: 4 lines matching sudo in the last 24 h > warn 2"
    )
    assert message["security_lines_within_limits[access/attacks]"] == (
        "access: 7 lines matching attacks in the last 24 h > crit 0"
    )
    assert message["security_lines_within_limits[access/throttled]"] == (
        "access: 6 lines matching rate_limited in the last 24 h > warn 3"
    )
    assert message["log_source_present[gone]"] == f"gone: {gone}: no such file"
    assert message["error_lines_within_limits[gone/errors]"] == (
        f"gone: no log file matches {missing} (see test_log_source_present)"
    )
    for check in ("log_files_below_size_limit", "log_folders_below_size_limit"):
        assert (
            message[f"{check}[gone]"] == f"gone: {gone}: no such file (see test_log_source_present)"
        )
    assert re.fullmatch(
        rf"api: {re.escape(str(api))} \d\.\d MB > crit 1\.0 MB",
        message["log_files_below_size_limit[api]"],
    )
    assert re.fullmatch(
        rf"auth: {re.escape(str(logs))} \d\.\d MB > crit 1\.0 MB",
        message["log_folders_below_size_limit[auth]"],
    )
    assert re.fullmatch(
        rf"api: {re.escape(str(api))} holds (29\.9|30\.0) h of lines \(.+\) > crit 26\.0 h",
        message["log_files_rotated[api]"],
    )
    # The top messages, as `sort | uniq -c | sort -nr` after folding the parts that vary.
    details = {n.removeprefix("test_"): r.get("detail", "") for n, r in results.items()}
    assert details["error_lines_within_limits[api/errors]"].splitlines()[1:] == [
        "top messages, numbers, ids, addresses and times folded:",
        "     21  <time> ERROR payment <n> failed for user <uuid> from <ip>",
        "     16  <time> ERROR upstream timed out after <n> ms (request_id=<hex>)",
    ]
    assert details["security_lines_within_limits[auth/logins]"].splitlines()[2:] == [
        "     20  <time> web1 sshd[<n>]: Failed password for root from <ip> port <n> ssh2",
        "      5  <time> web1 sshd[<n>]: Invalid user admin from <ip> port <n>",
    ]
    assert details["security_lines_within_limits[auth/sudo]"].splitlines()[2:] == [
        "      3  <time> web1 sudo:    alice : TTY=pts/<n> ; PWD=/home/alice ; USER=root ; "
        "COMMAND=/usr/bin/cat /etc/shadow",
        "      1  <time> web1 sudo:    bob : TTY=pts/<n> ; PWD=/home/bob ; USER=root ; "
        "COMMAND=/usr/bin/cat /etc/shadow",
    ]
    assert details["error_lines_within_limits[backend/errors]"].splitlines()[2:] == [
        "     12  job <n> crashed"
    ]


# -- files: rotation, date templates, timestamps --------------------------------------------------


class FifoWatch:
    """Whether anyone opens a FIFO for reading while it is watched: a writer's non-blocking
    open succeeds only while a reader has it open (ENXIO otherwise)."""

    def __init__(self, fifo: Path) -> None:
        self.fifo = fifo
        self.opened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                os.close(os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK))
                self.opened += 1
            except OSError:
                pass
            time.sleep(0.0005)

    def __enter__(self) -> FifoWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_log_path_that_is_no_file_says_what_it_is(suite, where, tmp_path):
    """A path naming a FIFO, a directory, a socket, a device or a dangling link: the source
    check says what is there (it used to say "no such file"), the other checks fail pointing to
    it, and nothing opens the FIFO (reading one waits for a writer forever)."""
    odd = tmp_path / "odd"
    odd.mkdir()
    fifo = odd / "app.log"
    os.mkfifo(fifo)
    (odd / "dir.log").mkdir()
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(odd / "app.sock"))
    (odd / "link.log").symlink_to(odd / "rotated-away.log")
    (odd / "null.log").symlink_to(os.devnull)
    os.mkfifo(odd / "only.pipe")
    paths = {
        "fifo": (fifo, f"{fifo} is a FIFO (named pipe), not a regular file"),
        "dir": (odd / "dir.log", f"{odd}/dir.log is a directory, not a regular file"),
        "sock": (odd / "app.sock", f"{odd}/app.sock is a socket, not a regular file"),
        "dev": (odd / "null.log", f"{odd}/null.log is a character device, not a regular file"),
        "link": (
            odd / "link.log",
            f"{odd}/link.log is a symbolic link to {odd}/rotated-away.log, which does not exist",
        ),
        "glob": (odd / "*.pipe", f"{odd}/only.pipe is a FIFO (named pipe), not a regular file"),
    }
    inventory = where.inventory(
        *(
            logs_block(name, path, where.host, ({"name": "errors", "pattern": "ERROR"},))
            for name, (path, _) in paths.items()
        )
    )
    started = time.monotonic()
    try:
        with FifoWatch(fifo) as watch:
            suite.run(inventory, "", paths=LOGS)
    finally:
        listener.close()
    assert time.monotonic() - started < 30
    assert watch.opened == 0
    results = {n: r for n, r in suite.results().items() if not n.endswith("[-]")}
    assert set(outcomes(results).values()) == {"failed"}, outcomes(results)
    message = {n.removeprefix("test_"): said(r) for n, r in results.items()}
    for name, (_, what) in paths.items():
        assert message[f"log_source_present[{name}]"] == f"{name}: {what}"
        assert message[f"error_lines_within_limits[{name}/errors]"] == (
            f"{name}: {what}: not read (see test_log_source_present)"
        )
        for check in ("files_below_size_limit", "folders_below_size_limit", "files_rotated"):
            assert message[f"log_{check}[{name}]"] == (
                f"{name}: {what} (see test_log_source_present)"
            )


def test_rotated_copies_are_found_by_logrotates_names_newest_first(tmp_path):
    now = time.time()
    names = {  # name: hours since last written
        "app.log.1": 1,
        "app.log.2.gz": 25,
        "app.log.10.gz": 240,
        "app.log-20261128.gz": 49,
        "app.log-2026112912": 30,
        "app.log-2026-11-27.xz": 73,
        "app.log.old": 2,  # not logrotate's
        "app.log.1.gz.tmp": 2,
        "app.log.bak.gz": 2,
        "other.log.1": 2,
    }
    for name, hours in names.items():
        (tmp_path / name).write_bytes(b"")
        os.utime(tmp_path / name, (now - hours * HOUR, now - hours * HOUR))
    (tmp_path / "app.log.3").mkdir()  # not a file
    assert [Path(p).name for p in scanner.rotated_siblings(str(tmp_path / "app.log"))] == [
        "app.log.1",
        "app.log.2.gz",
        "app.log-2026112912",
        "app.log-20261128.gz",
        "app.log-2026-11-27.xz",
        "app.log.10.gz",
    ]


def test_rotated_copies_are_read_when_the_window_reaches_into_them(suite, tmp_path):
    """logrotate's copies beside the file (``api.log.1``, ``api.log.2.gz``, dateext
    ``web.log-20261129.gz``) are read, newest first, .gz decompressed on the host, as long as a
    window reaches before the first line of the newer file; the older ones are left unread."""
    now = time.time()
    logs = tmp_path / "logs"
    write(logs / "api.log", app_errors(now, 5, HOUR))
    write(logs / "api.log.1", app_errors(now - 2 * HOUR, 7, 8 * HOUR))  # rotated 2 h ago
    os.utime(logs / "api.log.1", (now - 2 * HOUR, now - 2 * HOUR))
    # the window (24 h) begins inside this one: 4 errors in it, 3 from 30 h ago before it
    packed = logs / "api.log.2.gz"
    with gzip.open(packed, "wt") as out:
        out.write("\n".join(app_errors(now - 30 * HOUR, 3, HOUR) + app_errors(now - 10 * HOUR, 4)))
    os.utime(packed, (now - 10 * HOUR, now - 10 * HOUR))
    old = logs / "api.log.3.gz"  # last written three days ago: past every window, never opened
    old.write_bytes(b"not gzip at all")
    os.utime(old, (now - 69 * HOUR, now - 69 * HOUR))
    # dateext, and a current file emptied by the rotation a minute ago
    write(logs / "web.log", [])
    day = datetime.fromtimestamp(now - 3 * HOUR, UTC).strftime("%Y%m%d")
    with gzip.open(logs / f"web.log-{day}.gz", "wt") as out:
        out.write("\n".join(app_errors(now - 26 * HOUR, 2, HOUR) + app_errors(now - HOUR, 6)))
    pattern = ({"name": "errors", "pattern": "ERROR", "crit": 10},)
    recent = ({"name": "errors", "pattern": "ERROR", "crit": 10, "window": "30m"},)
    inventory = (
        logs_block("one", logs / "api.log", None, pattern)
        + logs_block("all", str(logs / "api.log*"), None, pattern)
        + logs_block("web", logs / "web.log", None, pattern)
        + logs_block("recent", logs / "api.log", None, recent)
    )
    suite.run(inventory, "", "-k", "error_lines", paths=LOGS)
    results = suite.results()
    assert outcomes(results) == {
        "test_error_lines_within_limits[one/errors]": "failed",
        "test_error_lines_within_limits[all/errors]": "failed",
        "test_error_lines_within_limits[web/errors]": "passed",
        "test_error_lines_within_limits[recent/errors]": "passed",
    }, {n: said(r) for n, r in results.items()}
    one = results["test_error_lines_within_limits[one/errors]"]
    assert one["message"] == "one: 16 lines matching ERROR in the last 24 h > crit 10"
    assert (
        one["detail"]
        .splitlines()[0]
        .endswith(f"from 3 files: {logs}/api.log, {logs}/api.log.1, {logs}/api.log.2.gz")
    )
    every = results["test_error_lines_within_limits[all/errors]"]
    assert every["message"] == "all: 16 lines matching ERROR in the last 24 h > crit 10"
    assert (
        every["detail"]
        .splitlines()[0]
        .endswith(f"from 3 files: {logs}/api.log, {logs}/api.log.1, {logs}/api.log.2.gz")
    )
    web = results["test_error_lines_within_limits[web/errors]"]
    assert web["measured"] == "6 lines matching ERROR in the last 24 h"
    assert (
        web["detail"]
        .splitlines()[0]
        .endswith(f"from 2 files: {logs}/web.log, {logs}/web.log-{day}.gz")
    )
    # the window of 30 minutes begins after api.log's first line: no rotated copy is opened
    recent_errors = results["test_error_lines_within_limits[recent/errors]"]
    assert recent_errors["detail"].splitlines()[0].endswith(f"from 1 file: {logs}/api.log")
    # A corrupt archive in the window is said, not passed over.
    packed.write_bytes(gzip.compress(b"x" * 1000)[:10] + bytes(range(256)))
    os.utime(packed, (now - 10 * HOUR, now - 10 * HOUR))
    suite.run(
        logs_block("one", logs / "api.log", None, pattern), "", "-k", "error_lines", paths=LOGS
    )
    broken = suite.results()["test_error_lines_within_limits[one/errors]"]
    assert broken["outcome"] == "failed"
    assert said(broken).startswith(f"one: cannot read {logs}/api.log.2.gz: cannot decompress: ")


def test_date_templated_path_reads_the_days_of_each_window(suite, tmp_path):
    now = time.time()
    midnight = now - now % 86400
    stamps = [now - hours * HOUR for hours in (0.02, 1, 3, 5, 20, 30, 60)]
    by_day: dict[str, list[str]] = {}
    for t in sorted(stamps):
        day = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")
        by_day.setdefault(day, []).append(f"{iso(t)} ERROR disk quota exceeded for tenant 7")
    for day, lines in by_day.items():
        write(tmp_path / f"api-{day}.log", lines)
    patterns = tuple(
        {"name": name, "pattern": "ERROR", "window": window, "crit": 100}
        for name, window in (("day", "24h"), ("today", "today"), ("recent", "4h"), ("week", "7d"))
    )
    path = str(tmp_path / "api-{date:%Y-%m-%d}.log")
    suite.run(logs_block("api", path, None, patterns), "", "-k", "error_lines", paths=LOGS)
    measured = {n: r["measured"] for n, r in suite.results().items()}
    since_midnight = sum(1 for t in stamps if t >= midnight)
    assert measured == {
        "test_error_lines_within_limits[api/day]": "5 lines matching ERROR in the last 24 h",
        "test_error_lines_within_limits[api/today]": (
            f"{since_midnight} line{'' if since_midnight == 1 else 's'} matching ERROR "
            "today (since 00:00 UTC)"
        ),
        "test_error_lines_within_limits[api/recent]": "3 lines matching ERROR in the last 4 h",
        "test_error_lines_within_limits[api/week]": "7 lines matching ERROR in the last 7 days",
    }


FORMATS: dict[str, Callable[[float, str], str]] = {
    "iso-utc": lambda t, text: f"{iso(t)} {text}",
    "iso-offset": lambda t, text: (
        datetime.fromtimestamp(t, UTC).astimezone(timezone(timedelta(hours=2))).isoformat()
        + f" {text}"
    ),
    "iso-local-comma": lambda t, text: (
        datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S,123") + f" {text}"
    ),
    "syslog": lambda t, text: f"{syslog(t)} web1 app[42]: {text}",
    "nginx-error": lambda t, text: (
        datetime.fromtimestamp(t).strftime("%Y/%m/%d %H:%M:%S") + f" [error] 7#7: {text}"
    ),
    "none": lambda t, text: text,
    "clf": lambda t, text: (
        f'10.0.0.1 - - [{clf(t)}] "GET /{text.replace(" ", "_")} HTTP/1.1" 500 0'
    ),
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_each_timestamp_format_places_lines_in_the_window(tmp_path, name):
    """An error 30 h ago and its continuation line stay out; the one of 1 h ago and its
    continuation are in. Lines without any timestamp count whole (the file was written lately),
    and the detail says so."""
    now = time.time()
    stamp = FORMATS[name]
    lines = [stamp(now - 40 * HOUR, "INFO boot")]
    for ago in (30 * HOUR, HOUR):
        lines += [
            stamp(now - ago, "ERROR boom"),
            "    at frame (continued)",
            stamp(now - ago + 1, "INFO ok"),
        ]
    path = write(tmp_path / f"{name}.log", lines)
    target = logs_target(
        name="t", path=str(path), patterns=[{"name": "e", "pattern": r"ERROR|at frame"}]
    )
    counted = source(target).counts()
    expected = 4 if name == "none" else 2
    assert counted["patterns"]["e"]["count"] == expected, counted
    assert bool(counted["files"][0].get("unstamped")) == (name == "none")


def test_json_lines_take_time_and_level_from_their_fields(tmp_path):
    now = time.time()
    lines = [
        json.dumps({"ts": (now - 30 * HOUR) * 1000, "lvl": "ERROR", "msg": "old"}),
        json.dumps({"ts": (now - HOUR) * 1000, "lvl": "ERROR", "msg": "payment 17 failed"}),
        json.dumps({"ts": (now - HOUR) * 1000, "lvl": "INFO", "msg": "level ERROR in text"}),
        json.dumps({"ts": (now - 60) * 1000, "lvl": "Fatal", "msg": "payment 18 failed"}),
        json.dumps({"ts": now - 30, "lvl": 50, "msg": "pino-style numeric level"}),
        "not json at all ERROR",
    ]
    path = write(tmp_path / "app.jsonl", lines)
    target = logs_target(
        name="t",
        path=str(path),
        format="json",
        time_field="ts",
        level_field="lvl",
        message_field="msg",
        patterns=[
            {"name": "errors", "level": ["error", "fatal"]},
            {"name": "pino", "level": "50"},
            {"name": "payments", "pattern": "payment", "level": "error"},
        ],
    )
    counted = source(target).counts()["patterns"]
    assert counted["errors"]["count"] == 2
    assert counted["errors"]["top"] == [["payment <n> failed", 2, "payment 17 failed"]]
    assert counted["pino"]["count"] == 1
    assert counted["payments"]["count"] == 1


@pytest.mark.parametrize("finder", ["grep", "python"])
def test_literal_prefilter_counts_exactly_what_the_regex_matches(tmp_path, monkeypatch, finder):
    """The scanner runs a regex only on lines holding one of its literals, found by GNU grep
    where the host has it, else by Python: the counts must be those of the regex over every
    line (a brute-force count here), for every preset."""
    if finder == "python":
        monkeypatch.setenv("PATH", str(bare_path(tmp_path)))  # a host without grep
    now = time.time()
    corpus = [
        "GET /items?id=1%20UNION%20SELECT%20password",
        "GET /reunion/selection HTTP/1.1",
        "user said: it's or maybe not",
        "GET /login?u=x' OR '1'='1 HTTP/1.1",
        "GET /a?q=%27%20or%20%271%27%3D%271",
        "GET /?id=1;select pg_sleep(5)",
        "sleeping 5 s before retry",
        "GET /?q=<ScRiPt>alert(1)</script>",
        "GET /img?x=1 onerror=alert(1)",
        "GET /a/../../etc/passwd",
        "GET /a/..%2F..%2Fsecret",
        "GET /static/app.js",
        "Error: connection reset",
        "errors=0 warnings=2",
        "CRITICAL disk full",
        "Too Many Requests",
        "rate-limited client 1.2.3.4",
        "Rate Limit exceeded",
        '"GET / HTTP/1.1" 429 0',
        "Failed password for invalid user admin from 1.2.3.4 port 22 ssh2",
        "Connection closed by authenticating user root 1.2.3.4 port 22 [preauth]",
        "pam_unix(sshd:auth): Authentication failure; uid=0",
        "alice : TTY=pts/0 ; PWD=/root ; USER=root ; COMMAND=/bin/ls",
        "sudo: pam_unix(sudo:session): session opened",
    ]
    path = write(tmp_path / "mixed.log", [f"{iso(now - 60)} {line}" for line in corpus * 3])
    extra = [r"\bERROR\b|WARN(?:ING)?", r"(?i)user (\w+) from", r"\d{3} \d+$", r"^\S+ GET"]
    patterns = [{"name": n, "preset": n} for n in LOG_PRESETS]
    patterns += [{"name": f"rx{i}", "pattern": rx} for i, rx in enumerate(extra)]
    counted = source(logs_target(path=str(path), patterns=patterns)).counts()
    lines = path.read_bytes().splitlines()
    for spec in patterns:
        regex = LOG_PRESETS[spec["preset"]][0] if "preset" in spec else spec["pattern"]
        compiled = re.compile(regex.encode(), re.MULTILINE)
        expected = sum(1 for line in lines if compiled.search(line))
        assert counted["patterns"][spec["name"]]["count"] == expected, (spec, expected)
    assert counted["patterns"]["sql_injection"]["count"] == 3 * 4
    assert counted["patterns"]["xss"]["count"] == 3 * 2
    assert counted["grep"] is (finder == "grep")


# -- GNU grep counts: the regex it runs, the lines past the folded ones, the top messages ---------


def grep_finds(ere: str, path: Path) -> set[int]:
    """The lines (numbered from 0) of ``path`` that ``LC_ALL=C grep -a -E`` finds with ``ere``."""
    ran = subprocess.run(
        [b"grep", b"-a", b"-n", b"-E", b"-e", ere.encode("latin-1"), bytes(path)],
        capture_output=True,
        env={"LC_ALL": "C", "PATH": os.environ["PATH"]},
        check=False,
    )
    assert ran.returncode in (0, 1), (ere, ran.stderr)
    return {int(line.partition(b":")[0]) - 1 for line in ran.stdout.split(b"\n") if line}


def random_regex(rng: random.Random, depth: int = 0) -> str:
    """A Python regex built from what log patterns use: literals (grep's special characters
    too), classes, anchors, word boundaries, lookarounds, groups with flags, alternatives, lazy,
    greedy and possessive repeats, atomic groups."""
    parts = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(10)
        if kind < 4:
            atom = re.escape(rng.choice("abAB09 _-.:/[]^$\\|()*+?{}%'\"\txyzé"))
        elif kind == 4:
            atom = rng.choice([r"\d", r"\w", r"\s", r"\D", r"\W", r"\S", "."])
        elif kind == 5:
            atom = rng.choice(
                ["[a-c]", "[^b]", r"[\]\-^]", r"[^\w.]", "[A-Z_]", r"[\d:]", "[^a-zA-Z]",
                 r"[\x00-\x1f]", "[%-/]", r"[^\x00]", "[^-^]", r"[\x80-\xff]", r"[\[:]"]
            )  # fmt: skip
        elif kind == 6:
            atom = rng.choice(["^", "$", r"\b", r"\B", r"\A", r"\Z", "(?=a)", "(?<!x)"])
        elif depth < 2:
            options = "|".join(random_regex(rng, depth + 1) for _ in range(rng.randint(1, 3)))
            atom = rng.choice(["(", "(?:", "(?i:", "(?-i:", "(?>"]) + options + ")"
        else:
            atom = "a"
        if rng.random() < 0.3:
            atom += rng.choice(["*", "+", "?", "{1,3}", "{2}", "*?", "+?", "*+", "{0,2}", "{2,}"])
        parts.append(atom)
    return ("(?i)" if depth == 0 and rng.random() < 0.3 else "") + "".join(parts)


GREP_REGEXES = [
    *(regex for regex, _, _ in LOG_PRESETS.values()),
    "ERROR", r"\bERROR\b", r"(?i)\berror\b", r"\bERROR\b|WARN(?:ING)?", r"(?i)user (\w+) from",
    r"\d{3} \d+$", r"^\S+ GET", r"(?<=user )\w+", r"(a)\1", r"a\x00b", r"x*", r"[^\n]+",
    r"(?s)a.b", r"(?x) a b  # verbose", r"a{2,}+b", r"(?>a|ab)c", r"^$", "é", r"\Aa|b\Z",
]  # fmt: skip


def test_grep_regex_finds_the_lines_the_python_regex_matches(tmp_path):
    """What GNU grep runs on the host is translated from the Python regex: on random lines of
    grep's special characters, NUL, CR, tab, bytes past ASCII and UTF-8, each translation exact
    finds exactly the lines the Python regex matches, each wider one at least those."""
    rng = random.Random(8)
    alphabet = [bytes([b]) for b in b"abAB09 _-.:/[]^$\\|()*+?{}%'\"\t\rxyz\x00\xe9\x80"]
    alphabet += ["é".encode(), b"error", b"ERROR", b"Error", b"user ", b"WARNING", b"GET"]
    lines = [b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(500)]
    path = tmp_path / "corpus.log"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    regexes = list(GREP_REGEXES)
    while len(regexes) < 400:
        regex = random_regex(rng)
        try:
            re.compile(regex.encode())
        except re.error:
            continue
        regexes.append(regex)
    exact = wider = 0
    for regex in regexes:
        translated = probes.grep_regex(regex)
        if translated is None:
            continue
        ere, is_exact = translated
        compiled = re.compile(regex.encode(), re.MULTILINE)
        matched = {i for i, line in enumerate(lines) if compiled.search(line)}
        found = grep_finds(ere, path)
        if is_exact:
            exact += 1
            assert found == matched, (regex, ere)
        else:
            wider += 1
            assert found >= matched, (regex, ere)
    assert exact > 200 and wider > 50, (exact, wider)
    assert probes.grep_regex(r"ERROR") == ("ERROR", True)
    assert probes.grep_regex(r"(?i)\b(?:error|panic)\b") == (
        "([Ee][Rr][Rr][Oo][Rr]|[Pp][Aa][Nn][Ii][Cc])",
        False,
    )


def tools_path(tmp_path: Path, *tools: str) -> Path:
    """A PATH of python3, timeout and the given tools of this machine (grep, wc ...)."""
    bin_dir = bare_path(tmp_path)
    for name in tools:
        found = shutil.which(name)
        assert found, name
        (bin_dir / name).unlink(missing_ok=True)
        (bin_dir / name).symlink_to(found)
    return bin_dir


def sequential_tally(lines: list[bytes], regex: str) -> dict[str, Any]:
    """The count, folded lines, top messages and ``other`` of a line-by-line tally, as the
    scanner's rules define them (FOLD_LIMIT, DISTINCT_LIMIT, TOP), without its shortcuts."""
    compiled = re.compile(regex.encode(), re.MULTILINE)
    top: dict[str, list[Any]] = {}
    count = folded = other = 0
    for line in lines:
        if not compiled.search(line):
            continue
        count += 1
        if folded >= scanner.FOLD_LIMIT:
            continue
        folded += 1
        message = line.decode("utf-8", "replace")
        key = scanner.fold(message)
        if key in top:
            top[key][0] += 1
        elif len(top) < scanner.DISTINCT_LIMIT:
            top[key] = [1, message.strip()[: scanner.EXAMPLE]]
        else:
            other += 1
    ranked = sorted(top.items(), key=lambda kv: (-kv[1][0], kv[0]))[: scanner.TOP]
    return {
        "count": count,
        "top": [[key, n, example] for key, (n, example) in ranked],
        "folded": folded,
        "other": other,
    }


@pytest.mark.parametrize("finder", ["grep", "grep-without-wc", "python"])
def test_counts_and_top_messages_are_those_of_a_line_by_line_tally(tmp_path, monkeypatch, finder):
    """Past FOLD_LIMIT matches grep -m stops where the folding stops and grep -c counts on; each
    shape of line is folded once with its count. Counts, window lines, top messages, examples
    and the DISTINCT_LIMIT cut must be a line-by-line tally's, with GNU grep (with and without
    ``wc``) and without it (Python reads the file)."""
    now = time.time()
    rng = random.Random(7)
    words = ["".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(9)) for _ in range(5200)]
    lines = [f"{iso(now - 7200)} INFO before the window"] * 50
    for i in range(scanner.FOLD_LIMIT + 3000):
        if i % 10 == 0:  # 5,200 messages that fold apart: past DISTINCT_LIMIT
            lines.append(f"{iso(now - 60)} ERROR code {words[i // 10 % len(words)]} failed")
        else:
            lines.append(f"{iso(now - 60)} ERROR job {i} failed after {i % 7}.{i % 3} s  é\r")
        if i % 5 == 0:
            lines.append(f"{iso(now - 60)} WARN slow {i} \x00 ERRORS ERROR: disk")
    lines.append(f"{iso(now - 60)} ERROR a line of 3 MB {'x' * 3_000_000} (past grep's batches)")
    lines.append(f"{iso(now - 60)} ERROR last line without its newline")
    path = tmp_path / "api.log"
    path.write_bytes("\n".join(lines).encode())
    if finder != "grep":
        tools = ("grep",) if finder == "grep-without-wc" else ()
        monkeypatch.setenv("PATH", str(tools_path(tmp_path, *tools)))
    regexes = {"all": "ERROR", "word": r"\bERROR\b", "case": r"(?i)error:", "job": r"job \d+"}
    target = logs_target(
        path=str(path),
        patterns=[{"name": n, "pattern": rx, "window": "1h"} for n, rx in regexes.items()],
    )
    counted = source(target).counts()
    assert counted["grep"] is (finder != "python")
    raw = path.read_bytes().split(b"\n")
    in_window = raw[50:]
    assert counted["lines"] == len(in_window)
    for name, regex in regexes.items():
        result = counted["patterns"][name]
        assert result["lines"] == len(in_window), name
        assert {k: result[k] for k in ("count", "top", "folded", "other")} == sequential_tally(
            in_window, regex
        ), name
    assert counted["patterns"]["all"]["count"] > scanner.FOLD_LIMIT
    assert counted["patterns"]["all"]["other"] > 0  # past DISTINCT_LIMIT
    assert counted["patterns"]["case"]["count"] < scanner.FOLD_LIMIT


def broken_grep(tmp_path: Path, said: str) -> Path:
    """A PATH whose grep says it is GNU grep, prints one line of a match and fails with ``said``
    (exit status 2), as a grep that ran out of memory or could not read does."""
    bin_dir = tools_path(tmp_path, "wc")
    grep = bin_dir / "grep"
    grep.write_text(
        '#!/bin/sh\n[ "$1" = --version ] && { echo "grep (GNU grep) 3.8"; exit 0; }\n'
        f'echo "2026-11-30T00:00:00Z ERROR printed before it failed"\necho "{said}" >&2\nexit 2\n'
    )
    grep.chmod(0o755)
    return bin_dir


def test_broken_grep_on_the_host_fails_the_count_with_its_words(tmp_path, monkeypatch):
    """A grep that says it is GNU grep but fails (here: a read error) fails the count with
    grep's own message, never a count of what it managed to print."""
    path = write(tmp_path / "api.log", app_errors(time.time(), 3))
    monkeypatch.setenv("PATH", str(broken_grep(tmp_path, "grep: (standard input): I/O error")))
    target = logs_target(path=str(path), patterns=[{"name": "e", "pattern": "ERROR"}])
    with pytest.raises(ProbeError) as failed:
        probes.pattern_lines(source(target), target.patterns[0])
    assert str(failed.value) == f"cannot read {path}: grep: (standard input): I/O error"


def test_grep_out_of_memory_is_counted_in_python_instead(tmp_path, monkeypatch):
    """grep holds a whole line: on a line of many MB it runs out of the memory it is given
    (``GREP_MEMORY``) and says so. The file is then counted by Python, which cuts lines: the
    count is the file's, not what grep printed before it failed."""
    path = write(tmp_path / "api.log", app_errors(time.time(), 3))
    monkeypatch.setenv("PATH", str(broken_grep(tmp_path, "grep: memory exhausted")))
    target = logs_target(path=str(path), patterns=[{"name": "e", "pattern": "ERROR"}])
    counted = source(target).counts()
    assert counted["grep"] is True
    assert counted["patterns"]["e"]["count"] == 3
    assert "printed before" not in str(counted["patterns"]["e"]["top"])


# -- the host's python3 ---------------------------------------------------------------------------


def shim(tmp_path: Path, body: str) -> tuple[Path, Path]:
    """A folder with a ``python3`` shell script, as version managers install (pyenv, asdf),
    that notes each start in a log; (the folder, the log)."""
    folder = tmp_path / "shims"
    folder.mkdir()
    log = tmp_path / "shim.log"
    script = folder / "python3"
    script.write_text(f"#!/bin/sh\necho started >> {log}\n{body}\n")
    script.chmod(0o755)
    return folder, log


def test_scans_run_the_interpreter_behind_a_python3_shim(tmp_path, monkeypatch):
    """python3 through a shim costs a shell and the manager at each start (pyenv: ~80 ms): the
    shim runs once per host to say which interpreter it starts, every scan runs that one."""
    folder, log = shim(tmp_path, f'exec {sys.executable} "$@"')
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    path = write(tmp_path / "api.log", app_errors(time.time(), 3))
    target = logs_target(path=str(path), patterns=[{"name": "e", "pattern": "ERROR"}])
    first, second = source(target), source(target)
    assert first.python == second.python
    assert Path(first.python.path).resolve() == Path(sys.executable).resolve()
    assert first.python.magic == importlib.util.MAGIC_NUMBER.hex()  # sent compiled
    assert first.counts()["patterns"]["e"]["count"] == 3
    assert second.files()["files"][0]["path"] == str(path)
    assert log.read_text() == "started\n"


def test_a_host_on_another_python_gets_the_scanner_as_source(tmp_path, monkeypatch):
    """A host whose python3 is not this Python (here 3.7 through a shim; skipped where pyenv
    has none) cannot load this one's bytecode: it is sent the source, and counts the same."""
    found = sorted(Path.home().glob(".pyenv/versions/3.7*/bin/python3.7"))
    if not found:
        pytest.skip("no Python 3.7 on this machine (pyenv install 3.7)")
    folder, log = shim(tmp_path, f'exec {found[-1]} "$@"')
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    now = time.time()
    path = write(tmp_path / "api.log", app_errors(now - 30 * HOUR, 4) + app_errors(now, 5))
    target = logs_target(path=str(path), patterns=[{"name": "e", "pattern": "ERROR"}])
    opened = source(target)
    assert Path(opened.python.path).resolve() == found[-1].resolve()
    assert opened.python.magic != importlib.util.MAGIC_NUMBER.hex()
    counted = opened.counts()
    assert counted["grep"] is True
    in_window = path.read_bytes().split(b"\n")[8:-1]  # the 4 errors of 30 h ago: 8 lines
    result = counted["patterns"]["e"]
    assert {k: result[k] for k in ("count", "top", "folded", "other")} == sequential_tally(
        in_window, "ERROR"
    )
    assert result["count"] == 5
    assert log.read_text() == "started\n"


def test_python3_shim_that_cannot_start_makes_the_host_unreachable(suite, tmp_path, monkeypatch):
    folder, _ = shim(tmp_path, "echo \"pyenv: version '3.99' is not installed\" >&2; exit 1")
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    path = write(tmp_path / "api.log", app_errors(time.time(), 3))
    suite.run(
        logs_block("api", path, None, ({"name": "errors", "pattern": "ERROR"},)), "", paths=LOGS
    )
    reasons = {n: said(r) for n, r in suite.results().items()}
    assert reasons["test_log_source_present[api]"] == (
        "api: unreachable: python3 on this machine does not start: "
        "pyenv: version '3.99' is not installed"
    )


def test_checks_measured_side_by_side_share_one_scan(tmp_path):
    """Checks of one source may be measured in threads at once: one scan answers them all."""
    path = write(tmp_path / "api.log", app_errors(time.time(), 3))
    target = logs_target(path=str(path), patterns=[{"name": "e", "pattern": "ERROR"}])
    shared = source(target)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: shared.counts(), range(4)))
        listings = list(pool.map(lambda _: shared.files(), range(4)))
    assert all(answer is answers[0] for answer in answers)
    assert all(listing is listings[0] for listing in listings)


# -- a line of many MB: read in part, in bounded memory -------------------------------------------

LONG_LINE = 64 << 20
SCAN_DATA = 64 << 20  # the data segment (heap, mappings) each process of the scan may use


def limited_timeout(bin_dir: Path) -> None:
    """``timeout`` in ``bin_dir`` (the runner starts the scanner with it) that first limits
    every process of the scan to SCAN_DATA of data (``ulimit -d``; Linux counts mmap too)."""
    shim = bin_dir / "timeout"
    real = shutil.which("timeout")
    shim.unlink(missing_ok=True)
    shim.write_text(f'#!/bin/sh\nulimit -S -d {SCAN_DATA >> 10} || exit 99\nexec {real} "$@"\n')
    shim.chmod(0o755)


@pytest.mark.parametrize("finder", ["grep", "python"])
def test_a_64_mb_line_is_read_in_part_in_bounded_memory(tmp_path, monkeypatch, finder):
    """One line of 64 MB among ordinary ones (a dumped payload): every process of the scan
    holds less than the line (before: the whole line, several times over, 433 MB for one of
    50 MB), with GNU grep (which holds a whole line: it runs out of the memory it is given,
    GREP_MEMORY, and Python counts the file) and without. Each runs under a 64 MB data limit
    here, which the old scanner failed ("grep: memory exhausted", MemoryError). The line counts,
    matched on its first MB, and the detail says so."""
    now = time.time()
    path = tmp_path / "api.log"
    with path.open("wb") as out:
        out.write("".join(line + "\n" for line in app_errors(now - 1800, 5, 600)).encode())
        out.write(f"{iso(now - 1500)} ERROR request body: ".encode())
        for _ in range(LONG_LINE >> 20):
            out.write(b"x" * (1 << 20))
        out.write(b" ERROR again at its end\n")
        out.write("".join(line + "\n" for line in app_errors(now, 5, 600)).encode())
    bin_dir = tools_path(tmp_path, *(["grep", "wc"] if finder == "grep" else ["wc"]))
    limited_timeout(bin_dir)
    monkeypatch.setenv("PATH", str(bin_dir))
    target = logs_target(
        path=str(path),
        patterns=[
            {"name": "e", "pattern": "ERROR"},
            {"name": "timeouts", "pattern": r"timed out after \d+ ms"},
        ],
    )
    started = time.monotonic()
    counted = source(target).counts()
    assert time.monotonic() - started < 30
    assert counted["grep"] is (finder == "grep")
    assert counted["patterns"]["e"]["count"] == 11
    assert counted["patterns"]["timeouts"]["count"] == 6
    measured = probes.pattern_lines(source(target), target.patterns[0])
    assert f"lines over 1.0 MB matched on their first 1.0 MB: {path}" in measured.detail


# -- a big log: read from the window start -------------------------------------------------------

BIG = 300 * 1000**2
BLOCK_LINES = 1000
ERRORS_PER_BLOCK = 10


@dataclass
class BigLog:
    path: Path
    stamps: list[int]  # the timestamp of each block of BLOCK_LINES lines, ascending
    size: int

    def errors_since(self, since: float) -> int:
        return ERRORS_PER_BLOCK * sum(1 for t in self.stamps if t >= since)


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigLog]:
    """300 MB of an application log covering 48 h: a block of 1000 lines (10 errors) written
    over and over with its timestamp filled in, which takes about a second."""
    path = tmp_path_factory.mktemp("big") / "api.log"
    now = int(time.time())
    template = b"".join(
        b"@@@@@@@@@@@@@@@@@@@@ ERROR payment %d failed for user %d from 10.0.%d.%d\n"
        % (i, i * 31, i % 256, i % 7)
        if i % (BLOCK_LINES // ERRORS_PER_BLOCK) == 0
        else b"@@@@@@@@@@@@@@@@@@@@ INFO GET /api/items/%d 200 %dms request_id=%08x\n"
        % (i, i % 97, i * 7919)
        for i in range(BLOCK_LINES)
    )
    blocks = BIG // len(template) + 1
    start, step = now - 48 * 3600, 48 * 3600 / blocks
    stamps = []
    with path.open("wb") as out:
        for k in range(blocks):
            t = int(start + k * step)
            stamps.append(t)
            out.write(
                template.replace(
                    b"@" * 20, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)).encode()
                )
            )
    yield BigLog(path, stamps, path.stat().st_size)
    path.unlink()


@pytest.mark.parametrize("backend", ["local", "ssh"])
def test_big_log_last_hours_cost_only_their_share(big_log, sshd, backend):
    """The last 4 h of a 300 MB, 48 h log: binary search to the window start, then read ~1/12 of
    the file, on the host and through ssh (times: bench/logs.py)."""
    host = None
    if backend == "ssh":
        host = testinfra.get_host(
            sshd.uri,
            ssh_identity_file=str(sshd.identity_file),
            ssh_extra_args=sshd.ssh_extra_args,
        )
    target = logs_target(
        name="big",
        path=str(big_log.path),
        patterns=[{"name": "recent", "pattern": "ERROR", "window": "4h"}],
    )
    counted = source(target, host).counts()
    recent = counted["patterns"]["recent"]
    assert recent["count"] == big_log.errors_since(counted["now"] - 4 * 3600)
    assert recent["lines"] == BLOCK_LINES // ERRORS_PER_BLOCK * recent["count"]
    assert counted["bytes"] < big_log.size / 12 + 2 * 1000**2, counted["bytes"]


def test_big_log_whole_file_is_counted_exactly(big_log):
    """Every line of the 300 MB file in the window: every block counted exactly, every error
    folded into one top message (times: bench/logs.py)."""
    target = logs_target(
        name="big",
        path=str(big_log.path),
        patterns=[
            {"name": "all", "pattern": "ERROR", "window": "30d"},
            {"name": "none", "preset": "failed_logins", "window": "30d"},
        ],
    )
    counted = source(target).counts()
    everything = counted["patterns"]["all"]
    assert everything["count"] == ERRORS_PER_BLOCK * len(big_log.stamps)
    assert everything["lines"] == BLOCK_LINES * len(big_log.stamps)
    assert everything["top"][0][:2] == [
        "<time> ERROR payment <n> failed for user <n> from <ip>",
        ERRORS_PER_BLOCK * len(big_log.stamps),
    ]
    assert counted["patterns"]["none"]["count"] == 0
    assert counted["bytes"] == big_log.size


def test_scan_past_its_timeout_fails_saying_so(big_log):
    """Every host command is bounded: a scan that cannot finish within scan_timeout is killed
    (``timeout`` on the host) and the check fails naming the setting. The regex holds no
    literal: grep hands Python every line with a digit to confirm, seconds of work."""
    target = logs_target(
        path=str(big_log.path),
        scan_timeout="300ms",
        patterns=[{"name": "slow", "pattern": r"\d+(?=ms)", "window": "30d"}],
    )
    with pytest.raises(ProbeError) as failed:
        source(target).counts()
    assert str(failed.value) == "the log scan did not finish within 0.3 s (scan_timeout)"


def test_scanner_runs_on_the_oldest_python3_it_supports(tmp_path):
    """Hosts run older Pythons than opscheck: the scanner is written for 3.7 and must run
    there, as a file and as the program the runner sends (found here through pyenv; skipped
    where no 3.7 is installed), with GNU grep and without it (no ``ere``)."""
    found = sorted(Path.home().glob(".pyenv/versions/3.7*/bin/python3.7"))
    if not found:
        pytest.skip("no Python 3.7 on this machine (pyenv install 3.7)")
    now = time.time()
    path = write(tmp_path / "api.log", app_errors(now - 30 * HOUR, 4) + app_errors(now, 5))
    pattern = {"name": "e", "window": 86400, "regexes": ["ERROR"], "literals": ["ERROR"]}
    for spec in (pattern, {**pattern, "ere": "ERROR", "exact": True}):
        request = {"mode": "count", "paths": [str(path)], "format": "text", "patterns": [spec]}
        for python in (found[-1], Path(sys.executable)):
            for program in ([str(probes.SCANNER)], ["-S", "-c", probes._boot()]):
                ran = subprocess.run(
                    [str(python), *program, json.dumps(request)],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=True,
                )
                counted = json.loads(ran.stdout)
                assert counted["patterns"]["e"]["count"] == 5, (python, program[0])
                assert counted["grep"] is ("ere" in spec)


def test_timegm_is_calendars():
    """The scanner's own timegm (calendar costs ~3 ms to import) is calendar.timegm, errors too."""
    days = [(1970, 1, 1), (2000, 2, 29), (2024, 2, 29), (2026, 12, 31), (1, 1, 1), (9999, 12, 31)]
    days += [(year, month, 28) for year in (1900, 1999, 2100) for month in range(1, 13)]
    for year, month, day in days:
        for h, m, s in ((0, 0, 0), (23, 59, 60), (12, 30, 1)):
            assert scanner.timegm(year, month, day, h, m, s) == calendar.timegm(
                (year, month, day, h, m, s, 0, 0, 0)
            )
    for wrong in ((2026, 13, 1), (2026, 0, 1), (0, 1, 1)):
        with pytest.raises(ValueError):
            calendar.timegm((*wrong, 0, 0, 0, 0, 0, 0))
        with pytest.raises(ValueError):
            scanner.timegm(*wrong, 0, 0, 0)


# -- journald -----------------------------------------------------------------------------------


def journal(directory: Path, entries: list[tuple[float, str, int, str]]) -> Path:
    """A real journal file: (time, unit, priority, message) entries in journald's export format,
    written by systemd-journal-remote as it writes journals received from other machines."""
    if not Path(JOURNAL_REMOTE).exists():
        pytest.skip("systemd-journal-remote is not installed (scripts/setup-system.sh installs it)")
    directory.mkdir(parents=True, exist_ok=True)
    export = b""
    for t, unit, priority, message in entries:
        usec = int(t * 1e6)
        export += (
            f"__REALTIME_TIMESTAMP={usec}\n__MONOTONIC_TIMESTAMP={usec}\n"
            f"_BOOT_ID=0123456789abcdef0123456789abcdef\n_SYSTEMD_UNIT={unit}.service\n"
            f"PRIORITY={priority}\nSYSLOG_IDENTIFIER=sshd\n_HOSTNAME=web1\nMESSAGE={message}\n\n"
        ).encode()
    source_file = directory.parent / "entries.export"
    source_file.write_bytes(export)
    subprocess.run(
        [JOURNAL_REMOTE, f"--output={directory}/remote.journal", str(source_file)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return directory


def test_journald_unit_counts_sshd_failures(suite, where, tmp_path):
    now = time.time()
    entries = [
        (now - 30 * HOUR + i, "ssh", 6, f"Failed password for root from 192.0.2.{i} port 22 ssh2")
        for i in range(2)
    ]
    entries += [
        (
            now - 1800 + i,
            "ssh",
            6,
            f"Failed password for root from 203.0.113.{i} port {4000 + i} ssh2",
        )
        for i in range(3)
    ]
    entries += [
        (now - 1200 + i, "ssh", 6, f"Invalid user oracle from 203.0.113.9 port {5000 + i}")
        for i in range(2)
    ]
    entries += [
        (now - 900 + i, "ssh", 6, "Accepted publickey for deploy from 10.0.0.5 port 1 ssh2")
        for i in range(3)
    ]
    entries += [
        (now - 600 + i, "ssh", 3, "error: kex_exchange_identification: Connection reset")
        for i in range(2)
    ]
    entries += [(now - 300, "nginx", 6, "Failed password for root from 203.0.113.1 port 1 ssh2")]
    directory = journal(tmp_path / "journal", entries)
    block = logs_block(
        "sshd",
        None,
        where.host,
        (
            {"name": "failures", "preset": "ssh_auth_failures", "crit": 3},
            {"name": "errors", "level": "err", "warn": 1},
        ),
        journald_unit="ssh",
        journald_directory=str(directory),
    )
    suite.run(where.inventory(block), "", paths=LOGS)
    results = suite.results()
    assert outcomes(results) == {
        "test_log_source_present[sshd]": "passed",
        "test_security_lines_within_limits[sshd/failures]": "failed",
        "test_error_lines_within_limits[sshd/errors]": "warned",
        # no files: the capacity checks are for path targets only
        "test_log_files_below_size_limit[-]": "skipped",
        "test_log_folders_below_size_limit[-]": "skipped",
        "test_log_files_rotated[-]": "skipped",
    }, {n: said(r) for n, r in results.items()}
    assert re.fullmatch(
        r"journal of ssh: 10 entries since .+ UTC",
        results["test_log_source_present[sshd]"]["measured"],
    )
    failures = results["test_security_lines_within_limits[sshd/failures]"]
    assert (
        failures["message"] == "sshd: 5 lines matching ssh_auth_failures in the last 24 h > crit 3"
    )
    assert failures["detail"].splitlines()[2:] == [
        "      3  Failed password for root from <ip> port <n> ssh2",
        "      2  Invalid user oracle from <ip> port <n>",
    ]
    assert results["test_error_lines_within_limits[sshd/errors]"]["message"] == (
        "sshd: 2 lines at level err in the last 24 h > warn 1"
    )


def test_unreadable_journal_skips_with_the_reason(suite, tmp_path, monkeypatch):
    empty = tmp_path / "no-journal"
    empty.mkdir()
    patterns = ({"name": "failures", "preset": "ssh_auth_failures"},)
    block = logs_block(
        "sshd", None, None, patterns, journald_unit="ssh", journald_directory=str(empty)
    )
    suite.run(block, "", "-k", "present or security", paths=LOGS)
    reason = f"sshd: no journal files in {empty} (journald not running here?)"
    assert {n: (r["outcome"], said(r)) for n, r in suite.results().items()} == {
        "test_log_source_present[sshd]": ("skipped", reason),
        "test_security_lines_within_limits[sshd/failures]": ("skipped", reason),
    }
    # A host without journalctl at all (a container, a BSD): the same, with that reason.
    monkeypatch.setenv("PATH", str(bare_path(tmp_path)))
    forget_hosts(monkeypatch)
    suite.run(
        logs_block("sshd", None, None, patterns, journald_unit="ssh"),
        "",
        "-k",
        "present or security",
        paths=LOGS,
    )
    reason = "sshd: no journalctl on this host (journald_unit needs systemd's journal)"
    assert {n: (r["outcome"], said(r)) for n, r in suite.results().items()} == {
        "test_log_source_present[sshd]": ("skipped", reason),
        "test_security_lines_within_limits[sshd/failures]": ("skipped", reason),
    }


def journal_of(directory: Path, entries: list[dict[str, Any]]) -> Path:
    """A real journal file of entries given as their fields (``t`` their time): units' entries
    and the kernel's (``_TRANSPORT=kernel``), written by systemd-journal-remote."""
    if not Path(JOURNAL_REMOTE).exists():
        pytest.skip("systemd-journal-remote is not installed (scripts/setup-system.sh installs it)")
    directory.mkdir(parents=True, exist_ok=True)
    export = b""
    for fields in entries:
        usec = int(fields["t"] * 1e6)
        export += (
            f"__REALTIME_TIMESTAMP={usec}\n__MONOTONIC_TIMESTAMP={usec}\n"
            "_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=web1\n"
        ).encode()
        export += "".join(f"{k}={v}\n" for k, v in fields.items() if k != "t").encode() + b"\n"
    source_file = directory.parent / "entries.export"
    source_file.write_bytes(export)
    subprocess.run(
        [JOURNAL_REMOTE, f"--output={directory}/remote.journal", str(source_file)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return directory


def unit_entry(t: float, unit: str, priority: int, message: str) -> dict[str, Any]:
    return {
        "t": t,
        "_SYSTEMD_UNIT": f"{unit}.service",
        "_TRANSPORT": "syslog",
        "SYSLOG_IDENTIFIER": unit,
        "PRIORITY": priority,
        "MESSAGE": message,
    }


def kernel_entry(t: float, priority: int, message: str) -> dict[str, Any]:
    return {
        "t": t,
        "_TRANSPORT": "kernel",
        "SYSLOG_IDENTIFIER": "kernel",
        "PRIORITY": priority,
        "MESSAGE": message,
    }


def test_journald_priority_over_the_whole_journal_and_the_kernel(suite, where, tmp_path):
    """journalctl -p err over every unit; -k (the kernel) alone; a unit and the kernel."""
    now = time.time()
    entries = [unit_entry(now - 30 * HOUR, "nginx", 3, "old error, before the window")]
    entries += [
        unit_entry(now - 3000 + i, "ssh", 6, "Accepted publickey for deploy") for i in range(4)
    ]
    entries += [
        unit_entry(now - 2000 + i, "ssh", 3, "error: kex_exchange_identification") for i in range(2)
    ]
    entries += [
        unit_entry(now - 1500 + i, "nginx", 3, f"connect() failed (111) upstream {i}")
        for i in range(3)
    ]
    entries += [unit_entry(now - 1400, "nginx", 4, "an upstream response is buffered")]
    entries += [kernel_entry(now - 1000, 2, "Out of memory: Killed process 4242 (node)")]
    entries += [kernel_entry(now - 900 + i, 6, "eth0: link up") for i in range(2)]
    directory = journal_of(tmp_path / "journal", entries)
    anything = {"name": "errors", "pattern": "."}
    block = (
        logs_block(
            "all",
            None,
            where.host,
            ({**anything, "crit": 4},),
            journald_priority="err",
            journald_directory=str(directory),
        )
        + logs_block(
            "kernel",
            None,
            where.host,
            ({"name": "oom", "pattern": "Out of memory", "crit": 0},),
            journald_kernel=True,
            journald_directory=str(directory),
        )
        + logs_block(
            "ssh",
            None,
            where.host,
            ({**anything, "crit": 5},),
            journald_unit="ssh",
            journald_kernel=True,
            journald_priority=3,
            journald_directory=str(directory),
        )
        + logs_block(
            "quiet",
            None,
            where.host,
            ({**anything, "warn": 0},),
            journald_priority="emerg",
            journald_directory=str(directory),
        )
    )
    suite.run(where.inventory(block), "", "-k", "present or error_lines", paths=LOGS)
    results = suite.results()
    assert outcomes(results) == {
        **{f"test_log_source_present[{t}]": "passed" for t in ("all", "kernel", "ssh", "quiet")},
        "test_error_lines_within_limits[all/errors]": "failed",
        "test_error_lines_within_limits[kernel/oom]": "failed",
        "test_error_lines_within_limits[ssh/errors]": "passed",
        "test_error_lines_within_limits[quiet/errors]": "passed",
    }, {n: said(r) for n, r in results.items()}
    measured = {n: r["measured"] for n, r in results.items()}
    since = r"entries since \d{4}-\d\d-\d\d \d\d:\d\d UTC"
    assert re.fullmatch(
        rf"journal at err or above: 6 {since}", measured["test_log_source_present[all]"]
    )
    assert re.fullmatch(rf"kernel messages: 3 {since}", measured["test_log_source_present[kernel]"])
    assert re.fullmatch(
        rf"journal of ssh and the kernel at err or above: 3 {since}",
        measured["test_log_source_present[ssh]"],
    )
    errors = results["test_error_lines_within_limits[all/errors]"]
    assert errors["message"] == "all: 6 lines matching . in the last 24 h > crit 4"
    assert errors["detail"].splitlines()[0].endswith("from journal at err or above")
    assert errors["detail"].splitlines()[2:] == [
        "      3  connect() failed (<n>) upstream <n>",
        "      2  error: kex_exchange_identification",
        "      1  Out of memory: Killed process <n> (node)",
    ]
    assert results["test_error_lines_within_limits[kernel/oom]"]["message"] == (
        "kernel: 1 line matching Out of memory in the last 24 h > crit 0"
    )
    assert measured["test_error_lines_within_limits[ssh/errors]"] == (
        "3 lines matching . in the last 24 h"
    )
    assert measured["test_error_lines_within_limits[quiet/errors]"] == (
        "0 lines matching . in the last 24 h"
    )


def bare_path(tmp_path: Path, python: bool = True) -> Path:
    """A PATH of a host that has only python3 (if asked) and timeout: no journalctl, no
    fail2ban-client."""
    bin_dir = tmp_path / "bare-bin"
    bin_dir.mkdir(exist_ok=True)
    tools = {"timeout": shutil.which("timeout"), "uname": shutil.which("uname")}
    if python:
        tools["python3"] = sys.executable
    for name, target in tools.items():
        assert target, name
        (bin_dir / name).unlink(missing_ok=True)
        (bin_dir / name).symlink_to(target)
    return bin_dir


# -- the host: python3, the shared connection, fail2ban ------------------------------------------


def test_host_without_python3_fails_the_source_check_once(suite, tmp_path, monkeypatch):
    path = write(tmp_path / "api.log", app_errors(time.time(), 3))
    monkeypatch.setenv("PATH", str(bare_path(tmp_path, python=False)))
    suite.run(
        logs_block("api", path, None, ({"name": "errors", "pattern": "ERROR"},)), "", paths=LOGS
    )
    reasons = {n: said(r) for n, r in suite.results().items()}
    assert reasons.pop("test_security_lines_within_limits[-]") == (
        "no [[logs]] target in inventory.toml has a security pattern (a security preset, or "
        'category = "security")'
    )
    assert reasons.pop("test_log_source_present[api]") == (
        "api: unreachable: this machine has no python3: opscheck's log scanner runs there "
        "(Debian: apt-get install python3-minimal)"
    )
    assert reasons == dict.fromkeys(
        reasons, "not run: api unreachable (see test_log_source_present[api])"
    )


def test_logs_on_a_host_share_the_host_checks_ssh_connection(suite, sshd, tmp_path):
    path = write(tmp_path / "api.log", app_errors(time.time(), 3))
    inventory = sshd.host_block("box") + logs_block(
        "api", path, "box", ({"name": "errors", "pattern": "ERROR", "crit": 10},)
    )
    logins = sshd.log_file.read_text().count("Accepted publickey")
    host_checks = "suites/host/test_connectivity.py::test_host_reachable"
    result = suite.run(inventory, "", paths=(host_checks, *LOGS))
    # the host check, 5 logs checks; the security check: the target has no security pattern
    result.assert_outcomes(passed=6, skipped=1)
    assert sshd.log_file.read_text().count("Accepted publickey") == logins + 1


FAIL2BAN_STATUS = "Status\n|- Number of jail:\t2\n`- Jail list:\tnginx-http-auth, sshd\n"
FAIL2BAN_SSHD = (
    "Status for the jail: sshd\n"
    "|- Filter\n"
    "|  |- Currently failed:\t3\n"
    "|  |- Total failed:\t57\n"
    "|  `- Journal matches:\t_SYSTEMD_UNIT=sshd.service + _COMM=sshd\n"
    "`- Actions\n"
    "   |- Currently banned:\t2\n"
    "   |- Total banned:\t9\n"
    "   `- Banned IP list:\t203.0.113.7 198.51.100.23\n"
)


def test_fail2ban_output_is_read_as_fail2ban_1_0_writes_it():
    assert probes.parse_fail2ban(FAIL2BAN_STATUS)["Jail list"] == "nginx-http-auth, sshd"
    fields = probes.parse_fail2ban(FAIL2BAN_SSHD)
    assert fields["Currently banned"] == "2"
    assert fields["Banned IP list"] == "203.0.113.7 198.51.100.23"
    assert fields["Journal matches"] == "_SYSTEMD_UNIT=sshd.service + _COMM=sshd"
    empty = probes.parse_fail2ban(FAIL2BAN_SSHD.replace("\t203.0.113.7 198.51.100.23", ""))
    assert empty["Banned IP list"] == ""
    jail = probes.Jail("sshd", 3, 57, 2, 9, ["203.0.113.7", "198.51.100.23"])
    (measured,) = probes.fail2ban_banned([jail])
    assert (measured.value, measured.describe("number")) == (
        2,
        "sshd 2 IPs banned (9 since start; 3 failing now)",
    )


def test_fail2ban_check_skips_where_fail2ban_client_is_absent(suite, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(bare_path(tmp_path)))
    inventory = host_block("me", "local://", fail2ban=True) + host_block("other", "local://")
    suite.run(inventory, "", paths=("suites/host/test_security.py",))
    reason = "me: fail2ban = true, but the host has no fail2ban-client"
    assert {n: (r["outcome"], said(r)) for n, r in suite.results().items()} == {
        "test_fail2ban_jails_active[me]": ("skipped", reason),
        "test_fail2ban_bans_within_limits[me]": ("skipped", reason),
    }


# -- configuration ------------------------------------------------------------------------------

BAD_LOGS = {
    "unknown preset": (
        'path = "/var/log/auth.log"\n[[logs.patterns]]\nname = "x"\npreset = "failed_login"\n',
        "logs[0].patterns[0].preset: unknown preset 'failed_login' (did you mean "
        f"'failed_logins'? known: {', '.join(LOG_PRESETS)})",
    ),
    "bad regex": (
        'path = "/x.log"\n[[logs.patterns]]\nname = "x"\npattern = "(ERROR"\n',
        "logs[0].patterns[0].pattern: expected a regular expression, got '(ERROR' "
        "(missing ), unterminated subpattern at position 0)",
    ),
    "bad window": (
        'path = "/x.log"\n[[logs.patterns]]\nname = "x"\npattern = "E"\nwindow = "yesterday"\n',
        "logs[0].patterns[0].window: expected a duration such as '24h' or '4h', or 'today', "
        "got 'yesterday'",
    ),
    "nothing to match": (
        'path = "/x.log"\n[[logs.patterns]]\nname = "x"\nwindow = "4h"\n',
        "logs[0].patterns[0]: expected at least one of pattern, preset or level",
    ),
    "two sources": (
        'path = "/x.log"\njournald_unit = "ssh"\n',
        "logs[0]: expected exactly one of path (files), journald_unit (the journal), docker (a "
        "container's logs) or kubernetes (pods' logs)",
    ),
    "no source": (
        "",
        "logs[0]: expected exactly one of path (files), journald_unit (the journal), docker (a "
        "container's logs) or kubernetes (pods' logs)",
    ),
    "level in a text log": (
        'path = "/x.log"\n[[logs.patterns]]\nname = "x"\nlevel = "error"\n',
        'logs[0]: patterns[0].level: applies to format = "json" and journald_unit sources; in '
        "text logs match the level with pattern, e.g. '\\bERROR\\b'",
    ),
    "duplicate pattern": (
        'path = "/x.log"\n[[logs.patterns]]\nname = "x"\npattern = "A"\n'
        '[[logs.patterns]]\nname = "x"\npattern = "B"\n',
        "logs[0]: duplicate pattern name 'x' (it becomes the test id)",
    ),
    "journald priority unknown": (
        'journald_priority = "verbose"\n',
        "logs[0].journald_priority: expected a journald priority: one of emerg, alert, crit, "
        "err, warning, notice, info, debug or 0-7 (journalctl -p: that one and the more "
        "severe), got 'verbose'",
    ),
    "journald kernel beside a container": (
        'journald_kernel = true\ndocker = { target = "d", container = "api" }\n',
        "logs[0]: journald_priority and journald_kernel read the journal (with or without "
        "journald_unit), not docker: one source per [[logs]] target",
    ),
    "unknown host": (
        'path = "/x.log"\nhost = "web9"\n',
        "logs[0].host: no [[host]] target named 'web9' (known: none)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_LOGS))
def test_logs_config_mistakes_name_the_key(tmp_path, case):
    body, message = BAD_LOGS[case]
    inventory = tmp_path / "inventory.toml"
    inventory.write_text('[[logs]]\nname = "app"\n' + body)
    with pytest.raises(cfg.ConfigError) as raised:
        cfg.load(inventory, None)
    assert str(raised.value) == f"inventory.toml: {message}"
