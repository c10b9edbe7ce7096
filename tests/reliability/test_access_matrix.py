"""Who may see what, for every route the URL configuration and the websocket routing define.

The routes are read from ``get_resolver()`` and ``config.routing.websocket_urlpatterns``, so a
route added later without a place in ``KIND`` fails ``test_every_route_has_a_place_in_the_matrix``.
Each route is requested as a signed-out visitor, as the owner of the data it names and as
another user: only the owner gets the owner's data, the others get exactly what they would get
for an id that does not exist (a 404, never a 403 that confirms existence).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.contenttypes.models import ContentType
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from accounts.models import OpenRouterKey, User
from accounts.services import api_key_store
from chat.models import Conversation, Message
from config.asgi import application
from config.routing import websocket_urlpatterns
from generations.models import Generation
from tests.factories import make_user
from tests.generations.conftest import make_generation

MISSING = 987654321  # an id nothing has

# Every named route's kind. PUBLIC: anyone, and it names no one's data. MINE: the signed-in
# user's own things (no id in the URL). OWNED: one object named by an id. STAFF: the admin.
PUBLIC, MINE, OWNED, STAFF = "public", "mine", "owned", "staff"
KIND = {
    "home": PUBLIC,
    "healthz": PUBLIC,
    "account_login": PUBLIC,
    "account_signup": PUBLIC,
    "account_inactive": PUBLIC,
    "account_email_verification_sent": PUBLIC,
    "account_reset_password": PUBLIC,
    "account_reset_password_done": PUBLIC,
    "account_reset_password_from_key": PUBLIC,
    "account_reset_password_from_key_done": PUBLIC,
    "account_confirm_email": PUBLIC,
    "account_confirm_login_code": PUBLIC,
    "account_logout": MINE,
    "account_reauthenticate": MINE,
    "account_email": MINE,
    "account_change_password": MINE,
    "account_set_password": MINE,
    "accounts:account": MINE,
    "accounts:credits": MINE,
    "accounts:paste_key": MINE,
    "accounts:disconnect": MINE,
    "accounts:connect": MINE,
    "accounts:callback": MINE,
    "chat:index": MINE,
    "chat:models": MINE,
    "chat:list": MINE,
    "chat:conversation": OWNED,
    "chat:messages": OWNED,
    "chat:rename": OWNED,
    "chat:settings": OWNED,
    "chat:model": OWNED,
    "chat:delete": OWNED,
    "generations:index": MINE,
    "generations:create": MINE,
    "generations:detail": OWNED,
    "generations:output": OWNED,
    "generations:retry": OWNED,
    "generations:cancel": OWNED,
    "generations:delete": OWNED,
}
# The admin's own sign-in pages are public, and so are its unnamed routes (redirects to the
# change page, and the catch-all that redirects to the sign-in): they show nothing.
ADMIN_PUBLIC = {"admin:login", "admin:logout", "admin:jsi18n", "admin:?"}
# Views that only take POST; the rest are read with GET (a POST would change things).
POST_ONLY = {
    "accounts:paste_key",
    "accounts:disconnect",
    "chat:rename",
    "chat:settings",
    "chat:model",
    "chat:delete",
    "generations:create",
    "generations:retry",
    "generations:cancel",
    "generations:delete",
}
POST_DATA = {
    "accounts:paste_key": {"key": "sk-or-v1-" + "0" * 40},
    "chat:rename": {"title": "Renamed by someone"},
    "chat:settings": {"title": "Taken over", "model": "openai/gpt-4o"},  # a model it lists
    "chat:model": {"model": "evil/model"},
    "generations:create": {
        "prompt": "a chair",
        "num_inference_steps": 8,
        "num_outputs": 1,
        "extension": "ply",
    },
}


@dataclass(frozen=True)
class Route:
    pattern: str  # the full route, e.g. "chat/<int:conversation_id>/rename/"
    name: str  # "chat:rename"; "admin:?" for the admin's unnamed redirects

    @property
    def kind(self) -> str:
        if self.name.startswith("admin:"):
            return PUBLIC if self.name in ADMIN_PUBLIC else STAFF
        return KIND.get(self.name, "unclassified")

    @property
    def method(self) -> str:
        return "post" if self.name in POST_ONLY else "get"

    @property
    def names_an_object(self) -> bool:
        return "<" in self.pattern or "(?P<" in self.pattern


def _walk(patterns: list[Any], prefix: str = "", namespace: str = "") -> Iterator[Route]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = namespace
            if entry.namespace:
                inner = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern):
            name = entry.name or "?"
            yield Route(prefix + str(entry.pattern), f"{namespace}:{name}" if namespace else name)


ROUTES = list(_walk(get_resolver().url_patterns))


@dataclass
class Owned:
    """One user's things, each carrying a marker that must show only to them."""

    user: User
    marker: str
    conversation: Conversation
    message: Message
    generation: Generation
    key: OpenRouterKey

    def values(self, route: Route, missing: bool = False) -> dict[str, str]:
        """What to put in each placeholder of ``route`` (an id nothing has when ``missing``)."""

        def ident(value: int) -> str:
            return str(MISSING if missing else value)

        admin_model = re.match(r"admin/(\w+)/(\w+)/", route.pattern)
        by_admin_model = {
            "user": self.user.pk,
            "chatusage": self.user.pk,
            "openrouterkey": self.key.pk,
            "conversation": self.conversation.pk,
            "message": self.message.pk,
            "generation": self.generation.pk,
            "emailaddress": MISSING,
            "group": MISSING,
        }
        object_id = by_admin_model.get(admin_model.group(2), MISSING) if admin_model else MISSING
        if route.name == "admin:view_on_site":  # r/<content type of Generation>/<its id>/
            object_id = self.generation.pk
        if route.name == "admin:generations_output_download":
            pk = self.generation.outputs.get().pk
        elif route.name.startswith("generations:"):
            pk = self.generation.pk
        else:
            pk = MISSING
        return {
            "conversation_id": ident(self.conversation.pk),
            "pk": ident(pk),
            "index": "0",
            "object_id": ident(object_id),
            "id": ident(self.user.pk),
            "content_type_id": str(ContentType.objects.get_for_model(Generation).pk),
            "app_label": "chat",
            "url": "nothing/here/",
            "key": "not-a-real-key",
            "uidb36": "1",
        }

    def url(self, route: Route, missing: bool = False) -> str:
        values = self.values(route, missing)
        path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: values[m.group(1)], route.pattern)
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], path)
        return "/" + path.replace("^", "").replace("$", "")


