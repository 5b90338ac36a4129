"""Runbook: "Log Analysis and Rotation" - `find /logs -name "*.jsonl" -size +100M` (rotate
above 100 MB), `du -sh /logs/*`, and the daily rotation having run."""

import pytest

from opscheck.probes import logs as probes

pytestmark = [pytest.mark.logs, pytest.mark.capacity, pytest.mark.applies_to("path")]


@pytest.mark.morning
@pytest.mark.evening
def test_log_files_below_size_limit(logs, limits):
    """Each file of the source stays below its size limit (default warn 100 MB, crit 1 GB)."""
    limits.check("logs.file_size", probes.file_sizes(logs))


@pytest.mark.morning
@pytest.mark.evening
def test_log_folders_below_size_limit(logs, limits):
    """The folders holding the files, rotated ones included, stay below their limit (`du -s`)."""
    limits.check("logs.dir_size", probes.dir_sizes(logs))


@pytest.mark.evening
def test_log_files_rotated(logs, limits):
    """Each file written in the last 24 h holds at most ~a day of lines, first to last: it was
    rotated (default warn 26 h, crit 8 d)."""
    limits.check("logs.file_span", probes.file_spans(logs))
