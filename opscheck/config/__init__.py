"""The inventory (what to check) and the thresholds (how strict), validated once at start-up.

Every mistake stops the run before any test, each with one line naming the file, the key and
what was expected: ``inventory.toml: http[1].timeout: expected a duration such as '500ms' ...,
got '5 sec'``.

Modules: ``base`` (strict models, ``Target``, durations, levels), ``errors`` (pydantic errors
as lines), one schema module per component (``host``, ``http``, ``postgres``, ``redis``,
``sqlite``, ``logs``, ``backup``, ``growth`` ...) registered in ``inventory.COMPONENT_MODELS``,
``thresholds`` (thresholds.toml and resolving a check's levels), ``selection`` (check ids the
inventory names), ``reading`` (UTF-8 TOML without invisible characters), ``urls`` (URLs without
credentials) and ``loading`` (``${VAR}``, secrets, ``load``).
"""

from .alertmanager import AlertmanagerTarget
from .backup import BackupKind, BackupTarget, RestoreQuery, RestoreTest, S3Location
from .base import (
    Direction,
    Duration,
    InlineLevels,
    Limit,
    LimitWithTargets,
    NumberLimit,
    Schedule,
    Strict,
    Target,
)
from .docker import DockerTarget
from .errors import ConfigError, redact
from .growth import GrowthTarget
from .host import HostTarget
from .http import HttpTarget, JsonValue
from .inventory import COMPONENT_MODELS, COMPONENTS, Inventory, Settings
from .kubernetes import KubernetesTarget
from .loading import Config, load, secret
from .logs import LOG_PRESETS, LogPattern, LogsTarget, LogStat, window_seconds
from .metrics import MetricLimit, MetricsTarget
from .postgres import Dsn, PostgresTarget, SqlQuery
from .prometheus import QUERY_UNITS, PrometheusTarget, PromQuery
from .redis import QUEUE_LAYOUTS, RedisQueue, RedisTarget
from .sqlite import SqliteTarget, table_levels
from .thresholds import Threshold
from .websocket import WebsocketTarget

__all__ = [
    "COMPONENTS",
    "COMPONENT_MODELS",
    "LOG_PRESETS",
    "QUERY_UNITS",
    "QUEUE_LAYOUTS",
    "AlertmanagerTarget",
    "BackupKind",
    "BackupTarget",
    "Config",
    "ConfigError",
    "Direction",
    "DockerTarget",
    "Dsn",
    "Duration",
    "GrowthTarget",
    "HostTarget",
    "HttpTarget",
    "InlineLevels",
    "Inventory",
    "JsonValue",
    "KubernetesTarget",
    "Limit",
    "LimitWithTargets",
    "LogPattern",
    "LogStat",
    "LogsTarget",
    "MetricLimit",
    "MetricsTarget",
    "NumberLimit",
    "PostgresTarget",
    "PromQuery",
    "PrometheusTarget",
    "RedisQueue",
    "RedisTarget",
    "RestoreQuery",
    "RestoreTest",
    "S3Location",
    "Schedule",
    "Settings",
    "SqlQuery",
    "SqliteTarget",
    "Strict",
    "Target",
    "Threshold",
    "WebsocketTarget",
    "load",
    "redact",
    "secret",
    "table_levels",
    "window_seconds",
]
