"""allauth, told where this site's pages are."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest
from django.urls import reverse


class AccountAdapter(DefaultAccountAdapter):
    def get_password_change_redirect_url(self, request: HttpRequest) -> str:
        """Back to the Account page, where the change was started (allauth showed the same
        empty form again under "Password changed.")."""
        return reverse("accounts:account")
