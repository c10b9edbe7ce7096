"""HTTP goes to Django; websockets go through the origin check and the session (read once, see
``accounts.websocket``), then the routes.

The origin check compares scheme, host and port with the site's own origins: a page served from
another port of the same host (under `make run`, the sandbox on :8001) must not open a socket
with the user's cookie. Channels' ``AllowedHostsOriginValidator`` compares host names only.
"""

import os
import sys
from urllib.parse import urlsplit

from django.core.asgi import get_asgi_application

from config.affinity import keep_to_one_cpu

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

# This process is an event loop plus the thread where websocket consumers and relays make their
# database calls (config.async_db). Each time a query returns, that thread must win the GIL back
# from the busy loop, which by default yields it only every 5 ms: at 100 chat streams a send's
# dozen handoffs added ~40 ms to the first token. Every 1 ms: ~7 ms, and a little less CPU
# (docs/benchmarks.md).
sys.setswitchinterval(0.001)
# And on one CPU those handoffs are context switches, not wake-ups of another core (WEB_CPU).
keep_to_one_cpu(os.environ.get("WEB_CPU", ""))

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from accounts.websocket import SessionAuthMiddleware  # noqa: E402  (needs Django set up first)
from config.routing import websocket_urlpatterns  # noqa: E402


def allowed_origins() -> list[str]:
    """SITE_URL and CSRF_TRUSTED_ORIGINS; in development also SITE_URL's localhost twin."""
    origins = [settings.SITE_URL, *settings.CSRF_TRUSTED_ORIGINS]
    site = urlsplit(settings.SITE_URL)
    twins = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}
    if settings.DEBUG and site.hostname in twins:
        port = f":{site.port}" if site.port else ""
        origins.append(site._replace(netloc=f"{twins[site.hostname]}{port}").geturl())
    return origins


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginValidator(
            SessionAuthMiddleware(URLRouter(websocket_urlpatterns)), allowed_origins()
        ),
    }
)
