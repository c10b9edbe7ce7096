"""The sandbox's pages for people: the consent page of ``/auth`` and stand-ins for the website's
pages the app links to (credits, a key's page). Plain HTML and CSS, no script, every value
escaped."""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import urlsplit

_STYLE = """
body { margin: 0; min-height: 100vh; display: flex; align-items: center; justify-content: center;
  background: #f4f4f7; color: #1d1d27; font: 16px/1.5 system-ui, -apple-system, sans-serif; }
main { background: #fff; width: min(26rem, 92vw); padding: 2rem; border-radius: 14px;
  box-shadow: 0 8px 30px rgb(0 0 0 / 8%); }
.brand { font-weight: 600; color: #6b4eff; letter-spacing: .02em; margin: 0 0 1rem; }
h1 { font-size: 1.35rem; margin: 0 0 .75rem; }
p { margin: 0 0 1rem; color: #4a4a5a; }
dl { display: grid; grid-template-columns: auto 1fr; gap: .4rem 1rem; margin: 0 0 1.5rem;
  padding: 1rem; background: #f7f7fa; border-radius: 10px; }
dt { color: #6a6a7a; } dd { margin: 0; font-weight: 600; word-break: break-all; }
.actions { display: flex; gap: .75rem; }
button { flex: 1; font: inherit; font-weight: 600; padding: .7rem 1rem; border-radius: 10px;
  border: 1px solid #d6d6e0; background: #fff; color: #1d1d27; cursor: pointer; }
button.primary { background: #6b4eff; border-color: #6b4eff; color: #fff; }
button:focus-visible { outline: 3px solid #b9acff; outline-offset: 2px; }
.note { font-size: .8rem; color: #8a8a99; margin: 1.25rem 0 0; }
"""

# No script may run here, and the page must not be framed (it grants a key).
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f'<body><main><p class="brand">OpenRouter sandbox</p>{body}</main></body></html>\n'
    )


_OFFLINE = '<p class="note">This is an offline stand-in: no real account or money is involved.</p>'


def consent_page(*, callback_url: str, fields: dict[str, str], key_label: str | None) -> str:
    host = urlsplit(callback_url).netloc
    hidden = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in fields.items()
    )
    return _page(
        "Authorize application",
        f"<h1>Connect {escape(host)} to your account?</h1>"
        "<p>The application will receive an API key that can spend your credits. "
        "You can revoke it at any time.</p>"
        f"<dl><dt>Application</dt><dd>{escape(host)}</dd>"
        f"<dt>Key label</dt><dd>{escape(key_label or 'Sandbox key')}</dd>"
        f"<dt>Returns to</dt><dd>{escape(callback_url)}</dd></dl>"
        f'<form method="post" action="auth/decision">{hidden}'
        '<div class="actions">'
        '<button type="submit" name="decision" value="cancel">Cancel</button>'
        '<button type="submit" name="decision" value="authorize" class="primary">Authorize'
        "</button></div></form>" + _OFFLINE,
    )


def error_page(message: str) -> str:
    return _page("Authorization error", f"<h1>Something is wrong</h1><p>{escape(message)}</p>")


def credits_page(*, key_limit: float) -> str:
    return _page(
        "Credits",
        "<h1>Credits</h1>"
        "<p>On OpenRouter, this page shows the account's balance and lets you buy credits.</p>"
        f"<p>The sandbox sells none: each key it issues may spend ${key_limit:.2f} of pretend "
        "credit, counted while it runs. A key that has spent it gets 402 on paid models; "
        "connect again for a new key, or restart the sandbox, which forgets all spending.</p>"
        "<p>The model “Sandbox: error 402” answers 402 whatever the key has left.</p>" + _OFFLINE,
    )


def key_page(info: dict[str, Any] | None) -> str:
    """A key's page, with its ``/api/v1/key`` figures; None for a key the sandbox does not know."""
    what = (
        "<h1>API key</h1><p>On OpenRouter, this page lets you rename the key, set its credit "
        "limit, disable it or delete it. The sandbox only shows what it counted.</p>"
    )
    if info is None:
        return _page(
            "API key",
            f"{what}<p>The sandbox knows no key by this address: it forgets labels and spending "
            "when it restarts (a key it issued keeps working).</p>" + _OFFLINE,
        )
    return _page(
        "API key",
        f"{what}<dl><dt>Label</dt><dd>{escape(info['label'])}</dd>"
        f"<dt>Credit limit</dt><dd>${info['limit']:.2f}</dd>"
        f"<dt>Used</dt><dd>${info['usage']:.4f}</dd>"
        f"<dt>Left</dt><dd>${info['limit_remaining']:.4f}</dd></dl>" + _OFFLINE,
    )
