"""Notifications at the end of a run (``[settings.notify]``): a Slack-compatible incoming
webhook, a generic JSON webhook and e-mail over SMTP with STARTTLS, each saying the headline,
the problems (CRIT first) and where the archived report is.

``on`` says when: ``problems`` (a CRIT, WARN, failed, error, not-run or FLAKY check; a waived
one is not a problem), ``change`` (the set of problems -- check, target, subject, verdict --
differs from the previous run of the same schedule: the newest archived JSON report of that
schedule, else the ``--json-report`` file as the previous run left it; no previous run, or a
previous run whose notification failed, counts as a change) or ``always``.

The configuration is checked when the run starts (the variables the ``*_env`` keys name are set,
the URLs are http(s)); their values are secrets, redacted everywhere: a webhook is named by its
kind ("slack webhook"), never by its URL. The channels are sent at once, each in a thread with
``timeout`` seconds; the run waits for them no longer than that. Sending happens after every
report is written; a channel that fails changes neither the run's outcome nor its exit code:
it is one line on the terminal, and each report's JSON records what was sent
(``notifications``: channel, sent, error).

A sharded run is one run, with one notification: a shard sends none; the merged run is sent by
the last shard to finish, which merges it (``--archive`` and a run id: opscheck.shard), or by
``opscheck-merge`` (opscheck.merge, with the inventory's ``[settings]``: ``notify_merged``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from opscheck import redaction
from opscheck import shard as sharding

if TYPE_CHECKING:
    from opscheck.config.notify import EmailNotify, NotifySettings

CHANNELS = ("slack", "webhook", "email")
SHOWN = {"slack": "slack webhook", "webhook": "webhook", "email": "email"}  # never the URL
MAX_LINES = 20  # problems in a chat message or an e-mail; the webhook's JSON has them all
_GRACE = 0.5  # seconds beyond the timeout a channel's thread is waited for
_CRIT = ("CRIT", "FAILED", "ERROR", "NOT_RUN")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_EXIT_WORDS = {2: "interrupted", 3: "internal error", 4: "usage error", 5: "nothing checked"}


class NotifyError(Exception):
    """A channel could not deliver: the one line an operator reads (redacted when shown).
    ``again``: worth one more try (no answer, a 5xx, a 429), not a refusal (a 4xx)."""

    def __init__(self, text: str, again: bool = False) -> None:
        super().__init__(text)
        self.again = again


@dataclass
class _Plan:
    """What the run checked at start: the settings, the secrets read, the previous report."""

    settings: NotifySettings
    secrets: dict[tuple[str, str], str]  # (channel, key) -> the variable's value
    schedule: str
    previous: dict[str, Any] | None = None  # the --json-report file before this run wrote it


_PLAN = pytest.StashKey[_Plan]()


# -- at start: the configuration ------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    """Check ``[settings.notify]`` before anything runs: each ``*_env`` names a set, non-empty
    variable; webhook URLs are http(s). The values become secrets. (Controller only; skipped
    with ``--no-notify``.)"""
    if hasattr(config, "workerinput") or config.getoption("no_notify"):
        return
    from opscheck.plugin import CONFIG_KEY
    from opscheck.report import schedule_name

    loaded = config.stash.get(CONFIG_KEY, None)
    settings = loaded.inventory.settings.notify if loaded else None
    if loaded is None or settings is None:
        return
    found, problems = settings_problems(config)
    if problems:
        raise pytest.UsageError("\n".join(problems))
    plan = _Plan(settings, found, schedule_name(config.option.markexpr or ""))
    json_report = config.getoption("json_report")
    if settings.on == "change" and json_report and not config.getoption("archive"):
        plan.previous = _read(Path(json_report))  # before it is rewritten
    config.stash[_PLAN] = plan


_CHECKED = pytest.StashKey[tuple[dict[tuple[str, str], str], list[str]]]()


def settings_problems(config: pytest.Config) -> tuple[dict[tuple[str, str], str], list[str]]:
    """The secrets ``[settings.notify]`` and ``[settings.heartbeat]`` name, read from the
    environment ({(channel, key): value}; channel "heartbeat" for its URL), and every mistake of
    both, one line each: whichever of opscheck.notify and opscheck.heartbeat checks first says
    all of them at once. The values become secrets of the run (redacted from then on)."""
    if _CHECKED in config.stash:
        return config.stash[_CHECKED]
    from opscheck.plugin import CONFIG_KEY

    loaded = config.stash[CONFIG_KEY]
    file = loaded.inventory_path.name if loaded.inventory_path else "inventory.toml"
    found, problems = read_secrets(loaded.inventory.settings, file, loaded.secrets)
    config.stash[_CHECKED] = found, problems
    return found, problems


def read_secrets(
    settings: Any, file: str, secrets: set[str]
) -> tuple[dict[tuple[str, str], str], list[str]]:
    """The variables ``settings.notify`` and ``settings.heartbeat`` name, read from the
    environment, and each mistake in one line; every value read is added to ``secrets``."""
    named: list[tuple[str, str, str]] = []  # (channel, key, variable)
    if settings.notify is not None:
        for channel in CHANNELS:
            model = getattr(settings.notify, channel)
            for key in ("url_env", "token_env", "password_env"):
                variable = getattr(model, key, None)
                if variable is not None:
                    named.append((channel, key, variable))
    if settings.heartbeat is not None:
        named.append(("heartbeat", "url_env", settings.heartbeat.url_env))
    found: dict[tuple[str, str], str] = {}
    problems: list[str] = []
    for channel, key, variable in named:
        table = "settings.heartbeat" if channel == "heartbeat" else f"settings.notify.{channel}"
        where = f"{file}: {table}.{key}: environment variable {variable}"
        value = os.environ.get(variable)
        if value is None:
            problems.append(f"{where} is not set")
        elif not value.strip():
            problems.append(f"{where} is set but empty")
        elif len(value.strip()) < 4:
            problems.append(
                f"{where}: expected a secret of at least 4 characters (it is kept out of "
                f"every report), got {len(value.strip())}"
            )
        else:
            secrets.add(value)  # the run's registered set: redacted from now on
            secrets.add(value.strip())
            if key == "url_env" and not _http_url(value.strip()):
                example = (
                    " (expected e.g. https://hc-ping.com/<uuid>)" if channel == "heartbeat" else ""
                )
                problems.append(
                    f"{where}: expected an http:// or https:// URL (the value is a secret: "
                    f"not shown){example}"
                )
            found[channel, key] = value.strip()
    return found, problems


def _http_url(url: str) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - urllib checks the port when it is read
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and " " not in url


def _read(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) and "tests" in document else None


# -- at the end: after every report is written ------------------------------------------------


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> Iterator[None]:
    """Outside the Reporter's wrapper: its reports are written and published when this resumes.
    Nothing here changes the run's exit status or raises."""
    result = yield
    config = session.config
    plan = config.stash.get(_PLAN, None)
    if plan is not None and not config.option.collectonly:
        try:
            _notify(session, plan)
        except Exception as error:  # a notification never fails the run
            _say(config, f"opscheck: notification not sent: {type(error).__name__}: {error}")
    return result


