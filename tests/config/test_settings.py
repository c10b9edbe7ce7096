"""Settings load from the environment: safe development defaults, refusals in production."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "k" * 20 + "-production-secret-with-enough-entropy-0123456789",
    "FIELD_ENCRYPTION_KEYS": "0F1TQ5Fhq0nA0d3H4jcK7mRV3JYmS9AuS9cKc4xN-4U=",
    "ALLOWED_HOSTS": "switchboard.example.com",
    "SITE_URL": "https://switchboard.example.com",
    "DATABASE_URL": "postgres://switchboard@db.example.com/switchboard",
    "REDIS_URL": "redis://redis.example.com:6379/0",
}


def run_django(code: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}}
    clean.update(DJANGO_SETTINGS_MODULE="config.settings", VAR_DIR=str(tmp_path / "var"), **env)
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_development_defaults_just_run_and_keep_a_generated_secret(tmp_path: Path) -> None:
    code = (
        "from django.conf import settings as s; "
        "print(s.DEBUG, s.DATABASES['default']['ENGINE'], s.OPENROUTER_URL, s.SITE_NAME); "
        "print(s.SECRET_KEY)"
    )
    first = run_django(code, {}, tmp_path)
    assert first.returncode == 0, first.stderr
    summary, secret = first.stdout.splitlines()
    assert summary == "True django.db.backends.sqlite3 https://openrouter.ai Switchboard"
    assert len(secret) >= 50
    assert (tmp_path / "var" / "secret_key").read_text().strip() == secret
    again = run_django(code, {}, tmp_path)
    assert again.stdout.splitlines()[1] == secret  # the same secret on the next start


def test_production_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    result = run_django("", env, tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr
    assert not (tmp_path / "var" / "secret_key").exists()


def test_production_refuses_to_start_without_encryption_keys(tmp_path: Path) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "FIELD_ENCRYPTION_KEYS"}
    result = run_django("", env, tmp_path)
    assert "FIELD_ENCRYPTION_KEYS must be set when DEBUG is off" in result.stderr


def test_database_url_selects_postgresql(tmp_path: Path) -> None:
    code = "from django.conf import settings as s; print(s.DATABASES['default']['ENGINE'])"
    result = run_django(code, PRODUCTION, tmp_path)
    assert result.stdout.strip() == "django.db.backends.postgresql", result.stderr


def test_check_deploy_is_clean_with_the_documented_production_environment(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}}
    clean.update(VAR_DIR=str(tmp_path / "var"), **PRODUCTION)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_a_request_warning_is_logged_once_in_the_projects_format(tmp_path: Path) -> None:
    code = (
        "import logging; log = logging.getLogger('django.request'); "
        "log.warning('Not Found: /nowhere'); "
        "log.error('Forbidden: /secret', exc_info=ValueError('no'))"
    )
    for debug in ["1", "0"]:
        env = PRODUCTION if debug == "0" else {}
        stderr = run_django(code, env, tmp_path).stderr
        [not_found] = [line for line in stderr.splitlines() if "Not Found" in line]
        assert not_found.endswith(" WARNING django.request Not Found: /nowhere")
        assert stderr.count("Forbidden: /secret") == 1 and stderr.count("ValueError: no") == 1
