"""This project's own request middleware."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.utils.decorators import sync_and_async_middleware


@sync_and_async_middleware
def site_language(get_response: Callable[[HttpRequest], Any]) -> Callable[[HttpRequest], Any]:
    """Every request in ``LANGUAGE_CODE``, activated: the site is in one language.

    Not Django's ``LocaleMiddleware``, which would follow the browser's ``Accept-Language`` into
    half-translated pages (Django's own strings in French, ours in English). And not nothing:
    with no language activated, each ``get_language()`` (every date, ``naturaltime``, translated
    string) looks for one in asgiref's ``Local`` and catches the ``AttributeError``: thousands of
    times on a chat page with 200 conversations (docs/benchmarks.md, "Pages"). A language
    active before the request (a test's ``translation.override``) is active again after it;
    otherwise ``LANGUAGE_CODE`` stays active, which is what ``get_language()`` answered anyway.
    """
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponse:
            with translation.override(settings.LANGUAGE_CODE):
                response: HttpResponse = await get_response(request)
            return response

        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponse:
        with translation.override(settings.LANGUAGE_CODE):
            response: HttpResponse = get_response(request)
        return response

    return middleware
