"""Switchboard settings: one module, configured from the environment.

Every setting has a default that "just runs" on a development machine (SQLite and media under
``var/``, a local Redis, a generated secret). With ``DEBUG=0`` the defaults that are only safe for
development are refused instead of used. ``.env.example`` and the README list every variable.
"""

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def envfloat(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = envbool("DEBUG", True)
VAR_DIR = Path(os.environ.get("VAR_DIR") or BASE_DIR / "var")


def dev_secret(name: str, make: Callable[[], str], setting: str) -> str:
    """A development secret kept in ``var/`` so it survives restarts; refused in production."""
    if not DEBUG:
        raise ImproperlyConfigured(f"{setting} must be set when DEBUG is off.")
    path = VAR_DIR / name
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = os.environ.get("SECRET_KEY") or dev_secret(
    "secret_key", lambda: secrets.token_urlsafe(50), "SECRET_KEY"
)
# Comma-separated Fernet keys: the first encrypts, all decrypt (see accounts/crypto.py).
FIELD_ENCRYPTION_KEYS = envlist("FIELD_ENCRYPTION_KEYS", "") or [
    dev_secret(
        "field_encryption_key",
        lambda: Fernet.generate_key().decode(),
        "FIELD_ENCRYPTION_KEYS",
    )
]

SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
SITE_NAME = os.environ.get("SITE_NAME", "Switchboard")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", SITE_URL)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "allauth",
    "allauth.account",
    "csp",
    "django_ratelimit",
    "accounts",
    "chat",
    "generations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "config.middleware.site_language",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_ratelimit.middleware.RatelimitMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "config.context_processors.site",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        conn_max_age=envint("DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web process, the worker and the sweeper share one file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "chat:index"
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "optional"
ACCOUNT_UNIQUE_EMAIL = True
# allauth's default, said here: sign-in and password reset do not tell whether an address has an
# account. Sign-up still does, with optional verification (README, "Decisions").
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_SESSION_REMEMBER = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = f"[{SITE_NAME}] "
# allauth's rate limits (per IP and per key) guard sign-up, log-in and password reset.
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
}

EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_PORT = envint("EMAIL_PORT", 587)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Switchboard <noreply@localhost>")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
# allauth's English in sentence case, as the rest of the site (locale/en/LC_MESSAGES/django.po):
# a few catalogue entries instead of copies of a dozen of its templates.
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT") or VAR_DIR / "media")
MEDIA_URL = "/media-not-served/"  # outputs are served by generations.views, to their owner only
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
if os.environ.get("MEDIA_STORAGE") == "s3":  # needs requirements/production.txt
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": os.environ.get("S3_BUCKET", ""),
            "endpoint_url": os.environ.get("S3_ENDPOINT_URL") or None,
            "querystring_auth": True,
            "default_acl": "private",
        },
    }

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# After a Redis restart every pooled connection is stale: asyncio clients retry on a fresh one
# (the channel layer's, and the chat send counters' in chat.services).
REDIS_ASYNC_RETRY = Retry(ExponentialBackoff(cap=1.0, base=0.05), 3)
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 defaults to a 5 s socket timeout, the same as channels_redis's blocking
        # read, so idle consumers would crash (redis/redis-py#4091): give reads more room. Its
        # asyncio pool also caps at 100 connections and raises (MaxConnectionsError) rather than
        # waits: 1,000 chat sockets need more (docs/benchmarks.md).
        "CONFIG": {
            "hosts": [
                {
                    "address": REDIS_URL,
                    "socket_timeout": 30,
                    "max_connections": 2000,
                    "retry": REDIS_ASYNC_RETRY,
                }
            ],
            "capacity": 1500,
            "expiry": 30,
        },
    }
}
CACHES = {
    "default": {
        # Django's, with one Redis connection pool per process, not one per request.
        "BACKEND": "config.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "sb",
    }
}

