"""jails.requests.session_store: a request's session, narrowed to jailadmin's own store.

The settings page and the admin hand it to the storage switch, which needs the store's
`storage`; a session from another engine must fail there, loudly, not lose the session.
"""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.signed_cookies import SessionStore as CookieSessionStore

from jails.requests import session_store
from jails.sessions import SessionStore


def test_session_store_gives_jailadmins_own_store(rf):
    request = rf.get("/")
    request.session = SessionStore()
    assert session_store(request) is request.session


def test_session_store_refuses_another_engines_session(rf):
    request = rf.get("/")
    request.session = CookieSessionStore()
    with pytest.raises(TypeError, match="jails.sessions"):
        session_store(request)


@pytest.mark.django_db
def test_a_real_request_carries_jailadmins_store(client, administrator_user):
    """Through the real middleware stack, as the settings page receives it."""
    client.force_login(administrator_user)
    response = client.get("/settings/")
    assert isinstance(response.wsgi_request.session, SessionStore)
    assert session_store(response.wsgi_request) is response.wsgi_request.session
