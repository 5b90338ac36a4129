"""One run over N runners: ``--shard I/N`` checks the I-th of N slices of the targets.

Every runner collects the whole run and keeps the checks of its own targets; the others are
deselected, as ``-k`` would. A target belongs to shard ``sha256("<component>/<name>") mod N``; a
target read through a ``[[host]]`` (``host = "web1"``: logs, SQLite files, backups) belongs to
that host's shard, so each machine is logged into by one runner. The assignment depends on the
name and N only: a target's checks all land on one shard, on every runner and every day, and
adding a target moves no other. A check skipped for every target (no target sets what it needs)
belongs to shard 0, so it is reported once.

Shards count from 0, as a Kubernetes Indexed Job numbers its pods. The shard comes from
``--shard``, else ``$OPSCHECK_SHARD``, else ``$JOB_COMPLETION_INDEX`` of ``$OPSCHECK_SHARD_COUNT``
(an Indexed Job needs no wrapper script). A shard's reports say which shard of which run they are
(``shard``, ``run_id``); ``opscheck-merge`` (``opscheck.merge``) joins them into the day's report,
and with ``--archive`` and a run id the last shard of a run to finish does it itself.

A shard left with nothing to check (none of its targets has a selected check) exits 0, saying
so, when other shards have checks: its report still goes to the merge, which requires every shard
of the run and applies "never green having checked nothing" to the run as a whole.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opscheck import config as cfg

_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
_RUN_ID = re.compile(r"[\w.:@+=/-]{1,200}")
_WORKER_OUTPUT = "opscheck_shard"  # an xdist worker's (selected, mine) counts for its controller


@dataclass
class Shard:
    """This runner's slice of the run, and what collection found in it."""

    index: int
    count: int
    selected: int | None = None  # checks the run selected (-m, -k, skip ...) before sharding
    mine: int | None = None  # of those, this shard's

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def suffix(self) -> str:
        """What ``--archive`` adds to a shard's file names: ``morning-070002.shard-1-of-4.json``."""
        return f".shard-{self.index}-of-{self.count}"

    @property
    def others_have_checks(self) -> bool:
        """Other shards hold checks of this run: if this one checks nothing, the run may not."""
        return self.selected is not None and self.selected > (self.mine or 0)


KEY = pytest.StashKey[Shard | None]()
# The run this shard merged as the last of its run to finish (an opscheck.merge.Merged): the
# run's notifications and end heartbeat are sent for it, by this shard alone.
MERGED_KEY = pytest.StashKey[Any]()


def parse(spec: str, source: str) -> Shard:
    """``"1/4"`` -> shard 1 of 4; a usage error (exit code 4) for anything else."""
    match = _SPEC.fullmatch(spec)
    if not match:
        raise pytest.UsageError(
            f"{source}: expected I/N, shard I of N counted from 0 (0/4 1/4 2/4 3/4), got {spec!r}"
        )
    index, count = int(match[1]), int(match[2])
    if count < 1:
        raise pytest.UsageError(f"{source}: {spec}: a run has at least 1 shard, not {count}")
    if index >= count:
        raise pytest.UsageError(
            f"{source}: {spec}: shards count from 0, as $JOB_COMPLETION_INDEX does: "
            f"0/{count} … {count - 1}/{count}"
        )
    return Shard(index, count)


def _read(config: pytest.Config) -> Shard | None:
    given = config.getoption("shard", None)
    if given:
        return parse(given, "--shard")
    if os.environ.get("OPSCHECK_SHARD"):
        return parse(os.environ["OPSCHECK_SHARD"], "$OPSCHECK_SHARD")
    count = os.environ.get("OPSCHECK_SHARD_COUNT")
    if not count:
        return None
    index = os.environ.get("JOB_COMPLETION_INDEX")
    if index is None:
        raise pytest.UsageError(
            f"$OPSCHECK_SHARD_COUNT={count} needs this shard's index: $JOB_COMPLETION_INDEX "
            "(a Kubernetes Indexed Job sets it) or --shard I/N"
        )
    return parse(f"{index}/{count}", "$JOB_COMPLETION_INDEX/$OPSCHECK_SHARD_COUNT")


def of(config: pytest.Config) -> Shard | None:
    """This run's shard, ``None`` when it is not sharded (read once, then kept)."""
    if KEY not in config.stash:
        config.stash[KEY] = _read(config)
    return config.stash[KEY]


def run_id(config: pytest.Config) -> str:
    """``--run-id`` or ``$OPSCHECK_RUN_ID``, ``""`` when neither is given."""
    given = config.getoption("run_id", None)
    value = given or os.environ.get("OPSCHECK_RUN_ID", "")
    if value and not _RUN_ID.fullmatch(value):
        source = "--run-id" if given else "$OPSCHECK_RUN_ID"
        raise pytest.UsageError(
            f"{source}: {value!r}: up to 200 letters, digits and _ . : @ + = / - please"
        )
    return value


def target_key(component: str, target: Any) -> str:
    """What decides a target's shard: its host's name when it is read through a ``[[host]]``."""
    host = getattr(target, "host", None)
    if component != "host" and isinstance(host, str) and host:
        return f"host/{host}"
    return f"{component}/{target.name}"


