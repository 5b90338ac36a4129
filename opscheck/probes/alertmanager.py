"""Alertmanager probes: the runbooks' "is anything firing?" (``amtool alert query``), as
Measurements, through Alertmanager's read-only API v2.

GET only: ``/-/ready`` (reachable), ``/api/v2/status`` (version, cluster), ``/api/v2/alerts``
(what fires, ``filter=`` the target's matchers) and ``/api/v2/silences`` (who silenced what, read
only when an alert is silenced). Nothing here creates, expires or changes anything.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opscheck.config import AlertmanagerTarget
from opscheck.config.alertmanager import HIDDEN_LABELS
from opscheck.judge import Measurement, ProbeError
from opscheck.probes.api import Api, of_target
from opscheck.redaction import clip
from opscheck.units import format_value

SHOWN = 3  # alerts a measurement names in its one line
LISTED = 50  # alerts of a severity the detail lists, firing ones first
_FIRST = ("critical", "warning")  # severities reported first, in this order


def open_api(target: AlertmanagerTarget, timeout: float) -> Api:
    """The target's API client, auth from the environment; a silent server is ``Unreachable``."""
    return of_target(target, timeout).open("/-/ready")


def _status(api: Api) -> dict[str, Any]:
    document = api.get_json("/api/v2/status")
    if not isinstance(document, dict) or not isinstance(document.get("cluster"), dict):
        raise ProbeError(f"GET {api.base_url}/api/v2/status: not an Alertmanager status answer")
    return document


def reachable(api: Api) -> Measurement:
    """``/-/ready`` answered (the fixture asked); the version and uptime from the status API."""
    status = _status(api)
    version = (status.get("versionInfo") or {}).get("version") or "unknown version"
    text = f"Alertmanager {version}"
    started = _time(status.get("uptime"))
    if started is not None:
        text += f" (up {format_value(_age(started), 'duration')})"
    return Measurement.fact(True, text, "answers /api/v2/status")


def cluster(api: Api, min_peers: int) -> Measurement:
    """``cluster.status`` is ``ready`` with at least ``min_peers`` peers (itself included), or
    clustering is off and one instance is all that is asked for."""
    info = _status(api)["cluster"]
    state = str(info.get("status") or "unknown")
    peers = info.get("peers") or []
    names = ", ".join(str(p.get("name") or p.get("address") or "?") for p in peers[:10])
    expected = f"cluster ready with >= {min_peers} peer{'s' * (min_peers > 1)}"
    if state == "disabled":
        if min_peers > 1:
            text = f"clustering disabled: a single instance, min_peers is {min_peers}"
            return Measurement.fact(False, text, expected)
        text = "clustering disabled: a single instance (fine without min_peers > 1)"
        return Measurement.fact(True, text, expected)
    text = f"cluster {state}, {len(peers)} of min {min_peers} peers"
    ok = state == "ready" and len(peers) >= min_peers
    if state != "ready":
        text += " (settling: just started, or peers do not answer gossip)"
    return Measurement.fact(ok, text, expected, detail=f"peers: {names}" if names else "")


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    labels: dict[str, str]
    summary: str
    started: dt.datetime | None
    state: str  # active, suppressed, unprocessed
    silenced_by: tuple[str, ...]
    inhibited_by: tuple[str, ...]

    @property
    def counted(self) -> bool:
        return self.state != "suppressed"


def alerts(api: Api, target: AlertmanagerTarget) -> list[Alert]:
    """Every alert Alertmanager holds now (resolved ones are not returned), scoped by the
    target's matchers, silenced and inhibited ones included."""
    params = {"filter": list(target.matchers)} if target.matchers else None
    document = api.get_json("/api/v2/alerts", params)
    if not isinstance(document, list):
        raise ProbeError(f"GET {api.base_url}/api/v2/alerts: expected a list of alerts")
    found = []
    for raw in document:
        if not isinstance(raw, dict):
            continue
        labels = {str(k): str(v) for k, v in (raw.get("labels") or {}).items()}
        status = raw.get("status") or {}
        found.append(
            Alert(
                name=labels.get("alertname", "(no alertname)"),
                severity=labels.get(target.severity_label, ""),
                labels=labels,
                summary=str((raw.get("annotations") or {}).get("summary") or ""),
                started=_time(raw.get("startsAt")),
                state=str(status.get("state") or "active"),
                silenced_by=tuple(map(str, status.get("silencedBy") or ())),
                inhibited_by=tuple(map(str, status.get("inhibitedBy") or ())),
            )
        )
    return found


