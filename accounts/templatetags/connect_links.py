"""``{{ sentence|connect_link }}``: in a sentence shown as HTML, the words telling the user to
(re)connect OpenRouter ("Connect your OpenRouter account first.", a refused key's "Reconnect
your OpenRouter account.") become a link to where they can, the Account page's OpenRouter part.

The sentences themselves stay plain text: they also travel in JSON and websocket frames.
"""

from __future__ import annotations

import re

from django import template
from django.urls import reverse
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

ASKS_TO_CONNECT = re.compile(r"\b(?:Reconnect|Connect) your OpenRouter account\b")


@register.filter(needs_autoescape=True)
def connect_link(value: object, autoescape: bool = True) -> SafeString:
    text = str(conditional_escape(str(value)) if autoescape else value)
    url = reverse("accounts:account") + "#openrouter"
    linked = ASKS_TO_CONNECT.sub(
        lambda words: format_html('<a href="{}">{}</a>', url, words[0]), text
    )
    return mark_safe(linked)  # noqa: S308 - escaped above; the link is format_html's
