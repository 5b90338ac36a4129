"""Disk I/O of a ``[[host]]`` (``disks``, ``io_sample``: suites/host/test_host_disk_io.py)
against this machine's real block devices, through ``local://`` and a real sshd: an unused one
passes, the one the tests write to fails while ``dd`` keeps it busy past the page cache
(``oflag=direct``), and a device that does not exist is named."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opscheck.testbed.sshd import Sshd, host_block

SUITE = ("suites/host/test_host_disk_io.py",)
CHECK = "test_disk_busy_below_limit[me]"


def _disk_of(path: Path) -> str | None:
    """The whole block device holding ``path`` (``vda`` for ``/dev/vda1``), if it is one."""
    device = os.stat(path).st_dev
    node = Path(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}")
    if not node.exists():
        return None  # overlayfs, tmpfs: no block device of its own
    real = node.resolve()
    return real.parent.name if (real / "partition").exists() else real.name


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> str:
    found = _disk_of(tmp_path_factory.getbasetemp())
    if found is None:
        pytest.skip("the test folder is not on a block device here (overlayfs, tmpfs)")
    return found


def _idle_disk() -> str | None:
    """A whole block device of this machine that has never done any I/O (an unused loop or
    zram device): a disk that is certainly not busy while the check samples it."""
    for line in Path("/proc/diskstats").read_text().splitlines():
        fields = line.split()
        if Path(f"/sys/block/{fields[2]}").exists() and not any(int(x) for x in fields[3:]):
            return fields[2]
    return None


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with Sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def busy(disk: str, tmp_path: Path) -> Iterator[str]:
    """``dd`` writing 1 MiB blocks straight to the disk (no page cache), again and again."""
    target = tmp_path / "busy.bin"
    loop = f"while :; do dd if=/dev/zero of={target} bs=1M count=256 oflag=direct 2>/dev/null; done"
    writer = subprocess.Popen(["sh", "-c", loop], start_new_session=True)
    try:
        yield disk
    finally:
        os.killpg(writer.pid, 9)
        writer.wait()


def said(result: dict[str, Any]) -> str:
    return str(result.get("message") or result.get("measured") or result.get("reason") or "")


@pytest.mark.parametrize("backend", ["local", "ssh"])
def test_an_idle_disk_passes(suite, sshd, backend):
    idle = _idle_disk()
    if idle is None:
        pytest.skip("no block device here that has never been used (loop, zram)")
    fields: dict[str, Any] = {"disks": [idle], "io_sample": "500ms"}
    block = sshd.host_block("me", **fields) if backend == "ssh" else host_block("me", **fields)
    suite.run(block, "", "-k", "disk_busy", paths=SUITE)
    result = suite.results()[CHECK]
    assert result["outcome"] == "passed", said(result)
    assert re.fullmatch(
        rf"{re.escape(idle)} 0\.0 % busy over 0\.\d s \(0 reads, 0 writes, 0\.0 ms average "
        r"wait\)",
        result["measured"],
    ), result["measured"]
    (record,) = result["records"]
    assert (record["subject"], record["value"], record["verdict"]) == (idle, 0.0, "OK")


def test_a_saturated_disk_fails_with_its_share(suite, busy):
    """The disk the tests write to, kept busy by dd, past levels of 30/50 % (this machine's
    virtual disk reads ~85 % busy under it)."""
    block = host_block("me", disks=[busy], io_sample="2s")
    levels = "[host.disk_busy_pct]\nwarn = 30\ncrit = 50\n"
    suite.run(block, levels, "-k", "disk_busy", paths=SUITE)
    result = suite.results()[CHECK]
    assert result["outcome"] == "failed", said(result)
    found = re.fullmatch(
        rf"me: {re.escape(busy)} (\d+\.\d) % busy over \d\.\d s \((\d+) reads, (\d+) writes, "
        r"\d+\.\d ms average wait\) > crit 50\.0 %",
        said(result),
    )
    assert found, said(result)
    assert int(found.group(3)) > 0  # dd's writes, counted


def test_a_disk_that_does_not_exist_is_named(suite, disk):
    suite.run(host_block("me", disks=[disk, "nosuchdisk"]), "", "-k", "disk_busy", paths=SUITE)
    result = suite.results()[CHECK]
    assert result["outcome"] == "failed"
    assert said(result) == "me: not in /proc/diskstats: nosuchdisk (no such block device)"
