"""``[[logs.patterns]] ratio_of`` and ``[[logs.stats]]`` against real JSON log files, on this
machine and through a real sshd on 127.0.0.1 (the scanner runs on the far side).

Two access logs are written with timestamps relative to now: ``good`` (fast, few errors, many
users) and ``bad`` (slow, many 5xx, one client hammering, few users); each holds lines older than
the window (huge, failing) that must not count, a line whose duration is not a number, and a line
that is not JSON. Every ratio and stat is judged on both: healthy passes, broken fails or warns
with the operator's message, and the expected values are computed here independently.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import testinfra
import testinfra.host

from opscheck import config as cfg
from opscheck.config import LogsTarget
from opscheck.probes import _logscan as scanner
from opscheck.probes import logs as probes
from opscheck.testbed.sshd import Sshd, toml_value

LOGS = ("suites/logs",)
HOUR = 3600.0


@pytest.fixture(autouse=True)
def fresh_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(testinfra.host.Host, "_host_cache", {})


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with Sshd(tmp_path_factory.mktemp("sshd-logstats")) as server:
        yield server


@dataclass
class Where:
    host: str | None
    sshd: Sshd

    def inventory(self, *blocks: str) -> str:
        return (self.sshd.host_block("box") if self.host else "") + "".join(blocks)


@pytest.fixture(params=["local", "ssh"])
def where(request: pytest.FixtureRequest, sshd: Sshd) -> Where:
    return Where("box" if request.param == "ssh" else None, sshd)


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def access_log(path: Path, now: float, bad: bool) -> list[dict[str, Any]]:
    """100 requests in the last hour (the window is 2 h), 5 from 3 h ago that must not count,
    one with duration "-" and one line that is not JSON; the in-window requests returned."""
    old = [
        {"timestamp": iso(now - 3 * HOUR + i), "status": 500, "duration_ms": 99999,
         "client_ip": "192.0.2.1", "user": "old", "path": "/old", "bytes": 10**9}
        for i in range(5)
    ]  # fmt: skip
    recent = []
    for i in range(100):
        if bad:
            status = 500 if i < 20 else 404 if i < 30 else 200
            ip = "203.0.113.66" if i < 60 else f"10.0.0.{i % 10}"
            duration: Any = 1000 + 10 * i
            user, size = f"u{i % 2}", 50_000
        else:
            status = 500 if i < 2 else 404 if i < 4 else 200
            ip, duration, user, size = f"10.0.0.{i % 10}", 10 + i, f"u{i % 20}", 1000
        path_ = "/search" if i % 2 else "/items"
        if bad and path_ == "/items":
            duration = 20 + i
        if bad and i == 99:
            duration = "6000.5"  # a number sent as a string counts
        recent.append(
            {"timestamp": iso(now - 3500 + 30 * i), "status": status, "duration_ms": duration,
             "client_ip": ip, "user": user, "path": path_, "bytes": size}
        )  # fmt: skip
    odd = {"timestamp": iso(now - 20), "status": 200, "duration_ms": "-", "client_ip": "10.9.9.9"}
    lines = [json.dumps(x) for x in [*old, *recent, odd]] + ["upstream said: garbage"]
    path.write_text("".join(line + "\n" for line in lines))
    return recent


RATIOS = (
    {"name": "errors_5xx", "pattern": r'"status": 5\d\d', "ratio_of": "all", "window": "2h",
     "warn": 5, "crit": 10},
    {"name": "requests", "pattern": r'"status": \d', "window": "2h"},
    {"name": "success", "pattern": r'"status": 2\d\d', "ratio_of": "requests", "window": "2h",
     "warn": 95, "crit": 90, "direction": "below"},
    {"name": "client_4xx", "pattern": r'"status": 4\d\d', "ratio_of": "requests",
     "window": "2h", "warn": 5},
)  # fmt: skip
STATS = (
    {"name": "latency_avg", "field": "duration_ms", "stat": "avg", "unit": "ms", "warn": 300,
     "crit": 800},
    {"name": "latency_median", "field": "duration_ms", "stat": "median", "unit": "ms",
     "warn": 200, "crit": 2000},
    {"name": "latency_p95", "field": "duration_ms", "stat": "p95", "unit": "ms", "warn": 500,
     "crit": 1000},
    {"name": "latency_max", "field": "duration_ms", "stat": "max", "unit": "ms", "crit": "5s"},
    {"name": "traffic", "field": "bytes", "stat": "sum", "unit": "bytes", "warn": 1_000_000,
     "crit": "2MB"},
    {"name": "users", "field": "user", "stat": "distinct", "warn": 10, "crit": 5,
     "direction": "below"},
    {"name": "top_ips", "stat": "count", "group_by": "client_ip", "top": 3, "warn": 30,
     "crit": 50},
    {"name": "slow_endpoints", "field": "duration_ms", "stat": "p95", "group_by": "path",
     "unit": "ms", "top": 2, "warn": 500},
    {"name": "search_min", "field": "duration_ms", "stat": "min", "pattern": "/search",
     "unit": "ms", "warn": 900},
)  # fmt: skip


def block(name: str, path: Path, host: str | None) -> str:
    lines = ["[[logs]]", f"name = {toml_value(name)}", f"path = {toml_value(str(path))}"]
    lines += [f"host = {toml_value(host)}"] if host else []
    lines.append('format = "json"')
    for table, entries in (("patterns", RATIOS), ("stats", STATS)):
        for entry in entries:
            lines.append(f"[[logs.{table}]]")
            lines += [f"{k} = {toml_value(v)}" for k, v in entry.items()]
            if table == "stats":
                lines.append('window = "2h"')
    return "\n".join(lines) + "\n"


def said(result: dict[str, Any]) -> str:
    return str(result.get("message") or result.get("reason") or "")


def ms(value: float) -> str:
    """Milliseconds as the messages show them."""
    return probes.format_value(value / 1000, "duration")


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[94]


def test_ratios_and_stats_healthy_and_broken(suite, where, tmp_path):
    now = time.time()
    good = access_log(tmp_path / "good.jsonl", now, bad=False)
    bad = access_log(tmp_path / "bad.jsonl", now, bad=True)
    inventory = where.inventory(
        block("good", tmp_path / "good.jsonl", where.host),
        block("bad", tmp_path / "bad.jsonl", where.host),
    )
    suite.run(inventory, "", "-k", "share or stat", paths=LOGS)
    results = suite.results()
    got = {n: r["outcome"] for n, r in results.items() if "share" in n or "stat" in n}
    expected = {}
    for name in ("errors_5xx", "success", "client_4xx"):
        expected[f"test_pattern_share_within_limits[good/{name}]"] = "passed"
    for entry in STATS:
        expected[f"test_log_field_stat_within_limits[good/{entry['name']}]"] = "passed"
    expected |= {
        "test_pattern_share_within_limits[bad/errors_5xx]": "failed",
        "test_pattern_share_within_limits[bad/success]": "failed",
        "test_pattern_share_within_limits[bad/client_4xx]": "warned",
        "test_log_field_stat_within_limits[bad/latency_avg]": "failed",
        "test_log_field_stat_within_limits[bad/latency_median]": "warned",
        "test_log_field_stat_within_limits[bad/latency_p95]": "failed",
        "test_log_field_stat_within_limits[bad/latency_max]": "failed",
        "test_log_field_stat_within_limits[bad/traffic]": "failed",
        "test_log_field_stat_within_limits[bad/users]": "failed",
        "test_log_field_stat_within_limits[bad/top_ips]": "failed",
        "test_log_field_stat_within_limits[bad/slow_endpoints]": "warned",
        "test_log_field_stat_within_limits[bad/search_min]": "warned",
    }
    assert got == expected, {n: said(r) for n, r in results.items()}
    # the requests pattern is a denominator only: not judged as an error count
    assert not any("requests" in n for n in results)

    def message(name: str) -> str:
        return said(results[name])

    share = "test_pattern_share_within_limits[bad/{}]".format
    stat = "test_log_field_stat_within_limits[bad/{}]".format
    # 20 of the 102 lines in the window (the 5 older 5xx lines do not count)
    assert message(share("errors_5xx")) == (
        "bad: 19.6 % (20 of 102 lines) match 'errors_5xx' in the last 2 h > crit 10.0 %"
    )
    assert message(share("success")) == (
        "bad: 70.3 % (71 of 101 lines matching 'requests') match 'success' in the last 2 h "
        "< crit 90.0 %"
    )
    durations = [float(r["duration_ms"]) for r in bad]
    assert message(stat("latency_avg")) == (
        f"bad: average of duration_ms {ms(statistics.mean(durations))} "
        "over 100 lines in the last 2 h > crit 800 ms"
    )
    measured_p95 = results[stat("latency_p95")]["measured"]
    assert measured_p95.startswith(f"95th percentile of duration_ms {ms(p95(durations))} "), (
        measured_p95
    )
    assert message(stat("latency_max")).startswith("bad: maximum of duration_ms 6.0 s over 100")
    assert message(stat("users")) == (
        "bad: 2 distinct values of user in 100 lines in the last 2 h < crit 5"
    )
    assert message(stat("top_ips")) == (
        "bad: client_ip=203.0.113.66 60 lines in the last 2 h > crit 50"
    )
    assert message(stat("slow_endpoints")).startswith(
        "bad: path=/search 95th percentile of duration_ms"
    )
    detail = results[stat("latency_p95")]["detail"]
    assert (
        "lines left out: 1 not JSON objects; 1 with a duration_ms that is not a number ('-')"
        in detail
    )
    top = results[stat("top_ips")]["detail"].splitlines()
    assert top[top.index("top client_ip of 12 (lines):") + 1].split() == [
        "60", "203.0.113.66", "(60", "lines)"
    ]  # fmt: skip
    good_p95 = results["test_log_field_stat_within_limits[good/latency_p95]"]["measured"]
    good_durations = [float(r["duration_ms"]) for r in good]
    assert good_p95.startswith(f"95th percentile of duration_ms {ms(p95(good_durations))} ")


def test_window_excludes_old_lines_and_today(tmp_path):
    """Lines before the window count in no stat; a stat's own window narrows it further."""
    now = time.time()
    path = tmp_path / "app.jsonl"
    rows = [{"timestamp": iso(now - 5 * HOUR), "d": 1000.0}]
    rows += [{"timestamp": iso(now - 90 * 60), "d": 100.0}, {"timestamp": iso(now - 60), "d": 2.0}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    target = LogsTarget.model_validate(
        {
            "name": "t",
            "path": str(path),
            "format": "json",
            "stats": [
                {"name": "h4", "field": "d", "stat": "max", "window": "4h", "warn": 1},
                {"name": "h1", "field": "d", "stat": "max", "window": "1h", "warn": 1},
                {"name": "d7", "field": "d", "stat": "sum", "window": "7d", "warn": 1},
            ],
        }
    )
    source = probes.LogSource(target, testinfra.get_host("local://")).open()
    values = {s.name: probes.stat_values(source, s)[0].value for s in target.stats}
    assert values == {"h4": 100.0, "h1": 2.0, "d7": 1102.0}


BAD = '[[logs]]\nname = "app"\npath = "/var/log/app.log"\nformat = "json"\n'


@pytest.mark.parametrize(
    ("toml", "said"),
    [
        (
            BAD + '[[logs.patterns]]\nname = "e"\npattern = "5\\\\d\\\\d"\nratio_of = "all"\n',
            "logs[0].patterns[0]: a pattern with ratio_of is judged in percent: give warn",
        ),
        (
            BAD + '[[logs.patterns]]\nname = "req"\npattern = "GET"\n'
            '[[logs.patterns]]\nname = "e"\npattern = "500"\nratio_of = "reqs"\nwarn = 5\n',
            'logs[0]: patterns[1].ratio_of: expected "all" or the name of another pattern of '
            "this target, got 'reqs' (did you mean 'req'?",
        ),
        (
            BAD + '[[logs.patterns]]\nname = "req"\npattern = "GET"\nwindow = "1h"\n'
            '[[logs.patterns]]\nname = "e"\npattern = "500"\nratio_of = "req"\nwarn = 5\n',
            "logs[0]: patterns[1].ratio_of: 'req' is counted over window '1h', this pattern "
            "over '24h': give both the same",
        ),
        (
            BAD + '[[logs.stats]]\nname = "l"\nfield = "d"\nstat = "p90"\nwarn = 1\n',
            "logs[0].stats[0].stat:",
        ),
        (
            BAD + '[[logs.stats]]\nname = "l"\nfield = "d"\nstat = "p95"\n',
            "logs[0].stats[0]: expected warn and/or crit",
        ),
        (
            BAD + '[[logs.stats]]\nname = "l"\nstat = "avg"\nwarn = 1\n',
            'logs[0].stats[0]: stat = "avg" needs field',
        ),
        (
            BAD + '[[logs.stats]]\nname = "l"\nstat = "count"\nwarn = 1\n',
            'logs[0].stats[0]: stat = "count" counts lines per group: give group_by',
        ),
        (
            '[[logs]]\nname = "app"\npath = "/var/log/app.log"\n'
            '[[logs.stats]]\nname = "l"\nfield = "d"\nstat = "max"\nwarn = 1\n',
            "logs[0]: stats[0]: stats read the fields of JSON lines: they apply to path sources "
            'with format = "json"',
        ),
        (
            BAD + '[[logs.stats]]\nname = "l"\nfield = "d"\nstat = "max"\nwarn = 1\n'
            'unit = "minutes"\n',
            "logs[0].stats[0].unit:",
        ),
        (
            BAD + '[[logs.stats]]\nname = "l"\nfield = "d"\nstat = "max"\nwarn = 1\n'
            'pattern = "x|"\n',
            "logs[0].stats[0].pattern: expected a regular expression that needs a character",
        ),
        (
            BAD + '[[logs.stats]]\nname = "l"\nfield = "d"\nstat = "max"\nwarn = 1\n'
            'windows = "1h"\n',
            "logs[0].stats[0].windows: unknown key (did you mean 'window'?)",
        ),
        (
            BAD + '[[logs.stats]]\nname = "l"\nfield = "d"\nstat = "max"\nwarn = 1\n' * 2,
            "logs[0]: duplicate stat name 'l'",
        ),
    ],
)
def test_bad_ratio_and_stat_configs_are_refused(tmp_path, toml, said):
    (tmp_path / "inventory.toml").write_text(toml)
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.load(tmp_path / "inventory.toml", None)
    assert said in str(caught.value), str(caught.value)


@pytest.mark.parametrize(
    ("line", "field", "value"),
    [
        ('{"d": 9, "msg": "ok"}', "d", 9),
        ('{"up": {"d": 5}, "d": 9}', "d", 9),  # nested first: the line is parsed whole
        ('{"up": {"d": 5}}', "d", None),  # only nested: missing at the top level
        ('{"msg": "x\\"d", "e": 1}', "d", None),  # "d" inside a string is no key
        ('{"msg": "say \\"d\\": 3", "d": 4}', "d", 4),
        ('{"d" : "12.5"}', "d", "12.5"),
        ('{"http": {"status": 503}}', "http.status", 503),
        ('{"d": nope}', "d", None),
    ],
)
def test_fields_are_found_as_a_json_parser_finds_them(line, field, value):
    found = scanner.JsonLine(line).get(field.split("."))
    assert found == value
    parsed: Any = None
    try:
        parsed = json.loads(line)
        for part in field.split("."):
            parsed = parsed.get(part) if isinstance(parsed, dict) else None
    except ValueError:
        parsed = None
    assert found == parsed


def test_stats_run_on_the_oldest_python3_the_scanner_supports(tmp_path):
    """The stats code runs where the logs are: Python 3.7 (through pyenv; skipped without)."""
    found = sorted(Path.home().glob(".pyenv/versions/3.7*/bin/python3.7"))
    if not found:
        pytest.skip("no Python 3.7 on this machine (pyenv install 3.7)")
    now = time.time()
    recent = access_log(tmp_path / "bad.jsonl", now, bad=True)
    spec = {"window": 7200, "direction": "above", "pattern": None}
    request = {
        "mode": "count",
        "paths": [str(tmp_path / "bad.jsonl")],
        "format": "json",
        "patterns": [],
        "stats": [
            {**spec, "name": "p", "stat": "p95", "field": "duration_ms", "group_by": None},
            {**spec, "name": "ip", "stat": "count", "field": None, "group_by": "client_ip"},
        ],
    }
    ran = subprocess.run(
        [str(found[-1]), str(probes.SCANNER), json.dumps(request)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    stats = json.loads(ran.stdout)["aggregated"]["stats"]
    assert stats["p"]["value"] == pytest.approx(p95([float(r["duration_ms"]) for r in recent]))
    assert stats["p"]["non_numeric"] == 1
    assert stats["ip"]["groups"][0] == ["203.0.113.66", 60.0, 60]
