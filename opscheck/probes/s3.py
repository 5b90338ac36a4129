"""Backups as objects under an S3 (or S3-compatible) prefix: the weekly `aws s3 ls
s3://bucket/postgres/ --recursive`, read with boto3.

boto3 takes ~190 ms to import: it is imported only when a target with ``s3`` is checked.
Credentials come only from the environment: the variables the target names
(``access_key_id_env`` ...), else the standard ``AWS_*`` variables (keys, or the web identity
token file and container credentials they point to). Never a credentials file, a profile or
instance metadata: what the suite uses is what its environment says.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opscheck.config import S3Location, secret
from opscheck.judge import ProbeError
from opscheck.probes.backup import Backup, File
from opscheck.session import Unreachable

if TYPE_CHECKING:
    from botocore.client import BaseClient

MAX_OBJECTS = 10_000  # listed per prefix; a prefix holding more is summed in part
CHUNK = 1024 * 1024
# botocore's credential providers that read nothing but environment variables (and the files
# or local endpoints those variables name: EKS's web identity token, ECS's container role).
_FROM_ENVIRONMENT = ("env", "assume-role-with-web-identity", "container-role")
# What the standard variables hold that must not reach a report (the key ID is not secret).
STANDARD_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_NO_CREDENTIALS = (
    "no credentials: set access_key_id_env and secret_access_key_env in the inventory, or "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
)


def describe_error(exc: BaseException, timeout: float) -> str:
    """A botocore error on one line, in an operator's words."""
    from botocore import exceptions

    if isinstance(exc, exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "?"))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("404", "NoSuchBucket"):
            return "no such bucket"
        if code in ("403", "AccessDenied"):
            return "access denied (HTTP 403): check the key's policy (s3:ListBucket, s3:GetObject)"
        return f"{code}: {error.get('Message') or f'HTTP {status}'}"
    if isinstance(exc, exceptions.ConnectTimeoutError | exceptions.ReadTimeoutError):
        return f"no answer within {timeout:g} s (timeout)"
    if isinstance(exc, exceptions.NoCredentialsError):
        return _NO_CREDENTIALS
    if isinstance(exc, exceptions.EndpointConnectionError):
        # "Could not connect to the endpoint URL: <the request's URL>" hides the reason.
        url = str(exc.kwargs.get("endpoint_url", "")).split("?")[0]
        reason = re.search(r"\[Errno -?\d+\] ([^)'\"]+)", str(exc.kwargs.get("error", "")))
        return f"cannot connect to {url}" + (f": {reason.group(1)}" if reason else "")
    return str(exc) or type(exc).__name__


def open_client(s3: S3Location, timeout: float) -> BaseClient:
    """A client of the bucket's endpoint, checked with one listing of a single key (what the
    checks need: s3:ListBucket; a HEAD would fail without saying why)."""
    import boto3
    import botocore.session
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    session = botocore.session.get_session()
    resolver = session.get_component("credential_provider")
    resolver.providers = [p for p in resolver.providers if p.METHOD in _FROM_ENVIRONMENT]
    if s3.access_key_id_env:
        session.set_credentials(
            secret(s3, "access_key_id"),
            secret(s3, "secret_access_key"),
            secret(s3, "session_token"),
        )
    if session.get_credentials() is None:
        raise Unreachable(_NO_CREDENTIALS)
    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"total_max_attempts": 1},  # one try within the timeout, as every check does
        user_agent_extra="opscheck",
    )
    client = boto3.session.Session(botocore_session=session, region_name=s3.region).client(
        "s3", endpoint_url=s3.endpoint_url, config=config
    )
    try:
        client.list_objects_v2(Bucket=s3.bucket, MaxKeys=1)
    except (BotoCoreError, ClientError) as exc:
        raise Unreachable(f"s3://{s3.bucket}: {describe_error(exc, timeout)}") from None
    return client


class S3Objects:
    """Backups as objects: one backup per rendered prefix (a day's objects)."""

    noun = "objects"

    def __init__(self, client: BaseClient, s3: S3Location, timeout: float) -> None:
        self.client = client
        self.bucket = s3.bucket
        self.timeout = timeout
        self.where = f"s3://{s3.bucket}" + (f" at {s3.endpoint_url}" if s3.endpoint_url else "")

    def find(self, rendered: Sequence[str]) -> tuple[list[list[Backup]], list[str]]:
        found: list[list[Backup]] = []
        problems: list[str] = []
        for prefix in rendered:
            objects, more = self._list(prefix)
            location = f"s3://{self.bucket}/{prefix}"
            if more:
                problems.append(f"{location}: over {MAX_OBJECTS} objects, the first counted")
            found.append([Backup(location, location, tuple(objects), True)] if objects else [])
        return found, problems

    def show(self, rendered: str) -> str:
        return f"s3://{self.bucket}/{rendered}"

    def _list(self, prefix: str) -> tuple[list[File], bool]:
        from botocore.exceptions import BotoCoreError, ClientError

        objects: list[File] = []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        try:
            while True:
                page = self.client.list_objects_v2(**kwargs)
                for item in page.get("Contents", []):
                    if item["Key"].endswith("/") and not item["Size"]:
                        continue  # a "folder" a console made, not a backup
                    objects.append(
                        File(item["Key"], int(item["Size"]), item["LastModified"].timestamp())
                    )
                if not page.get("IsTruncated") or len(objects) >= MAX_OBJECTS:
                    return objects, bool(page.get("IsTruncated"))
                kwargs["ContinuationToken"] = page["NextContinuationToken"]
        except (BotoCoreError, ClientError) as exc:
            raise ProbeError(
                f"s3://{self.bucket}/{prefix}: {describe_error(exc, self.timeout)}"
            ) from None

    def fetch(self, file: File, folder: Path, deadline: float) -> Path:
        """Download an object into ``folder`` (for the restore test), by ``deadline``."""
        from botocore.exceptions import BotoCoreError, ClientError

        target = folder / file.name
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=file.path)["Body"]
            with target.open("wb") as out:
                while chunk := body.read(CHUNK):
                    out.write(chunk)
                    if time.monotonic() > deadline:
                        raise ProbeError(f"s3://{self.bucket}/{file.path}: download too slow")
        except (BotoCoreError, ClientError) as exc:
            raise ProbeError(
                f"s3://{self.bucket}/{file.path}: {describe_error(exc, self.timeout)}"
            ) from None
        return target