def firing(api: Api, target: AlertmanagerTarget) -> list[Measurement]:
    """Alerts firing per severity (subject: the severity; critical and warning always, with
    the severities the inventory sets levels for, then any other that fires): silenced and
    inhibited ones are not counted, but listed in the detail with who silenced them."""
    found = alerts(api, target)
    silences = _silences(api) if any(a.silenced_by for a in found) else {}
    severities = dict.fromkeys([*_FIRST, *target.severity_levels()])
    for alert in sorted(found, key=lambda a: a.severity):
        severities.setdefault(alert.severity)
    return [
        _severity(severity, [a for a in found if a.severity == severity], target, silences)
        for severity in severities
    ]


def _severity(
    severity: str, group: list[Alert], target: AlertmanagerTarget, silences: dict[str, str]
) -> Measurement:
    counted = sorted((a for a in group if a.counted), key=_oldest_first)
    quiet = sorted((a for a in group if not a.counted), key=_oldest_first)
    text = f"{len(counted)} firing"
    if counted:
        named = ", ".join(_short(a) for a in counted[:SHOWN])
        more = f" and {len(counted) - SHOWN} more" if len(counted) > SHOWN else ""
        text += f": {named}{more}"
    if quiet:
        text += f" ({len(quiet)} silenced or inhibited, not counted)"
    lines = [_line(a, target) for a in counted]
    lines += [f"{_line(a, target)} [not counted: {_why(a, silences)}]" for a in quiet]
    if len(lines) > LISTED:
        lines[LISTED:] = [f"... and {len(lines) - LISTED} more"]
    scope = f" matching {', '.join(target.matchers)}" if target.matchers else ""
    subject = severity or f"(no {target.severity_label} label)"
    if not group and scope:
        text += scope
    return Measurement(len(counted), subject=subject, text=text, detail="\n".join(lines))


def _oldest_first(alert: Alert) -> tuple[bool, dt.datetime]:
    return (alert.started is None, alert.started or dt.datetime.min.replace(tzinfo=dt.UTC))


def _short(alert: Alert) -> str:
    """``DiskFull for 30 min ("Disk almost full")``: how the one-line message names an alert."""
    text = alert.name + _for(alert)
    return f'{text} ("{clip(alert.summary, 80)}")' if alert.summary else text


def _line(alert: Alert, target: AlertmanagerTarget) -> str:
    """One alert in the detail: name, the labels that tell it apart, age and summary."""
    shown = _labels(alert, target)
    parts = [alert.name + (f" {{{shown}}}" if shown else "") + _for(alert)]
    if alert.summary:
        parts.append(clip(alert.summary, 200))
    return ": ".join(parts)


def _labels(alert: Alert, target: AlertmanagerTarget) -> str:
    if target.labels is not None:
        names: Iterable[str] = target.labels
    else:
        hidden = {*HIDDEN_LABELS, target.severity_label}
        names = sorted(k for k in alert.labels if k not in hidden)
    return ", ".join(f'{k}="{clip(alert.labels[k], 80)}"' for k in names if k in alert.labels)


def _for(alert: Alert) -> str:
    if alert.started is None:
        return ""
    return f" for {format_value(_age(alert.started), 'duration')}"


def _why(alert: Alert, silences: dict[str, str]) -> str:
    reasons = [f"silenced ({silences.get(s, s)})" for s in alert.silenced_by]
    if alert.inhibited_by:
        reasons.append(f"inhibited by {len(alert.inhibited_by)} firing alert(s)")
    return "; ".join(reasons) or "suppressed"


def _silences(api: Api) -> dict[str, str]:
    """Silence id -> ``by alice until 19:20 UTC: maintenance``, read from ``/api/v2/silences``."""
    document = api.get_json("/api/v2/silences")
    found = {}
    for silence in document if isinstance(document, list) else ():
        if not isinstance(silence, dict) or "id" not in silence:
            continue
        ends = _time(silence.get("endsAt"))
        until = f" until {ends:%Y-%m-%d %H:%M} UTC" if ends else ""
        comment = clip(str(silence.get("comment") or ""), 120)
        by = clip(str(silence.get("createdBy") or "?"), 60)
        found[str(silence["id"])] = f"by {by}{until}" + (f": {comment}" if comment else "")
    return found


def _time(value: object) -> dt.datetime | None:
    """Alertmanager's RFC 3339 times (``2026-11-30T18:39:33.123Z``), in UTC; None if absent."""
    if not isinstance(value, str) or not value:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.replace("Z", "+00:00"))  # Go's nanoseconds
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def _age(since: dt.datetime) -> float:
    return max(0.0, (dt.datetime.now(dt.UTC) - since).total_seconds())
