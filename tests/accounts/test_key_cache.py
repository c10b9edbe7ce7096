"""The key's ciphertext in Redis (``accounts.key_cache``) follows the table, commit by commit, and
a reader that read the database just before a change can never bring an old key back."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.conf import LazySettings
from django.core.management import call_command
from django.db import transaction

from accounts import key_cache
from accounts.models import OpenRouterKey, User
from accounts.services import (
    NotConnected,
    api_key_delete,
    api_key_for,
    api_key_from,
    api_key_store,
)
from config.cache import shared_cache

pytestmark = pytest.mark.django_db(transaction=True)  # the cache is written on commit

PLAIN = "sk-or-v1-" + "7c1d40be" * 8


def redis() -> Any:
    return shared_cache()._cache.get_client(write=True)


def entry_name(user: User) -> str:
    name = key_cache.name(user.pk)
    assert name is not None  # the project's cache is Redis
    return name


def entry(user: User) -> bytes | None:
    value = redis().get(entry_name(user))
    return None if value is None else bytes(value)


def stored_ciphertext(user: User) -> bytes:
    return bytes(OpenRouterKey.objects.get(user=user).encrypted_key)


def test_a_stored_key_is_cached_as_its_ciphertext_only(user: User) -> None:
    assert entry(user) is None
    api_key_store(user=user, plain_key=PLAIN, source="pasted")
    cached = entry(user)
    assert cached == stored_ciphertext(user)
    assert PLAIN.encode() not in cached and PLAIN[-12:].encode() not in cached
    assert api_key_from(cached) == PLAIN


def test_a_key_replaced_is_replaced_in_the_cache(user: User) -> None:
    api_key_store(user=user, plain_key=PLAIN, source="pasted")
    api_key_store(user=user, plain_key=PLAIN[:-4] + "0000", source="oauth")
    assert api_key_from(entry(user) or b"") == PLAIN[:-4] + "0000"


@pytest.mark.parametrize("how", ["disconnect", "staff revoke", "user deleted"])
def test_a_key_deleted_in_any_way_leaves_a_tombstone(user: User, how: str) -> None:
    api_key_store(user=user, plain_key=PLAIN, source="pasted")
    if how == "disconnect":
        api_key_delete(user=user)
    elif how == "staff revoke":  # the admin's action: a queryset delete
        OpenRouterKey.objects.filter(user=user).delete()
    else:
        User.objects.filter(pk=user.pk).delete()
    assert entry(user) == key_cache.TOMBSTONE
    with pytest.raises(NotConnected):
        api_key_from(key_cache.TOMBSTONE)


def test_a_disconnect_with_no_key_left_still_writes_the_tombstone(user: User) -> None:
    # As after a disconnect whose cache write failed: trying again must repair the cache.
    api_key_store(user=user, plain_key=PLAIN, source="pasted")
    OpenRouterKey.objects.filter(user=user).delete()
    redis().set(entry_name(user), b"stale")
    assert api_key_delete(user=user) is False
    assert entry(user) == key_cache.TOMBSTONE


def test_a_reader_fills_a_missing_entry_but_never_brings_a_deleted_key_back(user: User) -> None:
    api_key_store(user=user, plain_key=PLAIN, source="pasted")
    redis().delete(entry_name(user))
    assert api_key_for(user=user, remember=True) == PLAIN
    assert entry(user) == stored_ciphertext(user)
    # A send read the key from the database just before the user disconnected, and fills the
    # cache just after: the tombstone stays.
    read_before = stored_ciphertext(user)
    api_key_delete(user=user)
    key_cache.remember(user.pk, read_before)
    assert entry(user) == key_cache.TOMBSTONE
    # Without ``remember`` nothing is written (other callers: credits, generations).
    redis().delete(entry_name(user))
    api_key_store(user=user, plain_key=PLAIN, source="pasted")
    redis().delete(entry_name(user))
    api_key_for(user=user)
    assert entry(user) is None


def test_a_change_rolled_back_leaves_the_cache_alone(user: User) -> None:
    api_key_store(user=user, plain_key=PLAIN, source="pasted")
    before = entry(user)
    with pytest.raises(RuntimeError), transaction.atomic():
        api_key_delete(user=user)
        raise RuntimeError("rolled back")
    assert entry(user) == before
    with pytest.raises(RuntimeError), transaction.atomic():
        api_key_store(user=user, plain_key=PLAIN[:-4] + "0000", source="pasted")
        raise RuntimeError("rolled back")
    assert entry(user) == before


def test_rotating_the_encryption_keys_rewrites_the_cached_ciphertext(
    user: User, settings: LazySettings
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    api_key_store(user=user, plain_key=PLAIN, source="oauth")
    before = entry(user)
    settings.FIELD_ENCRYPTION_KEYS = [new, old]
    call_command("rotate_encryption_keys", stdout=open("/dev/null", "w"))  # noqa: SIM115
    settings.FIELD_ENCRYPTION_KEYS = [new]  # the old one dropped
    assert entry(user) != before
    assert entry(user) == stored_ciphertext(user)
    assert api_key_from(entry(user) or b"") == PLAIN
