"""``{{ sentence|connect_link }}``: in a sentence shown as HTML, the words telling the user where
to act become links there: (re)connecting OpenRouter ("Connect your OpenRouter account first.",
a refused key's "Reconnect your OpenRouter account.") to the Account page's OpenRouter part, and
a 402's "Add credits on OpenRouter" to OpenRouter's credits page.

The sentences themselves stay plain text: they also travel in JSON and websocket frames. Links
are built from known addresses only, never from the text.
"""

from __future__ import annotations

import re

from django import template
from django.urls import reverse
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe

from openrouter.website import credits_url

register = template.Library()

ASKS_TO_CONNECT = re.compile(r"\b(?:Reconnect|Connect) your OpenRouter account\b")
ASKS_FOR_CREDITS = re.compile(r"\bAdd credits on OpenRouter\b")


@register.filter(needs_autoescape=True)
def connect_link(value: object, autoescape: bool = True) -> SafeString:
    text = str(conditional_escape(str(value)) if autoescape else value)
    url = reverse("accounts:account") + "#openrouter"
    linked = ASKS_TO_CONNECT.sub(
        lambda words: format_html('<a href="{}">{}</a>', url, words[0]), text
    )
    linked = ASKS_FOR_CREDITS.sub(
        lambda words: format_html(
            '<a href="{}" target="_blank" rel="noopener">{}</a>', credits_url(), words[0]
        ),
        linked,
    )
    return mark_safe(linked)  # noqa: S308 - escaped above; the links are format_html's


@register.simple_tag
def openrouter_credits_url() -> str:
    """For static/js/links.js, which links the same words in sentences that arrive live."""
    return credits_url()
