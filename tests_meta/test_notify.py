"""Notifications at the end of a run (opscheck/notify.py, ``[settings.notify]``), against real
receivers: an HTTP server thread on loopback recording what a Slack webhook and a JSON webhook
get, and aiosmtpd's SMTP server with STARTTLS (a certificate of the testbed's CA) and login.

The runs are real: the HTTP suite against the HTTP testbed, one target answering 500.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from opscheck import notify
from opscheck.config.notify import EmailNotify
from opscheck.testbed import free_port
from opscheck.testbed.http import make_certificates
from tests_meta.conftest import http_block as http

HTTP = ("suites/http",)
SLACK_URL_SECRET = "/services/T000/B000/slack-hook-s3cr3t"
TOKEN = "webhook-token-s3cr3t"
PASSWORD = "smtp-password-s3cr3t"
REPORT_URL = "https://reports.example.org/opscheck"


# -- the receivers --------------------------------------------------------------------------------


@dataclass
class Receiver:
    """A loopback HTTP server recording every POST: (path, headers, JSON body)."""

    status: int = 200
    requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def url(self, path: str = "/hook") -> str:
        assert self.server
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def bodies(self, path: str) -> list[Any]:
        return [body for p, _, body in self.requests if p == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    record = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            record.requests.append((self.path, dict(self.headers), json.loads(data)))
            # A broken receiver that echoes the token back, as some do: redacted when shown.
            said = f"receiver broken: try later ({self.headers.get('Authorization')})"
            answer = b"ok" if record.status == 200 else said.encode()
            self.send_response(record.status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    record.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=record.server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield record
    finally:
        record.server.shutdown()
        record.server.server_close()
        thread.join()


@dataclass
class Mailbox:
    port: int
    ca_file: Path
    messages: list[Any] = field(default_factory=list)  # (envelope, over TLS)
    logins: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    return make_certificates(tmp_path_factory.mktemp("smtp-tls"))


def _mailbox(
    certificates: dict[str, tuple[Path, Path]], implicit: bool, auth: bool = True
) -> Iterator[Mailbox]:
    """aiosmtpd on loopback with login (user ``opscheck``, ``PASSWORD``; none without ``auth``)
    over TLS only: STARTTLS required, or (``implicit``) TLS from the first byte, as SMTPS on port
    465."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert, key = certificates["https"]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    box = Mailbox(free_port(), cert.parent / "ca.pem")

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            # over TLS: after STARTTLS (session.ssl), or from the first byte (the transport's)
            tls = server.transport.get_extra_info("ssl_object") is not None
            box.messages.append((envelope, session.ssl is not None or tls))
            return "250 Message accepted"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"opscheck",
            PASSWORD.encode(),
        )
        if ok:
            box.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled: aiosmtpd then says 535

    # aiosmtpd 1.4 offers AUTH with auth_require_tls only after STARTTLS: over implicit TLS the
    # session is TLS from the start, and the requirement is off (on: a server offering no AUTH).
    tls: dict[str, Any] = (
        {"ssl_context": context, "auth_require_tls": not auth}
        if implicit
        else {"tls_context": context, "require_starttls": True, "auth_require_tls": True}
    )
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=box.port,
        authenticator=authenticator,
        **tls,
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def smtp(certificates: dict[str, tuple[Path, Path]]) -> Iterator[Mailbox]:
    """aiosmtpd on loopback: STARTTLS required, login."""
    yield from _mailbox(certificates, implicit=False)


@pytest.fixture
def smtps(certificates: dict[str, tuple[Path, Path]]) -> Iterator[Mailbox]:
    """aiosmtpd on loopback: TLS from the first byte (SMTPS), login."""
    yield from _mailbox(certificates, implicit=True)


