"""Every typed fail2ban error on a read page is a clear page with its reason, never a 500."""

from __future__ import annotations

import html

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from jails.fail2ban import (
    AgentRefused,
    AgentUnreachable,
    DatabaseUnavailable,
    Fail2banError,
    Fail2banUnreachable,
    InvalidArgument,
)
from jails.middleware import Fail2banErrorMiddleware
from jails.services.control import ReloadFailed
from tests.conftest import point_state_at
from tests.support.fakeserver import FakeFail2ban, pickled_reply, reply_for_each

pytestmark = pytest.mark.django_db

# What fail2ban really answers: each reply is decoded into one of our typed errors.
REJECTIONS = {
    # CommandRejected: fail2ban raised something other than an unknown jail.
    "CommandRejected": (ValueError("bad value for jail sshd"), "bad value for jail sshd"),
    # UnsupportedCommand: an older fail2ban does not implement the command.
    "UnsupportedCommand": (
        Exception("Invalid command (no get action or not yet implemented)"),
        "Invalid command (no get action or not yet implemented)",
    ),
}


def rejecting_server(exc: Exception) -> FakeFail2ban:
    """Answers ping and version like fail2ban 1.0.2; rejects every other command with exc."""

    def answer(command: list[str]) -> bytes:
        if command == ["ping"]:
            return pickled_reply(0, "pong")
        if command == ["version"]:
            return pickled_reply(0, "1.0.2")
        return pickled_reply(1, exc)

    return FakeFail2ban(reply_for_each(answer))


@pytest.mark.parametrize("kind", sorted(REJECTIONS))
@pytest.mark.parametrize("url", ["/jails/", "/jails/sshd/"])
def test_rejected_command_on_read_page_is_502_with_reason(logged_in_client, kind, url):
    exc, reason = REJECTIONS[kind]
    with rejecting_server(exc) as fake:
        point_state_at(fake.path, timeout=2.0)
        response = logged_in_client.get(url)
    assert response.status_code == 502
    body = response.content.decode()
    assert "fail2ban refused the request" in body
    assert reason in body


@pytest.mark.parametrize("kind", sorted(REJECTIONS))
def test_rejected_command_htmx_poll_gets_the_partial(logged_in_client, kind):
    exc, reason = REJECTIONS[kind]
    with rejecting_server(exc) as fake:
        point_state_at(fake.path, timeout=2.0)
        response = logged_in_client.get("/jails/", headers={"HX-Request": "true"})
    assert response.status_code == 502
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="fail2ban-error"')
    assert reason in body


def render_error(exc: Exception, **headers: str) -> HttpResponse:
    request = RequestFactory().get("/jails/", headers=headers)
    request.htmx = headers.get("HX-Request") == "true"
    middleware = Fail2banErrorMiddleware(lambda r: HttpResponse())
    response = middleware.process_exception(request, exc)
    assert response is not None
    return response


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (ReloadFailed("reload failed (exit code 255)", "ERROR  No file(s) found"), 502),
        (Fail2banError("something typed but new"), 502),
        (InvalidArgument("--all is not a valid jail name"), 400),
        (DatabaseUnavailable("cannot read fail2ban's database /x: file is not a database"), 502),
        # Agent mode (issue 10): the agent gone, fail2ban gone behind it, the agent saying no.
        (AgentUnreachable("unix:/run/jailadmin/agent.sock", "connection refused"), 503),
        (Fail2banUnreachable("/run/fail2ban/fail2ban.sock", "the socket does not exist"), 503),
        (AgentRefused("unknown operation 'run'"), 503),
    ],
)
def test_every_typed_error_is_a_page_with_its_reason(exc, status):
    response = render_error(exc)
    assert response.status_code == status
    assert html.escape(str(exc).splitlines()[0]) in response.content.decode()


def test_error_reason_is_escaped():
    response = render_error(Fail2banError("<script>alert(1)</script>"))
    body = response.content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_other_exceptions_are_left_to_django():
    request = RequestFactory().get("/jails/")
    middleware = Fail2banErrorMiddleware(lambda r: HttpResponse())
    assert middleware.process_exception(request, RuntimeError("bug")) is None
