"""Keys at rest: encrypted, rotatable, and decrypted by one function only."""

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from accounts.models import OpenRouterKey, User
from accounts.services import NotConnected, api_key_for, api_key_store

pytestmark = pytest.mark.django_db

PLAIN = "sk-or-v1-" + "5f0c2a9e" * 8


def raw_rows() -> str:
    """Every column of every key row as the database holds it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_openrouterkey")
        rows = cursor.fetchall()
    return repr(
        [
            [bytes(v).decode("latin-1") if isinstance(v, memoryview | bytes) else v for v in row]
            for row in rows
        ]
    )


def test_the_database_holds_no_trace_of_the_plain_key(user: User) -> None:
    api_key_store(user=user, plain_key=PLAIN, source="pasted")
    stored = raw_rows()
    assert PLAIN not in stored
    assert PLAIN.removeprefix("sk-or-v1-") not in stored
    assert PLAIN[-12:] not in stored  # not even a long suffix; the hint keeps 4 characters
    assert "sk-or-v1-…2a9e" in stored
    assert api_key_for(user=user) == PLAIN


def test_a_user_without_a_key_is_not_connected(user: User) -> None:
    with pytest.raises(NotConnected):
        api_key_for(user=user)


def test_keys_rotate_across_two_generations_of_encryption_keys(user: User) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]):
        api_key_store(user=user, plain_key=PLAIN, source="oauth")
    before = bytes(OpenRouterKey.objects.get(user=user).encrypted_key)
    with override_settings(FIELD_ENCRYPTION_KEYS=[new, old]):
        assert api_key_for(user=user) == PLAIN  # old rows still decrypt during the change-over
        call_command("rotate_encryption_keys", stdout=open("/dev/null", "w"))  # noqa: SIM115
    after = bytes(OpenRouterKey.objects.get(user=user).encrypted_key)
    assert after != before
    with override_settings(FIELD_ENCRYPTION_KEYS=[new]):
        assert api_key_for(user=user) == PLAIN  # the old key can now be dropped
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]), pytest.raises(InvalidToken):
        api_key_for(user=user)
