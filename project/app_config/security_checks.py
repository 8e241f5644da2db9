"""Django system checks that refuse an unsafe configuration when DEBUG is false.

They run where Django runs its checks (``manage.py check``, ``runserver``, ``migrate``
and every management command that starts a process), in ``project/wsgi.py`` before
gunicorn serves a request, and in ``doctor``. In Docker the one-shot ``migrate``
service runs them first, so a stack with ``.env.example``'s placeholders never
starts. With DEBUG true they stay silent: a development machine may use anything.

ids: tte.E001 no secret key, tte.E002 a published secret key, tte.E003 a
``change-me`` placeholder, tte.E004 Flower without a password.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Tags, register

# The marker of every placeholder in .env.example.
PLACEHOLDER = "change-me"
GENERATE_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(50))'"


def _values(environ: Mapping[str, str]) -> dict[str, str]:
    """Each variable's value, the file's content for a ``<NAME>_FILE`` (unreadable: skipped)."""
    values = {}
    for name, value in environ.items():
        if name.endswith("_FILE") and value:
            try:
                values[name.removesuffix("_FILE")] = Path(value).read_text(encoding="utf-8").strip()
            except OSError:
                continue  # the setting that reads it reports the unreadable file
        elif name not in values:
            values[name] = value
    return values


def secret_key_errors(secret_key: str, fallback: str) -> list[Error]:
    if secret_key == fallback:
        return [
            Error(
                "DJANGO_SECRET_KEY is not set: sessions and password resets would be signed with a key "
                "anyone can read in this project's source.",
                hint=f"./scripts/setup writes a random one into .env; or set DJANGO_SECRET_KEY to the output of "
                f"{GENERATE_KEY} (environment, .env or DJANGO_SECRET_KEY_FILE).",
                id="tte.E001",
            )
        ]
    if PLACEHOLDER in secret_key.lower():
        return [
            Error(
                f"DJANGO_SECRET_KEY is .env.example's placeholder ({PLACEHOLDER}...), which anyone can read.",
                hint=f"Replace it in .env with the output of {GENERATE_KEY}.",
                id="tte.E002",
            )
        ]
    return []


def placeholder_errors(environ: Mapping[str, str]) -> list[Error]:
    errors = []
    for name, value in sorted(_values(environ).items()):
        if name == "DJANGO_SECRET_KEY" or PLACEHOLDER not in value.lower():
            continue
        errors.append(
            Error(
                f"{name} still holds .env.example's placeholder '{PLACEHOLDER}'.",
                hint=f"Set {name} to a password of your own in .env. A PostgreSQL or RabbitMQ container keeps "
                "the password it was first started with: change it there too (ALTER USER / rabbitmqctl "
                "change_password), or remove the volume of a stack that holds nothing yet.",
                id="tte.E003",
            )
        )
    return errors


def flower_errors(basic_auth: str) -> list[Error]:
    user, _, password = basic_auth.partition(":")
    if user and password:
        return []
    return [
        Error(
            "FLOWER_BASIC_AUTH is empty or not user:password: Flower's API can shut the workers down.",
            hint="Set FLOWER_BASIC_AUTH=admin:<a long random password> in .env (./scripts/setup generates one).",
            id="tte.E004",
        )
    ]


@register(Tags.security)
def check_secrets(app_configs=None, environ: Mapping[str, str] | None = None, **kwargs) -> list[Error]:
    """tte.E001-E004, only when DEBUG is false."""
    if settings.DEBUG:
        return []
    environ = os.environ if environ is None else environ
    return [
        *secret_key_errors(settings.SECRET_KEY, settings.INSECURE_FALLBACK_SECRET_KEY),
        *placeholder_errors(environ),
        *flower_errors(settings.FLOWER_BASIC_AUTH),
    ]