@dataclass
class Message:
    """What every channel says, each in its own form."""

    status: str  # CRIT, WARN or OK
    headline: str
    problems: list[str]
    report: str  # the link, the file, or why there is none
    schedule: str
    started: str
    exit_code: int
    counts: dict[str, int]
    host: str
    change: str = ""  # how the problems differ from the previous run's (on = "change")
    # The WAIVED checks (each with its waiver) and the waivers to act on: not problems, said.
    waived: list[str] = field(default_factory=list)
    summary: str = field(init=False)  # "1 CRIT, 3 WARN" or "OK"

    def __post_init__(self) -> None:
        quiet = ("ok", "skipped", "waived")
        parts = [
            p.strip()
            for p in self.headline.split("·")
            if p.strip() and p.strip().split(" ", 1)[-1].lower() not in quiet
        ]
        self.summary = ", ".join(parts) or ("OK" if self.status == "OK" else self.status)
        if self.exit_code not in (0, 1) and not parts:
            said = _EXIT_WORDS.get(self.exit_code, "exit code")
            self.summary = f"{said} (exit code {self.exit_code})"

    @property
    def title(self) -> str:
        return f"opscheck {self.schedule}: {self.summary}"

    def lines(self) -> list[str]:
        shown = self.problems[:MAX_LINES]
        if len(self.problems) > MAX_LINES:
            shown.append(f"… and {len(self.problems) - MAX_LINES} more problems: see the report")
        return shown

    def text(self) -> str:
        """The e-mail body."""
        parts = [f"opscheck {self.schedule} on {self.host}, started {self.started}", ""]
        parts += [self.headline, ""]
        if self.change:
            parts += [self.change, ""]
        if self.problems:
            parts += ["Problems:", *(f"  {line}" for line in self.lines()), ""]
        else:
            parts += ["No problems.", ""]
        if self.waived:
            parts += ["Waived:", *(f"  {line}" for line in self.waived[:MAX_LINES]), ""]
        parts += [f"Report: {self.report}", f"Exit code: {self.exit_code}"]
        return "\n".join(parts) + "\n"

    def slack(self) -> dict[str, Any]:
        """A Slack incoming-webhook payload: one mrkdwn text (Mattermost and Rocket.Chat read
        the same)."""
        report = self.report
        link = _mrkdwn(report)
        if report.startswith(("http://", "https://")):  # <url|day/page.html>
            link = f"<{link}|{_mrkdwn('/'.join(report.split('/')[-2:]))}>"
        parts = [f"*opscheck {_mrkdwn(self.schedule)}* on {_mrkdwn(self.host)}: {self.headline}"]
        if self.change:
            parts.append(f"_{_mrkdwn(self.change)}_")
        parts += [f"• {_mrkdwn(line)}" for line in self.lines()]
        parts += [f"◦ {_mrkdwn(line)}" for line in self.waived[:MAX_LINES]]
        parts.append(f"Report: {link}")
        return {"text": "\n".join(parts)}

    def webhook(self) -> dict[str, Any]:
        body = {
            "status": self.status,
            "headline": self.headline,
            "problems": self.problems,
            "waived": self.waived,
            "report": self.report,
            "schedule": self.schedule,
            "started": self.started,
            "exit_code": self.exit_code,
            "counts": self.counts,
            "host": self.host,
        }
        if self.change:
            body["change"] = self.change
        return body


