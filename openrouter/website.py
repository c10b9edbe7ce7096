"""Links to pages of OpenRouter's website, for people to open. Built from
``settings.OPENROUTER_URL`` like the API's addresses, so against the sandbox they lead to its
stand-in pages (offline), and to openrouter.ai in production."""

from __future__ import annotations

from django.conf import settings


def page_url(path: str) -> str:
    """The address of OpenRouter's page at ``path`` (``"/settings/credits"``)."""
    return f"{settings.OPENROUTER_URL}{path}"


def credits_url() -> str:
    """Where an account buys credits."""
    return page_url("/settings/credits")


def key_url(key_hash: str) -> str:
    """One key's page (rename, credit limit, disable, delete), named by the key's sha256 hex."""
    return page_url(f"/keys/{key_hash}")
