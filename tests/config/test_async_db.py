"""Consumers and relays keep their database connection between calls (config.async_db)."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async as channels_database_sync_to_async
from django.db import connection

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