def own_things(user: User) -> Owned:
    marker = f"OWNERSECRET{secrets.token_hex(4)}"
    conversation = Conversation.objects.create(user=user, title=f"{marker} title")
    conversation.messages.create(role=Message.Role.USER, content=f"{marker} question")
    message = conversation.messages.create(role=Message.Role.ASSISTANT, content=f"{marker} answer")
    generation = make_generation(
        user, state=Generation.State.FAILED, prompt=f"{marker} prompt", finished_at=timezone.now()
    )
    key = api_key_store(user=user, plain_key=f"sk-or-v1-{secrets.token_hex(32)}", source="pasted")
    return Owned(user, marker, conversation, message, generation, key)


@pytest.fixture
def owned(user: User) -> Owned:
    return own_things(user)


def request(client: Client, route: Route, url: str) -> Any:
    if route.method == "post":
        return client.post(url, POST_DATA.get(route.name, {}))
    return client.get(url)


def body(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def outcome(response: Any) -> tuple[int, str]:
    return response.status_code, response.get("Location", "")


def untouched(owned: Owned) -> None:
    """Nothing of the owner's changed: the requests of the others were refused, not obeyed."""
    conversation = Conversation.objects.get(pk=owned.conversation.pk)
    assert conversation.title == f"{owned.marker} title" and conversation.model == ""
    assert conversation.messages.count() == 2
    generation = Generation.objects.get(pk=owned.generation.pk)
    assert generation.state == Generation.State.FAILED
    assert default_storage.exists(generation.outputs.get().file.name)
    assert OpenRouterKey.objects.filter(pk=owned.key.pk, hint=owned.key.hint).exists()


# --- the matrix -------------------------------------------------------------------------------


def test_every_route_has_a_place_in_the_matrix() -> None:
    assert len(ROUTES) > 50, "the URL configuration was not read"
    unclassified = [route for route in ROUTES if route.kind == "unclassified"]
    assert not unclassified, f"add these routes to KIND in {__file__}: {unclassified}"
    assert set(KIND) <= {route.name for route in ROUTES}, "KIND names a route that is gone"


@pytest.mark.django_db
def test_a_signed_out_visitor_gets_a_sign_in_page_or_a_404_and_no_data(
    client: Client, owned: Owned
) -> None:
    failures = []
    for route in ROUTES:
        response = request(client, route, owned.url(route))
        status, location = outcome(response)
        text = body(response)
        if status >= 500 or status == 403 or owned.marker in text:
            failures.append((route, status, "error, 403 or the owner's data"))
        elif route.kind == STAFF and not (status == 302 and location.startswith("/admin/login/")):
            failures.append((route, status, f"not sent to the admin sign-in: {location}"))
        elif route.kind in (MINE, OWNED) and not (
            status == 404
            or (status == 302 and location.startswith("/accounts/login/"))
            or (route.name == "account_logout" and location == "/")  # nothing to sign out of
        ):
            failures.append((route, status, f"not sent to sign in: {location}"))
        if route.names_an_object and route.kind != PUBLIC:
            missing = outcome(request(client, route, owned.url(route, missing=True)))
            if missing[0] != status or missing[1].split("?")[0] != location.split("?")[0]:
                failures.append((route, status, f"differs from a missing id: {missing}"))
    assert not failures, "\n".join(map(str, failures))
    untouched(owned)


@pytest.mark.django_db
def test_another_user_gets_404_for_the_owners_objects_and_never_their_data(
    client: Client, owned: Owned, other_user: User
) -> None:
    own_things(other_user)  # the other user has things of their own, with their own marker
    client.force_login(other_user)
    failures = []
    for route in sorted(ROUTES, key=lambda r: "delete" in r.name or "disconnect" in r.name):
        response = request(client, route, owned.url(route))
        status, location = outcome(response)
        # credits.json answers 502 when OpenRouter refuses the (made-up) key of the other user.
        failed = status >= 500 and (route.name, status) != ("accounts:credits", 502)
        if failed or owned.marker in body(response) or owned.key.hint in body(response):
            failures.append((route, status, "error or the owner's data"))
        elif route.kind == OWNED:
            missing = outcome(request(client, route, owned.url(route, missing=True)))
            if status != 404 or missing[0] != 404:
                failures.append((route, status, f"not a 404 like a missing id ({missing[0]})"))
        elif route.kind == STAFF and not (status == 302 and location.startswith("/admin/login/")):
            failures.append((route, status, f"an ordinary user reached the admin: {location}"))
        elif status == 403:
            failures.append((route, status, "403"))
    assert not failures, "\n".join(map(str, failures))
    untouched(owned)


@pytest.mark.django_db
def test_the_owner_reaches_every_one_of_their_objects(client: Client, owned: Owned) -> None:
    client.force_login(owned.user)
    failures = []
    seen = []
    for route in sorted(ROUTES, key=lambda r: "delete" in r.name or "disconnect" in r.name):
        if route.kind not in (OWNED, MINE):
            continue
        response = request(client, route, owned.url(route))
        status = response.status_code
        must_show = route.method == "get" and route.kind == OWNED
        # credits.json answers 502 when OpenRouter refuses the made-up key: not an access matter
        refused = status >= 400 and route.name != "accounts:credits"
        if (must_show and status != 200) or refused:
            failures.append((route, status))
        if route.method == "get":
            seen.append(body(response))
    assert not failures, failures
    everything = "\n".join(seen)
    assert f"{owned.marker} title" in everything  # the pages really showed the owner's data
    assert f"{owned.marker} answer" in everything
    assert owned.key.hint in everything


@pytest.mark.django_db
def test_staff_reach_the_admin_routes_the_matrix_requests(client: Client, owned: Owned) -> None:
    """The positive control for the admin rows: the URLs built above are real admin pages."""
    client.force_login(make_user(is_staff=True, is_superuser=True))
    failures = []
    for route in ROUTES:
        if route.kind != STAFF or route.name in {"admin:logout", "admin:?"}:
            continue
        response = client.get(owned.url(route))
        status = response.status_code
        bounced = status == 302 and response["Location"].startswith("/admin/login/")
        if status not in {200, 302, 403} or bounced:
            failures.append((route, status))
    assert not failures, failures


# --- CSRF -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_post_without_a_csrf_token_is_refused_and_changes_nothing(owned: Owned) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owned.user)
    failures = []
    for route in ROUTES:
        response = browser.post(owned.url(route), POST_DATA.get(route.name, {}))
        if response.status_code != 403 or b"CSRF verification failed" not in response.content:
            failures.append((route, response.status_code))
    assert not failures, failures
    untouched(owned)
    assert browser.get("/account/").status_code == 200  # not even signed out


@pytest.mark.django_db
def test_the_same_posts_with_the_token_are_accepted(owned: Owned) -> None:
    """The control for the test above: with the page's token, a form post goes through."""
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owned.user)
    browser.get("/account/")
    token = browser.cookies["csrftoken"].value
    url = f"/chat/{owned.conversation.pk}/rename/"
    response = browser.post(url, {"title": "Mine", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert Conversation.objects.get(pk=owned.conversation.pk).title == "Mine"


# --- websockets -------------------------------------------------------------------------------

ORIGIN = (b"origin", b"http://127.0.0.1:8000")
WS_KIND = {"/ws/chat/": "chat", "/ws/generations/": "generations"}


def ws_paths() -> list[str]:
    return ["/" + str(route.pattern) for route in websocket_urlpatterns]


def test_every_websocket_route_has_a_place_in_the_matrix() -> None:
    assert ws_paths() and set(ws_paths()) == set(WS_KIND)


def cookie_for(user: User) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def open_socket(path: str, user: User | None) -> tuple[WebsocketCommunicator, bool, Any]:
    headers = [ORIGIN]
    if user is not None:
        headers.append((b"cookie", await sync_to_async(cookie_for)(user)))
    socket = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await socket.connect()
    return socket, connected, code


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ws_paths())
async def test_a_signed_out_socket_is_refused_on_every_route(path: str) -> None:
    socket, connected, code = await open_socket(path, None)
    assert not connected and code == 4401
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_another_users_socket_cannot_reach_the_owners_conversation(
    user: User, other_user: User
) -> None:
    owned = await sync_to_async(own_things)(user)
    socket, connected, _ = await open_socket("/ws/chat/", other_user)
    assert connected
    conversation, message = owned.conversation.pk, owned.message.pk
    for frame, missing in [
        ({"type": "subscribe", "conversation": conversation}, {"conversation": MISSING}),
        ({"type": "stop", "message": message}, {"message": MISSING}),
        ({"type": "regenerate", "message": message}, {"message": MISSING}),
        ({"type": "retry", "message": message}, {"message": MISSING}),
        ({"type": "send", "conversation": conversation, "text": "hi"}, {"conversation": MISSING}),
    ]:
        await socket.send_json_to(frame)
        refused = await socket.receive_json_from(timeout=5)
        await socket.send_json_to({**frame, **missing})
        nothing = await socket.receive_json_from(timeout=5)
        assert refused == nothing and refused["code"] in {"not_found", "not_connected"}, frame
        assert owned.marker not in str(refused)
    await socket.disconnect()
    await sync_to_async(untouched)(owned)

    mine, connected, _ = await open_socket("/ws/chat/", user)  # the owner's control
    await mine.send_json_to({"type": "subscribe", "conversation": conversation, "since": 0})
    frames = [await mine.receive_json_from(timeout=5) for _ in range(3)]
    assert [f["type"] for f in frames] == ["snapshot", "snapshot", "subscribed"]
    assert owned.marker in frames[1]["message"]["text"]
    await mine.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_the_generations_socket_shows_each_user_only_their_own(
    user: User, other_user: User
) -> None:
    owned = await sync_to_async(own_things)(user)
    for who, expected in [(user, True), (other_user, False)]:
        socket, connected, _ = await open_socket("/ws/generations/", who)
        assert connected
        snapshot = await socket.receive_json_from(timeout=5)
        ids = {item["id"] for item in snapshot["generations"]}
        assert (owned.generation.pk in ids) is expected
        await socket.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "origin",
    [
        None,  # no Origin at all
        b"null",  # a sandboxed iframe or a file: page
        b"https://evil.example",
        b"http://127.0.0.1.evil.example",
        b"http://127.0.0.1:8001",  # same host, another port (the sandbox under `make run`)
        b"https://127.0.0.1:8000",  # same host, another scheme
    ],
)
async def test_a_socket_from_any_other_origin_is_refused(user: User, origin: bytes | None) -> None:
    """Only the site's own origin (SITE_URL) may open a socket with the user's cookie; a page on
    another port or scheme of the same host is another origin (cross-site websocket hijacking)."""
    headers = [(b"cookie", await sync_to_async(cookie_for)(user))]
    if origin is not None:
        headers.append((b"origin", origin))
    for path in ws_paths():
        socket = WebsocketCommunicator(application, path, headers=headers)
        connected, _ = await socket.connect()
        await socket.disconnect()
        assert not connected, (path, origin)