def _mrkdwn(text: str) -> str:
    """Slack's three control characters escaped (its documented rule)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _notify(session: pytest.Session, plan: _Plan) -> None:
    config = session.config
    reporter = config.pluginmanager.get_plugin("opscheck-reporter")
    if reporter is None:
        return

    def say(text: str, red: bool = True) -> None:
        _say(config, text, red)

    shard = sharding.of(config)
    if shard is not None:  # one run, one notification: the merged run's (opscheck.shard)
        merged = config.stash.get(sharding.MERGED_KEY, None)
        if merged is None:
            say(f"opscheck: shard {shard}: {SHARD_SILENT}", red=False)
        else:
            notify_merged(plan, merged, bool(config.getoption("fail_on_warn")), say)
        return
    document = reporter.document  # the final JSON document, as written
    archive = getattr(reporter, "archive", None)
    own = archive.final("json") if archive is not None else None
    schedule = plan.schedule
    previous = previous_run(own, schedule, document) if own else plan.previous
    link = _link(archive, plan.settings.report_url)
    sent = deliver(plan, document, int(session.exitstatus), previous, link, say)
    if sent is not None:
        document["notifications"] = sent
        _rewrite(reporter, document, config)


SHARD_SILENT = (
    "no notification from a shard: the merged run sends one (the last shard to finish merges "
    "with --archive and a run id; else opscheck-merge)"
)


def notify_merged(plan: _Plan, merged: Any, fail_on_warn: bool, say: Callable[..., None]) -> None:
    """Notify for a merged sharded run (an opscheck.merge.Merged, written): as a run does, its
    merged JSON report rewritten with what was sent."""
    from opscheck.report import _write_atomic

    document, archive = merged.document, merged.archive
    own = archive.final("json") if archive is not None else None
    schedule = str(document.get("schedule") or plan.schedule)
    previous = previous_run(own, schedule, document) if own else None
    link = _link(archive, plan.settings.report_url)
    code = merged.code(fail_on_warn)
    sent = deliver(plan, document, code, previous, link, say, merged.missing_lines())
    if sent is None or own is None:
        return
    document["notifications"] = sent
    try:
        _write_atomic(own, json.dumps(document, indent=2, default=str))
    except OSError as error:
        say(f"opscheck: {own}: notifications not recorded: {error}")


def deliver(
    plan: _Plan,
    document: dict[str, Any],
    exit_code: int,
    previous: dict[str, Any] | None,
    report: str,
    say: Callable[..., None],
    missing: list[str] | None = None,
) -> list[dict[str, Any]] | None:
    """Send the run's message on every channel, as ``on`` says: what was sent (the JSON
    report's ``notifications``), or ``None`` when nothing was to be sent. ``missing``: the
    shards a partial merge left out, problems first."""
    from opscheck.report import headline_of, problem_lines

    missing = missing or []
    keys = problem_keys(document) | {("shard", line, "", "CRIT") for line in missing}
    schedule = str(document.get("schedule") or plan.schedule)
    change = ""
    if plan.settings.on == "problems" and not keys and exit_code == 0:
        return None
    if plan.settings.on == "change":
        send, change = changed(keys, previous, schedule)
        if not send:
            say(f'opscheck: no notification: {change} (on = "change")', red=False)
            return None
    problems = [*missing, *problem_lines(document, waived=False)]
    message = Message(
        status=_status(keys, exit_code),
        headline=redaction.redact(headline_of(document)),
        # CRIT first, then WARN and FLAKY; the WAIVED checks and the waivers to act on apart.
        # (The document is redacted already: this is the last step before text leaves the run.)
        problems=[redaction.redact(line) for line in problems],
        waived=[
            redaction.redact(line)
            for line in problem_lines(document)[len(problems) - len(missing) :]
        ],
        report=report,
        schedule=schedule,
        started=str(document.get("started", "")),
        exit_code=exit_code,
        counts={k: int(v) for k, v in (document.get("summary") or {}).items()},
        host=str(document.get("host") or socket.gethostname()),
        change=change,
    )
    started = time.monotonic()
    results = send_all(plan, message)
    took = time.monotonic() - started
    for channel, error in results.items():
        if error is not None:
            say(f"opscheck: notification to {_name(plan, channel)} failed: {error}")
    sent = [_name(plan, c) for c, error in results.items() if error is None]
    if sent:
        said = f"{took * 1000:.0f} ms" if took < 1 else f"{took:.1f} s"
        say(f"opscheck: notified {_and(sent)} in {said}", red=False)
    return [
        {"channel": c, "sent": e is None, "error": None if e is None else redaction.redact(e)}
        for c, e in results.items()
    ]


def _name(plan: _Plan, channel: str) -> str:
    email = plan.settings.email
    if channel == "email" and email is not None:
        more = f" (+{len(email.to) - 1})" if len(email.to) > 1 else ""
        return f"email to {email.to[0]}{more}"
    return SHOWN[channel]


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _say(config: pytest.Config, text: str, red: bool = True) -> None:
    """One line on the terminal (redacted by the terminal writer), else on stderr."""
    text = redaction.redact(text)
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        terminal.write_line(text, red=red)
    else:
        print(text, file=sys.stderr)


# -- the run, as the Reporter left it ------------------------------------------------------------


Key = tuple[str, str, str, str]  # check id, target, subject, verdict


def problem_keys(document: dict[str, Any]) -> set[Key]:
    """The run's problems as (check id, target, subject, verdict): every WARN/CRIT record not
    waived, a FLAKY check, and a failed, error or not-run check without such a record."""
    keys: set[Key] = set()
    for entry in document.get("tests", []):
        outcome = entry.get("outcome", "error")
        if outcome == "skipped":
            continue
        check, target = (
            str(entry.get("check_id") or entry.get("id", "")),
            str(entry.get("target", "")),
        )
        bad = [
            r
            for r in entry.get("records") or []
            if r.get("verdict") in ("WARN", "CRIT") and not r.get("waived")
        ]
        for record in bad:
            keys.add((check, target, str(record.get("subject", "")), str(record["verdict"])))
        if outcome == "flaky":
            keys.add((check, target, "", "FLAKY"))
        elif outcome in ("failed", "error", "not_run") and not bad:
            keys.add((check, target, "", outcome.upper()))
    return keys


def _status(keys: Iterable[Key], exit_code: int) -> str:
    """CRIT, WARN or OK; an exit code other than 0 and 1 (nothing checked, interrupted, an
    internal error) is CRIT: the run itself went wrong."""
    verdicts = {k[3] for k in keys}
    if verdicts & set(_CRIT) or exit_code not in (0, 1):
        return "CRIT"
    return "WARN" if verdicts else "OK"


def _link(archive: Any, report_url: str | None) -> str:
    """``<report_url>/<day>/<report>.html``; the archived file without ``report_url``."""
    if archive is None:
        return "no archived report (run with --archive)"
    page = Path(archive.final("html"))
    if report_url:
        return f"{report_url}/{page.relative_to(archive.day.parent).as_posix()}"
    return str(page)


# -- on = "change" -------------------------------------------------------------------------------


def previous_run(own: Path, schedule: str, document: dict[str, Any]) -> dict[str, Any] | None:
    """The newest archived JSON report of ``schedule`` that started before this run's (``own``,
    in ``<reports>/<day>/``): the day folders newest first, stopping at the first that has one.
    Shards' reports and partial files are passed over; so is a report that cannot be read."""
    from opscheck.archive_index import Run

    root = own.parent.parent

    def order(path: Path, started: str) -> tuple[str, str, int, str]:
        return Run(path, schedule, started, {}).order

    mine = order(own, str(document.get("started", "")))
    try:
        days = sorted((p for p in root.iterdir() if _DAY.fullmatch(p.name)), reverse=True)
    except OSError:
        return None
    for day in days:
        if day.name > own.parent.name:
            continue
        found: list[tuple[tuple[str, str, int, str], dict[str, Any]]] = []
        for path in day.glob(f"{glob_escape(schedule)}-*.json"):
            if path == own or path.name.startswith(".") or ".shard-" in path.name:
                continue
            other = _read(path)
            if other is None or str(other.get("schedule") or "all") != schedule:
                continue
            place = order(path, str(other.get("started", "")))
            if place < mine:
                found.append((place, other))
        if found:
            return max(found, key=lambda pair: pair[0])[1]
    return None


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def changed(keys: set[Key], previous: dict[str, Any] | None, schedule: str) -> tuple[bool, str]:
    """Whether to send on ``change``, and what to say about it."""
    if previous is None:
        return True, f"first {schedule} run on record: no previous report to compare with"
    before = problem_keys(previous)
    when = str(previous.get("started", ""))[:16].replace("T", " ")
    notices = previous.get("notifications") or []
    if keys == before:
        if notices and not any(n.get("sent") for n in notices):
            return True, (
                f"same problems as the previous {schedule} run ({when}), whose notification failed"
            )
        return False, f"same problems as the previous {schedule} run ({when})"
    new, gone = len(keys - before), len(before - keys)
    parts = [f"{new} new" if new else "", f"{gone} resolved" if gone else ""]
    return True, (
        f"changed since the previous {schedule} run ({when}): {', '.join(p for p in parts if p)}"
    )


