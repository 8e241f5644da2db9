"""Django settings, all read from the environment (see .env.example).

Defaults work on a development machine with PostgreSQL, RabbitMQ and Redis on
127.0.0.1; production overrides them through the environment or ``.env``.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url

from project.env import EnvError, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent


def _load_dotenv(path: Path) -> None:
    """Read KEY=VALUE lines from .env without overriding the real environment."""
    import os

    if not path.is_file():
        return
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise EnvError(f"{path}:{number}: expected KEY=VALUE, got {line!r}")
        key, value = line.split("=", 1)
        os.environ.setdefault(key.strip(), value.strip().strip("'\""))


_load_dotenv(BASE_DIR / ".env")

DEBUG = env_bool("DEBUG", False)
# Without DJANGO_SECRET_KEY a fixed development key is used so DEBUG runs start; with DEBUG
# false the system check tte.E001 refuses it (project/app_config/security_checks.py), and
# ./scripts/setup writes a random one into .env.
INSECURE_FALLBACK_SECRET_KEY = "insecure-dev-key-set-DJANGO_SECRET_KEY-in-production"  # noqa: S105
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "") or INSECURE_FALLBACK_SECRET_KEY
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

# HTTPS=true: the site is reached through a TLS-terminating reverse proxy (Caddy, nginx,
# Traefik). Cookies then travel over HTTPS only and browsers are told to keep to HTTPS.
HTTPS = env_bool("HTTPS", False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
# Browsers ignore HSTS for IP addresses and plain http://localhost, so the OBS page on
# 127.0.0.1 keeps working; a host name reached once over HTTPS is HTTPS-only for this long.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0, minimum=0)
# Only a proxy sets X-Forwarded-Proto; it must replace what a client sent (every common
# proxy does). Without HTTPS=true the header is ignored, so a client cannot claim HTTPS.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
# No redirect to HTTPS here: the proxy redirects the public side, while the dino worker
# (http://web:8000/dino/) and OBS (http://127.0.0.1:8000/overlays/) speak plain HTTP
# inside the machine and must not be sent elsewhere.
SECURE_SSL_REDIRECT = False
# Origins the admin's forms may be posted from when they differ from the host (a proxy
# that rewrites Host): https://tiktok.example.org
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "project.app_config",
    "project.tiktok_events",
    "project.queue_system",
    "project.control",
    "project.services.dinochrome",
    "project.services.overlays",
    "project.services.avatar",
    "project.integrations.elevenlabs",
    "project.integrations.llm",
    "project.integrations.heygen",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's styles) from the Django process itself: runserver without
    # DEBUG and gunicorn serve none on their own.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tiktok_events")
if not DATABASE_URL.startswith(("postgres://", "postgresql://")):
    raise EnvError(
        f"DATABASE_URL must be a PostgreSQL URL (postgres://...), got scheme {DATABASE_URL.split(':', 1)[0]!r}"
    )
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
DATABASES["default"]["ENGINE"] = "django.db.backends.postgresql"
# A PostgreSQL restart or a dead network must surface as an error within seconds,
# never as a process blocked for ever: a connect timeout, TCP keepalives (a
# silently dropped connection is noticed in idle + interval x count seconds), and
# a statement timeout (0 turns it off). CONN_HEALTH_CHECKS (above) has a
# connection reused between requests or tasks checked before use, so one broken
# by a restart is replaced instead of failing the next query.
DATABASES["default"].setdefault("OPTIONS", {}).update(
    {
        "connect_timeout": env_int("DB_CONNECT_TIMEOUT", 5, minimum=1),
        "keepalives": 1,
        "keepalives_idle": env_int("DB_KEEPALIVES_IDLE", 30, minimum=1),
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "options": f"-c statement_timeout={env_int('DB_STATEMENT_TIMEOUT_MS', 60000, minimum=0)}",
    }
)
# Two test runs on one server (a developer's and CI's) need test databases of their own.
if TEST_DATABASE_NAME := env_str("TEST_DATABASE_NAME", ""):
    DATABASES["default"]["TEST"] = {"NAME": TEST_DATABASE_NAME}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
RABBITMQ_MANAGEMENT_URL = env_str("RABBITMQ_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672")
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
FLOWER_BASIC_AUTH = env_str("FLOWER_BASIC_AUTH", "")

# Where the TikTokLive client goes: empty keeps the library's defaults (tiktok.com
# and the Euler Stream sign server); `capture_tiktok_live --simulate` points them
# at the local simulator (scripts/tiktok_simulator.py).
TIKTOK_APP_URL = env_str("TIKTOK_APP_URL", "")
TIKTOK_WEBCAST_URL = env_str("TIKTOK_WEBCAST_URL", "")
TIKTOK_SIGN_URL = env_str("TIKTOK_SIGN_URL", "")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Compressed copies (gzip) at collectstatic (the Docker image); no manifest, so a
    # checkout that never ran collectstatic (the demo, the tests) renders pages all the same.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Files are also found where the apps keep them, so ./scripts/demo needs no collectstatic;
# the Docker image serves the collected ones from STATIC_ROOT.
WHITENOISE_USE_FINDERS = True
# Browser libraries installed by npm (package.json; ./scripts/setup and the Dockerfile run
# npm install): served as static files, nothing is loaded from a CDN.
STATICFILES_DIRS = [("vendor/chartjs", BASE_DIR / "node_modules" / "chart.js" / "dist")]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", "") or BASE_DIR / "media")  # empty (as in .env.example): the default

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "project.logging.RedactSecretsFilter"}},
    "formatters": {"kv": {"()": "project.logging.KeyValueFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "kv", "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # httpx logs every request at INFO: the capture's TikTok calls would flood the output.
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        # runserver's request lines carry query strings (?token=…): through the redacting handler.
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
