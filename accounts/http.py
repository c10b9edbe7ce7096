"""Request types for views behind ``login_required``, so ``request.user`` is a ``User``."""

from django.http import HttpRequest

from accounts.models import User


class AuthedRequest(HttpRequest):
    user: User