# -- the channels --------------------------------------------------------------------------------


def send_all(plan: _Plan, message: Message) -> dict[str, str | None]:
    """Send every configured channel at once, each in a thread with the timeout; the error of
    each (None: sent). The run waits no longer than the timeout (and a moment) for them."""
    settings = plan.settings
    senders: dict[str, Callable[[], None]] = {}
    timeout = settings.timeout
    if settings.slack is not None:
        slack_url = plan.secrets["slack", "url_env"]
        senders["slack"] = lambda: _post(slack_url, message.slack(), None, timeout)
    if settings.webhook is not None:
        hook_url = plan.secrets["webhook", "url_env"]
        token = plan.secrets.get(("webhook", "token_env"))
        senders["webhook"] = lambda: _post(hook_url, message.webhook(), token, timeout)
    if settings.email is not None:
        email = settings.email
        password = plan.secrets.get(("email", "password_env"))
        senders["email"] = lambda: send_email(email, password, message, timeout)
    errors: dict[str, str | None] = {}

    def run(channel: str, send: Callable[[], None]) -> None:
        try:
            send()
        except NotifyError as error:
            errors[channel] = str(error)
        except Exception as error:  # a channel's failure is reported, never raised
            errors[channel] = f"{type(error).__name__}: {error}"
        else:
            errors[channel] = None

    threads = [
        threading.Thread(target=run, args=item, name=f"opscheck-notify-{item[0]}", daemon=True)
        for item in senders.items()
    ]
    deadline = time.monotonic() + settings.timeout + _GRACE
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    late = f"no answer within {settings.timeout:g} s"
    return {channel: errors.get(channel, late) for channel in senders}


