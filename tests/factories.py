"""Objects for tests, made the way the product makes them."""

from __future__ import annotations

import itertools

from accounts.models import User

PASSWORD = "correct horse battery staple"
_numbers = itertools.count(1)


def make_user(email: str | None = None, password: str = PASSWORD, **fields: object) -> User:
    email = email or f"user{next(_numbers)}@example.com"
    return User.objects.create_user(email=email, password=password, **fields)
