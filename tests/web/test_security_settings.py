"""Secure defaults: the tte.E0xx system checks, HTTPS=true, password validation, generated secrets."""

from __future__ import annotations

import importlib.util
import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from project.app_config.security_checks import check_secrets
from tests.support import ROOT

GOOD_KEY = "k" * 20 + "-a-test-key-nobody-publishes-" + "q" * 20
GOOD_ENV = {"DJANGO_SECRET_KEY": GOOD_KEY, "FLOWER_BASIC_AUTH": "watcher:a-test-flower-pass", "DEBUG": "false"}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **GOOD_ENV, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def production(settings):
    settings.DEBUG = False
    settings.SECRET_KEY = GOOD_KEY
    settings.FLOWER_BASIC_AUTH = "watcher:a-test-flower-pass"
    return settings


def ids(messages) -> list[str]:
    return [m.id for m in messages]


def test_it_accepts_a_real_configuration(production):
    assert check_secrets(environ={"POSTGRES_PASSWORD": "Xq9-real-one"}) == []


def test_it_refuses_the_fallback_secret_key(production):
    production.SECRET_KEY = production.INSECURE_FALLBACK_SECRET_KEY
    [error] = check_secrets(environ={})
    assert error.id == "tte.E001"
    assert "DJANGO_SECRET_KEY is not set" in error.msg and "./scripts/setup" in error.hint


def test_it_refuses_the_example_files_secret_key(production):
    production.SECRET_KEY = "change-me-to-a-long-random-string"
    assert ids(check_secrets(environ={})) == ["tte.E002"]


def test_it_names_each_change_me_variable_without_its_value(production, tmp_path):
    secret_file = tmp_path / "rabbit"
    secret_file.write_text("change-me\n")
    environ = {
        "POSTGRES_PASSWORD": "change-me",
        "RABBITMQ_DEFAULT_PASS_FILE": str(secret_file),
        "DATABASE_URL": "postgres://tiktok:change-me@postgres:5432/tiktok_events",
        "LLM_KEY": "sk-real-9f8e7d",
    }
    messages = check_secrets(environ=environ)
    assert ids(messages) == ["tte.E003"] * 3
    named = " ".join(m.msg for m in messages)
    for name in ("POSTGRES_PASSWORD", "RABBITMQ_DEFAULT_PASS", "DATABASE_URL"):
        assert name in named
    assert "LLM_KEY" not in named and "sk-real" not in named and "tiktok:" not in named


@pytest.mark.parametrize("value", ["", "admin", "admin:", ":secret"])
def test_it_refuses_flower_without_user_and_password(production, value):
    production.FLOWER_BASIC_AUTH = value
    [error] = check_secrets(environ={})
    assert error.id == "tte.E004" and "FLOWER_BASIC_AUTH" in error.msg


def test_it_says_nothing_with_debug_on(settings):
    settings.DEBUG = True
    settings.SECRET_KEY = settings.INSECURE_FALLBACK_SECRET_KEY
    settings.FLOWER_BASIC_AUTH = ""
    assert check_secrets(environ={"POSTGRES_PASSWORD": "change-me"}) == []


@pytest.mark.slow
def test_manage_py_refuses_to_start_with_the_example_files_placeholders():
    result = manage("check", DJANGO_SECRET_KEY="", FLOWER_BASIC_AUTH="", RABBITMQ_DEFAULT_PASS="change-me")
    assert result.returncode == 1
    for expected in ("(tte.E001)", "(tte.E003) RABBITMQ_DEFAULT_PASS", "(tte.E004)", "HINT:"):
        assert expected in result.stderr
    assert manage("check").returncode == 0
    assert manage("check", DEBUG="true", DJANGO_SECRET_KEY="", FLOWER_BASIC_AUTH="").returncode == 0


@pytest.mark.slow
def test_doctor_prints_the_configuration_problems_with_their_fix():
    result = manage("doctor", FLOWER_BASIC_AUTH="")
    assert result.returncode == 1
    assert "❌ Configuration (tte.E004): FLOWER_BASIC_AUTH is empty" in result.stdout
    assert "fix: Set FLOWER_BASIC_AUTH=admin:<a long random password>" in result.stdout
    assert "✅ PostgreSQL" in result.stdout  # the servers are still reported