def _post(url: str, body: dict[str, Any], token: str | None, timeout: float) -> None:
    """POST ``body`` as JSON (with the bearer ``token``); NotifyError unless answered 2xx."""
    headers = {"Content-Type": "application/json", "User-Agent": "opscheck-notify"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    post(url, json.dumps(body, ensure_ascii=False).encode(), headers, timeout)


def post(url: str, data: bytes, headers: dict[str, str], timeout: float) -> None:
    """POST ``data``; NotifyError unless the answer is 2xx (no redirect is followed: a receiver
    that moved says so). The webhooks' and the heartbeat's one way out."""
    import requests

    from opscheck.probes.http import describe_error

    try:
        answer = requests.post(
            url, data=data, headers=headers, timeout=(timeout, timeout), allow_redirects=False
        )
    except requests.RequestException as error:
        raise NotifyError(describe_error(error, timeout), again=True) from None
    if not 200 <= answer.status_code < 300:
        said = " ".join(answer.text.split())
        text = f"HTTP {answer.status_code} {answer.reason or ''}".rstrip()
        if said and said.lower() != (answer.reason or "").lower():
            text += f": {redaction.clip(said, 200)}"
        raise NotifyError(text, again=answer.status_code >= 500 or answer.status_code == 429)


def email_message(email: EmailNotify, message: Message) -> Any:
    """The e-mail: the summary as subject, the text as body."""
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid

    mail = EmailMessage()
    mail["Subject"] = message.title
    mail["From"] = email.sender
    mail["To"] = ", ".join(email.to)
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = make_msgid("opscheck", email.sender.rpartition("@")[2].strip("> ") or None)
    mail.set_content(message.text())
    return mail


def send_email(email: EmailNotify, password: str | None, message: Message, timeout: float) -> None:
    """Send over SMTP: STARTTLS or implicit TLS (the system's CAs, or ``ca_file``), login when
    configured."""
    import smtplib
    import ssl

    mail = email_message(email, message)
    where = f"{email.host}:{email.port}"
    context = ssl.create_default_context(cafile=email.ca_file) if email.tls else None
    # local_hostname: smtplib's default (getfqdn) can wait seconds on reverse DNS.
    local = socket.gethostname()
    greeted = False
    try:
        if email.implicit_tls:
            connection: smtplib.SMTP = smtplib.SMTP_SSL(
                email.host, email.port, timeout=timeout, local_hostname=local, context=context
            )
        else:
            connection = smtplib.SMTP(email.host, email.port, timeout=timeout, local_hostname=local)
        greeted = True
        with connection as smtp:
            if email.starttls and not email.implicit_tls:
                smtp.starttls(context=context)
            if email.username and password:
                smtp.login(email.username, password)
            refused = smtp.send_message(mail)
    except smtplib.SMTPNotSupportedError as error:
        if "AUTH" in str(error):  # smtplib: "SMTP AUTH extension not supported by server."
            raise NotifyError(
                f"{where}: the server does not offer AUTH (login): remove username and "
                "password_env, or ask for a login"
            ) from None
        raise NotifyError(f"{where}: the server does not offer STARTTLS") from None
    except smtplib.SMTPRecipientsRefused as error:
        raise NotifyError(
            f"{where}: every recipient refused: {_refusals(error.recipients)}"
        ) from None
    except smtplib.SMTPResponseException as error:
        said = (
            error.smtp_error.decode(errors="replace")
            if isinstance(error.smtp_error, bytes)
            else error.smtp_error
        )
        raise NotifyError(
            f"{where}: SMTP {error.smtp_code} {' '.join(str(said).split())}"
        ) from None
    except ssl.SSLCertVerificationError as error:
        said = f"certificate verify failed: {error.verify_message}"
        raise NotifyError(f"{where}: TLS: {said}") from None
    except ssl.SSLError as error:
        said = f"{where}: TLS: {error.reason or error}"
        if email.implicit_tls and error.reason == "WRONG_VERSION_NUMBER":
            said += " (the server does not speak TLS at once: implicit_tls is for SMTPS, port 465)"
        raise NotifyError(said) from None
    except ConnectionRefusedError:
        raise NotifyError(f"{where}: connection refused") from None
    except TimeoutError:
        raise NotifyError(
            f"{where}: no answer within {timeout:g} s{_tls_hint(email, greeted)}"
        ) from None
    except socket.gaierror:
        raise NotifyError(f"{where}: host name not found") from None
    except smtplib.SMTPServerDisconnected as error:
        if "timed out" in str(error):
            said = f"{where}: no answer within {timeout:g} s{_tls_hint(email, greeted)}"
            raise NotifyError(said) from None
        raise NotifyError(f"{where}: the server closed the connection") from None
    except (smtplib.SMTPException, OSError) as error:
        raise NotifyError(f"{where}: {type(error).__name__}: {error}") from None
    if refused:
        raise NotifyError(f"{where}: some recipients refused: {_refusals(refused)}")


def _tls_hint(email: EmailNotify, greeted: bool) -> str:
    """A server that never greets may be waiting for TLS first (SMTPS, as on port 465)."""
    if greeted or email.implicit_tls:
        return ""
    return (
        " (no SMTP greeting: a server that expects TLS at once, as on port 465, needs "
        "implicit_tls = true)"
    )


def _refusals(recipients: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(
        f"{who} ({code} {said.decode(errors='replace') if isinstance(said, bytes) else said})"
        for who, (code, said) in recipients.items()
    )


# -- the JSON reports, with what was sent --------------------------------------------------------


def _rewrite(reporter: Any, document: dict[str, Any], config: pytest.Config) -> None:
    """Write the JSON report(s) again with ``notifications``, each atomically."""
    from opscheck.report import _write_atomic

    paths = []
    json_path = getattr(reporter, "_json_path", None)
    if json_path is None and config.getoption("json_report"):
        json_path = Path(config.getoption("json_report"))
    if json_path is not None:
        paths.append(Path(json_path))
    archive = getattr(reporter, "archive", None)
    if archive is not None:
        paths.append(Path(archive.final("json")))
    text = json.dumps(document, indent=2, default=str)
    for path in paths:
        if path.exists():
            try:
                _write_atomic(path, text)
            except OSError as error:
                _say(config, f"opscheck: {path}: notifications not recorded: {error}")
