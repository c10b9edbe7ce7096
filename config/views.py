"""Site pages that belong to no app: the front page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render


def home(request: HttpRequest) -> HttpResponse:
    """What Switchboard is, for a visitor; the chat, for someone signed in."""
    if request.user.is_authenticated:
        return redirect("chat:index")
    return render(request, "home.html")
