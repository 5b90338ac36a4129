"""``[[backup]]``: last night's backups, as files on a host or objects in S3, and the weekly
restore test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from opscheck import units

from . import urls
from .base import (
    CHECK_LIMIT,
    Duration,
    InlineLevels,
    Name,
    NumberLimit,
    Strict,
    Target,
    at_most,
    unique_names,
)
from .postgres import Dsn

MAX_RETENTION_DAYS = 366
BackupKind = Literal["auto", "sqlite", "tar", "gzip", "pg_custom", "pg_plain"]
# Bracket expressions of a glob stay unquoted in the listing command: only these characters.
_GLOB_CLASS = re.compile(r"\[!?[A-Za-z0-9_.-]+\]")


class S3Location(Strict):
    """An S3 (or S3-compatible) bucket and a date-templated prefix; credentials come only from
    the environment: the variables named here, else the standard ``AWS_*`` variables."""

    bucket: str = Field(min_length=3)
    prefix: str = ""  # "postgres/{date:%Y/%m/%d}/"
    endpoint_url: str | None = None  # MinIO, Ceph, R2 ...; default: AWS
    region: str | None = None
    access_key_id_env: str | None = None
    secret_access_key_env: str | None = None
    session_token_env: str | None = None

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, bucket: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
            raise ValueError(
                f"expected a bucket name such as 'my-backups' (no s3://), got {bucket!r}"
            )
        return bucket

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, url: str | None) -> str | None:
        if url is not None:
            urls.checked(
                url,
                ("http", "https"),
                "an http:// or https:// URL",
                "name the variables that hold them in access_key_id_env and secret_access_key_env",
            )
        return url

    @model_validator(mode="after")
    def _key_pair(self) -> S3Location:
        if (self.access_key_id_env is None) != (self.secret_access_key_env is None):
            raise ValueError(
                "expected both access_key_id_env and secret_access_key_env, or neither"
            )
        if self.session_token_env and not self.access_key_id_env:
            raise ValueError("session_token_env needs access_key_id_env and secret_access_key_env")
        return self


class RestoreQuery(Strict):
    """A query run on the restored copy (``SELECT count(*) FROM work_orders``), at least ``min``."""

    name: Name
    sql: str = Field(min_length=1)
    min: float | None = None


class RestoreTest(Strict):
    """The weekly restore test. It WRITES: it creates a scratch database on the server of ``dsn``,
    restores the newest dump into it and drops it. Never point ``dsn`` at production."""

    # libpq "host=… port=… dbname=… user=…" of a NON-production server; dbname is the database
    # to connect to for CREATE/DROP DATABASE (default: the user's). The role needs CREATEDB.
    dsn: Annotated[Dsn, Field(min_length=1)]
    password_env: str | None = None
    queries: Annotated[list[RestoreQuery], AfterValidator(unique_names)] = Field(
        default_factory=list
    )
    timeout: Duration = 1800.0  # the whole restore: copy, pg_restore, queries
    query_timeout: Duration = 60.0

    @field_validator("query_timeout", mode="before")
    @classmethod
    def _within_restore(cls, written: object, info: ValidationInfo) -> object:
        whole = info.data.get("timeout")
        try:
            seconds = units.parse(written, "duration")
        except units.UnitError:
            return written  # the duration's own validation says what is wrong with it
        if whole is not None and seconds > whole:
            raise ValueError(
                f"expected at most the restore's timeout ({units.format_value(whole, 'duration')}"
                f"), got {written!r}"
            )
        return written


class BackupTarget(Target):
    """Where last night's backup lands: a (date-templated) path on a host, or an S3 prefix."""

    host: str | None = None  # a [[host]] target the backups live on; default: this machine
    # A file glob ("/backups/daily/{date:%Y%m%d}/fossawork_v2_*.db": each file is a backup) or a
    # directory ("/backups/daily/{date:%Y%m%d}/": the directory is the backup).
    path: str | None = None
    s3: S3Location | None = None
    kind: BackupKind = "auto"  # how to verify a file; auto: by its name
    # Integrity checks read whole files: the time all of one backup's checks may take.
    verify_timeout: Annotated[float, at_most("4m", CHECK_LIMIT)] = 240.0
    restore: RestoreTest | None = None
    # Retention: each of the last N days has a backup; none is older than M days (pruned).
    keep_daily: Annotated[int, Field(ge=1, le=MAX_RETENTION_DAYS)] | None = None
    max_age_days: Annotated[int, Field(ge=1, le=10 * 366)] | None = None

    @field_validator("path")
    @classmethod
    def _absolute_glob(cls, path: str | None) -> str | None:
        if path is None:
            return None
        if not path.startswith("/"):
            raise ValueError(
                f"expected an absolute path such as '/backups/daily/*.db', got {path!r}"
            )
        for bracket in re.findall(r"\[[^\]]*\]?", path):
            if not _GLOB_CLASS.fullmatch(bracket):
                raise ValueError(
                    f"expected glob classes of letters, digits and _ . - such as [0-9], "
                    f"got {bracket!r}"
                )
        return path

    def inline_levels(self) -> Iterator[InlineLevels]:
        if self.keep_daily is not None:
            limit = NumberLimit(crit=self.keep_daily, direction="below")
            key = "backup.retention_days_covered"
            yield InlineLevels(key, (), limit, {"crit": "keep_daily"})
        if self.max_age_days is not None:
            limit = NumberLimit(crit=self.max_age_days, direction="above")
            yield InlineLevels("backup.pruned", (), limit, {"crit": "max_age_days"})
        for index, query in enumerate(self.restore.queries if self.restore else []):
            if query.min is not None:
                # At least `min` rows: crit below it, as the restore test judges it.
                limit = NumberLimit(crit=query.min, direction="below")
                where = ("restore", "queries", index)
                yield InlineLevels("backup.restore_rows", where, limit, {"crit": "min"})

    @model_validator(mode="after")
    def _one_place(self) -> BackupTarget:
        if (self.path is None) == (self.s3 is None):
            raise ValueError("expected exactly one of path (files on a host) or s3 (a bucket)")
        if self.host is not None and self.s3 is not None:
            raise ValueError("host applies to path only (s3 is reached from this machine)")
        if self.keep_daily is not None or self.max_age_days is not None:
            _retention_dates(self)
        return self


