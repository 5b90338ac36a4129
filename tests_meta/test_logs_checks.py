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

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import testinfra

from opscheck import config as cfg
from opscheck.config import LOG_PRESETS, LogsTarget
from opscheck.judge import ProbeError
from opscheck.probes import logs as probes
from opscheck.testbed.sshd import Sshd, host_block, toml_value

LOGS = ("suites/logs",)
HOUR = 3600.0
JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"


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
    # Yesterday's rotated file is full of errors, but the path names api.log only.
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
    assert re.match(rf"3 of \d+ lines \(\d.*%\) since .+ UTC; read .+ from 1 file: {api}\n", detail)
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


def test_rotated_files_are_read_only_when_the_path_names_them(suite, tmp_path):
    now = time.time()
    logs = tmp_path / "logs"
    write(logs / "api.log", app_errors(now, 5, HOUR))
    write(logs / "api.log.1", app_errors(now - 2 * HOUR, 7, 8 * HOUR))  # rotated 2 h ago
    old = write(logs / "api.log.3", app_errors(now - 70 * HOUR, 9, HOUR))
    os.utime(old, (now - 69 * HOUR, now - 69 * HOUR))  # last written three days ago
    with gzip.open(logs / "api.log.2.gz", "wt") as packed:
        packed.write("\n".join(app_errors(now - 10 * HOUR, 4, HOUR)))
    pattern = ({"name": "errors", "pattern": "ERROR", "crit": 100},)
    inventory = (
        logs_block("one", logs / "api.log", None, pattern)
        + logs_block("all", str(logs / "api.log*"), None, pattern)
        + logs_block("json", str(logs / "*.jsonl"), None, pattern)
    )
    suite.run(inventory, "", "-k", "error_lines or source_present", paths=LOGS)
    results = suite.results()
    assert said(results.pop("test_log_source_present[json]")) == (
        f"json: {logs}/*.jsonl: no file matches"
    )
    assert said(results.pop("test_error_lines_within_limits[json/errors]")) == (
        f"json: no log file matches {logs}/*.jsonl (see test_log_source_present)"
    )
    assert outcomes(results) == dict.fromkeys(results, "passed"), results
    assert results["test_error_lines_within_limits[one/errors]"]["measured"] == (
        "5 lines matching ERROR in the last 24 h"
    )
    assert results["test_error_lines_within_limits[all/errors]"]["measured"] == (
        "12 lines matching ERROR in the last 24 h"
    )
    detail = results["test_error_lines_within_limits[all/errors]"]["detail"].splitlines()
    assert detail[0].endswith(f"from 2 files: {logs}/api.log, {logs}/api.log.1")
    assert detail[1] == f"compressed, not read: {logs}/api.log.2.gz"
    assert re.fullmatch(
        rf"{re.escape(str(logs))}/api.log\*: 4 files, \d+\.\d KB, last written .+ ago",
        results["test_log_source_present[all]"]["measured"],
    )


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
    the file. Stated bound: under 2 s (measured ~0.15 s), on the host and through ssh."""
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
    started = time.monotonic()
    counted = source(target, host).counts()
    elapsed = time.monotonic() - started
    assert counted["patterns"]["recent"]["count"] == big_log.errors_since(counted["now"] - 4 * 3600)
    assert counted["bytes"] < big_log.size / 12 + 2 * 1000**2, counted["bytes"]
    assert elapsed < 2.0, elapsed


def test_big_log_whole_file_is_counted_at_hundreds_of_mb_per_second(big_log):
    """Every line of the 300 MB file in the window: every block counted exactly, every error
    folded into one top message. Stated bound: 20 s (measured ~1.5 s, ~200 MB/s)."""
    target = logs_target(
        name="big",
        path=str(big_log.path),
        patterns=[
            {"name": "all", "pattern": "ERROR", "window": "30d"},
            {"name": "none", "preset": "failed_logins", "window": "30d"},
        ],
    )
    started = time.monotonic()
    counted = source(target).counts()
    elapsed = time.monotonic() - started
    everything = counted["patterns"]["all"]
    assert everything["count"] == ERRORS_PER_BLOCK * len(big_log.stamps)
    assert everything["lines"] == BLOCK_LINES * len(big_log.stamps)
    assert everything["top"][0][:2] == [
        "<time> ERROR payment <n> failed for user <n> from <ip>",
        ERRORS_PER_BLOCK * len(big_log.stamps),
    ]
    assert counted["patterns"]["none"]["count"] == 0
    assert counted["bytes"] == big_log.size
    assert elapsed < 20.0, elapsed


def test_scan_past_its_timeout_fails_saying_so(big_log):
    """Every host command is bounded: a scan that cannot finish within scan_timeout is killed
    (``timeout`` on the host) and the check fails naming the setting."""
    target = logs_target(
        path=str(big_log.path),
        scan_timeout="300ms",
        patterns=[{"name": "all", "pattern": "ERROR", "window": "30d"}],
    )
    started = time.monotonic()
    with pytest.raises(ProbeError) as failed:
        source(target).counts()
    assert str(failed.value) == "the log scan did not finish within 0.3 s (scan_timeout)"
    assert time.monotonic() - started < 2.0


def test_scanner_runs_on_the_oldest_python3_it_supports(tmp_path):
    """Hosts run older Pythons than opscheck: the scanner is written for 3.7 and must run
    there (found here through pyenv; skipped where no 3.7 is installed)."""
    found = sorted(Path.home().glob(".pyenv/versions/3.7*/bin/python3.7"))
    if not found:
        pytest.skip("no Python 3.7 on this machine (pyenv install 3.7)")
    now = time.time()
    path = write(tmp_path / "api.log", app_errors(now - 30 * HOUR, 4) + app_errors(now, 5))
    request = {
        "mode": "count",
        "paths": [str(path)],
        "format": "text",
        "patterns": [{"name": "e", "window": 86400, "regexes": ["ERROR"], "literals": ["ERROR"]}],
    }
    for python in (found[-1], Path(sys.executable)):
        ran = subprocess.run(
            [str(python), str(probes.SCANNER), json.dumps(request)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert json.loads(ran.stdout)["patterns"]["e"]["count"] == 5, python


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
        reasons,
        "api: unreachable (see test_log_source_present[api]): this machine has no python3: "
        "opscheck's log scanner runs there (Debian: apt-get install python3-minimal)",
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
        "logs[0]: expected exactly one of path (files) or journald_unit (the journal)",
    ),
    "no source": (
        "",
        "logs[0]: expected exactly one of path (files) or journald_unit (the journal)",
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
