"""Backups as objects under an S3 (or S3-compatible) prefix: the weekly `aws s3 ls
s3://bucket/postgres/ --recursive`, read with boto3.

boto3 takes ~190 ms to import: it is imported only when a target with ``s3`` is checked.
Credentials come only from the environment: the variables the target names
(``access_key_id_env`` ...), else the standard ``AWS_*`` variables (keys, or the web identity
token file and container credentials they point to). Never a credentials file, a profile or
instance metadata: what the suite uses is what its environment says.

Every request is one try (no retries) of at most the target's timeout per read; once one gets
no answer (a hung endpoint, a dropped connection), the target is lost for the rest of the run
(``session.Lost``) and its store asks nothing more: one timeout per target, not per check.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opscheck.config import S3Location, secret
from opscheck.judge import ProbeError
from opscheck.probes.backup import Backup, File
from opscheck.session import Lost, Unreachable

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


def _url(exc: BaseException) -> str:
    """The URL a botocore error was about, as an operator would curl it: no query (a presigned
    one carries a signature), no user info."""
    url = str(getattr(exc, "kwargs", {}).get("endpoint_url") or "").split("?")[0]
    return re.sub(r"^([a-z]+://)[^/@]*@", r"\1", url) or "the endpoint"


def _stopped_answering(exc: BaseException) -> bool:
    """Whether ``exc`` means the endpoint stopped answering (a timeout, a refused or dropped
    connection), not a refusal it answered (403, no such bucket) or a bad certificate."""
    from botocore import exceptions

    transport = exceptions.HTTPClientError | exceptions.ConnectionError
    return isinstance(exc, transport) and not isinstance(exc, exceptions.SSLError)


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
        return f"no answer from {_url(exc)} within {timeout:g} s"
    if isinstance(exc, exceptions.ConnectionClosedError):  # its text has the whole query
        return f"{_url(exc)} closed the connection before it answered"
    if isinstance(exc, exceptions.NoCredentialsError):
        return _NO_CREDENTIALS
    if isinstance(exc, exceptions.EndpointConnectionError):
        # "Could not connect to the endpoint URL: <the request's URL>" hides the reason.
        url = _url(exc)
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
        # One try within the timeout, as every check does: with botocore's default retries a
        # hung endpoint cost 9.1 s for a 3 s timeout (its legacy and standard modes alike).
        retries={"total_max_attempts": 1},
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
        self.stopped: str | None = None  # why the endpoint is not asked again this run

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

    @contextlib.contextmanager
    def _asking(self, what: str) -> Iterator[None]:
        """Requests about ``what`` (``s3://bucket/key``): an error the endpoint gave fails the
        check (ProbeError); no answer loses the target (``Lost``), and once lost, the endpoint
        is not asked again: the target's other checks would each wait out the timeout."""
        from botocore.exceptions import BotoCoreError, ClientError

        if self.stopped is not None:
            raise Lost(self.stopped)
        try:
            yield
        except (BotoCoreError, ClientError) as exc:
            said = f"{what}: {describe_error(exc, self.timeout)}"
            if _stopped_answering(exc):
                self.stopped = said
                raise Lost(said) from None
            raise ProbeError(said) from None

    def _list(self, prefix: str) -> tuple[list[File], bool]:
        objects: list[File] = []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        with self._asking(f"s3://{self.bucket}/{prefix}"):
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

    def fetch(self, file: File, folder: Path, deadline: float) -> Path:
        """Download an object into ``folder`` (for the restore test), by ``deadline``."""
        target = folder / file.name
        with self._asking(f"s3://{self.bucket}/{file.path}"):
            body = self.client.get_object(Bucket=self.bucket, Key=file.path)["Body"]
            with target.open("wb") as out:
                while chunk := body.read(CHUNK):
                    out.write(chunk)
                    if time.monotonic() > deadline:
                        raise ProbeError(f"s3://{self.bucket}/{file.path}: download too slow")
        return target
