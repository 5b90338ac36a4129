"""Bad configuration files (issue 9, group 5): each stops the run at start-up, exit code 4, with
one line naming the file and the key, ``file: key.path: expected ..., got ...``, and never a
traceback.

``BAD_CONFIGS`` is the corpus: (inventory.toml, thresholds.toml, the one line the operator reads).
Every case goes through ``opscheck.config.load``, which the plugin calls in ``pytest_configure``
and whose ``ConfigError`` becomes pytest's usage error (exit 4): milliseconds per case. A handful
run pytest end to end (``END_TO_END``: the encodings among them), and the bases every case starts
from load cleanly, so each case fails for its own mistake only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import certifi
import pytest

from opscheck import config as cfg
from opscheck.checks import CHECKS

REPO = Path(__file__).resolve().parents[1]
# The check ids of the suites, as the plugin reads them at start-up (selection mistakes need them).
CHECK_IDS = {
    f"{module.parent.name}.{name}"
    for module in (REPO / "suites").glob("*/test_*.py")
    for name in re.findall(r"^(?:async )?def test_(\w+)", module.read_text(), re.M)
}
# thresholds.toml sets levels of numeric checks only: yes/no checks take none.
HOST_CHECKS = ", ".join(
    sorted(k for k, spec in CHECKS.items() if k.startswith("host.") and spec.kind != "state")
)
BUILT_IN = "'morning', 'midday', 'evening', 'weekly', 'monthly'"

# The bases the cases start from; each loads cleanly (test_the_bases_load). `{tmp}` is the
# test's folder, holding `id_ed25519` (a key file, not a CA bundle).
HOST = '[[host]]\nname = "web1"\n'
SSH = '[[host]]\nname = "web1"\nuri = "ssh://ops@web1.internal"\n'
HTTP = '[[http]]\nname = "api"\nurl = "http://127.0.0.1:1/health"\n'
HTTPS = '[[http]]\nname = "api"\nurl = "https://api.internal/health"\n'
REDIS = '[[redis]]\nname = "cache"\n'
PG = '[[postgres]]\nname = "main"\ndsn = "host=db.internal dbname=app user=opscheck"\n'
SQLITE = '[[sqlite]]\nname = "app"\npath = "/srv/app.db"\n'
LOGS = '[[logs]]\nname = "app"\npath = "/var/log/app.log"\n'
FILES = '[[backup]]\nname = "nightly"\npath = "/backups/{date:%Y%m%d}/*.dump"\n'
S3_KEYS = 'access_key_id_env = "S3_KEY_ID", secret_access_key_env = "S3_SECRET"'
S3 = '[[backup]]\nname = "pg-s3"\ns3 = { bucket = "backups", ' + S3_KEYS + " }\n"
RESTORE = FILES + '[backup.restore]\ndsn = "host=staging-db user=restore"\n'

# (inventory.toml, thresholds.toml, the one line the operator reads); bytes are written as they
# are (encodings), text as UTF-8.
BAD_CONFIGS: dict[str, tuple[str | bytes, str | bytes, str]] = {
    # -- keys, types, units, names, schedules, selection, levels ----------------------------
    "unknown key, did you mean": (
        HTTP + "expected_status = [200]\n",
        "",
        "inventory.toml: http[0].expected_status: unknown key (did you mean 'expect_status'?)",
    ),
    "unknown key in a host": (
        HOST + HOST.replace("web1", "web2") + 'service = ["nginx"]\n',
        "",
        "inventory.toml: host[1].service: unknown key (did you mean 'services'?)",
    ),
    # [[host.commands]]: the operator's own commands (suites/host/test_host_commands.py)
    "command without run": (
        HOST + '[[host.commands]]\nname = "upgrades"\n',
        "",
        "inventory.toml: host[0].commands[0].run: required key is missing",
    ),
    "command regex without a group": (
        HOST + '[[host.commands]]\nname = "up"\nrun = "apt list"\nregex = "upgradable"\ncrit = 9\n',
        "",
        "inventory.toml: host[0].commands[0].regex: expected a regex with exactly one group around "
        "the number, such as '(\\d+) upgradable', got 'upgradable' (0 groups)",
    ),
    "command number without levels": (
        HOST + '[[host.commands]]\nname = "up"\nrun = "apt list"\nregex = "(\\\\d+) up"\n',
        "",
        "inventory.toml: host[0].commands[0]: expected warn and/or crit for a number printed by "
        "the command (or leave out regex, unit and count to judge the exit status only)",
    ),
    "command json and levels": (
        HOST + '[[host.commands]]\nname = "audit"\nrun = "npm audit --json"\njson = { ok = true }'
        "\ncrit = 1\n",
        "",
        "inventory.toml: host[0].commands[0]: expected json/json_limits/json_checks or a number "
        "(warn, crit, regex, unit, count), not both",
    ),
    "command json_checks levels crossed": (
        HOST + '[[host.commands]]\nname = "audit"\nrun = "npm audit --json"\njson_checks = '
        '[{ path = "metadata.vulnerabilities.high", warn = 5, crit = 1 }]\n',
        "",
        "inventory.toml: host[0].commands[0].json_checks[0]: warn 5 is above crit 1: warn must be "
        "below crit",
    ),
    "command count not lines": (
        HOST + '[[host.commands]]\nname = "big"\nrun = "ls"\ncount = "words"\ncrit = 1\n',
        "",
        "inventory.toml: host[0].commands[0].count: expected 'lines', got 'words'",
    ),
    "command exit status out of range": (
        HOST + '[[host.commands]]\nname = "ls"\nrun = "ls"\nexpect_exit = [0, 256]\n',
        "",
        "inventory.toml: host[0].commands[0].expect_exit[1]: expected an exit status 0-255, "
        "got 256",
    ),
    "command timeout beyond the limit": (
        HOST + '[[host.commands]]\nname = "ls"\nrun = "ls"\ntimeout = "10m"\n',
        "",
        "inventory.toml: host[0].commands[0].timeout: expected a duration up to 4m (a check is "
        "stopped after 5m), got '10m'",
    ),
    "command duplicate name": (
        HOST + '[[host.commands]]\nname = "ls"\nrun = "ls"\n[[host.commands]]\nname = "ls"\n'
        'run = "true"\n',
        "",
        "inventory.toml: host[0].commands: duplicate command 'ls' (entries 0 and 1; its name is "
        "the test id)",
    ),
    "command warn past crit": (
        HOST + '[[host.commands]]\nname = "n"\nrun = "echo 1"\nwarn = 10\ncrit = 5\n',
        "",
        "inventory.toml: host[0].commands[0]: warn 10 is above crit 5: warn must be below crit",
    ),
    "command unit unknown": (
        HOST + '[[host.commands]]\nname = "n"\nrun = "echo 1"\nunit = "kg"\ncrit = 5\n',
        "",
        "inventory.toml: host[0].commands[0].unit: expected 'number', 'seconds', 'bytes' or "
        "'percent', got 'kg'",
    ),
    "command unset variable in run": (
        HOST + '[[host.commands]]\nname = "n"\nrun = "echo $HOME $(date) ${NOPE_UNSET}"\n',
        "",
        "inventory.toml: host[0].commands[0].run: environment variable NOPE_UNSET is not set",
    ),
    "unknown key, known keys": (
        "[settings]\nretries = 3\n",
        "",
        "inventory.toml: settings.retries: unknown key (expected one of: timeout, history, "
        "waivers, recheck, notify, heartbeat, pushgateway, schedules, schedule, skip)",
    ),
    "unknown top-level table": (
        '[[hosts]]\nname = "web1"\n',
        "",
        "inventory.toml: hosts: unknown table (did you mean 'host'?)",
    ),
    "wrong type": (
        HTTP + 'samples = "ten"\n',
        "",
        "inventory.toml: http[0].samples: expected an integer, got 'ten'",
    ),
    "no lax coercion of strings": (
        HOST + 'sudo = "yes"\n',
        "",
        "inventory.toml: host[0].sudo: expected true or false, got 'yes'",
    ),
    "negative samples": (
        HTTP + "samples = -1\n",
        "",
        "inventory.toml: http[0].samples: expected a number >= 0, got -1",
    ),
    "unparsable duration": (
        HTTP + 'timeout = "5 sec"\n',
        "",
        "inventory.toml: http[0].timeout: expected a duration such as '500ms', '5s', '26h' or "
        "'7d', got '5 sec' (unknown unit 'sec'; known: ms, s, m, min, h, d, w)",
    ),
    "bare number for a duration": (
        "[settings]\ntimeout = 5\n",
        "",
        "inventory.toml: settings.timeout: expected a duration such as '500ms', '5s', '26h' or "
        "'7d' (with a unit), got 5",
    ),
    "zero duration": (
        HOST + 'cpu_sample = "0s"\n',
        "",
        "inventory.toml: host[0].cpu_sample: expected a duration above zero such as '5s', got '0s'",
    ),
    "union field, list item": (
        HOST + "ports = [22, 1.5]\n",
        "",
        "inventory.toml: host[0].ports[1]: expected an integer or a string, got 1.5",
    ),
    "interface name with a space": (
        HOST + 'interfaces = ["eth 0"]\n',
        "",
        "inventory.toml: host[0].interfaces[0]: expected a network interface name such as "
        "'eth0', got 'eth 0'",
    ),
    "listener port out of range": (
        HOST + "listening = [22, 70000]\n",
        "",
        "inventory.toml: host[0].listening[1]: expected a port 1-65535, got 70000",
    ),
    "listener with a host name": (
        HOST + 'listening = ["localhost:5432"]\n',
        "",
        "inventory.toml: host[0].listening[0]: expected a port such as 22, or an address and "
        "port such as '127.0.0.1:5432' or '[::1]:5432', got 'localhost:5432'",
    ),
    "IPv6 listener without brackets": (
        HOST + 'listening = ["::1:5432"]\n',
        "",
        "inventory.toml: host[0].listening[0]: expected a port such as 22, or an address and "
        "port such as '127.0.0.1:5432' or '[::1]:5432', got '::1:5432'",
    ),
    "process limit, misspelt key": (
        HOST + 'processes = [{ name = "node", max_mem = "2GB" }]\n',
        "",
        "inventory.toml: host[0].processes[0].max_mem: unknown key (did you mean 'max_memory'?)",
    ),
    "process limit, size without a known unit": (
        HOST + 'processes = [{ name = "node", max_memory = "2 gigs" }]\n',
        "",
        "inventory.toml: host[0].processes[0].max_memory: expected a size such as '512KB', "
        "'10MB', '2GiB', got '2 gigs' (unknown unit 'gigs'; known: B, KB, MB, GB, TB, KiB, MiB, "
        "GiB, TiB)",
    ),
    "process limit, zero CPU": (
        HOST + 'processes = [{ name = "node", max_cpu = 0 }]\n',
        "",
        "inventory.toml: host[0].processes[0].max_cpu: expected a CPU share above zero such as "
        "80 or '80%', got 0",
    ),
    "process limit, path for a name": (
        HOST + 'processes = [{ name = "/usr/bin/node" }]\n',
        "",
        "inventory.toml: host[0].processes[0].name: expected a process name as `ps -o comm` "
        "shows it, got '/usr/bin/node'",
    ),
    "process limit without a name": (
        HOST + 'processes = [{ max_memory = "2GB" }]\n',
        "",
        "inventory.toml: host[0].processes[0].name: required key is missing",
    ),
    "process limit twice": (
        HOST + 'processes = [{ name = "node" }, { name = "node", max_cpu = 50 }]\n',
        "",
        "inventory.toml: host[0].processes: duplicate process 'node' (entries 0 and 1)",
    ),
    "union field, scalar": (
        HTTP + "verify = 3\n",
        "",
        "inventory.toml: http[0].verify: expected a boolean (true/false) or a string, got 3",
    ),
    "duplicate target names": (
        HOST + HOST,
        "",
        "inventory.toml: host[1].name: duplicate target name 'web1' (also host[0])",
    ),
    "name unusable as a test id": (
        '[[host]]\nname = "web 1"\n',
        "",
        "inventory.toml: host[0].name: expected a name of letters, digits and _ . : @ / - "
        "(it becomes the test id), got 'web 1'",
    ),
    "missing required key": (
        '[[http]]\nname = "api"\n',
        "",
        "inventory.toml: http[0].url: required key is missing",
    ),
    "non-http URL": (
        '[[http]]\nname = "api"\nurl = "ftp://files.example.com/"\n',
        "",
        "inventory.toml: http[0].url: expected an http:// or https:// URL, "
        "got 'ftp://files.example.com/'",
    ),
    "bad testinfra URI": (
        '[[host]]\nname = "web1"\nuri = "web1.example.com"\n',
        "",
        "inventory.toml: host[0].uri: expected a testinfra URI such as 'local://' or "
        "'ssh://user@host', got 'web1.example.com'",
    ),
    "invalid TOML": (
        HOST + 'uri = "local://\n',
        "",
        "inventory.toml: not valid TOML: Illegal character '\\n' (at line 3, column 16)",
    ),
    "bad schedule name": (
        HOST + '[settings.schedule]\n"host.disk_used_below_limit" = ["dayly"]\n',
        "",
        'inventory.toml: settings.schedule."host.disk_used_below_limit"[0]: expected a schedule: '
        f"{BUILT_IN} or one declared in settings.schedules, got 'dayly'",
    ),
    "empty schedule list": (
        HOST + '[settings.schedule]\n"host.disk_used_below_limit" = []\n',
        "",
        'inventory.toml: settings.schedule."host.disk_used_below_limit": expected at least one '
        "schedule (to switch a check off, list it in settings.skip)",
    ),
    "custom schedule named like a built-in one": (
        '[settings]\nschedules = ["every-2h", "morning"]\n' + HOST,
        "",
        "inventory.toml: settings.schedules[1]: expected a new schedule name, got 'morning' "
        "(a built-in schedule)",
    ),
    "custom schedule named like a component": (
        '[settings]\nschedules = ["http"]\n' + HOST,
        "",
        "inventory.toml: settings.schedules[0]: expected a new schedule name, got 'http' "
        "(a component)",
    ),
    "custom schedule named like a category": (
        '[settings]\nschedules = ["security"]\n' + HOST,
        "",
        "inventory.toml: settings.schedules[0]: expected a new schedule name, got 'security' "
        "(a category)",
    ),
    "custom schedule name unusable as a marker": (
        '[settings]\nschedules = ["Every 2h"]\n' + HOST,
        "",
        "inventory.toml: settings.schedules[0]: expected a schedule name of lowercase letters, "
        "digits, - and _ (it becomes a marker: pytest -m NAME), got 'Every 2h'",
    ),
    "custom schedule declared twice": (
        '[settings]\nschedules = ["every-2h", "every-2h"]\n' + HOST,
        "",
        "inventory.toml: settings.schedules: duplicate schedule 'every-2h'",
    ),
    "custom schedule used, not declared": (
        HOST + 'schedules = ["every-2h"]\n',
        "",
        f"inventory.toml: host[0].schedules[0]: expected a schedule: {BUILT_IN} or one declared "
        "in settings.schedules, got 'every-2h'",
    ),
    "custom schedule typo": (
        '[settings]\nschedules = ["every-2h"]\n'
        + HOST
        + '[settings.schedule]\n"host.disk_used_below_limit" = ["every-2hr"]\n',
        "",
        'inventory.toml: settings.schedule."host.disk_used_below_limit"[0]: expected a schedule: '
        f"{BUILT_IN}, 'every-2h' or one declared in settings.schedules, got 'every-2hr' "
        "(did you mean 'every-2h'?)",
    ),
    "target in no schedule": (
        HOST + "schedules = []\n",
        "",
        "inventory.toml: host[0].schedules: expected at least one schedule (to switch the target "
        "off, remove it from the inventory)",
    ),
    "target with checks and skip": (
        HOST + 'checks = ["host.host_reachable"]\nskip = ["host.disk_used_below_limit"]\n',
        "",
        "inventory.toml: host[0]: expected checks (only these run) or skip (all but these), "
        "not both",
    ),
    "target with an empty checks list": (
        HOST + "checks = []\n",
        "",
        "inventory.toml: host[0].checks: expected at least one check id (leave checks out to run "
        "every check of the target)",
    ),
    "unknown check in settings.skip": (
        '[settings]\nskip = ["host.cpu_busy_below_limt"]\n' + HOST,
        "",
        "inventory.toml: settings.skip[0]: no such check "
        "(did you mean 'host.cpu_busy_below_limit'?)",
    ),
    "check skipped twice": (
        '[settings]\nskip = ["host.cpu_busy_below_limit", "host.cpu_busy_below_limit"]\n' + HOST,
        "",
        "inventory.toml: settings.skip: duplicate check id 'host.cpu_busy_below_limit'",
    ),
    "target skips a check of another component": (
        HOST + 'skip = ["http.status_expected"]\n',
        "",
        "inventory.toml: host[0].skip[0]: http.status_expected is a check of [[http]] targets, "
        "not [[host]]",
    ),
    "target checks typo": (
        HTTP + 'checks = ["http.status_expected", "http.latency_p59_below_limit"]\n',
        "",
        "inventory.toml: http[0].checks[1]: no such check "
        "(did you mean 'http.latency_p95_below_limit'?)",
    ),
    "unknown check in schedule": (
        HOST + '[settings.schedule]\n"host.disk_below_limit" = ["weekly"]\n',
        "",
        'inventory.toml: settings.schedule."host.disk_below_limit": no such check '
        "(did you mean 'host.disk_used_below_limit'?)",
    ),
    "json_limits level with a unit": (
        HTTP + '[http.json_limits.queue]\nwarn = "100 items"\n',
        "",
        "inventory.toml: http[0].json_limits.queue.warn: expected a number, got '100 items'",
    ),
    "json_limits key typo": (
        HTTP + "[http.json_limits.queue]\nwran = 100\n",
        "",
        "inventory.toml: http[0].json_limits.queue.wran: unknown key (did you mean 'warn'?)",
    ),
    # issue 12: request bodies, not_contains, json_checks (JMESPath)
    "json_body with GET": (
        HTTP + 'json_body = { query = "x" }\n',
        "",
        'inventory.toml: http[0]: expected method = "POST", "PUT" or "PATCH" to send '
        "json_body, got GET",
    ),
    "json_body and data": (
        HTTP + 'method = "POST"\njson_body = { query = "x" }\ndata = "q=x"\n',
        "",
        "inventory.toml: http[0]: expected json_body or data (one request body), got both",
    ),
    "data not text": (
        HTTP + 'method = "POST"\ndata = 3\n',
        "",
        "inventory.toml: http[0].data: expected a string, got 3",
    ),
    "params not a table": (
        HTTP + 'params = "limit=5"\n',
        "",
        "inventory.toml: http[0].params: expected a table, got 'limit=5'",
    ),
    "params value a list": (
        HTTP + 'params = { tag = ["a"] }\n',
        "",
        "inventory.toml: http[0].params.tag: expected a string, a number or a boolean "
        "(true/false), got ['a']",
    ),
    "not_contains empty": (
        HTTP + 'not_contains = [""]\n',
        "",
        "inventory.toml: http[0].not_contains: expected non-empty text (every body contains "
        "''), got ''",
    ),
    "json_checks no path": (
        HTTP + "[[http.json_checks]]\nempty = true\n",
        "",
        "inventory.toml: http[0].json_checks[0].path: required key is missing",
    ),
    "json_checks bad JMESPath": (
        HTTP + '[[http.json_checks]]\npath = "items[?state == up"\nempty = true\n',
        "",
        "inventory.toml: http[0].json_checks[0].path: expected a JMESPath expression, got "
        "'items[?state == up' (incomplete expression at character 19)",
    ),
    "json_checks nothing to check": (
        HTTP + '[[http.json_checks]]\npath = "alerts"\n',
        "",
        "inventory.toml: http[0].json_checks[0]: expected what to check: equals, empty, any, "
        "all, none, or warn/crit levels (with aggregate or of)",
    ),
    "json_checks two kinds": (
        HTTP + '[[http.json_checks]]\npath = "alerts"\nempty = true\nall = "state == \'ok\'"\n',
        "",
        "inventory.toml: http[0].json_checks[0]: expected one of equals, empty, any, all, "
        "none, got empty and all",
    ),
    "json_checks fact with levels": (
        HTTP + '[[http.json_checks]]\npath = "alerts"\nempty = true\ncrit = 0\n',
        "",
        "inventory.toml: http[0].json_checks[0]: expected empty alone (a yes/no check) or "
        "warn/crit levels, got empty with crit",
    ),
    "json_checks bad aggregate": (
        HTTP + '[[http.json_checks]]\npath = "x"\naggregate = "median"\ncrit = 1\n',
        "",
        "inventory.toml: http[0].json_checks[0].aggregate: expected 'length', 'max', 'min', "
        "'sum' or 'avg', got 'median'",
    ),
    "json_checks aggregate and of": (
        HTTP + '[[http.json_checks]]\npath = "x"\naggregate = "sum"\nof = "y"\ncrit = 1\n',
        "",
        "inventory.toml: http[0].json_checks[0]: expected aggregate or of (a ratio of two "
        "numbers), not both",
    ),
    "json_checks bad condition": (
        HTTP + '[[http.json_checks]]\npath = "x"\nany = "state =="\n',
        "",
        "inventory.toml: http[0].json_checks[0].any: expected a JMESPath expression, got "
        "'state ==' (incomplete expression at character 9)",
    ),
    "json_checks inverted": (
        HTTP + '[[http.json_checks]]\npath = "x"\nwarn = 9\ncrit = 5\n',
        "",
        "inventory.toml: http[0].json_checks[0]: warn 9 is above crit 5: warn must be below crit",
    ),
    "json_checks level with unit": (
        HTTP + '[[http.json_checks]]\npath = "x"\ncrit = "5 %"\n',
        "",
        "inventory.toml: http[0].json_checks[0].crit: expected a number, got '5 %'",
    ),
    "json_checks typo": (
        HTTP + '[[http.json_checks]]\npath = "x"\ncrit = 5\ndirecton = "below"\n',
        "",
        "inventory.toml: http[0].json_checks[0].directon: unknown key (did you mean 'direction'?)",
    ),
    "json_checks aggregate without levels": (
        HTTP + '[[http.json_checks]]\npath = "x"\naggregate = "max"\n',
        "",
        "inventory.toml: http[0].json_checks[0]: expected warn or crit levels to judge "
        "aggregate by, got none",
    ),
    "bad percent level": (
        HOST,
        '[host.disk_used_pct]\ncrit = "80 percent"\n',
        "thresholds.toml: host.disk_used_pct.crit: expected a percentage such as '80%', "
        "got '80 percent' (unknown unit 'percent'; known: %)",
    ),
    "bad size level": (
        HOST,
        '[host.log_dir_size]\nwarn = "2 gigs"\n',
        "thresholds.toml: host.log_dir_size.warn: expected a size such as '512KB', '10MB', "
        "'2GiB', got '2 gigs' (unknown unit 'gigs'; known: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)",
    ),
    "negative level": (
        HOST,
        '[host.memory_used_pct]\nwarn = "-5%"\n',
        "thresholds.toml: host.memory_used_pct.warn: expected a percentage such as '80%', "
        "got '-5%' (negative)",
    ),
    "level of the wrong type": (
        HOST,
        "[host.disk_used_pct]\nwarn = [70]\n",
        "thresholds.toml: host.disk_used_pct.warn: expected a string or a number, got [70]",
    ),
    "bad direction": (
        HOST,
        '[host.disk_used_pct]\ndirection = "up"\n',
        "thresholds.toml: host.disk_used_pct.direction: expected 'above' or 'below', got 'up'",
    ),
    "unknown check in thresholds": (
        HOST,
        '[host.disk_usage]\ncrit = "80%"\n',
        f"thresholds.toml: host.disk_usage: unknown check (did you mean 'host.disk_used_pct'? "
        f"known: {HOST_CHECKS})",
    ),
    "unknown component in thresholds": (
        HOST,
        '[hosts.disk_used_pct]\ncrit = "80%"\n',
        "thresholds.toml: hosts: unknown component (did you mean 'host'? "
        "known: host, http, postgres, redis, sqlite, logs, backup, prometheus, alertmanager, "
        "metrics, docker, kubernetes, websocket, growth)",
    ),
    "check written as a key, not a table": (
        HOST,
        '[host]\ndisk_used_pct = "80%"\n',
        "thresholds.toml: host.disk_used_pct: expected a table such as [host.disk_used_pct] "
        "with warn and crit levels, got '80%'",
    ),
    "override for an unknown target": (
        HOST,
        '[host.disk_used_pct.targets.web2]\ncrit = "90%"\n',
        "thresholds.toml: host.disk_used_pct.targets.web2: no host target named 'web2' in "
        "inventory.toml (did you mean 'web1'?)",
    ),
    "override key typo": (
        HOST,
        '[host.disk_used_pct.targets.web1]\ncrti = "90%"\n',
        "thresholds.toml: host.disk_used_pct.targets.web1.crti: unknown key (did you mean 'crit'?)",
    ),
    "level above 100 % of a capacity": (
        HOST,
        '[host.disk_used_pct]\ncrit = "800%"\n',
        "thresholds.toml: host.disk_used_pct.crit: 800 % can never be reached: "
        "host.disk_used_pct is a share of capacity (0-100 %)",
    ),
    "level above 100 % for a share that looks below": (
        REDIS,
        '[redis.hit_ratio]\nwarn = "150%"\n',
        "thresholds.toml: redis.hit_ratio.warn: 150 % would fire on every value: "
        "redis.hit_ratio is a share of capacity (0-100 %)",
    ),
    "negative level of a count": (
        HOST,
        "[host.load_per_core]\nwarn = -1\n",
        "thresholds.toml: host.load_per_core.warn: -1 would fire on every value: "
        "host.load_per_core is never negative",
    ),
    "negative inline queue level": (
        REDIS + 'queues = [{ key = "emails", warn = -5 }]\n',
        "",
        "inventory.toml: redis[0].queues[0].warn: -5 would fire on every value: "
        "redis.queue_depth is never negative",
    ),
    "negative restore minimum": (
        '[[backup]]\nname = "pg"\npath = "/backups/*.dump"\n'
        '[backup.restore]\ndsn = "host=staging-db"\n'
        '[[backup.restore.queries]]\nname = "orders"\nsql = "SELECT 1"\nmin = -1\n',
        "",
        "inventory.toml: backup[0].restore.queries[0].min: -1 can never be reached: "
        "backup.restore_rows is never negative",
    ),
    "warn above crit": (
        HOST,
        '[host.disk_used_pct]\nwarn = "90%"\ncrit = "80%"\n',
        "thresholds.toml: host.disk_used_pct: warn 90 % is above crit 80 %: "
        "warn must be below crit",
    ),
    "warn below crit where lower is worse": (
        HTTP,
        "[http.cert_days]\nwarn = 7\ncrit = 14\n",
        "thresholds.toml: http.cert_days: warn 7 days is below crit 14 days: warn must be above "
        'crit (direction "below": lower is worse)',
    ),
    "override warn above the file's crit": (
        HOST,
        '[host.disk_used_pct]\ncrit = "85%"\n[host.disk_used_pct.targets.web1]\nwarn = "90%"\n',
        "thresholds.toml: host.disk_used_pct.targets.web1.warn: warn 90 % is above crit 85 % "
        "(host.disk_used_pct): warn must be below crit",
    ),
    "direction flipped under the default levels": (
        HOST,
        '[host.load_per_core]\ndirection = "below"\n',
        "thresholds.toml: host.load_per_core.direction: warn 1 is below crit 2 (the default): "
        'warn must be above crit (direction "below": lower is worse)',
    ),
    "inverted queue levels": (
        REDIS + 'queues = [{ key = "emails", warn = 1000, crit = 100 }]\n',
        "",
        "inventory.toml: redis[0].queues[0]: warn 1000 is above crit 100: warn must be below crit",
    ),
    "inline crit below the thresholds file's warn": (
        REDIS + 'queues = [{ bullmq = "mail", crit = 10 }]\n',
        "[redis.queue_depth]\nwarn = 50\ncrit = 60\n",
        "inventory.toml: redis[0].queues[0].crit: crit 10 is below warn 50 (thresholds.toml "
        "redis.queue_depth): warn must be below crit",
    ),
    "inverted json_limits": (
        HTTP + "[http.json_limits.connections]\nwarn = 90\ncrit = 80\n",
        "",
        "inventory.toml: http[0].json_limits.connections: warn 90 is above crit 80: "
        "warn must be below crit",
    ),
    "inverted user query levels": (
        '[[postgres]]\nname = "main"\ndsn = "host=db"\n'
        '[[postgres.queries]]\nname = "pending"\nsql = "SELECT 1"\nwarn = 100\ncrit = 50\n',
        "",
        "inventory.toml: postgres[0].queries[0]: warn 100 is above crit 50: "
        "warn must be below crit",
    ),
    "inverted table row levels": (
        '[[sqlite]]\nname = "app"\npath = "/app.db"\n'
        "[sqlite.tables.orders]\nwarn = 10\ncrit = 100\n",
        "",
        "inventory.toml: sqlite[0].tables.orders: warn 10 is below crit 100: warn must be above "
        'crit (direction "below": lower is worse)',
    ),
    "inverted log pattern levels": (
        '[[logs]]\nname = "app"\npath = "/var/log/app.log"\n'
        '[[logs.patterns]]\nname = "errors"\npreset = "errors"\nwarn = 50\ncrit = 10\n',
        "",
        "inventory.toml: logs[0].patterns[0]: warn 50 is above crit 10: warn must be below crit",
    ),
    "levels for a yes/no check": (
        HOST,
        "[host.services]\nwarn = 1\n",
        "thresholds.toml: host.services: host.services is a yes/no check: it takes no warn/crit",
    ),
    "override levels for a yes/no check": (
        HTTP,
        "[http.status.targets.api]\ncrit = 1\n",
        "thresholds.toml: http.status.targets.api: http.status is a yes/no check: "
        "it takes no warn/crit",
    ),
    "header variable not set": (
        HTTP + '[http.headers]\nAuthorization = "Bearer ${API_TOKEN}"\n',
        "",
        "inventory.toml: http[0].headers.Authorization: environment variable API_TOKEN is not set",
    ),
    # -- the files themselves: encoding and invisible characters --------------------------
    "non-UTF-8 byte in a value": (
        b'[[host]]\nname = "web1"\nservices = ["caf\xe9"]\n',
        "",
        "inventory.toml: host[0].services[0]: expected UTF-8 text, got the byte 0xE9 ('é' in "
        "Windows-1252) at line 3, column 17 (save the file as UTF-8)",
    ),
    "non-UTF-8 byte in a comment": (
        b"# Caf\xe9 servers\n" + HOST.encode(),
        "",
        "inventory.toml: expected UTF-8 text, got the byte 0xE9 ('é' in Windows-1252) at line 1, "
        "column 6 (save the file as UTF-8)",
    ),
    "non-UTF-8 byte in a key": (
        b'[[http]]\nname = "api"\nurl = "http://a/"\n[http.headers]\n"X-Caf\xe9" = "1"\n',
        "",
        "inventory.toml: http[0].headers: expected UTF-8 text, got the byte 0xE9 ('é' in "
        "Windows-1252) at line 5, column 7 (save the file as UTF-8)",
    ),
    "non-UTF-8 thresholds": (
        HOST,
        b'# r\xe9glages\n[host.disk_used_pct]\ncrit = "90%"\n',
        "thresholds.toml: expected UTF-8 text, got the byte 0xE9 ('é' in Windows-1252) at line 1, "
        "column 4 (save the file as UTF-8)",
    ),
    "byte-order mark": (
        b"\xef\xbb\xbf" + HOST.encode(),
        "",
        "inventory.toml: expected UTF-8 text without a byte-order mark, got one (EF BB BF) at the "
        "start (save the file as UTF-8 without BOM)",
    ),
    "byte-order mark in thresholds": (
        HOST,
        b'\xef\xbb\xbf[host.disk_used_pct]\ncrit = "90%"\n',
        "thresholds.toml: expected UTF-8 text without a byte-order mark, got one (EF BB BF) at "
        "the start (save the file as UTF-8 without BOM)",
    ),
    "UTF-16 file": (
        HOST.encode("utf-16"),
        "",
        "inventory.toml: expected UTF-8 text, got UTF-16 (it starts with FF FE) (save the file as "
        "UTF-8)",
    ),
    "zero-width space in a key": (
        '[[host]]\nname = "web1"\n"mou\u200bnts" = ["/"]\n',
        "",
        'inventory.toml: host[0]."mou\\u200bnts": expected a key of visible characters, got '
        '"mou\\u200bnts" (U+200B ZERO WIDTH SPACE)',
    ),
    "zero-width space in a bare key": (
        HOST + "po\u200brts = [22]\n",
        "",
        "inventory.toml: expected visible characters, got U+200B ZERO WIDTH SPACE at line 3, "
        "column 3: po\\u200brts = [22]",
    ),
    "zero-width space in a table header": (
        '[[ho\u200bst]]\nname = "web1"\n',
        "",
        "inventory.toml: expected visible characters, got U+200B ZERO WIDTH SPACE at line 1, "
        "column 5: [[ho\\u200bst]]",
    ),
    "zero-width space in a header name": (
        HTTP + '[http.headers]\n"X-To\u200bken" = "abc"\n',
        "",
        'inventory.toml: http[0].headers."X-To\\u200bken": expected a key of visible characters, '
        'got "X-To\\u200bken" (U+200B ZERO WIDTH SPACE)',
    ),
    "zero-width space in a value": (
        '[[http]]\nname = "api"\nurl = "http://api\u200b.internal/health"\n',
        "",
        "inventory.toml: http[0].url: expected text without invisible characters, got "
        "'http://api\\u200b.internal/health' (U+200B ZERO WIDTH SPACE)",
    ),
    "right-to-left override in a value": (
        HOST + 'services = ["nginx\u202e"]\n',
        "",
        "inventory.toml: host[0].services[0]: expected text without invisible characters, got "
        "'nginx\\u202e' (U+202E RIGHT-TO-LEFT OVERRIDE)",
    ),
    "NUL in a path": (
        SQLITE.replace("/srv/app.db", "/srv/app\\u0000.db"),
        "",
        "inventory.toml: sqlite[0].path: expected text without invisible characters, got "
        "'/srv/app\\x00.db' (U+0000 CONTROL CHARACTER)",
    ),
    "invisible character in a thresholds key": (
        HOST,
        '[host.disk_used_pct.targets."web1\u200b"]\ncrit = "90%"\n',
        'thresholds.toml: host.disk_used_pct.targets."web1\\u200b": expected a key of visible '
        'characters, got "web1\\u200b" (U+200B ZERO WIDTH SPACE)',
    ),
    # -- host --------------------------------------------------------------------------------
    "port given by service name": (
        HOST + 'ports = ["https"]\n',
        "",
        "inventory.toml: host[0].ports[0]: expected a port such as 22, 'tcp://127.0.0.1:5432', "
        "'udp://53' or 'unix:///run/app.sock', got 'https'",
    ),
    "port out of range": (
        HOST + "ports = [70000]\n",
        "",
        "inventory.toml: host[0].ports[0]: expected a port 1-65535, got 70000",
    ),
    "port zero": (
        HOST + "ports = [0]\n",
        "",
        "inventory.toml: host[0].ports[0]: expected a port 1-65535, got 0",
    ),
    "port spec with a host name": (
        HOST + 'ports = ["tcp://localhost:5432"]\n',
        "",
        "inventory.toml: host[0].ports[0]: expected a port such as 22, 'tcp://127.0.0.1:5432', "
        "'udp://53' or 'unix:///run/app.sock', got 'tcp://localhost:5432'",
    ),
    "port spec with an unknown protocol": (
        HOST + 'ports = ["sctp://9899"]\n',
        "",
        "inventory.toml: host[0].ports[0]: expected a port such as 22, 'tcp://127.0.0.1:5432', "
        "'udp://53' or 'unix:///run/app.sock', got 'sctp://9899'",
    ),
    "port listed twice": (
        HOST + "ports = [22, 443, 22]\n",
        "",
        "inventory.toml: host[0].ports: duplicate port 22 (entries 0 and 2)",
    ),
    "reachable port out of range": (
        HOST + 'reachable = ["h:99999"]\n',
        "",
        "inventory.toml: host[0].reachable[0]: expected 'host:port' with a port 1-65535, got "
        "'h:99999'",
    ),
    "reachable without a port": (
        HOST + 'reachable = ["db.internal"]\n',
        "",
        "inventory.toml: host[0].reachable[0]: expected 'host:port' with a port 1-65535, got "
        "'db.internal'",
    ),
    "reachable with a service name": (
        HOST + 'reachable = ["db.internal:postgres"]\n',
        "",
        "inventory.toml: host[0].reachable[0]: expected 'host:port' with a port 1-65535, got "
        "'db.internal:postgres'",
    ),
    "ssh URI without a host": (
        HOST + 'uri = "ssh://"\n',
        "",
        "inventory.toml: host[0].uri: expected a host after ssh://, such as 'ssh://user@host', "
        "got 'ssh://'",
    ),
    "ssh URI with a user but no host": (
        HOST + 'uri = "ssh://ops@"\n',
        "",
        "inventory.toml: host[0].uri: expected a host after ssh://, such as 'ssh://user@host', "
        "got 'ssh://ops@'",
    ),
    "ssh URI port out of range": (
        HOST + 'uri = "ssh://web1:99999"\n',
        "",
        "inventory.toml: host[0].uri: expected a port 1-65535 after the host, got "
        "'ssh://web1:99999'",
    ),
    "kubectl URI naming a deployment": (
        HOST + 'uri = "kubectl://deployment/web?namespace=shop"\n',
        "",
        "inventory.toml: host[0].uri: expected one pod, as "
        "'kubectl://<pod>?namespace=<namespace>&container=<name>' (testinfra's kubectl backend "
        "names no deployment or other kind), got 'kubectl://deployment/web?namespace=shop'",
    ),
    "kubectl URI with a path": (
        HOST + 'uri = "kubectl://web-0/app"\n',
        "",
        "inventory.toml: host[0].uri: expected one pod, as "
        "'kubectl://<pod>?namespace=<namespace>&container=<name>' (testinfra's kubectl backend "
        "names no deployment or other kind), got 'kubectl://web-0/app'",
    ),
    "ssh URI naming a missing key file": (
        HOST + 'uri = "ssh://web1?ssh_identity_file={tmp}/missing_key"\n',
        "",
        "inventory.toml: host[0].uri: expected an existing file for ssh_identity_file, got "
        "'{tmp}/missing_key' (no such file)",
    ),
    "ssh_identity_file missing": (
        SSH + 'ssh_identity_file = "{tmp}/missing_key"\n',
        "",
        "inventory.toml: host[0].ssh_identity_file: expected an existing file, got "
        "'{tmp}/missing_key' (no such file)",
    ),
    "ssh_config is a directory": (
        SSH + 'ssh_config = "{tmp}"\n',
        "",
        "inventory.toml: host[0].ssh_config: expected an existing file, got '{tmp}' (a directory)",
    ),
    "ssh key for a local host": (
        HOST + 'ssh_identity_file = "{tmp}/id_ed25519"\n',
        "",
        "inventory.toml: host[0].ssh_identity_file: expected uri = 'ssh://…' for this key, got "
        "uri = 'local://'",
    ),
    "cpu_sample beyond the limit": (
        HOST + 'cpu_sample = "5m"\n',
        "",
        "inventory.toml: host[0].cpu_sample: expected a duration up to 30s (the check holds a "
        "command on the host open that long), got '5m'",
    ),
    "disk given as a path": (
        HOST + 'disks = ["/dev/sda"]\n',
        "",
        "inventory.toml: host[0].disks[0]: expected a block device name as /proc/diskstats "
        "shows it, such as 'sda', 'nvme0n1' or 'dm-0', got '/dev/sda'",
    ),
    "io_sample beyond the limit": (
        HOST + 'io_sample = "1m"\n',
        "",
        "inventory.toml: host[0].io_sample: expected a duration up to 30s (the check holds a "
        "command on the host open that long), got '1m'",
    ),
    "cpu_sample with a bad unit": (
        HOST + 'cpu_sample = "2 secs"\n',
        "",
        "inventory.toml: host[0].cpu_sample: expected a duration such as '500ms', '5s', '26h' or "
        "'7d', got '2 secs' (unknown unit 'secs'; known: ms, s, m, min, h, d, w)",
    ),
    "relative mount": (
        HOST + 'mounts = ["var"]\n',
        "",
        "inventory.toml: host[0].mounts[0]: expected an absolute path such as '/var/log', got "
        "'var'",
    ),
    "relative log directory": (
        HOST + 'log_dirs = ["logs/backend"]\n',
        "",
        "inventory.toml: host[0].log_dirs[0]: expected an absolute path such as '/var/log', got "
        "'logs/backend'",
    ),
    "two services in one entry": (
        HOST + 'services = ["nginx postgresql"]\n',
        "",
        "inventory.toml: host[0].services[0]: expected a systemd unit or process name, got 'nginx "
        "postgresql'",
    ),
    "service listed twice": (
        HOST + 'services = ["nginx", "nginx"]\n',
        "",
        "inventory.toml: host[0].services: duplicate service 'nginx' (entries 0 and 1)",
    ),
    "timeout beyond the limit": (
        HOST + 'timeout = "10m"\n',
        "",
        "inventory.toml: host[0].timeout: expected a duration up to 2m (every network call waits "
        "up to this long), got '10m'",
    ),
    "negative timeout": (
        HOST + 'timeout = "-5s"\n',
        "",
        "inventory.toml: host[0].timeout: expected a duration such as '500ms', '5s', '26h' or "
        "'7d', got '-5s' (negative)",
    ),
    # -- http --------------------------------------------------------------------------------
    "verify as a word": (
        HTTPS + 'verify = "yes"\n',
        "",
        "inventory.toml: http[0].verify: expected true, false or the path of a CA bundle, got "
        "'yes' (write true or false without quotes)",
    ),
    "alertmanager verify as a word (as [[http]]: one ApiTarget rule)": (
        '[[alertmanager]]\nname = "am"\nurl = "https://am.internal"\nverify = "yes"\n',
        "",
        "inventory.toml: alertmanager[0].verify: expected true, false or the path of a CA bundle, "
        "got 'yes' (write true or false without quotes)",
    ),
    "verify CA bundle missing": (
        HTTPS + 'verify = "{tmp}/missing-ca.pem"\n',
        "",
        "inventory.toml: http[0].verify: expected the path of a CA bundle (PEM file), got "
        "'{tmp}/missing-ca.pem' (no such file)",
    ),
    "verify CA bundle is a directory": (
        HTTPS + 'verify = "{tmp}"\n',
        "",
        "inventory.toml: http[0].verify: expected the path of a CA bundle (PEM file), got '{tmp}' "
        "(a directory)",
    ),
    "verify CA bundle holds no certificate": (
        HTTPS + 'verify = "{tmp}/id_ed25519"\n',
        "",
        "inventory.toml: http[0].verify: expected a CA bundle of PEM certificates, got "
        "'{tmp}/id_ed25519' (no certificate in it that OpenSSL can load)",
    ),
    "user and password in the URL": (
        HTTP.replace("http://", "http://admin:pw@"),
        "",
        "inventory.toml: http[0].url: expected a URL without user:password@ (send them in "
        'headers, e.g. Authorization = "Basic ${API_BASIC_AUTH}"), got '
        "'http://***@127.0.0.1:1/health'",
    ),
    "token as the URL's user": (
        HTTP.replace("http://", "https://ghp_token@"),
        "",
        "inventory.toml: http[0].url: expected a URL without user:password@ (send them in "
        'headers, e.g. Authorization = "Basic ${API_BASIC_AUTH}"), got '
        "'https://***@127.0.0.1:1/health'",
    ),
    "space in the URL": (
        HTTP.replace("/health", "/health check"),
        "",
        "inventory.toml: http[0].url: expected an http:// or https:// URL without spaces, got "
        "'http://127.0.0.1:1/health check'",
    ),
    "URL port out of range": (
        HTTP.replace(":1/", ":99999/"),
        "",
        "inventory.toml: http[0].url: expected an http:// or https:// URL with a port 1-65535, "
        "got 'http://127.0.0.1:99999/health'",
    ),
    "URL without a host": (
        '[[http]]\nname = "api"\nurl = "http:///health"\n',
        "",
        "inventory.toml: http[0].url: expected an http:// or https:// URL, got 'http:///health'",
    ),
    "unknown method": (
        HTTP + 'method = "DELETE"\n',
        "",
        "inventory.toml: http[0].method: expected 'GET', 'HEAD', 'POST', 'PUT' or 'PATCH', "
        "got 'DELETE'",
    ),
    "status code out of range": (
        HTTP + "expect_status = [200, 600]\n",
        "",
        "inventory.toml: http[0].expect_status[1]: expected an HTTP status code 100-599, got 600",
    ),
    "status listed twice": (
        HTTP + "expect_status = [200, 200]\n",
        "",
        "inventory.toml: http[0].expect_status: duplicate status 200 (entries 0 and 1)",
    ),
    "empty expected text": (
        HTTP + 'contains = ["ok", ""]\n',
        "",
        "inventory.toml: http[0].contains: expected non-empty text (every body contains ''), got "
        "''",
    ),
    "header name with a space": (
        HTTP + '[http.headers]\n"X Token" = "abc"\n',
        "",
        'inventory.toml: http[0].headers."X Token": expected a header name of letters, digits '
        "and - such as 'X-Api-Key', got 'X Token'",
    ),
    "header value from a variable ending in a newline": (
        HTTP + '[http.headers]\nX-Token = "${API_TOKEN_NL}"\n',
        "",
        "inventory.toml: http[0].headers.X-Token: expected a header value on one line, got one "
        "with a line break (from a variable ending in a newline?)",
    ),
    "header value with a leading space": (
        HTTP + '[http.headers]\nX-Token = " abc"\n',
        "",
        "inventory.toml: http[0].headers.X-Token: expected a header value without leading spaces, "
        "got one with them",
    ),
    "tls for an http URL": (
        HTTP + "tls = true\n",
        "",
        "inventory.toml: http[0].tls: expected false or no tls for an http:// URL (it has no "
        "certificate), got true",
    ),
    "too many samples": (
        HTTP + "samples = 5000\n",
        "",
        "inventory.toml: http[0].samples: expected a number <= 1000, got 5000",
    ),
    "json_limits level not a number": (
        HTTP + "[http.json_limits.queue]\nwarn = nan\n",
        "",
        "inventory.toml: http[0].json_limits.queue.warn: expected a finite number, got nan",
    ),
    # -- environment variables --------------------------------------------------------------
    "variable without braces": (
        HTTP + '[http.headers]\nAuthorization = "Bearer $API_TOKEN"\n',
        "",
        "inventory.toml: http[0].headers.Authorization: expected ${API_TOKEN} for an environment "
        "variable, got $API_TOKEN (write $$ for a literal $)",
    ),
    "variable without braces in a URL": (
        HTTP.replace("/health", "/health?key=$API_KEY"),
        "",
        "inventory.toml: http[0].url: expected ${API_KEY} for an environment variable, got "
        "$API_KEY (write $$ for a literal $)",
    ),
    "shell default syntax": (
        HTTP + '[http.headers]\nAuthorization = "Bearer ${API_TOKEN:-none}"\n',
        "",
        "inventory.toml: http[0].headers.Authorization: expected ${NAME} with a variable name of "
        "letters, digits and _, got '${API_TOKEN:-none}'",
    ),
    "unclosed variable": (
        HTTP + '[http.headers]\nAuthorization = "Bearer ${API_TOKEN"\n',
        "",
        "inventory.toml: http[0].headers.Authorization: expected ${NAME} with a variable name of "
        "letters, digits and _, got '${API_TOKEN'",
    ),
    "variable set but empty": (
        HTTP + '[http.headers]\nAuthorization = "Bearer ${EMPTY}"\n',
        "",
        "inventory.toml: http[0].headers.Authorization: environment variable EMPTY is set but "
        "empty",
    ),
    "password_env set but empty": (
        PG + 'password_env = "EMPTY"\n',
        "",
        "inventory.toml: postgres[0].password_env: environment variable EMPTY is set but empty",
    ),
    "variable too short to keep out of reports": (
        HTTP + '[http.headers]\nAuthorization = "Bearer ${SHORT}"\n',
        "",
        "inventory.toml: http[0].headers.Authorization: environment variable SHORT: expected a "
        "secret of at least 4 characters (it is kept out of every report), got 2",
    ),
    "password_env too short": (
        REDIS + 'password_env = "SHORT"\n',
        "",
        "inventory.toml: redis[0].password_env: environment variable SHORT: expected a secret of "
        "at least 4 characters (it is kept out of every report), got 2",
    ),
    "variable in a target's name": (
        '[[http]]\nname = "${API_TOKEN}"\nurl = "http://127.0.0.1:1/health"\n',
        "",
        "inventory.toml: http[0].name: expected a name written out, got '${API_TOKEN}' (a "
        "variable's value in a name would appear in every report)",
    ),
    "password_env written as a reference": (
        PG + 'password_env = "${PG_PASSWORD}"\n',
        "",
        "inventory.toml: postgres[0].password_env: expected the name of an environment variable "
        "such as 'PG_PASSWORD', got '${PG_PASSWORD}' (write 'PG_PASSWORD': the key names it)",
    ),
    "password_env with a dollar": (
        REDIS + 'password_env = "$REDIS_PASSWORD"\n',
        "",
        "inventory.toml: redis[0].password_env: expected the name of an environment variable such "
        "as 'PG_PASSWORD', got '$REDIS_PASSWORD' (write 'REDIS_PASSWORD': the key names it)",
    ),
    "S3 key variable set but empty": (
        '[[backup]]\nname = "pg-s3"\ns3 = { bucket = "backups", access_key_id_env = "S3_KEY_ID", '
        'secret_access_key_env = "EMPTY" }\n',
        "",
        "inventory.toml: backup[0].s3.secret_access_key_env: environment variable EMPTY is set "
        "but empty",
    ),
    # -- postgres ---------------------------------------------------------------------------
    "DSN port not a number": (
        PG.replace("dbname=app", "port=abc dbname=app"),
        "",
        "inventory.toml: postgres[0].dsn: expected port 1-65535 in the DSN, got 'abc'",
    ),
    "DSN without key=value": (
        PG.replace("host=db.internal dbname=app user=opscheck", "db.internal/paperless"),
        "",
        "inventory.toml: postgres[0].dsn: expected a libpq DSN such as 'host=db port=5432 "
        "dbname=app user=opscheck' or a postgresql:// URI, got 'db.internal/paperless' (missing "
        '"=" after "db.internal/paperless" in connection info string)',
    ),
    "DSN option typo": (
        PG.replace("dbname=app", "dbanme=app"),
        "",
        "inventory.toml: postgres[0].dsn: expected a libpq DSN such as 'host=db port=5432 "
        "dbname=app user=opscheck' or a postgresql:// URI, got 'host=db.internal dbanme=app "
        'user=opscheck\' (invalid connection option "dbanme")',
    ),
    "DSN unterminated quote": (
        PG.replace("dbname=app", "dbname='app"),
        "",
        "inventory.toml: postgres[0].dsn: expected a libpq DSN such as 'host=db port=5432 "
        "dbname=app user=opscheck' or a postgresql:// URI, got \"host=db.internal dbname='app "
        'user=opscheck" (unterminated quoted string in connection info string)',
    ),
    "DSN URI port out of range": (
        PG.replace(
            "host=db.internal dbname=app user=opscheck",
            "postgresql://opscheck@db.internal:70000/app",
        ),
        "",
        "inventory.toml: postgres[0].dsn: expected port 1-65535 in the DSN, got '70000'",
    ),
    "DSN sslmode typo": (
        PG.replace("dbname=app", "sslmode=required dbname=app"),
        "",
        "inventory.toml: postgres[0].dsn: expected sslmode = one of disable, allow, prefer, "
        "require, verify-ca, verify-full in the DSN, got 'required'",
    ),
    "DSN password in the URI": (
        PG.replace(
            "host=db.internal dbname=app user=opscheck",
            "postgresql://opscheck:hunter2@db.internal/app",
        ),
        "",
        "inventory.toml: postgres[0].dsn: expected a DSN without a password (name the variable "
        "that holds it in password_env)",
    ),
    "table listed twice": (
        PG + 'tables = ["public.orders", "public.orders"]\n',
        "",
        "inventory.toml: postgres[0].tables: duplicate table 'public.orders' (entries 0 and 1)",
    ),
    "user query without SQL": (
        PG + '[[postgres.queries]]\nname = "pending"\nsql = ""\n',
        "",
        "inventory.toml: postgres[0].queries[0].sql: expected a non-empty string, got ''",
    ),
    "duplicate user query": (
        PG
        + '[[postgres.queries]]\nname = "q"\nsql = "SELECT 1"\n'
        + '[[postgres.queries]]\nname = "q"\nsql = "SELECT 2"\n',
        "",
        "inventory.toml: postgres[0].queries: duplicate query name 'q' (it becomes the test id)",
    ),
    "long_query as a bare number": (
        PG + "long_query = 5\n",
        "",
        "inventory.toml: postgres[0].long_query: expected a duration such as '500ms', '5s', '26h' "
        "or '7d' (with a unit), got 5",
    ),
    # -- redis ------------------------------------------------------------------------------
    "queue listed twice": (
        REDIS + 'queues = [{ key = "emails" }, { key = "emails", crit = 500 }]\n',
        "",
        "inventory.toml: redis[0].queues: duplicate queue 'emails' (entries 0 and 1; its name is "
        "the test id)",
    ),
    "bullmq queue listed twice": (
        REDIS + 'queues = [{ bullmq = "mail" }, { bullmq = "mail" }]\n',
        "",
        "inventory.toml: redis[0].queues: duplicate queue 'bullmq:mail' (entries 0 and 1; its "
        "name is the test id)",
    ),
    "password in the Redis URL": (
        REDIS + 'url = "redis://opscheck:hunter2@10.0.0.5:6379/0"\n',
        "",
        "inventory.toml: redis[0].url: expected a URL without a password (name the variable that "
        "holds it in password_env), got 'redis://***@10.0.0.5:6379/0'",
    ),
    "password in the Redis URL query": (
        REDIS + 'url = "redis://10.0.0.5:6379/0?password=hunter2"\n',
        "",
        "inventory.toml: redis[0].url: expected a URL without a password (name the variable that "
        "holds it in password_env)",
    ),
    "Redis URL port out of range": (
        REDIS + 'url = "redis://10.0.0.5:70000/0"\n',
        "",
        "inventory.toml: redis[0].url: expected a redis://, rediss:// or unix:// URL with a port "
        "1-65535, got 'redis://10.0.0.5:70000/0'",
    ),
    "Redis URL with an http scheme": (
        REDIS + 'url = "http://10.0.0.5:6379"\n',
        "",
        "inventory.toml: redis[0].url: expected a redis://, rediss:// or unix:// URL, got "
        "'http://10.0.0.5:6379'",
    ),
    "Redis socket path not absolute": (
        REDIS + 'url = "unix://redis.sock"\n',
        "",
        "inventory.toml: redis[0].url: expected a socket path such as 'unix:///run/redis.sock', "
        "got 'unix://redis.sock'",
    ),
    "empty Redis username": (
        REDIS + 'username = ""\n',
        "",
        "inventory.toml: redis[0].username: expected a non-empty string, got ''",
    ),
    "queue without a layout": (
        REDIS + "queues = [{ warn = 10 }]\n",
        "",
        "inventory.toml: redis[0].queues[0]: expected exactly one of key, bullmq, sidekiq, "
        "celery, rq, got none",
    ),
    # -- sqlite ----------------------------------------------------------------------------
    "sqlite query_timeout beyond the limit": (
        SQLITE + 'query_timeout = "10m"\n',
        "",
        "inventory.toml: sqlite[0].query_timeout: expected a duration up to 4m (a check is "
        "stopped after 5m), got '10m'",
    ),
    "sqlite on an unknown host": (
        SQLITE + 'host = "nas"\n',
        "",
        "inventory.toml: sqlite[0].host: no [[host]] target named 'nas' (known: none)",
    ),
    # -- docker ----------------------------------------------------------------------------
    "docker ssh:// to an unknown host": (
        HOST + '[[docker]]\nname = "engine"\nurl = "ssh://web9"\n',
        "",
        "inventory.toml: docker[0].host: no [[host]] target named 'web9' (known: web1)",
    ),
    "docker ssh:// with a user": (
        HOST + '[[docker]]\nname = "engine"\nurl = "ssh://ops@web1"\n',
        "",
        "inventory.toml: docker[0].url: expected ssh://<name of a [[host]] target> (its user, "
        "port and keys are the host's), got 'ssh://ops@web1'",
    ),
    "docker socket without ssh://": (
        '[[docker]]\nname = "engine"\nsocket = "/run/docker.sock"\n',
        "",
        "inventory.toml: docker[0]: expected socket with an ssh:// url only (the url names the "
        "socket)",
    ),
    # -- websocket -------------------------------------------------------------------------
    "websocket http:// url": (
        '[[websocket]]\nname = "feed"\nurl = "http://app/ws"\n',
        "",
        "inventory.toml: websocket[0].url: expected a ws:// or wss:// URL, got 'http://app/ws'",
    ),
    "websocket password in the url": (
        '[[websocket]]\nname = "feed"\nurl = "wss://ops:pw@app/ws"\n',
        "",
        "inventory.toml: websocket[0].url: expected a URL without user:password@ (send them in "
        'headers, e.g. Authorization = "Basic ${WS_BASIC_AUTH}", or name the variable of a token '
        "in bearer_token_env), got 'wss://***@app/ws'",
    ),
    "websocket expect and expect_regex": (
        '[[websocket]]\nname = "feed"\nurl = "wss://app/ws"\nexpect = "ok"\nexpect_regex = "o+"\n',
        "",
        "inventory.toml: websocket[0]: expected expect (a text) or expect_regex, not both",
    ),
    "websocket expect_regex not a regex": (
        '[[websocket]]\nname = "feed"\nurl = "wss://app/ws"\nexpect_regex = "("\n',
        "",
        "inventory.toml: websocket[0].expect_regex: expected a regular expression, got '(' "
        "(missing ), unterminated subpattern at position 0)",
    ),
    "websocket negative pings": (
        '[[websocket]]\nname = "feed"\nurl = "wss://app/ws"\npings = -1\n',
        "",
        "inventory.toml: websocket[0].pings: expected a number >= 0, got -1",
    ),
    "websocket empty send": (
        '[[websocket]]\nname = "feed"\nurl = "wss://app/ws"\nsend = ""\n',
        "",
        "inventory.toml: websocket[0].send: expected a non-empty string, got ''",
    ),
    "websocket bearer_token_env not set": (
        '[[websocket]]\nname = "feed"\nurl = "wss://app/ws"\n'
        'bearer_token_env = "OPSCHECK_TEST_UNSET_WS_TOKEN"\n',
        "",
        "inventory.toml: websocket[0].bearer_token_env: environment variable "
        "OPSCHECK_TEST_UNSET_WS_TOKEN is not set",
    ),
    "websocket bearer_token_env and an Authorization header": (
        '[[websocket]]\nname = "feed"\nurl = "wss://app/ws"\nbearer_token_env = "HOME"\n'
        'headers = { authorization = "Basic x" }\n',
        "",
        "inventory.toml: websocket[0]: expected bearer_token_env or an Authorization header, "
        "not both",
    ),
    "websocket verify yes": (
        '[[websocket]]\nname = "feed"\nurl = "wss://app/ws"\nverify = "yes"\n',
        "",
        "inventory.toml: websocket[0].verify: expected true, false or the path of a CA bundle, "
        "got 'yes' (write true or false without quotes)",
    ),
    "websocket unknown key": (
        '[[websocket]]\nname = "feed"\nurl = "wss://app/ws"\nsendd = "ping"\n',
        "",
        "inventory.toml: websocket[0].sendd: unknown key (did you mean 'send'?)",
    ),
    # -- growth ----------------------------------------------------------------------------
    "growth unknown check": (
        '[[growth]]\nname = "disk"\ncheck = "host.disk_usage"\n',
        "",
        "inventory.toml: growth[0].check: expected the check key of a measured value, such as "
        "'host.disk_used_pct' or 'postgres.database_size', got 'host.disk_usage' "
        "(did you mean 'host.disk_used_pct'?)",
    ),
    "growth of a yes/no check": (
        '[[growth]]\nname = "svc"\ncheck = "host.services"\n',
        "",
        "inventory.toml: growth[0].check: host.services is a yes/no check: its records have no "
        "value that grows",
    ),
    "growth days_until_full without full": (
        '[[growth]]\nname = "db"\ncheck = "postgres.database_size"\n'
        "days_until_full = { warn = 30, crit = 14 }\n",
        "",
        "inventory.toml: growth[0]: days_until_full needs full: the capacity of "
        "postgres.database_size in its unit (such as '500GB')",
    ),
    "growth with nothing to judge": (
        '[[growth]]\nname = "db"\ncheck = "postgres.database_size"\n',
        "",
        "inventory.toml: growth[0]: expected full (for days until full), per_day or per_week: "
        "nothing to judge of postgres.database_size",
    ),
    "growth full not a size": (
        '[[growth]]\nname = "db"\ncheck = "postgres.database_size"\nfull = "500 gigs"\n',
        "",
        "inventory.toml: growth[0].full: expected a size such as '512KB', '10MB', '2GiB', got "
        "'500 gigs' (unknown unit 'gigs'; known: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)",
    ),
    "growth days_until_full warn below crit": (
        '[[growth]]\nname = "disk"\ncheck = "host.disk_used_pct"\n'
        "days_until_full = { warn = 7, crit = 14 }\n",
        "",
        "inventory.toml: growth[0].days_until_full: warn 7 days is below crit 14 days: warn must "
        'be above crit (direction "below": lower is worse)',
    ),
    "growth per_day warn above crit": (
        '[[growth]]\nname = "db"\ncheck = "postgres.database_size"\n'
        "per_day = { warn = 20, crit = 10 }\n",
        "",
        "inventory.toml: growth[0].per_day: warn 20 % is above crit 10 %: warn must be below crit",
    ),
    "growth min_runs below 2": (
        '[[growth]]\nname = "disk"\ncheck = "host.disk_used_pct"\nmin_runs = 1\n',
        "",
        "inventory.toml: growth[0].min_runs: expected a number >= 2, got 1",
    ),
    "sqlite empty path": (
        '[[sqlite]]\nname = "app"\npath = ""\n',
        "",
        "inventory.toml: sqlite[0].path: expected a non-empty string, got ''",
    ),
    "sqlite table level not a number": (
        SQLITE + "[sqlite.tables.orders]\nwarn = inf\n",
        "",
        "inventory.toml: sqlite[0].tables.orders.warn: expected a finite number, got inf",
    ),
    # -- logs ------------------------------------------------------------------------------
    "logs ratio without levels": (
        LOGS + '[[logs.patterns]]\nname = "e"\npattern = " 5\\\\d\\\\d "\nratio_of = "all"\n',
        "",
        "inventory.toml: logs[0].patterns[0]: a pattern with ratio_of is judged in percent: give "
        'warn and/or crit (e.g. warn = 5 for 5 %; direction = "below" for a success rate)',
    ),
    "logs ratio_of unknown pattern": (
        LOGS + '[[logs.patterns]]\nname = "requests"\npattern = "GET"\n'
        '[[logs.patterns]]\nname = "e"\npattern = " 500 "\nratio_of = "request"\nwarn = 5\n',
        "",
        'inventory.toml: logs[0]: patterns[1].ratio_of: expected "all" or the name of another '
        "pattern of this target, got 'request' (did you mean 'requests'? patterns: requests)",
    ),
    "logs ratio above 100 %": (
        LOGS + '[[logs.patterns]]\nname = "e"\npattern = " 500 "\nratio_of = "all"\nwarn = 150\n',
        "",
        "inventory.toml: logs[0].patterns[0].warn: 150 % can never be reached: "
        "logs.pattern_ratio is a share of capacity (0-100 %)",
    ),
    "logs stat unknown": (
        LOGS + 'format = "json"\n[[logs.stats]]\nname = "latency"\nfield = "duration_ms"\n'
        'stat = "p90"\nwarn = 500\n',
        "",
        "inventory.toml: logs[0].stats[0].stat: expected 'avg', 'median', 'p95', 'p99', 'max', "
        "'min', 'sum', 'count' or 'distinct', got 'p90'",
    ),
    "logs stat without levels": (
        LOGS + 'format = "json"\n[[logs.stats]]\nname = "latency"\nfield = "duration_ms"\n'
        'stat = "p95"\n',
        "",
        "inventory.toml: logs[0].stats[0]: expected warn and/or crit (a stat without levels "
        "cannot fail)",
    ),
    "logs stat on text logs": (
        LOGS + '[[logs.stats]]\nname = "latency"\nfield = "duration_ms"\nstat = "p95"\n'
        "warn = 500\n",
        "",
        "inventory.toml: logs[0]: stats[0]: stats read the fields of JSON lines: they apply to "
        'path sources with format = "json"',
    ),
    "logs stat count without group_by": (
        LOGS + 'format = "json"\n[[logs.stats]]\nname = "ips"\nstat = "count"\nwarn = 1000\n',
        "",
        'inventory.toml: logs[0].stats[0]: stat = "count" counts lines per group: give group_by '
        '(e.g. group_by = "client_ip"); count lines with [[logs.patterns]]',
    ),
    "logs stat unit": (
        LOGS + 'format = "json"\n[[logs.stats]]\nname = "latency"\nfield = "duration_ms"\n'
        'stat = "p95"\nunit = "msec"\nwarn = 500\n',
        "",
        "inventory.toml: logs[0].stats[0].unit: expected 'number', 'ms', 's' or 'bytes', got "
        "'msec'",
    ),
    "log pattern matching every line": (
        LOGS + '[[logs.patterns]]\nname = "errors"\npattern = "ERROR|"\n',
        "",
        "inventory.toml: logs[0].patterns[0].pattern: expected a regular expression that needs a "
        "character to match, got 'ERROR|' (it matches an empty line, so every line)",
    ),
    "log pattern not a regex": (
        LOGS + '[[logs.patterns]]\nname = "errors"\npattern = "(ERROR"\n',
        "",
        "inventory.toml: logs[0].patterns[0].pattern: expected a regular expression, got '(ERROR' "
        "(missing ), unterminated subpattern at position 0)",
    ),
    "log preset typo": (
        LOGS + '[[logs.patterns]]\nname = "logins"\npreset = "failed_login"\n',
        "",
        "inventory.toml: logs[0].patterns[0].preset: unknown preset 'failed_login' (did you mean "
        "'failed_logins'? known: errors, failed_logins, ssh_auth_failures, rate_limited, "
        "sql_injection, xss, path_traversal, attacks, sudo)",
    ),
    "log window zero": (
        LOGS + '[[logs.patterns]]\nname = "errors"\npreset = "errors"\nwindow = "0h"\n',
        "",
        "inventory.toml: logs[0].patterns[0].window: expected a duration such as '24h' or '4h', "
        "or 'today', got '0h'",
    ),
    "log window as a word": (
        LOGS + '[[logs.patterns]]\nname = "errors"\npreset = "errors"\nwindow = "yesterday"\n',
        "",
        "inventory.toml: logs[0].patterns[0].window: expected a duration such as '24h' or '4h', "
        "or 'today', got 'yesterday'",
    ),
    "log scan_timeout beyond the limit": (
        LOGS + 'scan_timeout = "10m"\n',
        "",
        "inventory.toml: logs[0].scan_timeout: expected a duration up to 4m (a check is stopped "
        "after 5m), got '10m'",
    ),
    "log format unknown": (
        LOGS + 'format = "xml"\n',
        "",
        "inventory.toml: logs[0].format: expected 'text' or 'json', got 'xml'",
    ),
    "log pattern with nothing to match": (
        LOGS + '[[logs.patterns]]\nname = "errors"\n',
        "",
        "inventory.toml: logs[0].patterns[0]: expected at least one of pattern, preset or level",
    ),
    "log path and journald unit": (
        LOGS + 'journald_unit = "nginx"\n',
        "",
        "inventory.toml: logs[0]: expected exactly one of path (files), journald_unit (the "
        "journal), docker (a container's logs) or kubernetes (pods' logs)",
    ),
    # -- backup ----------------------------------------------------------------------------
    "S3 without credentials": (
        '[[backup]]\nname = "pg-s3"\ns3 = { bucket = "backups" }\n',
        "",
        "inventory.toml: backup[0].s3: expected credentials from the environment, got none (set "
        "access_key_id_env and secret_access_key_env, or AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY; a credentials file or profile is never read)",
    ),
    "S3 key id without its secret": (
        '[[backup]]\nname = "pg-s3"\ns3 = { bucket = "backups" }\n',
        "",
        "inventory.toml: backup[0].s3: expected credentials from the environment, got "
        "AWS_ACCESS_KEY_ID without AWS_SECRET_ACCESS_KEY (set access_key_id_env and "
        "secret_access_key_env, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; a credentials "
        "file or profile is never read)",
    ),
    "S3 endpoint with credentials": (
        '[[backup]]\nname = "pg-s3"\ns3 = { bucket = "backups", endpoint_url = '
        '"http://KEY:SECRET@minio.internal:9000", ' + S3_KEYS + " }\n",
        "",
        "inventory.toml: backup[0].s3.endpoint_url: expected a URL without user:password@ (name "
        "the variables that hold them in access_key_id_env and secret_access_key_env), got "
        "'http://***@minio.internal:9000'",
    ),
    "S3 endpoint with credentials after the host": (
        '[[backup]]\nname = "pg-s3"\ns3 = { bucket = "backups", endpoint_url = '
        '"http://minio.internal:9000@KEY:SECRET@minio", ' + S3_KEYS + " }\n",
        "",
        "inventory.toml: backup[0].s3.endpoint_url: expected a URL without user:password@ (name "
        "the variables that hold them in access_key_id_env and secret_access_key_env), got "
        "'http://***@minio'",
    ),
    "S3 endpoint port out of range": (
        '[[backup]]\nname = "pg-s3"\ns3 = { bucket = "backups", endpoint_url = '
        '"http://minio.internal:90000", ' + S3_KEYS + " }\n",
        "",
        "inventory.toml: backup[0].s3.endpoint_url: expected an http:// or https:// URL with a "
        "port 1-65535, got 'http://minio.internal:90000'",
    ),
    "S3 bucket as a URL": (
        '[[backup]]\nname = "pg-s3"\ns3 = { bucket = "s3://backups", ' + S3_KEYS + " }\n",
        "",
        "inventory.toml: backup[0].s3.bucket: expected a bucket name such as 'my-backups' (no "
        "s3://), got 's3://backups'",
    ),
    "backup verify_timeout beyond the limit": (
        FILES + 'verify_timeout = "10m"\n',
        "",
        "inventory.toml: backup[0].verify_timeout: expected a duration up to 4m (a check is "
        "stopped after 5m), got '10m'",
    ),
    "backup kind unknown": (
        FILES + 'kind = "zip"\n',
        "",
        "inventory.toml: backup[0].kind: expected 'auto', 'sqlite', 'tar', 'gzip', 'pg_custom' or "
        "'pg_plain', got 'zip'",
    ),
    "backup keep_daily zero": (
        FILES + "keep_daily = 0\n",
        "",
        "inventory.toml: backup[0].keep_daily: expected a number >= 1, got 0",
    ),
    "backup keep_daily misspelled": (
        FILES + "keep_dialy = 7\n",
        "",
        "inventory.toml: backup[0].keep_dialy: unknown key (did you mean 'keep_daily'?)",
    ),
    "backup max_age_days as a duration": (
        FILES + 'max_age_days = "30d"\n',
        "",
        "inventory.toml: backup[0].max_age_days: expected an integer, got '30d'",
    ),
    "backup max_age_days below keep_daily": (
        FILES + "keep_daily = 7\nmax_age_days = 5\n",
        "",
        "inventory.toml: backup[0]: expected max_age_days (5) at least keep_daily (7): the "
        "backups kept would be pruned",
    ),
    "backup retention on s3 without a date": (
        S3 + "keep_daily = 7\n",
        "",
        "inventory.toml: backup[0]: keep_daily and max_age_days on s3 need a date in the prefix, "
        "such as 'postgres/{date:%Y/%m/%d}/': one prefix per day (LastModified is the upload "
        "time)",
    ),
    "backup retention on a month path": (
        '[[backup]]\nname = "m"\npath = "/backups/{date:%Y-%m}/*.dump"\nmax_age_days = 30\n',
        "",
        "inventory.toml: backup[0]: keep_daily and max_age_days read the day back from the name: "
        "expected {date:FMT} with year, month and day (%Y %m %d), got {date:%Y-%m}",
    ),
    "restore query_timeout beyond the restore's": (
        RESTORE + 'timeout = "10m"\nquery_timeout = "1h"\n',
        "",
        "inventory.toml: backup[0].restore.query_timeout: expected at most the restore's timeout "
        "(10 min), got '1h'",
    ),
    "restore DSN that does not parse": (
        FILES + '[backup.restore]\ndsn = "staging-db:5432"\n',
        "",
        "inventory.toml: backup[0].restore.dsn: expected a libpq DSN such as 'host=db port=5432 "
        "dbname=app user=opscheck' or a postgresql:// URI, got 'staging-db:5432' (missing \"=\" "
        'after "staging-db:5432" in connection info string)',
    ),
    "restore query listed twice": (
        RESTORE
        + '[[backup.restore.queries]]\nname = "rows"\nsql = "SELECT 1"\n'
        + '[[backup.restore.queries]]\nname = "rows"\nsql = "SELECT 2"\n',
        "",
        "inventory.toml: backup[0].restore.queries: duplicate query name 'rows' (it becomes the "
        "test id)",
    ),
    # -- settings and selection -------------------------------------------------------------
    "settings timeout beyond the limit": (
        '[settings]\ntimeout = "10m"\n' + HOST,
        "",
        "inventory.toml: settings.timeout: expected a duration up to 2m (every network call waits "
        "up to this long), got '10m'",
    ),
    "trend plots over fewer than 2 days": (
        "[settings.history]\ntrend_days = 1\n" + HOST,
        "",
        "inventory.toml: settings.history.trend_days: expected a number >= 2, got 1",
    ),
    "trend plots over more than a year": (
        "[settings.history]\ntrend_days = 400\n" + HOST,
        "",
        "inventory.toml: settings.history.trend_days: expected a number <= 366, got 400",
    ),
    "trend days with a unit": (
        '[settings.history]\ntrend_days = "30d"\n' + HOST,
        "",
        "inventory.toml: settings.history.trend_days: expected an integer, got '30d'",
    ),
    "trends not true or false": (
        '[settings.history]\ntrends = "yes"\n' + HOST,
        "",
        "inventory.toml: settings.history.trends: expected true or false, got 'yes'",
    ),
    "target schedule listed twice": (
        HOST + 'schedules = ["morning", "morning"]\n',
        "",
        "inventory.toml: host[0].schedules: duplicate schedule 'morning' (entries 0 and 1)",
    ),
    "target check listed twice": (
        HOST + 'checks = ["host.host_reachable", "host.host_reachable"]\n',
        "",
        "inventory.toml: host[0].checks: duplicate check id 'host.host_reachable' (entries 0 and "
        "1)",
    ),
    # -- shapes of tables, required keys --------------------------------------------------
    "single [host] table": (
        '[host]\nname = "web1"\n',
        "",
        "inventory.toml: host: expected [[host]] tables (a list), got a single [host] table",
    ),
    "target not a table": (
        'host = ["web1"]\n',
        "",
        "inventory.toml: host[0]: expected a table, got 'web1'",
    ),
    "target without a name": (
        '[[host]]\nuri = "local://"\n',
        "",
        "inventory.toml: host[0].name: required key is missing",
    ),
    "settings skip as a string": (
        '[settings]\nskip = "host.host_reachable"\n' + HOST,
        "",
        "inventory.toml: settings.skip: expected a list, got 'host.host_reachable'",
    ),
    "queues as a table": (
        REDIS + 'queues = { key = "emails" }\n',
        "",
        "inventory.toml: redis[0].queues: expected a list, got {'key': 'emails'}",
    ),
    "JSON field expecting a table": (
        HTTP + "json = { status = { ok = true } }\n",
        "",
        "inventory.toml: http[0].json.status: expected a string, a number or a boolean "
        "(true/false), got {'ok': True}",
    ),
    "empty DSN": (
        '[[postgres]]\nname = "main"\ndsn = ""\n',
        "",
        "inventory.toml: postgres[0].dsn: expected a non-empty string, got ''",
    ),
    "restore without a DSN": (
        FILES + '[backup.restore]\npassword_env = "PG_PASSWORD"\n',
        "",
        "inventory.toml: backup[0].restore.dsn: required key is missing",
    ),
    "backup path relative": (
        '[[backup]]\nname = "nightly"\npath = "backups/*.dump"\n',
        "",
        "inventory.toml: backup[0].path: expected an absolute path such as '/backups/daily/*.db', "
        "got 'backups/*.dump'",
    ),
    "S3 backup on a host": (
        HOST + S3 + 'host = "web1"\n',
        "",
        "inventory.toml: backup[0]: host applies to path only (s3 is reached from this machine)",
    ),
    "journald_directory without a unit": (
        LOGS + 'journald_directory = "/var/log/journal"\n',
        "",
        "inventory.toml: logs[0]: journald_directory applies to the journal (journald_unit, "
        "journald_priority, journald_kernel) only",
    ),
    "journald_priority unknown": (
        '[[logs]]\nname = "app"\njournald_priority = "errors"\n',
        "",
        "inventory.toml: logs[0].journald_priority: expected a journald priority: one of emerg, "
        "alert, crit, err, warning, notice, info, debug or 0-7 (journalctl -p: that one and the "
        "more severe), got 'errors'",
    ),
    "journald_priority out of range": (
        '[[logs]]\nname = "app"\njournald_unit = "ssh"\njournald_priority = 8\n',
        "",
        "inventory.toml: logs[0].journald_priority: expected a journald priority: one of emerg, "
        "alert, crit, err, warning, notice, info, debug or 0-7 (journalctl -p: that one and the "
        "more severe), got 8",
    ),
    "journald_priority with a path": (
        LOGS + 'journald_priority = "err"\n',
        "",
        "inventory.toml: logs[0]: journald_priority and journald_kernel read the journal (with "
        "or without journald_unit), not path: one source per [[logs]] target",
    ),
    "journald_kernel not a boolean": (
        '[[logs]]\nname = "app"\njournald_kernel = "yes"\n',
        "",
        "inventory.toml: logs[0].journald_kernel: expected true or false, got 'yes'",
    ),
    # -- thresholds ------------------------------------------------------------------------
    "threshold not a number": (
        HOST,
        "[host.disk_used_pct]\nwarn = nan\n",
        "thresholds.toml: host.disk_used_pct.warn: expected a finite number, got nan",
    ),
    "threshold override infinite": (
        HOST,
        "[host.disk_used_pct.targets.web1]\ncrit = inf\n",
        "thresholds.toml: host.disk_used_pct.targets.web1.crit: expected a finite number, got inf",
    ),
    "threshold as a boolean": (
        HOST,
        "[host.disk_used_pct]\nwarn = true\n",
        "thresholds.toml: host.disk_used_pct.warn: expected a string or a number, got True",
    ),
    "threshold duration without a unit": (
        HTTP,
        "[http.latency_avg]\nwarn = 300\n",
        "thresholds.toml: http.latency_avg.warn: expected a duration such as '500ms', '5s', '26h' "
        "or '7d' (with a unit), got 300",
    ),
    "threshold table for a whole component": (
        HOST,
        '[host]\ncrit = "90%"\n',
        "thresholds.toml: host.crit: unknown check (did you mean 'host.uptime'? "
        f"known: {HOST_CHECKS})",
    ),
    "threshold key repeated": (
        HOST,
        '[host.disk_used_pct]\ncrit = "90%"\ncrit = "95%"\n',
        "thresholds.toml: not valid TOML: Cannot overwrite a value (at line 3, column 13)",
    ),
}
# Variables a case needs beyond the common ones (ENVIRONMENT).
CASE_ENVIRONMENT = {"S3 key id without its secret": {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"}}
ENVIRONMENT = {
    "S3_KEY_ID": "AKIAEXAMPLE",
    "S3_SECRET": "s3-secret-value",
    "PG_PASSWORD": "pg-password",
    "EMPTY": "",
    "SHORT": "pw",
    "API_TOKEN_NL": "tok-Zq81xLm\n",  # a secret ending in a newline: never shown
}
UNSET = ("API_TOKEN", "API_KEY", "REDIS_PASSWORD")
# Run through pytest itself: the encodings (INTERNALERROR before), a traceback at run time
# before, a check id (read from the suites by the plugin), S3 credentials (the environment).
END_TO_END = (
    "non-UTF-8 byte in a value",
    "non-UTF-8 thresholds",
    "byte-order mark",
    "zero-width space in a key",
    "port given by service name",
    "verify CA bundle missing",
    "DSN port not a number",
    "cpu_sample beyond the limit",
    "S3 without credentials",
    "unknown check in schedule",
)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's folder (``{tmp}`` in the cases) with a key file, and the environment."""
    (tmp_path / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nx\n")
    for name in [*UNSET, *(n for n in os.environ if n.startswith("AWS_"))]:
        monkeypatch.delenv(name, raising=False)
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    return tmp_path


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    if isinstance(content, str):
        content = content.replace("{tmp}", str(folder)).encode()
    path.write_bytes(content)
    return path


def case(name: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, str]:
    """The case's two files written into ``folder``, and its line with ``{tmp}`` filled in."""
    inventory, thresholds, message = BAD_CONFIGS[name]
    for variable, value in CASE_ENVIRONMENT.get(name, {}).items():
        monkeypatch.setenv(variable, value)
    return (
        write(folder, "inventory.toml", inventory),
        write(folder, "thresholds.toml", thresholds),
        message.replace("{tmp}", str(folder)),
    )


def test_the_corpus_is_large():
    assert len(BAD_CONFIGS) >= 100
    assert all("\n" not in message for _, _, message in BAD_CONFIGS.values())


@pytest.mark.parametrize("name", BAD_CONFIGS)
def test_bad_config_is_one_line(folder, monkeypatch, name):
    """``load`` refuses the files with exactly the case's line: file, key path, expected vs got."""
    inventory, thresholds, message = case(name, folder, monkeypatch)
    with pytest.raises(cfg.ConfigError) as raised:
        cfg.load(inventory, thresholds, CHECK_IDS)
    text = str(raised.value)
    assert text == message
    assert "Traceback" not in text and "INTERNALERROR" not in text
    assert re.match(r"(inventory|thresholds)\.toml: ", text)


@pytest.mark.parametrize("name", END_TO_END)
def test_bad_config_exits_4(pytester, folder, monkeypatch, name):
    """As an operator runs it: exit code 4, nothing on stdout, the one line on stderr."""
    inventory, thresholds, message = case(name, folder, monkeypatch)
    result = run(pytester, "-p", "no:xdist", "--inventory", inventory, "--thresholds", thresholds)
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    assert result.stdout.str() == ""  # not even the session header: no test started
    assert result.stderr.str().strip() == f"ERROR: {message}"
    assert "Traceback" not in output and "INTERNALERROR" not in output


def test_bad_config_under_xdist(pytester, folder, monkeypatch):
    """The controller validates before it starts workers: same single line, no INTERNALERROR."""
    inventory, thresholds, message = case("unknown check in schedule", folder, monkeypatch)
    result = run(pytester, "-n", "2", "--inventory", inventory, "--thresholds", thresholds)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.str().strip() == f"ERROR: {message}"


def run(pytester: pytest.Pytester, *args: str | Path) -> pytest.RunResult:
    ini = ("-c", str(REPO / "pytest.ini"), "--rootdir", str(REPO))
    return pytester.runpytest_inprocess(*ini, *map(str, args), str(REPO / "suites"))


GOOD = {
    "host": HOST + 'cpu_sample = "30s"\ntimeout = "2m"\nmounts = ["/"]\nlog_dirs = ["/var/log"]\n'
    'ports = [22, "443", "tcp://127.0.0.1:5432", "udp://53", "tcp://:::22", "unix:///run/a.sock"]\n'
    'reachable = ["db.internal:5432", "[::1]:6379"]\nservices = ["nginx", "app.service"]\n',
    "ssh": SSH + 'ssh_identity_file = "{tmp}/id_ed25519"\n',
    "ssh URI query": HOST + 'uri = "ssh://ops@web1:2222?ssh_identity_file={tmp}/id_ed25519"\n',
    "kubectl URI": HOST + 'uri = "kubectl://web-0?namespace=shop&container=app"\n',
    "http": HTTP + 'expect_status = [200, 204]\ncontains = ["ok"]\n[http.headers]\nX-Token = "a"\n',
    "https": HTTPS + f'verify = "{certifi.where()}"\n',
    "redis": REDIS + 'url = "redis://opscheck@10.0.0.5:6379/0"\npassword_env = "PG_PASSWORD"\n'
    'queues = [{ key = "emails" }, { bullmq = "emails" }]\n',
    "redis socket": REDIS + 'url = "unix:///run/redis.sock"\n',
    "postgres": PG + 'password_env = "PG_PASSWORD"\ntables = ["public.orders"]\n',
    "postgres URI": PG.replace(
        "host=db.internal dbname=app user=opscheck",
        "postgresql://opscheck@db.internal:5432,db2:5433/app?sslmode=verify-full",
    ),
    "sqlite": SQLITE + 'query_timeout = "4m"\n',
    "logs": LOGS + 'scan_timeout = "4m"\n[[logs.patterns]]\nname = "e"\npattern = "ERROR$"\n',
    "backup files": FILES + 'verify_timeout = "4m"\n',
    "backup S3": S3 + "",
    "restore": RESTORE + 'timeout = "10m"\nquery_timeout = "10m"\n',
}


@pytest.mark.parametrize("name", GOOD)
def test_the_bases_load(folder, name):
    """Each case adds one mistake to a base that loads: the mistake alone stops the run."""
    cfg.load(write(folder, "inventory.toml", GOOD[name]), None, CHECK_IDS)


def test_s3_credentials_from_the_standard_variables(folder, monkeypatch):
    """Without *_env keys the standard variables serve (botocore reads them at run time)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "standard-secret")
    inventory = write(folder, "inventory.toml", '[[backup]]\nname = "b"\ns3 = { bucket = "bkp" }\n')
    cfg.load(inventory, None, CHECK_IDS)


def test_a_dollar_is_written_twice(folder):
    """``$$`` is a literal ``$``; SQL and regexes keep their own ``$`` (``$1``, ``$$``, ``$``)."""
    inventory = (
        HTTP
        + 'contains = ["costs $$5", "$${HOME}", "$$HOME"]\n'
        + PG
        + '[[postgres.queries]]\nname = "q"\nsql = "SELECT $$a$$ || $1"\n'
        + LOGS
        + '[[logs.patterns]]\nname = "end"\npattern = "done$"\n'
    )
    loaded = cfg.load(write(folder, "inventory.toml", inventory), None, CHECK_IDS)
    assert loaded.targets("http")[0].contains == ["costs $5", "${HOME}", "$HOME"]
    assert loaded.targets("postgres")[0].queries[0].sql == "SELECT $$a$$ || $1"
    assert loaded.targets("logs")[0].patterns[0].pattern == "done$"