# The strftime fields a backup's day can be read back from.
_DAY_FIELDS = {"%Y", "%y", "%m", "%d", "%j", "%b", "%H", "%M", "%S", "%%"}


def _retention_dates(target: BackupTarget) -> None:
    """Retention reads each backup's day from its name (the path's or prefix's ``{date:...}``)
    or, for files without a date in the path, from their modification time."""
    if (
        target.keep_daily is not None
        and target.max_age_days is not None
        and target.max_age_days < target.keep_daily
    ):
        raise ValueError(
            f"expected max_age_days ({target.max_age_days}) at least keep_daily "
            f"({target.keep_daily}): the backups kept would be pruned"
        )
    written = target.s3.prefix if target.s3 is not None else str(target.path)
    formats = [m or "%Y-%m-%d" for m in re.findall(r"\{date(?::([^}]*))?\}", written)]
    if target.s3 is not None and not formats:
        raise ValueError(
            "keep_daily and max_age_days on s3 need a date in the prefix, such as "
            "'postgres/{date:%Y/%m/%d}/': one prefix per day (LastModified is the upload time)"
        )
    for fmt in formats:
        fields = set(re.findall(r"%.", fmt))
        day = {"%Y", "%m", "%d"} <= fields or {"%Y", "%j"} <= fields or {"%y", "%m", "%d"} <= fields
        if not day or not fields <= _DAY_FIELDS:
            raise ValueError(
                f"keep_daily and max_age_days read the day back from the name: expected "
                f"{{date:FMT}} with year, month and day (%Y %m %d), got {{date:{fmt}}}"
            )
