"""Objects for tests, made the way the product makes them."""

from __future__ import annotations

import itertools
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
from django.test import Client

from accounts.models import User

PASSWORD = "correct horse battery staple"
_numbers = itertools.count(1)


def make_user(email: str | None = None, password: str = PASSWORD, **fields: object) -> User:
    email = email or f"user{next(_numbers)}@example.com"
    return User.objects.create_user(email=email, password=password, **fields)


class _ConsentForm(HTMLParser):
    """The sandbox consent page's form: its action and hidden fields."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.action = values.get("action", "")
        elif tag == "input" and values.get("type") == "hidden":
            self.fields[values["name"]] = values.get("value", "")


def consent(authorize_url: str, decision: str = "authorize") -> str:
    """Open OpenRouter's (the sandbox's) consent page and click a button, as a person would;
    returns where the browser is sent next (our callback URL)."""
    page = httpx.get(authorize_url)
    assert page.status_code == 200, page.text
    form = _ConsentForm()
    form.feed(page.text)
    response = httpx.post(
        urljoin(str(page.url), form.action), data={**form.fields, "decision": decision}
    )
    assert response.status_code in {302, 303}, response.text
    return response.headers["location"]


def follow_connect(client: Client, next_url: str = "", decision: str = "authorize") -> object:
    """Run our connect flow end to end: our redirect → consent page → back to our callback."""
    start = client.get("/connect/openrouter/", {"next": next_url} if next_url else {})
    assert start.status_code == 302, start
    callback = urlsplit(consent(start["Location"], decision))
    return client.get(f"{callback.path}?{callback.query}", follow=True)


def connect_user(user: User) -> User:
    client = Client()
    client.force_login(user)
    follow_connect(client)
    user.refresh_from_db()
    assert hasattr(user, "openrouter_key")
    return user
