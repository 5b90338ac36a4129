"""Runbook: any command line - `apt list --upgradable`, `find /var -size +100M`, `npm audit
--json`: each of the target's `[[host.commands]]`, run on the host, its exit status, a number it
prints, its count of lines or its JSON judged. The commands are the operator's: read-only."""

import pytest

from opscheck.probes import host_commands as probes
from opscheck.probes import json_checks as json_probes

pytestmark = [
    pytest.mark.host,
    pytest.mark.health,
    pytest.mark.morning,
    pytest.mark.for_each("commands", "command"),
]


def test_command_output_expected(host, host_target, command, opscheck_run, limits):
    """The command exits as expected (0) and what it prints - a number, its lines, its JSON
    fields - is within the entry's levels."""
    output = probes.run(host, command, opscheck_run.timeout(host_target))
    exited = probes.exit_status(output)
    if not exited.ok or not (command.judges_number or command.judges_json):
        limits.check("host.command_exit", exited)
    elif command.judges_json:
        found = probes.document(output)
        with limits.batch():
            if command.json_fields:
                limits.check("host.command_json", probes.json_fields(output, found))
            for measured, limit in json_probes.json_checks(found, command.json_checks):
                if limit is None:
                    limits.check("host.command_json_check", measured)
                else:
                    limits.check("host.command_json_value", measured, limit)
            for path, limit in command.json_limits.items():
                limits.check(
                    "host.command_json_limits", probes.json_number(output, found, path), limit
                )
    elif command.count == "lines":
        limits.check("host.command_lines", probes.line_count(output), command.levels())
    elif command.unit == "seconds":
        limits.check("host.command_value_seconds", probes.value(output), command.levels())
    elif command.unit == "bytes":
        limits.check("host.command_value_bytes", probes.value(output), command.levels())
    elif command.unit == "percent":
        limits.check("host.command_value_percent", probes.value(output), command.levels())
    else:
        limits.check("host.command_value", probes.value(output), command.levels())
