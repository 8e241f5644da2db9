"""The Docker path cannot run here (no engine): validate what can be validated."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT


@pytest.fixture(scope="module")
def compose(tmp_path_factory):
    if not shutil.which("docker-compose"):
        pytest.fail("docker-compose is missing: ./scripts/setup installs it (apt-get install docker-compose)")
    work = tmp_path_factory.mktemp("compose")
    shutil.copy(ROOT / "docker-compose.yml", work / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", work / ".env")
    result = subprocess.run(["docker-compose", "config"], cwd=work, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_has_every_process(compose):
    expected = {
        "postgres",
        "rabbitmq",
        "redis",
        "web",
        "flower",
        "capture",
        "worker-dinochrome",
        "worker-overlays",
        "avatar",
    }
    assert expected <= set(compose["services"])


def test_app_services_wait_for_healthy_servers(compose):
    for name in ("web", "flower", "capture", "worker-dinochrome", "worker-overlays", "avatar"):
        depends = compose["services"][name]["depends_on"]
        for server in ("postgres", "rabbitmq", "redis"):
            assert depends[server]["condition"] == "service_healthy", (name, server)
    for server in ("postgres", "rabbitmq", "redis"):
        assert "healthcheck" in compose["services"][server]
    assert "management" in compose["services"]["rabbitmq"]["image"]


def test_no_credentials_are_written_in_the_compose_file():
    text = (ROOT / "docker-compose.yml").read_text()
    assert not re.search(r"(PASSWORD|PASS|SECRET|API_KEY)\s*:\s*(?!\$\{)[^\s]+", text)


def _entry_point_exists(command: list[str]) -> bool:
    from django.core.management import get_commands

    if command[:2] == ["python", "manage.py"]:
        return command[2] in get_commands()
    if command[:2] == ["python", "-m"]:
        module = command[2].replace(".", "/")
        return (ROOT / f"{module}.py").is_file() or (ROOT / module / "__main__.py").is_file()
    if command[0] == "gunicorn":
        module, _, attr = command[1].partition(":")
        source = (ROOT / (module.replace(".", "/") + ".py")).read_text()
        return f"{attr} =" in source
    if command[0].startswith("./"):
        return (ROOT / command[0]).is_file() and (ROOT / command[0]).stat().st_mode & 0o111
    if command[:2] == ["sh", "-c"]:
        return all(_entry_point_exists(part.split()) for part in command[2].split("&&"))
    return False


def test_every_compose_command_names_an_entry_point_that_exists(compose):
    for name, service in compose["services"].items():
        command = service.get("command")
        if command is None or ("image" in service and "build" not in service):
            continue
        assert _entry_point_exists(command), f"{name}: {command} does not name an existing entry point"


def test_worker_services_name_seeded_services(compose):
    from project.queue_system.seed_data import SERVICES

    slugs = {spec["slug"] for spec in SERVICES}
    for name, service in compose["services"].items():
        if name.startswith("worker-"):
            assert service["command"][-1] in slugs


def test_dockerfile_passes_hadolint():
    binary = shutil.which("hadolint") or str(Path(__import__("sys").executable).parent / "hadolint")
    result = subprocess.run([binary, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_as_non_root_with_chromium():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert re.search(r"^USER (?!root|0\b)", text, re.M)
    assert "chromium-driver" in text


def test_env_example_lists_every_variable_the_settings_read():
    names = set(re.findall(r'env_(?:str|bool|int|list)\("([A-Z_]+)"', (ROOT / "project" / "settings.py").read_text()))
    names |= set(re.findall(r'env_(?:str|bool|int|list)\("([A-Z_]+)"', (ROOT / "celeryconfig.py").read_text()))
    listed = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert names - listed == set()
