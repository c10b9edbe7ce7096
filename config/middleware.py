"""This project's own request middleware."""

from __future__ import annotations

from collections.abc import Callable
from inspect import iscoroutinefunction
from typing import Any

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
    times on a chat page with 200 conversations (docs/benchmarks.md, "Pages").
    """
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponse:
            with translation.override(settings.LANGUAGE_CODE, deactivate=True):
                response: HttpResponse = await get_response(request)
            return response

        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponse:
        with translation.override(settings.LANGUAGE_CODE, deactivate=True):
            response: HttpResponse = get_response(request)
        return response

    return middleware