# Celery: a fleet of long tasks. Late acks + reject on worker loss mean a worker killed mid-task
# has its job redelivered; the visibility timeout must exceed the hard time limit, or Redis would
# hand a still-running job to a second worker.
GENERATION_TIME_LIMIT = envint("GENERATION_TIME_LIMIT", 900)
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = GENERATION_TIME_LIMIT
# The soft limit leaves the task a moment to record its failure before the hard kill.
CELERY_TASK_SOFT_TIME_LIMIT = max(1, GENERATION_TIME_LIMIT - max(1, GENERATION_TIME_LIMIT // 20))
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", GENERATION_TIME_LIMIT + 300),
}
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BEAT_SCHEDULE = {
    "sweep-streams": {"task": "chat.tasks.sweep_streams", "schedule": 30.0},
    "fill-missing-usage": {"task": "chat.tasks.fill_missing_usage", "schedule": 10.0},
    "sweep-generations": {"task": "generations.tasks.sweep_generations", "schedule": 60.0},
}

# OpenRouter
OPENROUTER_URL = os.environ.get("OPENROUTER_URL", "https://openrouter.ai").rstrip("/")
OPENROUTER_CONNECT_TIMEOUT = envfloat("OPENROUTER_CONNECT_TIMEOUT", 10.0)
OPENROUTER_READ_TIMEOUT = envfloat("OPENROUTER_READ_TIMEOUT", 60.0)
# How long a stream may stay silent between chunks before it counts as stalled.
OPENROUTER_STREAM_IDLE_TIMEOUT = envfloat("OPENROUTER_STREAM_IDLE_TIMEOUT", 120.0)
OPENROUTER_GENERATION_TIMEOUT = envfloat("OPENROUTER_GENERATION_TIMEOUT", 600.0)

# django-ratelimit counts in the shared Redis cache; refusals render config.errors.ratelimited.
RATELIMIT_VIEW = "config.errors.ratelimited"
RATELIMIT_ENABLE = envbool("RATELIMIT_ENABLE", True)
# django-ratelimit only knows django-redis by name; Django's own RedisCache has the atomic incr
# and expiry it relies on.
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]

# Chat
CHAT_MAX_MESSAGE_CHARS = envint("CHAT_MAX_MESSAGE_CHARS", 32_000)
CHAT_SAVE_INTERVAL = envfloat("CHAT_SAVE_INTERVAL", 0.5)
CHAT_SENDS_PER_MINUTE = envint("CHAT_SENDS_PER_MINUTE", 30)
CHAT_SENDS_PER_MINUTE_PER_IP = envint("CHAT_SENDS_PER_MINUTE_PER_IP", 120)
# A streaming answer whose writer has not beaten its heartbeat for this long is swept.
CHAT_STALE_AFTER = envfloat("CHAT_STALE_AFTER", 60.0)
# Seconds a streaming answer may go without text before the page says so (Stop gives up).
CHAT_SILENCE_HINT = envfloat("CHAT_SILENCE_HINT", 10.0)
# Seconds a Stop waits for the process writing an answer to end it; if it has not (it was killed
# or crashed), the answer is stopped where its saved text ends, without waiting for the sweep.
CHAT_STOP_GRACE = envfloat("CHAT_STOP_GRACE", 3.0)

# Generations
GENERATIONS_IN_FLIGHT_PER_USER = envint("GENERATIONS_IN_FLIGHT_PER_USER", 3)
GENERATIONS_PER_HOUR = envint("GENERATIONS_PER_HOUR", 60)
# Per address, so many accounts from one place cannot multiply the per-user allowance.
GENERATIONS_PER_HOUR_PER_IP = envint("GENERATIONS_PER_HOUR_PER_IP", 200)
GENERATION_MAX_OUTPUT_BYTES = envint("GENERATION_MAX_OUTPUT_BYTES", 20 * 1024 * 1024)
# Downloads of hosted outputs must be https to public addresses, except in development.
GENERATION_ALLOW_PRIVATE_URLS = envbool("GENERATION_ALLOW_PRIVATE_URLS", DEBUG)

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "connect-src": ["'self'", "ws:", "wss:", "data:", "blob:"],
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'", OPENROUTER_URL],
    }
}

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    if envbool("SECURE_PROXY_SSL_HEADER", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's own console handler (in DEBUG) would print each record before the root does.
        "django": {"handlers": []},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
