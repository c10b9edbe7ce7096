"""The plain key appears in no log record and no rendered page, the admin included."""

import logging

import pytest
from django.test import Client

from accounts.models import User
from accounts.services import api_key_for
from tests.factories import follow_connect, make_user

pytestmark = pytest.mark.django_db


def test_the_plain_key_is_in_no_log_record_and_no_page(
    client: Client, user: User, caplog: pytest.LogCaptureFixture
) -> None:
    for name in (None, "httpx", "httpcore", "django", "django.db.backends"):
        caplog.set_level(logging.DEBUG, logger=name)
    client.force_login(user)
    pages = [follow_connect(client, next_url="/account/").content.decode()]  # type: ignore[attr-defined]
    key = api_key_for(user=user)
    for path in ["/account/", "/account/credits.json", "/chat/", "/generations/"]:
        pages.append(client.get(path).content.decode())

    staff = make_user(is_staff=True, is_superuser=True)
    admin = Client()
    admin.force_login(staff)
    key_id = user.openrouter_key.pk
    for path in [
        "/admin/accounts/openrouterkey/",
        f"/admin/accounts/openrouterkey/{key_id}/change/",
        f"/admin/accounts/user/{user.pk}/change/",
        "/admin/accounts/user/",
    ]:
        response = admin.get(path)
        assert response.status_code == 200, path
        pages.append(response.content.decode())

    assert any(user.openrouter_key.hint in page for page in pages)  # the hint is shown
    for page in pages:
        assert key not in page
        assert key.removeprefix("sk-or-v1-") not in page
    logged = "\n".join(r.getMessage() + repr(r.args) for r in caplog.records)
    assert caplog.records  # DEBUG capture really saw the flow
    assert key.removeprefix("sk-or-v1-") not in logged