def shard_of(key: str, count: int) -> int:
    """The shard of a target key: SHA-256, the same in every process (unlike ``hash()``), and
    without CRC-32's linearity, which puts hosts ``db0`` … ``db3`` on 2 of 4 shards."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % count


def _loaded(config: pytest.Config) -> cfg.Config | None:
    from opscheck.plugin import CONFIG_KEY  # not at import: opscheck.report imports this module

    return config.stash.get(CONFIG_KEY, None)


def _item_key(item: pytest.Item) -> str | None:
    params = getattr(getattr(item, "callspec", None), "params", {})
    for component in cfg.COMPONENTS:
        target = params.get(f"{component}_target")
        if target is not None:
            return target_key(component, target)
    return None


def targets_of(config: pytest.Config, shard: Shard) -> list[str]:
    """The inventory's targets in this shard, as ``component/name``."""
    loaded = _loaded(config)
    return [
        f"{component}/{target.name}"
        for component in cfg.COMPONENTS
        for target in (loaded.targets(component) if loaded else ())
        if shard_of(target_key(component, target), shard.count) == shard.index
    ]


def file_sha256(path: Path | None) -> str:
    """The file's SHA-256 (hex), as the shards record their inventory and thresholds; "" for
    none."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path and path.is_file() else ""


def report_fields(config: pytest.Config) -> dict[str, Any]:
    """What the JSON report says about the run it is part of: ``run_id`` and ``shard``."""
    fields: dict[str, Any] = {}
    if run_id(config):
        fields["run_id"] = run_id(config)
    shard, loaded = of(config), _loaded(config)
    if shard is not None and loaded is not None:
        fields["shard"] = {
            "index": shard.index,
            "count": shard.count,
            "targets": len(targets_of(config, shard)),
            # The merge refuses shards that did not run the same checks on the same inventory.
            "inventory_sha256": file_sha256(loaded.inventory_path),
            "thresholds_sha256": file_sha256(loaded.thresholds_path),
        }
        if shard.selected is not None:
            fields["shard"]["selected"] = shard.selected
    return fields


def excused(config: pytest.Config) -> bool:
    """This run is a shard that checked nothing itself while other shards have checks: not a run
    that checked nothing (the merge decides that for the whole run)."""
    shard = of(config)
    return shard is not None and shard.others_have_checks


# -- hooks ------------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    of(config)  # a wrong --shard or run id stops the run here, with exit code 4
    run_id(config)


def pytest_report_header(config: pytest.Config) -> str | None:
    shard, loaded = of(config), _loaded(config)
    if shard is None or loaded is None:
        return None
    total = sum(len(loaded.targets(c)) for c in cfg.COMPONENTS)
    rid = run_id(config)
    return f"opscheck: shard {shard}: {len(targets_of(config, shard))} of {total} targets" + (
        f", run {rid}" if rid else ""
    )


@pytest.hookimpl(trylast=True)  # after -m, -k and the inventory's skip/checks have selected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shard = of(config)
    if shard is None:
        return
    from opscheck.plugin import check_id

    mine: list[pytest.Item] = []
    others: list[pytest.Item] = []
    for item in items:
        key = _item_key(item)
        owner = 0 if key is None else shard_of(key, shard.count)
        (mine if owner == shard.index else others).append(item)
    shard.selected = sum(1 for item in items if check_id(item) is not None)
    shard.mine = sum(1 for item in mine if check_id(item) is not None)
    if hasattr(config, "workeroutput"):  # an xdist worker: its controller does not collect
        config.workeroutput[_WORKER_OUTPUT] = (shard.selected, shard.mine)
    if others:
        config.hook.pytest_deselected(items=others)
        items[:] = mine


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist's controller learns from its workers what collection found."""
    counts = getattr(node, "workeroutput", {}).get(_WORKER_OUTPUT)
    shard = of(node.config)
    if counts and shard is not None:
        shard.selected, shard.mine = counts


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A shard with none of the run's checks ends 0, not 5 (pytest's "no tests ran")."""
    if hasattr(session.config, "workerinput"):
        return
    no_tests = session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED
    if no_tests and not session.testsfailed and excused(session.config):
        session.exitstatus = pytest.ExitCode.OK


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    shard = of(config)
    if shard is None or hasattr(config, "workerinput"):
        return
    reporter = config.pluginmanager.get_plugin("opscheck-reporter")
    if excused(config) and not shard.mine:
        terminalreporter.write_line(
            f"opscheck: shard {shard}: none of the run's {shard.selected} selected checks is "
            f"in this shard ({len(targets_of(config, shard))} of the inventory's targets): "
            "nothing to check here; the merged report counts this shard"
        )
    elif excused(config) and reporter is not None and reporter.checked_nothing():
        terminalreporter.write_line(
            f"opscheck: shard {shard}: its {shard.mine} checks were all skipped; the other "
            f"shards hold {(shard.selected or 0) - (shard.mine or 0)} more: the merged report says "
            "whether the run checked anything"
        )
    _auto_merge(config, shard, terminalreporter)


def _auto_merge(config: pytest.Config, shard: Shard, terminalreporter: Any) -> None:
    """With ``--archive`` and a run id, the last shard of the run to finish merges them all."""
    reporter = config.pluginmanager.get_plugin("opscheck-reporter")
    archive = getattr(reporter, "archive", None)
    rid = run_id(config)
    if archive is None or not rid or not archive.final("json").is_file():
        return
    from opscheck import merge

    lines, merged = merge.when_complete(archive.day.parent, archive.final("json"), rid)
    for line in lines:
        terminalreporter.write_line(f"opscheck: {line}")
    if merged is not None:  # this shard merged the run: it notifies for it (opscheck/notify.py)
        config.stash[MERGED_KEY] = merged
