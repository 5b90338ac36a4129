"""``[settings.notify]`` and ``[settings.heartbeat]``: where a run reports when it ends
(opscheck/notify.py, opscheck/heartbeat.py). Secrets (webhook URLs, tokens, the SMTP password) are
named by ``*_env`` keys and read from the environment, never written here."""

from __future__ import annotations

import os
import ssl
from email.utils import parseaddr
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from . import urls
from .base import Strict


class SlackNotify(Strict):
    """A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat): its URL is the
    secret, read from the variable ``url_env`` names."""

    url_env: str = "OPSCHECK_SLACK_WEBHOOK_URL"


class WebhookNotify(Strict):
    """A generic JSON webhook: the run's headline, problems and link as one JSON document."""

    url_env: str = "OPSCHECK_WEBHOOK_URL"
    token_env: str | None = None  # sent as "Authorization: Bearer <token>"


def _address(value: str) -> str:
    _name, address = parseaddr(value)
    if "@" not in address or any(c.isspace() for c in address):
        raise ValueError(f"expected an e-mail address such as 'ops@example.com', got {value!r}")
    return value


Address = Annotated[str, AfterValidator(_address)]


class EmailNotify(Strict):
    """E-mail over SMTP, with STARTTLS unless ``starttls = false``; ``implicit_tls = true``: TLS
    from the connection's first byte (SMTPS, port 465) instead."""

    host: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 587  # 465 with implicit_tls (_default_port)
    starttls: bool = True
    implicit_tls: bool = False
    sender: Address
    to: Annotated[list[Address], Field(min_length=1)]
    username: Annotated[str, Field(min_length=1)] | None = None
    password_env: str | None = None
    # A PEM bundle of the CAs that sign the SMTP server's certificate (a private CA); default:
    # the system's CAs.
    ca_file: str | None = None

    @field_validator("ca_file")
    @classmethod
    def _bundle(cls, ca_file: str | None) -> str | None:
        if ca_file is None:
            return None
        path = os.path.expanduser(ca_file)
        if not os.path.isfile(path):
            why = "a directory" if os.path.isdir(path) else "no such file"
            raise ValueError(
                f"expected the path of a CA bundle (PEM file), got {ca_file!r} ({why})"
            )
        try:
            ssl.create_default_context(cafile=path)
        except (ssl.SSLError, OSError):
            raise ValueError(
                f"expected a readable CA bundle of PEM certificates, got {ca_file!r}"
            ) from None
        return ca_file

    @model_validator(mode="before")
    @classmethod
    def _default_port(cls, data: Any) -> Any:
        """SMTPS listens on 465, submission with STARTTLS on 587."""
        if isinstance(data, dict) and "port" not in data and data.get("implicit_tls") is True:
            return {**data, "port": 465}
        return data

    @property
    def tls(self) -> bool:
        return self.starttls or self.implicit_tls

    @model_validator(mode="after")
    def _login(self) -> EmailNotify:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("expected username and password_env together, or neither")
        if self.implicit_tls and self.starttls and "starttls" in self.model_fields_set:
            raise ValueError(
                "expected starttls = true or implicit_tls = true, not both (implicit_tls: TLS "
                "from the first byte, as on port 465; starttls: TLS after EHLO, as on 587)"
            )
        if self.password_env and not self.tls:
            raise ValueError(
                "password_env needs starttls = true or implicit_tls = true (the password would "
                "cross the network in clear text)"
            )
        if self.ca_file and not self.tls:
            raise ValueError(
                "ca_file needs starttls = true or implicit_tls = true (it is the CA of the TLS "
                "certificate)"
            )
        return self


def _report_url(url: str) -> str:
    urls.checked(url, ("http", "https"), "an http:// or https:// URL", "")
    return url.rstrip("/")


class NotifySettings(Strict):
    """``[settings.notify]``: who hears of a run when it ends (opscheck/notify.py)."""

    # problems: a run with a CRIT, WARN, failure, error, not-run or FLAKY check (waived ones are
    # not problems); change: when that set differs from the previous run of the same schedule;
    # always: every run.
    on: Literal["problems", "change", "always"] = "problems"
    # Where the reports folder is served: the link is <report_url>/<day>/<report>.html.
    report_url: Annotated[str, AfterValidator(_report_url)] | None = None
    timeout: Annotated[float, Field(gt=0, le=120)] = 10.0  # seconds, per channel
    slack: SlackNotify | None = None
    webhook: WebhookNotify | None = None
    email: EmailNotify | None = None

    @model_validator(mode="after")
    def _a_channel(self) -> NotifySettings:
        if not (self.slack or self.webhook or self.email):
            raise ValueError(
                "expected at least one channel: [settings.notify.slack], "
                "[settings.notify.webhook] or [settings.notify.email]"
            )
        return self


class HeartbeatSettings(Strict):
    """A dead-man's switch, healthchecks.io-style (opscheck/heartbeat.py): ``<url>/start`` when
    the run starts, then ``<url>`` (exit status 0) or ``<url>/fail``; with ``exit_code``,
    ``<url>/<exit status>``. The URL is a secret (healthchecks.io's holds the check's UUID)."""

    url_env: str = "OPSCHECK_HEARTBEAT_URL"  # the variable holding the ping URL
    exit_code: bool = False
    # Seconds per ping (a ping that got no answer is tried once more, a second later).
    timeout: Annotated[float, Field(gt=0, le=60)] = 5.0