def notify_settings(
    on: str = "problems",
    *,
    slack: bool = True,
    webhook: bool = True,
    mailbox: Mailbox | None = None,
    timeout: float = 5,
    report_url: str | None = REPORT_URL,
) -> str:
    text = f'[settings.notify]\non = "{on}"\ntimeout = {timeout}\n'
    if report_url:
        text += f'report_url = "{report_url}"\n'
    if slack:
        text += '[settings.notify.slack]\nurl_env = "TEST_SLACK_URL"\n'
    if webhook:
        text += (
            '[settings.notify.webhook]\nurl_env = "TEST_HOOK_URL"\ntoken_env = "TEST_HOOK_TOKEN"\n'
        )
    if mailbox:
        text += (
            f'[settings.notify.email]\nhost = "127.0.0.1"\nport = {mailbox.port}\n'
            'sender = "opscheck@example.org"\nto = ["ops@example.org", "oncall@example.org"]\n'
            'username = "opscheck"\npassword_env = "TEST_SMTP_PASSWORD"\n'
            f'ca_file = "{mailbox.ca_file}"\n'
        )
    return text


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> dict[str, str]:
    values = {
        "TEST_SLACK_URL": receiver.url(SLACK_URL_SECRET),
        "TEST_HOOK_URL": receiver.url("/hook"),
        "TEST_HOOK_TOKEN": TOKEN,
        "TEST_SMTP_PASSWORD": PASSWORD,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def output(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def assert_no_secret(texts: list[str]) -> None:
    for text in texts:
        for secret in (SLACK_URL_SECRET, "slack-hook-s3cr3t", TOKEN, PASSWORD):
            assert secret not in text


def archived(folder: Path, ext: str) -> list[Path]:
    """The reports of the runs (not the index), in the day folders."""
    return sorted(p for p in folder.glob(f"20*/*.{ext}") if not p.name.startswith("."))


def mail_text(box: Mailbox, index: int = -1) -> tuple[Any, str]:
    from email import message_from_bytes
    from email.policy import default

    envelope = box.messages[index][0]
    mail = message_from_bytes(envelope.original_content, policy=default)
    return mail, mail.get_content().replace("\r\n", "\n")


# -- runs: pytester, the HTTP suite, real receivers -----------------------------------------------


def test_a_failing_run_notifies_every_channel_with_headline_problems_and_link(
    suite, web, receiver, smtp, secrets, tmp_path
):
    """The run fails (one target answers 500): Slack, the webhook and the e-mail each get the
    headline, the problem and the link to the archived report; nothing shows a secret."""
    reports = tmp_path / "reports"
    inventory = http("api", web.url()) + http("broken", web.url("http", "/error"))
    started = time.perf_counter()
    result = suite.run(
        inventory + notify_settings(mailbox=smtp),
        "",
        "--archive",
        "--reports-dir",
        str(reports),
        paths=HTTP,
    )
    took = time.perf_counter() - started
    text = output(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, text
    page = archived(reports, "html")
    assert len(page) == 1, page
    link = f"{REPORT_URL}/{page[0].relative_to(reports).as_posix()}"

    (hook,) = receiver.bodies("/hook")
    assert hook["status"] == "CRIT"
    assert hook["report"] == link
    assert hook["exit_code"] == 1 and hook["schedule"] == "all"
    assert re.match(r"\d+ CRIT", hook["headline"]), hook["headline"]
    assert hook["problems"] and "broken" in hook["problems"][0], hook["problems"]
    assert hook["counts"]["failed"] >= 1 and hook["counts"]["passed"] >= 1
    authorization = next(h for p, h, _ in receiver.requests if p == "/hook")["Authorization"]
    assert authorization == f"Bearer {TOKEN}"

    (chat,) = receiver.bodies(SLACK_URL_SECRET)
    assert chat["text"].startswith("*opscheck all* on ")
    assert hook["headline"] in chat["text"]
    assert f"• {hook['problems'][0]}" in chat["text"].replace("&gt;", ">").replace("&lt;", "<")
    assert f"<{link}|{'/'.join(link.split('/')[-2:])}>" in chat["text"]

    (envelope, tls) = smtp.messages[0]
    assert tls and smtp.logins == ["opscheck"]  # over STARTTLS, logged in
    assert envelope.rcpt_tos == ["ops@example.org", "oncall@example.org"]
    mail, body = mail_text(smtp)
    assert mail["Subject"].startswith("opscheck all: ") and "CRIT" in mail["Subject"]
    assert "OK" not in mail["Subject"]
    assert hook["headline"] in body and hook["problems"][0] in body
    assert f"Report: {link}" in body and "Exit code: 1" in body

    # One line says what was sent; the JSON reports record it.
    sent = re.search(
        r"opscheck: notified slack webhook, webhook and email to ops@example.org \(\+1\) "
        r"in (\d+ ms)",
        text,
    )
    assert sent, text
    print(f"notification of 3 channels took {sent.group(1)}, the whole run {took:.1f} s")
    for path in (suite.json_path, *archived(reports, "json")):
        document = json.loads(path.read_text())
        assert document["notifications"] == [
            {"channel": c, "sent": True, "error": None} for c in ("slack", "webhook", "email")
        ]
    assert_no_secret([text, *(p.read_text() for p in archived(reports, "*"))])
    assert_no_secret([suite.json_path.read_text()])


def test_on_problems_a_healthy_run_sends_nothing(suite, web, receiver, smtp, secrets):
    result = suite.run(http("api", web.url()) + notify_settings(mailbox=smtp), "", paths=HTTP)
    assert result.ret == pytest.ExitCode.OK, output(result)
    assert receiver.requests == [] and smtp.messages == []
    assert "notif" not in output(result)
    assert "notifications" not in json.loads(suite.json_path.read_text())


def test_on_always_a_healthy_run_says_ok_without_an_archive(suite, web, receiver, secrets):
    result = suite.run(
        http("api", web.url()) + notify_settings("always", slack=False), "", paths=HTTP
    )
    assert result.ret == pytest.ExitCode.OK, output(result)
    (hook,) = receiver.bodies("/hook")
    assert hook["status"] == "OK" and hook["problems"] == []
    assert hook["report"] == "no archived report (run with --archive)"
    assert "CRIT" not in hook["headline"] and " OK" in hook["headline"]


def test_on_change_only_a_different_set_of_problems_is_sent(
    suite, web, receiver, secrets, tmp_path
):
    """Two runs with the same problem: the second sends nothing and says why; a run with a new
    problem sends again, saying what changed."""
    reports = tmp_path / "reports"
    args = ("--archive", "--reports-dir", str(reports))
    settings = notify_settings("change", slack=False)
    broken = http("api", web.url()) + http("broken", web.url("http", "/error"))

    first = suite.run(broken + settings, "", *args, paths=HTTP)
    assert first.ret == pytest.ExitCode.TESTS_FAILED
    assert len(receiver.bodies("/hook")) == 1
    assert "first all run on record" in receiver.bodies("/hook")[0]["change"]

    time.sleep(1.1)  # a new second: a new archive name
    second = suite.run(broken + settings, "", *args, paths=HTTP)
    assert second.ret == pytest.ExitCode.TESTS_FAILED  # the run's outcome stays its own
    assert len(receiver.bodies("/hook")) == 1, "the same problems were sent again"
    assert "opscheck: no notification: same problems as the previous all run (" in output(second)

    worse = broken + http("down", web.url("refused"))
    third = suite.run(worse + settings, "", *args, paths=HTTP)
    assert third.ret == pytest.ExitCode.TESTS_FAILED
    hooks = receiver.bodies("/hook")
    assert len(hooks) == 2
    assert re.match(r"changed since the previous all run \(.+\): \d+ new$", hooks[1]["change"])
    assert any("down" in line for line in hooks[1]["problems"]), hooks[1]["problems"]


def test_a_failed_notification_changes_nothing_and_is_reported(
    suite, web, receiver, secrets, monkeypatch, tmp_path
):
    """Slack down (nothing listens), the webhook answering 500: the run's exit code and reports
    are what they would be; one line per channel says what failed; the JSON records it."""
    monkeypatch.setenv("TEST_SLACK_URL", f"http://127.0.0.1:{free_port()}{SLACK_URL_SECRET}")
    receiver.status = 500
    reports = tmp_path / "reports"
    inventory = http("api", web.url()) + http("broken", web.url("http", "/error"))
    args = ("--archive", "--reports-dir", str(reports))
    result = suite.run(inventory + notify_settings(), "", *args, paths=HTTP)
    text = output(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, text
    assert "opscheck: notification to slack webhook failed: connection refused" in text
    assert (
        "opscheck: notification to webhook failed: HTTP 500 Internal Server Error: "
        "receiver broken: try later (Bearer ***)"
    ) in text
    assert len(archived(reports, "html")) == 1 and len(archived(reports, "xml")) == 1
    for path in (suite.json_path, *archived(reports, "json")):
        document = json.loads(path.read_text())
        assert document["summary"]["failed"] >= 1
        assert [(n["channel"], n["sent"]) for n in document["notifications"]] == [
            ("slack", False),
            ("webhook", False),
        ]
        assert document["notifications"][0]["error"] == "connection refused"
    assert_no_secret([text, *(p.read_text() for p in archived(reports, "*"))])

    # The same run without notifications: the same exit code.
    plain = suite.run(inventory, "", paths=HTTP)
    assert plain.ret == result.ret


def test_on_change_a_notification_that_failed_is_sent_again(
    suite, web, receiver, secrets, tmp_path
):
    """The same problems as the previous run, whose notification did not get through: sent."""
    args = ("--archive", "--reports-dir", str(tmp_path / "reports"))
    settings = notify_settings("change", slack=False)
    broken = http("broken", web.url("http", "/error"))
    receiver.status = 500
    first = suite.run(broken + settings, "", *args, paths=HTTP)
    assert "opscheck: notification to webhook failed: HTTP 500" in output(first)
    receiver.status = 200
    time.sleep(1.1)
    suite.run(broken + settings, "", *args, paths=HTTP)
    hooks = receiver.bodies("/hook")
    assert len(hooks) == 2
    assert re.fullmatch(
        r"same problems as the previous all run \(.+\), whose notification failed",
        hooks[1]["change"],
    )


def test_on_change_without_an_archive_compares_with_the_json_report(
    suite, web, receiver, secrets, tmp_path
):
    """No archive: the --json-report file, as the previous run left it, is the previous run."""
    report = tmp_path / "last-run.json"
    settings = notify_settings("change", slack=False)
    broken = http("broken", web.url("http", "/error"))
    for _ in range(2):
        result = suite.run(broken + settings, "", "--json-report", str(report), paths=HTTP)
    assert len(receiver.bodies("/hook")) == 1
    assert "opscheck: no notification: same problems as the previous all run" in output(result)


def test_receivers_that_never_answer_cost_the_timeout_once(suite, web, secrets, monkeypatch):
    """Both webhooks hang (a server that accepts and never reads): the run ends about one
    timeout later, not one per channel; its exit code is its own."""
    monkeypatch.setenv("TEST_SLACK_URL", web.url("blackhole", SLACK_URL_SECRET))
    monkeypatch.setenv("TEST_HOOK_URL", web.url("blackhole", "/hook"))
    inventory = http("broken", web.url("http", "/error"))
    started = time.perf_counter()
    plain = suite.run(inventory, "", paths=HTTP)
    baseline = time.perf_counter() - started
    started = time.perf_counter()
    result = suite.run(inventory + notify_settings(timeout=1), "", paths=HTTP)
    took = time.perf_counter() - started
    assert result.ret == plain.ret == pytest.ExitCode.TESTS_FAILED
    for channel in ("slack webhook", "webhook"):
        line = (
            f"opscheck: notification to {channel} failed: no response within 1 s (read timed out)"
        )
        assert line in output(result)
    print(f"run {baseline:.2f} s; with two webhooks that never answer (timeout 1 s) {took:.2f} s")
    assert took - baseline < 1.8  # one after the other: 2 s and more


def test_no_notify_sends_nothing_and_needs_no_variables(suite, web, receiver, monkeypatch):
    monkeypatch.delenv("TEST_SLACK_URL", raising=False)
    monkeypatch.setenv("TEST_HOOK_URL", receiver.url("/hook"))
    inventory = http("broken", web.url("http", "/error")) + notify_settings("always")
    result = suite.run(inventory, "", "--no-notify", paths=HTTP)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output(result)
    assert receiver.requests == []
    assert "notif" not in output(result)


def test_a_missing_variable_is_a_usage_error_at_start(suite, web, receiver, monkeypatch):
    monkeypatch.delenv("TEST_SLACK_URL", raising=False)
    monkeypatch.setenv("TEST_HOOK_URL", "ftp://files.example.org/s3cr3t-path")
    monkeypatch.setenv("TEST_HOOK_TOKEN", "")
    result = suite.run(http("api", web.url()) + notify_settings(), "", paths=HTTP)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = output(result)
    assert (
        "inventory.toml: settings.notify.slack.url_env: environment variable TEST_SLACK_URL "
        "is not set"
    ) in text
    assert (
        "inventory.toml: settings.notify.webhook.url_env: environment variable TEST_HOOK_URL: "
        "expected an http:// or https:// URL (the value is a secret: not shown)"
    ) in text
    assert (
        "inventory.toml: settings.notify.webhook.token_env: environment variable "
        "TEST_HOOK_TOKEN is set but empty"
    ) in text
    assert "s3cr3t-path" not in text
    assert receiver.requests == []


def test_notify_and_heartbeat_mistakes_are_said_at_once(suite, web, receiver, monkeypatch):
    """Both tables' variables are checked together: one run shows every mistake."""
    monkeypatch.delenv("TEST_SLACK_URL", raising=False)
    monkeypatch.setenv("TEST_HOOK_URL", receiver.url("/hook"))
    monkeypatch.delenv("TEST_BEAT_URL", raising=False)
    heartbeat = '[settings.heartbeat]\nurl_env = "TEST_BEAT_URL"\n'
    result = suite.run(http("api", web.url()) + notify_settings() + heartbeat, "", paths=HTTP)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = output(result)
    assert "settings.notify.slack.url_env: environment variable TEST_SLACK_URL is not set" in text
    assert "settings.heartbeat.url_env: environment variable TEST_BEAT_URL is not set" in text
    assert receiver.requests == []


def test_a_mistake_in_the_settings_names_the_key(suite, web):
    settings = (
        '[settings.notify]\non = "sometimes"\n[settings.notify.email]\nhost = "mail"\n'
        'sender = "opscheck@example.org"\nto = ["ops"]\npassword_env = "X"\nstarttls = false\n'
    )
    result = suite.run(http("api", web.url()) + settings, "", paths=HTTP)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = output(result)
    assert "settings.notify.on" in text and "sometimes" in text
    assert "settings.notify.email.to" in text and "'ops'" in text


# -- the channels alone, against the same real receivers -------------------------------------------


def message(**changes: Any) -> notify.Message:
    fields = {
        "status": "CRIT",
        "headline": "1 CRIT · 2 WARN · 40 OK · 3 skipped",
        "problems": ["CRIT db1: 172 of 200 connections used (86 %) > crit 80 %"],
        "report": f"{REPORT_URL}/2026-12-01/morning-070000.html",
        "schedule": "morning",
        "started": "2026-12-01T07:00:00+00:00",
        "exit_code": 1,
        "counts": {"passed": 40, "failed": 1},
        "host": "runner1",
    }
    return notify.Message(**{**fields, **changes})


def email(box: Mailbox, **changes: Any) -> EmailNotify:
    fields: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": box.port,
        "sender": "opscheck@example.org",
        "to": ["ops@example.org"],
        "username": "opscheck",
        "password_env": "TEST_SMTP_PASSWORD",
        "ca_file": str(box.ca_file),
    }
    return EmailNotify(**{**fields, **changes})


def test_the_email_subject_counts_the_problems(smtp):
    notify.send_email(email(smtp), PASSWORD, message(), timeout=5)
    mail, body = mail_text(smtp)
    assert mail["Subject"] == "opscheck morning: 1 CRIT, 2 WARN"
    assert mail["From"] == "opscheck@example.org" and mail["Message-ID"]
    assert body.startswith("opscheck morning on runner1, started 2026-12-01T07:00:00+00:00\n")
    assert "Problems:\n  CRIT db1: 172 of 200 connections used (86 %) > crit 80 %\n" in body
    assert smtp.messages[0][1] and smtp.logins == ["opscheck"]  # STARTTLS, login
    ok = message(status="OK", headline="41 OK · 3 skipped", problems=[], exit_code=0)
    assert ok.title == "opscheck morning: OK"
    nothing = message(status="CRIT", headline="0 OK · 44 skipped", problems=[], exit_code=5)
    assert nothing.title == "opscheck morning: nothing checked (exit code 5)"


def test_smtp_failures_are_one_line_each(smtp):
    where = f"127.0.0.1:{smtp.port}"
    with pytest.raises(notify.NotifyError) as refused:
        notify.send_email(email(smtp), "wrong-password", message(), timeout=5)
    assert str(refused.value) == f"{where}: SMTP 535 5.7.8 Authentication credentials invalid"
    with pytest.raises(notify.NotifyError) as plain:  # STARTTLS is required by this server
        notify.send_email(
            email(smtp, starttls=False, username=None, password_env=None, ca_file=None),
            None,
            message(),
            timeout=5,
        )
    assert str(plain.value) == f"{where}: SMTP 530 Must issue a STARTTLS command first"
    closed = free_port()
    with pytest.raises(notify.NotifyError) as down:
        notify.send_email(email(smtp, port=closed), PASSWORD, message(), timeout=5)
    assert str(down.value) == f"127.0.0.1:{closed}: connection refused"
    with pytest.raises(notify.NotifyError) as untrusted:  # the system CAs: not the testbed's
        notify.send_email(email(smtp, ca_file=None), PASSWORD, message(), timeout=5)
    assert str(untrusted.value) == (
        f"{where}: TLS: certificate verify failed: unable to get local issuer certificate"
    )
    assert smtp.messages == []


def test_email_over_implicit_tls(smtps):
    """SMTPS: TLS from the connection's first byte, then login; the port defaults to 465."""
    notify.send_email(email(smtps, implicit_tls=True), PASSWORD, message(), timeout=5)
    mail, body = mail_text(smtps)
    assert mail["Subject"] == "opscheck morning: 1 CRIT, 2 WARN"
    assert "Problems:\n  CRIT db1: 172 of 200 connections used (86 %) > crit 80 %\n" in body
    assert smtps.messages[0][1] and smtps.logins == ["opscheck"]
    fields: dict[str, Any] = {
        "host": "mail",
        "sender": "opscheck@example.org",
        "to": ["ops@example.org"],
    }
    assert EmailNotify(**fields, implicit_tls=True).port == 465
    assert EmailNotify(**fields).port == 587
    with pytest.raises(ValueError, match="starttls = true or implicit_tls = true, not both"):
        EmailNotify(**fields, implicit_tls=True, starttls=True)


def test_implicit_tls_and_starttls_mixed_up_say_so(smtp, smtps):
    """The two TLS modes against the other kind of server: a line that says what to change."""
    with pytest.raises(notify.NotifyError) as plain_server:  # implicit TLS to a STARTTLS port
        notify.send_email(email(smtp, implicit_tls=True), PASSWORD, message(), timeout=5)
    assert str(plain_server.value) == (
        f"127.0.0.1:{smtp.port}: TLS: WRONG_VERSION_NUMBER (the server does not speak TLS at "
        "once: implicit_tls is for SMTPS, port 465)"
    )
    with pytest.raises(notify.NotifyError) as tls_server:  # STARTTLS to an SMTPS port
        notify.send_email(email(smtps), PASSWORD, message(), timeout=1)
    assert str(tls_server.value) == (
        f"127.0.0.1:{smtps.port}: no answer within 1 s (no SMTP greeting: a server that expects "
        "TLS at once, as on port 465, needs implicit_tls = true)"
    )
    with pytest.raises(notify.NotifyError) as untrusted:  # the system CAs: not the testbed's
        notify.send_email(email(smtps, implicit_tls=True, ca_file=None), PASSWORD, message(), 5)
    assert str(untrusted.value) == (
        f"127.0.0.1:{smtps.port}: TLS: certificate verify failed: unable to get local issuer "
        "certificate"
    )
    assert smtp.messages == smtps.messages == []


def test_a_server_without_login_says_so(certificates):
    """A relay that offers no AUTH while a login is configured: that, not a STARTTLS problem."""
    for box in _mailbox(certificates, implicit=True, auth=False):
        with pytest.raises(notify.NotifyError) as no_auth:
            notify.send_email(email(box, implicit_tls=True), PASSWORD, message(), timeout=5)
        assert str(no_auth.value) == (
            f"127.0.0.1:{box.port}: the server does not offer AUTH (login): remove username "
            "and password_env, or ask for a login"
        )
        assert box.messages == []


def test_channels_are_sent_at_once(receiver, smtp, monkeypatch):
    """Three channels cost about the slowest one, not their sum (measured)."""
    from opscheck.config.notify import NotifySettings

    settings = NotifySettings.model_validate(
        {
            "slack": {"url_env": "A"},
            "webhook": {"url_env": "B"},
            "email": email(smtp).model_dump(),
            "timeout": 5,
        }
    )
    plan = notify._Plan(
        settings,
        {
            ("slack", "url_env"): receiver.url("/slack"),
            ("webhook", "url_env"): receiver.url("/hook"),
            ("email", "password_env"): PASSWORD,
        },
        "morning",
    )
    started = time.perf_counter()
    results = notify.send_all(plan, message())
    took = time.perf_counter() - started
    assert results == {"slack": None, "webhook": None, "email": None}
    assert len(receiver.requests) == 2 and len(smtp.messages) == 1
    started = time.perf_counter()  # the same, one after the other
    notify._post(receiver.url("/slack"), message().slack(), None, 5)
    notify._post(receiver.url("/hook"), message().webhook(), TOKEN, 5)
    notify.send_email(email(smtp), PASSWORD, message(), 5)
    one_by_one = time.perf_counter() - started
    print(
        f"slack + webhook + email (STARTTLS, login), loopback: at once {took * 1000:.0f} ms, "
        f"one after the other {one_by_one * 1000:.0f} ms"
    )
    assert took < 2
