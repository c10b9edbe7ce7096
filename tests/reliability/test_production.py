"""The product as deployed (``DEBUG=0``), on the wire: what the browser really receives.

tests/reliability/test_headers.py checks the same settings in-process, and
tests/config/test_settings.py proves ``check --deploy`` clean. Here the cookies, the policy and
the error page come from a uvicorn process started with the production environment.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets

import httpx
import pytest

from accounts.models import User
from accounts.services import api_key_store
from tests.factories import PASSWORD, make_user
from tests.reliability.conftest import Production, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


def test_signing_in_sets_a_session_cookie_that_is_httponly_secure_and_lax(
    production: Production,
) -> None:
    user = make_user()
    token = secrets.token_hex(16)
    response = httpx.post(
        f"{production.url}/accounts/login/",
        data={"login": user.email, "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Cookie": f"csrftoken={token}", "Referer": f"{production.url}/accounts/login/"},
    )
    assert response.status_code == 302, response.text[:500]
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("sessionid="))
    flags = {part.strip().lower() for part in session.split(";")[1:]}
    assert {"httponly", "secure", "samesite=lax"} <= flags, session
    csrf = [c for c in cookies if c.startswith("csrftoken=")]
    assert all("secure" in c.lower() and "samesite=lax" in c.lower() for c in csrf), csrf


def test_every_response_carries_a_policy_without_inline_scripts(production: Production) -> None:
    for response in [
        httpx.get(f"{production.url}/"),
        httpx.get(f"{production.url}/accounts/login/"),
        httpx.get(f"{production.url}/healthz"),
    ]:
        policy = response.headers["content-security-policy"]
        script_src = re.search(r"script-src ([^;]*)", policy)
        assert script_src and "'unsafe-inline'" not in script_src.group(1), policy
        assert "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert response.headers["x-frame-options"] == "DENY"


def test_an_error_with_debug_off_is_the_plain_page_and_says_nothing_inside(
    production: Production, user: User
) -> None:
    api_key_store(user=user, plain_key=f"sk-or-v1-{secrets.token_hex(32)}", source="pasted")
    response = production.get("/account/credits.json", session_cookie(user))
    assert response.status_code >= 500
    text = response.text
    for inside in ["Traceback", 'File "', "SECRET_KEY", "DATABASE_URL", "sk-or-", "settings"]:
        assert inside not in text, inside


def test_the_web_process_keeps_every_thread_to_one_cpu(production: Production) -> None:
    """``WEB_CPU=auto``, as make run sets it (config.affinity): the loop and the threads it started
    for requests and database calls share one CPU."""
    for path in ("/healthz", "/accounts/login/", "/"):  # requests that run Django in threads
        httpx.get(production.url + path)
    pid = production.web.process.pid
    threads = [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    masks = set()
    for tid in threads:
        # A thread may end after it was listed (an idle executor thread, say).
        with contextlib.suppress(ProcessLookupError):
            masks.add(frozenset(os.sched_getaffinity(tid)))
    allowed = os.sched_getaffinity(0)
    assert len(threads) > 1
    if len(allowed) < 2:
        assert masks == {frozenset(allowed)}  # nothing to choose from
    else:
        (mask,) = masks  # the same for every thread
        assert len(mask) == 1 and mask <= allowed
