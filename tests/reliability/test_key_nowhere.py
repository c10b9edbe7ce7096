"""After a whole session of use on the real stack, the plain OpenRouter keys are nowhere we keep
anything: not in a page, a websocket frame, the admin, a DEBUG-off error page, a log line of the
web and worker processes (logging at DEBUG), a Redis value, or a database row.

The in-process version (log records and pages of one connect) is
tests/accounts/test_key_never_leaks.py; the raw key row is tests/accounts/test_key_storage.py.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection

from accounts.models import User
from accounts.services import api_key_for
from generations.models import Generation
from tests.factories import PASSWORD, consent, make_user
from tests.reliability.conftest import Person, Production, Stack, eventually, start_stack

pytestmark = pytest.mark.django_db(transaction=True)

PREFIX = "sk-or-v1-"


@pytest.fixture(scope="module")
def stack(django_db_setup: None, django_db_blocker: Any) -> Iterator[Stack]:
    with django_db_blocker.unblock():
        stack = start_stack(token_delay=0.002, generation_delay=0.3, LOG_LEVEL="DEBUG")
    yield stack
    stack.stop()


def needles(key: str) -> list[str]:
    """The key, its secret part, and any long piece of it (the hint keeps only 4 characters)."""
    secret = key.removeprefix(PREFIX)
    return [key, secret, secret[:16], secret[-16:]]


def redis_dump(url: str) -> str:
    """Every value in a Redis, whatever its type; Celery's base64 message bodies decoded."""
    client = redis.Redis.from_url(url)
    parts: list[bytes] = []
    keys = list(client.scan_iter(count=1000))
    for name in keys:
        kind = client.type(name).decode()
        if kind == "string":
            values = [client.get(name) or b""]
        elif kind == "list":
            values = client.lrange(name, 0, -1)
        elif kind == "hash":
            values = [b"%s=%s" % item for item in client.hgetall(name).items()]
        elif kind == "set":
            values = list(client.smembers(name))
        elif kind == "zset":
            values = [member for member, _ in client.zrange(name, 0, -1, withscores=True)]
        else:
            values = []
        for value in values:
            parts.append(name + b" " + value)
            parts.extend(decoded_bodies(value))
    client.close()
    return b"\n".join(parts).decode("latin-1") + f"\n[{len(keys)} keys]"


def decoded_bodies(value: bytes) -> list[bytes]:
    try:
        message = json.loads(value)
    except ValueError:
        return []
    if isinstance(message, dict) and isinstance(message.get("body"), str):
        try:
            return [base64.b64decode(message["body"])]
        except ValueError:
            return []
    return []


def database_dump() -> str:
    """Every row of every table as PostgreSQL returns it, sessions decoded."""
    parts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608  (names from the catalogue)
            for row in cursor.fetchall():
                parts.append(
                    repr(
                        [
                            bytes(v).decode("latin-1") if isinstance(v, memoryview | bytes) else v
                            for v in row
                        ]
                    )
                )
            if table == "django_session":
                cursor.execute("SELECT session_data FROM django_session")
                parts.extend(repr(SessionStore().decode(data)) for (data,) in cursor.fetchall())
    return "\n".join(parts)


def chat(person: Person, text: str, model: str | None = None) -> list[dict[str, Any]]:
    tab = person.tab()
    frame: dict[str, Any] = {"type": "send", "conversation": None, "text": text}
    if model is not None:
        frame["model"] = model
    tab.send(**frame)
    frames = tab.until(lambda f: f["type"] in {"done", "error"})
    tab.close()
    return frames


def test_after_a_whole_session_the_plain_keys_are_nowhere(
    stack: Stack, production: Production
) -> None:
    seen: list[str] = []  # every page and frame a browser received

    def keep(response: httpx.Response) -> httpx.Response:
        assert response.status_code < 500, (response.request.url, response.status_code)
        seen.append(response.text)
        return response

    # Sign up and connect, as a person clicks through.
    person = Person(stack.url)
    email = "keys@example.com"
    signup = {"email": email, "password1": PASSWORD, "password2": PASSWORD}
    assert keep(person.post("/accounts/signup/", signup)).status_code == 302
    authorize = keep(person.get("/connect/openrouter/?next=/chat/")).headers["location"]
    back = urlsplit(consent(authorize))
    assert keep(person.get(f"{back.path}?{back.query}")).headers["location"] == "/chat/"
    user = User.objects.get(email=email)
    first = api_key_for(user=user)
    for path in ["/account/", "/account/credits.json", "/chat/", "/chat/models.json"]:
        keep(person.get(path))
    seen.extend(json.dumps(f) for f in chat(person, "hello"))
    seen.extend(json.dumps(f) for f in chat(person, "hello", model="sandbox/error-401"))

    # Paste another key by hand; use it for chat and a 3D generation.
    second = stack.sandbox_key()
    keep(person.post("/account/key/", {"key": second}))
    assert api_key_for(user=user) == second
    seen.extend(json.dumps(f) for f in chat(person, "Write a python function"))
    created = keep(
        person.post(
            "/generations/new/",
            {"prompt": "a ball", "extension": "ply", "num_inference_steps": 8, "num_outputs": 1},
        )
    )
    generation = Generation.objects.get(pk=created.headers["location"].split("/")[-2])
    eventually(
        lambda: Generation.objects.filter(pk=generation.pk, state="succeeded").exists(),
        "the generation to succeed",
    )
    keep(person.get(f"/generations/{generation.pk}/"))
    keep(person.get(f"/generations/{generation.pk}/outputs/0/"))
    keep(person.get("/account/"))

    # Support looks at everything in the admin.
    staff = Person(stack.url, make_user(is_staff=True, is_superuser=True))
    key_row = user.openrouter_key
    message = user.conversations.first().messages.last()  # type: ignore[union-attr]
    for path in [
        "/admin/accounts/openrouterkey/",
        f"/admin/accounts/openrouterkey/{key_row.pk}/change/",
        "/admin/accounts/user/",
        f"/admin/accounts/user/{user.pk}/change/",
        "/admin/chat/conversation/",
        f"/admin/chat/message/{message.pk}/change/",
        "/admin/chat/chatusage/",
        f"/admin/generations/generation/{generation.pk}/change/",
    ]:
        assert keep(staff.get(path)).status_code == 200, path

    # A failure inside the code that holds the key, with DEBUG off: the error page.
    error = production.get("/account/credits.json", person.http.cookies["sessionid"])
    assert error.status_code >= 500
    seen.append(error.text)
    keep(person.post("/accounts/logout/"))

    # The search.
    places = {
        "pages and frames": "\n".join(seen),
        "web and worker logs": stack.logs() + production.web.log(),
        "Redis (the stack's)": redis_dump(stack.redis_url),
        "Redis (the suite's)": redis_dump(os.environ["REDIS_URL"]),
        "the database": database_dump(),
    }
    for key in (first, second):
        for where, text in places.items():
            for needle in needles(key):
                assert needle not in text, f"a piece of a plain key is in {where}"

    # The search looked where the keys would have been: the controls.
    assert key_row.hint in places["pages and frames"]  # the admin and account pages showed it
    assert key_row.hint in places["the database"]
    assert " DEBUG " in places["web and worker logs"]  # the processes really logged at DEBUG
    assert "run_generation" in places["web and worker logs"]
    assert "_auth_user_id" in places["the database"]  # sessions were decoded and searched
    assert "[0 keys]" not in places["Redis (the stack's)"]
    sandbox = httpx.get(f"{stack.sandbox_url}/_sandbox/state").json()
    assert sandbox["chat_requests"] >= 3 and sandbox["generation_requests"] >= 1
