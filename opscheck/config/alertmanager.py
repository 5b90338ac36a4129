"""``[[alertmanager]]``: an Alertmanager, what fires in it (per severity) and its cluster."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated

from pydantic import AfterValidator, Field

from .api import ApiTarget
from .base import InlineLevels, NumberLimit, unique

# Any firing `critical` alert is CRIT and any `warning` one WARN (the levels are "above"); a
# severity the inventory writes replaces its default, others are counted without levels.
DEFAULT_SEVERITIES = {"critical": NumberLimit(crit=0), "warning": NumberLimit(warn=0)}
# Labels Prometheus adds to every alert it sends (external labels): they tell alerts apart no more
# than the alert name and severity, which the detail shows anyway.
HIDDEN_LABELS = ("alertname", "prometheus", "prometheus_replica", "replica", "monitor")
# Alertmanager's matcher syntax, as `amtool` and `filter=` take it: name, operator, value.
_MATCHER = re.compile(r'\s*[A-Za-z_][A-Za-z0-9_]*\s*(=~|!~|!=|=)\s*("([^"\\]|\\.)*"|[^"]*)\s*')
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _matcher(text: str) -> str:
    if not _MATCHER.fullmatch(text):
        raise ValueError(
            "expected a matcher such as 'namespace=\"prod\"' (label, one of = != =~ !~, "
            f"value), got {text!r}"
        )
    return text


def _label(name: str) -> str:
    if not _LABEL.fullmatch(name):
        raise ValueError(f"expected a label name of letters, digits and _, got {name!r}")
    return name


Label = Annotated[str, AfterValidator(_label)]


class AlertmanagerTarget(ApiTarget):
    # Only alerts matching all of these are counted and listed (`filter=` of /api/v2/alerts).
    matchers: Annotated[list[Annotated[str, AfterValidator(_matcher)]], unique("matcher")] = Field(
        default_factory=list
    )
    severity_label: Label = "severity"
    # Levels of the number of firing alerts, per severity: `critical = { crit = 0 }`.
    severities: dict[Annotated[str, Field(min_length=1)], NumberLimit] = Field(default_factory=dict)
    # The labels each alert is shown with; default: all but the name, severity and HIDDEN_LABELS.
    labels: Annotated[list[Label], unique("label")] | None = None
    # Peers a clustered Alertmanager must see, itself included; 1 also accepts clustering off.
    min_peers: int = Field(default=1, ge=1, le=100)

    def severity_levels(self) -> dict[str, NumberLimit]:
        """The levels of each severity with levels: the defaults, then the inventory's."""
        return {**DEFAULT_SEVERITIES, **self.severities}

    def inline_levels(self) -> Iterator[InlineLevels]:
        for severity, limit in self.severities.items():
            yield InlineLevels("alertmanager.firing_alerts", ("severities", severity), limit)
