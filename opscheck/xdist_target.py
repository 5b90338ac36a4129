"""With pytest-xdist, every test of one target runs on one worker.

A worker that checks a target opens its connection (an ssh login, a TLS handshake, a database
session); xdist's ``--dist load`` hands tests out one by one, so every worker ends up logging in
to every host (3.8 logins per host at ``-n 4``, each an ssh master: MaxStartups is hit and
checks fail). ``--dist loadgroup`` would keep marked tests together, but with pytest 9 it does
nothing: xdist writes the group into ``item._nodeid``, which pytest no longer reads.

So an opscheck run under ``-n N`` (whose ``--dist`` is ``load``, what ``-n`` picks) is scheduled
by target: xdist's ``LoadScopeScheduling`` with the scope of a test being its target, read from
its node id against the inventory — ``suites/host/test_resources.py::test_disk_used_below_limit
[web1]`` is ``host:web1``; a ``for_each`` test (``[main/pending_uploads]``) belongs to ``main``;
an ``[[sqlite]]``, ``[[logs]]`` or ``[[backup]]`` target that lives on a ``[[host]]`` goes with
that host, whose ssh connection it shares. Tests without a target (a component's "no target"
skip) are scheduled one by one. Other ``--dist`` modes (``worksteal``, ``loadscope``, ``each``
...) and runs of other test folders are left to xdist.
"""

from __future__ import annotations

import functools
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import pytest

from opscheck import config as cfg

if TYPE_CHECKING:
    from xdist.workermanage import WorkerController


def scopes(loaded: cfg.Config) -> dict[str, dict[str, str]]:
    """Per component, the scope of each of its targets by name (``{"host": {"web1":
    "host:web1"}, "sqlite": {"app": "host:web1"}}``)."""
    table: dict[str, dict[str, str]] = {}
    for component in cfg.COMPONENTS:
        table[component] = {}
        for target in loaded.targets(component):
            on_host = getattr(target, "host", None)  # sqlite, logs, backup: files on a [[host]]
            scope = f"host:{on_host}" if on_host else f"{component}:{target.name}"
            table[component][str(target.name)] = scope
    return table


def scope_of(nodeid: str, targets: dict[str, dict[str, str]]) -> str:
    """The target scope of a test's node id, or the node id itself when it has no target."""
    path, _, name = nodeid.partition("::")
    component = PurePosixPath(path).parent.name
    known = targets.get(component)
    if not known or not name.endswith("]") or "[" not in name:
        return nodeid
    param = name[name.index("[") + 1 : -1]  # a test function's name holds no "["
    if param in known:
        return known[param]
    # for_each: "<target>/<entry>"; names may hold "/" themselves, so the longest that fits.
    owners = [t for t in known if param.startswith(f"{t}/")]
    return known[max(owners, key=len)] if owners else nodeid


@functools.cache
def _scheduling_class() -> type[Any]:
    """The scheduler, built on first use: xdist is imported only by runs that use it."""
    from xdist.scheduler import LoadScopeScheduling

    class TargetScheduling(LoadScopeScheduling):
        """``LoadScopeScheduling`` with a target per scope, and linear in the number of tests
        (xdist's looks every test up in a list, and sums every unit it ever assigned after
        each test: minutes at 10,000 targets)."""

        def __init__(self, config: pytest.Config, log: Any = None) -> None:
            super().__init__(config, log)
            from opscheck.plugin import CONFIG_KEY

            self._targets = scopes(config.stash[CONFIG_KEY])
            self._scopes: dict[str, str] = {}
            self._indexes: dict[WorkerController, dict[str, int]] = {}

        def _split_scope(self, nodeid: str) -> str:
            scope = self._scopes.get(nodeid)
            if scope is None:
                scope = self._scopes[nodeid] = scope_of(nodeid, self._targets)
            return scope

        def _assign_work_unit(self, node: WorkerController) -> None:
            scope, work_unit = self.workqueue.popitem(last=False)
            self.assigned_work.setdefault(node, {})[scope] = work_unit
            index = self._indexes.get(node)
            if index is None:
                collection = self.registered_collections[node]
                index = self._indexes[node] = {nodeid: i for i, nodeid in enumerate(collection)}
            node.send_runtest_some([index[n] for n, done in work_unit.items() if not done])

        def mark_test_complete(
            self, node: WorkerController, item_index: int, duration: float = 0
        ) -> None:
            nodeid = self.registered_collections[node][item_index]
            scope = self._split_scope(nodeid)
            assigned = self.assigned_work[node]
            unit = assigned[scope]
            unit[nodeid] = True
            if all(unit.values()):  # done: nothing more to count or to re-send if it crashes
                del assigned[scope]
            self._reschedule(node)

        def remove_node(self, node: WorkerController) -> str | None:
            self._indexes.pop(node, None)
            crashed: str | None = super().remove_node(node)
            return crashed

    return TargetScheduling


def _runs_suites(config: pytest.Config) -> bool:
    """Whether the run's paths include opscheck's suites (``testpaths``), not only other tests
    (opscheck's own ``tests_meta`` run with the plugin loaded too)."""
    suites = [(config.rootpath / p).resolve() for p in config.getini("testpaths")]
    here = config.invocation_params.dir
    for arg in config.args:
        path = (here / arg.split("::", 1)[0]).resolve()
        if any(path == s or s in path.parents or path in s.parents for s in suites):
            return True
    return False


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``-n N`` (``--dist load``) over opscheck's suites: a target's tests on one worker."""
    if config.getvalue("dist") != "load" or not _runs_suites(config):
        return None
    return _scheduling_class()(config, log)
