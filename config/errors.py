"""Error pages that say what happened and what to do."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def ratelimited(request: HttpRequest, exception: Exception) -> HttpResponse:
    """django-ratelimit's refusals: a 429 with a sentence, not a bare 403."""
    return render(request, "429.html", status=429)
