"""Consumers and relays keep their database connection between calls (config.async_db)."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async as channels_database_sync_to_async
from django.db import connection

from accounts.models import User
from config.async_db import database_sync_to_async

pytestmark = pytest.mark.django_db(transaction=True)


def current_connection() -> Any:
    connection.ensure_connection()
    return connection.connection


async def test_calls_share_one_connection_until_it_is_left_unusable() -> None:
    first = await database_sync_to_async(current_connection)()
    assert await database_sync_to_async(current_connection)() is first
    # Channels' own calls on that thread (its auth middleware's) keep it as well.
    assert await channels_database_sync_to_async(current_connection)() is first

    def leave_a_transaction_open() -> None:
        connection.set_autocommit(False)

    await database_sync_to_async(leave_a_transaction_open)()
    replaced = await database_sync_to_async(current_connection)()
    assert replaced is not first
    assert await database_sync_to_async(lambda: connection.get_autocommit())() is True


async def test_a_kept_connection_that_died_is_replaced_before_anyone_uses_it() -> None:
    first = await database_sync_to_async(current_connection)()

    def backend_pid() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return int(cursor.fetchone()[0])

    pid = await database_sync_to_async(backend_pid)()

    def terminate_from_elsewhere() -> None:  # as a database restart would, between two calls
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        finally:
            connection.close()  # this other thread's own connection

    await sync_to_async(terminate_from_elsewhere, thread_sensitive=False)()

    # Even a plain sync_to_async call on that thread (as Channels' auth makes) gets a live one.
    assert await sync_to_async(User.objects.count)() >= 0
    assert await database_sync_to_async(current_connection)() is not first