def test_gunicorn_refuses_to_serve_with_a_published_secret_key():
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "project.wsgi:application", "--bind", "127.0.0.1:0", "--workers", "1"],
        cwd=ROOT,
        env={**os.environ, **GOOD_ENV, "DJANGO_SECRET_KEY": "change-me-to-a-long-random-string"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "(tte.E002) DJANGO_SECRET_KEY is .env.example's placeholder" in result.stderr


# Django's own deployment checks judge the cookie and HSTS settings.
HTTPS_WARNINGS = ("security.W004", "security.W012", "security.W016")


@pytest.mark.slow
def test_https_true_switches_on_secure_cookies_and_hsts():
    plain = manage("check", "--deploy", "--fail-level", "CRITICAL")
    assert all(warning in plain.stderr for warning in HTTPS_WARNINGS), plain.stderr
    https = manage("check", "--deploy", "--fail-level", "CRITICAL", HTTPS="true")
    assert not any(warning in https.stderr for warning in HTTPS_WARNINGS), https.stderr
    shown = manage(
        "shell",
        "-c",
        "from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER)",
        HTTPS="true",
    )
    last_line = shown.stdout.strip().splitlines()[-1]
    assert last_line == "True True 31536000 ('HTTP_X_FORWARDED_PROTO', 'https')", shown.stderr


def test_a_weak_password_is_refused():
    for weak in ("admin", "password123", "1234567890", "short"):
        with pytest.raises(ValidationError):
            validate_password(weak)
    validate_password("correct-horse-battery-staple")


@pytest.mark.django_db
def test_it_creates_the_admin_with_a_generated_password_shown_once(monkeypatch):
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    monkeypatch.delenv("DJANGO_SUPERUSER_USERNAME", raising=False)
    out = io.StringIO()
    call_command("createsuperuser_if_missing", stdout=out)
    line = out.getvalue()
    assert line.startswith("Created superuser 'admin' with the password ")
    password = line.split("with the password ", 1)[1].split()[0]
    assert len(password) >= 16
    assert get_user_model().objects.get(username="admin").check_password(password)
    assert "changepassword admin" in line
    again = io.StringIO()
    call_command("createsuperuser_if_missing", stdout=again)
    assert again.getvalue() == ""  # shown once: a second run neither changes nor prints it


@pytest.mark.django_db
def test_it_refuses_a_weak_superuser_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "admin")
    with pytest.raises(CommandError, match=r"DJANGO_SUPERUSER_PASSWORD is refused: .*too short"):
        call_command("createsuperuser_if_missing", stdout=io.StringIO())
    assert not get_user_model().objects.exists()
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-streamers-own-pass-42")
    out = io.StringIO()
    call_command("createsuperuser_if_missing", stdout=out)
    assert "a-streamers-own-pass-42" not in out.getvalue()
    assert get_user_model().objects.get(username="admin").check_password("a-streamers-own-pass-42")


def load_ensure_dotenv():
    spec = importlib.util.spec_from_file_location("ensure_dotenv", ROOT / "scripts" / "ensure_dotenv.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ensure_dotenv


def read_env(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_setup_generates_the_missing_secrets_into_a_private_dotenv(tmp_path):
    ensure_dotenv = load_ensure_dotenv()
    path = tmp_path / ".env"
    assert ensure_dotenv(path, environ={}) == ["DJANGO_SECRET_KEY", "FLOWER_BASIC_AUTH"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = read_env(path)
    assert len(first["DJANGO_SECRET_KEY"]) >= 50
    user, _, password = first["FLOWER_BASIC_AUTH"].partition(":")
    assert user == "admin" and len(password) >= 20
    assert ensure_dotenv(path, environ={}) == []
    assert read_env(path) == first  # never replaced once there
    other = load_ensure_dotenv()(tmp_path / "other.env", environ={})
    assert other and read_env(tmp_path / "other.env")["DJANGO_SECRET_KEY"] != first["DJANGO_SECRET_KEY"]


@pytest.mark.slow
def test_setup_fills_empty_lines_and_keeps_what_is_set(tmp_path):
    ensure_dotenv = load_ensure_dotenv()
    path = tmp_path / ".env"
    path.write_text("DEBUG=false\nDJANGO_SECRET_KEY=\nFLOWER_BASIC_AUTH=me:mine\n")
    assert ensure_dotenv(path, environ={}) == ["DJANGO_SECRET_KEY"]
    values = read_env(path)
    assert values["FLOWER_BASIC_AUTH"] == "me:mine" and values["DEBUG"] == "false"
    assert len(values["DJANGO_SECRET_KEY"]) >= 50
    assert path.read_text().count("DJANGO_SECRET_KEY=") == 1
    # Set in the environment (CI, a systemd unit): .env is left alone.
    fresh = tmp_path / "fresh.env"
    assert ensure_dotenv(fresh, environ={"DJANGO_SECRET_KEY": "x", "FLOWER_BASIC_AUTH_FILE": "/run/f"}) == []
