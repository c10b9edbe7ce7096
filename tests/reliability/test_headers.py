"""Browser-side defences: a strict CSP, cookie flags in production, no inline script anywhere."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from tests.config.test_settings import PRODUCTION, ROOT

pytestmark = pytest.mark.django_db

PAGES = ["/account/", "/chat/", "/generations/", "/accounts/password/change/"]
PUBLIC = ["/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"]


def test_every_page_has_a_csp_without_inline_scripts(signed_in: Client) -> None:
    for path in PAGES + PUBLIC:
        response = (Client() if path in PUBLIC else signed_in).get(path)
        assert response.status_code == 200, path
        policy = response["Content-Security-Policy"]
        script_src = re.search(r"script-src ([^;]*)", policy)
        assert script_src is not None, policy
        assert "'unsafe-inline'" not in script_src.group(1)
        assert "'unsafe-eval'" not in script_src.group(1)
        assert "object-src 'none'" in policy
        assert "frame-ancestors 'none'" in policy
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"


def test_no_template_carries_an_inline_script_or_style() -> None:
    for template in Path(ROOT, "templates").rglob("*.html"):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag, f"inline script in {template}"
        assert not re.search(r"\son[a-z]+=", text), f"inline event handler in {template}"
        assert "<style" not in text, f"inline style block in {template}"


def test_session_and_csrf_cookies_are_hardened_in_production(tmp_path: Path) -> None:
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_HTTPONLY, s.SESSION_COOKIE_SECURE, s.SESSION_COOKIE_SAMESITE,"
        " s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS > 0)"
    )
    env = {"PATH": "/usr/bin:/bin", "VAR_DIR": str(tmp_path), **PRODUCTION}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.stdout.split() == ["True", "True", "Lax", "True", "True", "True"], result.stderr
