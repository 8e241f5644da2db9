"""docker-compose.yml starts healthy with only .env filled in, and opens nothing to the network.

No Docker engine runs here: `docker-compose config` (./scripts/setup installs it) resolves the
file as Docker would, and the tests read what it resolved.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.support import ROOT

# What a user types into .env: every change-me replaced.
FILLED_IN = {
    "DJANGO_SECRET_KEY": "s" * 60,
    "FLOWER_BASIC_AUTH": "admin:a-flower-pass-of-theirs",
    "POSTGRES_PASSWORD": "a-postgres-pass-of-theirs",
    "RABBITMQ_DEFAULT_PASS": "a-rabbit-pass-of-theirs",
    "TIKTOK_USER": "some_streamer",
}


def example_env() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if re.match(r"^[A-Z_]+=", line))


def resolved(tmp_path: Path, *files: str, profiles: tuple[str, ...] = ()) -> dict:
    if not shutil.which("docker-compose"):
        pytest.fail("docker-compose is missing: ./scripts/setup installs it (apt-get install docker-compose)")
    for name in files:
        shutil.copy(ROOT / name, tmp_path / name)
    values = {**example_env(), **FILLED_IN}
    (tmp_path / ".env").write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    command = ["docker-compose"]
    for name in files:
        command += ["-f", name]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DISPLAY"))}
    env.update({"DISPLAY": ":0", "XDG_RUNTIME_DIR": "/run/user/1000", "HOME": "/home/streamer"})
    if profiles:
        env["COMPOSE_PROFILES"] = ",".join(profiles)
    result = subprocess.run([*command, "config"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def compose(tmp_path_factory) -> dict:
    return resolved(tmp_path_factory.mktemp("compose"), "docker-compose.yml")


@pytest.fixture(scope="module")
def with_display(tmp_path_factory) -> dict:
    return resolved(tmp_path_factory.mktemp("display"), "docker-compose.yml", "docker-compose.display.yml")


def published(service: dict) -> list[tuple[str, str]]:
    """(host address, host port) of each published port, in either form compose prints."""
    found = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.append((port.get("host_ip", ""), str(port.get("published", ""))))
        else:
            parts = str(port).split("/")[0].split(":")
            found.append((":".join(parts[:-2]) if len(parts) == 3 else "", parts[0] if len(parts) == 2 else parts[-2]))
    return found


def test_every_published_port_listens_on_loopback_only(compose):
    ports = {name: published(service) for name, service in compose["services"].items() if service.get("ports")}
    assert {"web", "flower", "rabbitmq", "avatar"} <= set(ports)
    for name, bindings in ports.items():
        for address, port in bindings:
            assert address == "127.0.0.1", f"{name} publishes port {port} on {address or 'every interface'}"
    assert {port for _, port in ports["web"]} == {"8000"}
    assert {port for _, port in ports["flower"]} == {"5555"}
    assert {port for _, port in ports["rabbitmq"]} == {"15672"}
    assert {port for _, port in ports["avatar"]} == {"8001"}


def test_the_file_says_how_to_open_a_port_on_purpose():
    text = (ROOT / "docker-compose.yml").read_text()
    assert re.search(r"^# .*127\.0\.0\.1 only", text, re.M)
    assert re.search(r"^# .*\"8000:8000\"", text, re.M)


def test_the_dino_worker_plays_headless_on_the_web_service(compose):
    worker = compose["services"]["worker-dinochrome"]
    env = worker["environment"]
    assert env["DINO_HEADLESS"] == "true" and env["DINO_KIOSK"] == "false"
    url = urlsplit(env["DINO_URL"])
    assert url.hostname == "web" and url.port == 8000 and url.path == "/dino/"
    assert url.hostname in compose["services"]
    assert "web" in compose["services"]["web"]["environment"]["ALLOWED_HOSTS"].split(",")
    assert worker["depends_on"]["web"]["condition"] == "service_healthy"
    # The game's browser would otherwise run out of /dev/shm.
    assert int(str(worker["shm_size"]).rstrip("gmb") or 0) >= 1


def test_the_display_override_shows_the_game_and_passes_the_speech_socket(with_display):
    worker = with_display["services"]["worker-dinochrome"]
    env = worker["environment"]
    assert env["DINO_HEADLESS"] == "false" and env["DISPLAY"] == ":0"
    assert env["DINO_URL"] == "http://web:8000/dino/"  # the base file's, kept
    mounts = {str(volume).split(":")[1]: str(volume).split(":")[0] for volume in worker["volumes"]}
    assert mounts["/tmp/.X11-unix"] == "/tmp/.X11-unix"
    socket = env["PULSE_SERVER"].removeprefix("unix:")
    assert mounts[socket] == "/run/user/1000/pulse/native"
    assert mounts[env["PULSE_COOKIE"]] == "/home/streamer/.config/pulse/cookie"


def test_the_avatar_server_starts_only_with_its_profile(compose):
    assert compose["services"]["avatar"]["profiles"] == ["avatar"]
    others = [name for name, service in compose["services"].items() if service.get("profiles") and name != "avatar"]
    assert others == [], "these would not start with a plain docker compose up"
    assert "docker compose --profile avatar up" in (ROOT / "docker-compose.yml").read_text()


def test_nothing_starts_before_the_system_checks_pass(compose):
    migrate = compose["services"]["migrate"]["command"]
    assert "manage.py migrate" in " ".join(migrate)  # migrate runs the system checks first
    for name, service in compose["services"].items():
        if service.get("image") == compose["services"]["web"]["image"] and name != "migrate":
            assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name


@pytest.mark.slow
def test_the_example_env_is_refused_until_its_placeholders_are_replaced():
    def check(values: dict[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", "check"],
            cwd=ROOT,
            env={**os.environ, **values},
            capture_output=True,
            text=True,
            timeout=120,
        )

    refused = check(example_env())
    assert refused.returncode == 1
    for expected in ("tte.E001", "tte.E003) POSTGRES_PASSWORD", "tte.E003) RABBITMQ_DEFAULT_PASS", "tte.E004"):
        assert expected in refused.stderr
    accepted = check({**example_env(), **FILLED_IN})
    assert accepted.returncode == 0, accepted.stderr


def test_the_image_collects_the_static_files_for_whitenoise():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"python manage\.py collectstatic --no-input", text)
