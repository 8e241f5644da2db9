"""What ``run_avatar_server`` reads, what it refuses to start without, and what it never reveals."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from project.services.avatar.configuration import load_settings
from tests.support.avatar import ROOT, avatar_env, running_avatar_server
from tests.support.servers import subprocess_env
from tests.support.waiting import wait_for

ALL_NAMES = [
    "HEYGEN_API_KEY",
    "HeyGen_API_KEY",
    "HEYGEN_AVATAR_ID",
    "ELEVENLABS_API",
    "ELEVENLABS_API_KEY",
    "ELEVEN_API_KEY",
    "ELEVENLABS_AGENT_ID",
    "AVATAR_ACCESS_TOKEN",
]


@pytest.mark.slow
@pytest.mark.django_db
def test_it_refuses_to_start_and_names_everything_missing():
    env = subprocess_env(**dict.fromkeys(ALL_NAMES, ""))
    result = subprocess.run(
        [sys.executable, "manage.py", "run_avatar_server", "--port", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    for needed in (
        "heygen_api_key",
        "heygen_avatar_id",
        "elevenlabs_api",
        "elevenlabs_agent_id",
        "avatar_access_token",
    ):
        assert f"Config '{needed}'" in result.stderr, result.stderr
    assert "HEYGEN_API_KEY or HeyGen_API_KEY" in result.stderr
    assert "ELEVENLABS_API_KEY or ELEVEN_API_KEY" in result.stderr


@pytest.mark.django_db
def test_it_accepts_the_seed_variable_names(monkeypatch):
    for name in ALL_NAMES:
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("HeyGen_API_KEY", "seed-heygen")
    monkeypatch.setenv("ELEVEN_API_KEY", "seed-eleven")
    settings = load_settings()
    assert settings.heygen_api_key == "seed-heygen"
    assert settings.elevenlabs_api_key == "seed-eleven"
    assert settings.heygen_base_url == "https://api.heygen.com"
    assert settings.elevenlabs_base_url == "https://api.elevenlabs.io"


@pytest.mark.django_db
def test_it_prefers_the_config_row_to_the_environment(monkeypatch):
    from project.app_config.config import set_config

    monkeypatch.setenv("AVATAR_ACCESS_TOKEN", "from-env")
    monkeypatch.setenv("AVATAR_MAX_SESSIONS", "5")
    set_config("avatar_access_token", "from-admin")
    settings = load_settings()
    assert settings.access_token == "from-admin"
    assert settings.max_sessions == 5


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_reads_the_access_token_from_the_admin_config(heygen_fake, convai_fake, tmp_path):
    from project.app_config.config import set_config

    set_config("avatar_access_token", "token-set-in-the-admin")
    with running_avatar_server(avatar_env(heygen_fake, convai_fake), tmp_path) as server:
        with pytest.raises(InvalidStatus):
            connect(server.ws_url())  # the environment's token no longer opens the door
        with connect(server.ws_url("token-set-in-the-admin")) as ws:
            assert json.loads(ws.recv(timeout=30))["type"] == "avatar_ready"


@pytest.mark.slow
@pytest.mark.django_db
def test_it_never_reveals_the_api_keys_when_they_are_refused(heygen_fake, convai_fake, tmp_path):
    heygen_key = "hg-secret-that-must-stay-private-1"
    env = avatar_env(heygen_fake, convai_fake, HEYGEN_API_KEY=heygen_key)
    with running_avatar_server(env, tmp_path) as server, connect(server.ws_url()) as ws:
        message = json.loads(ws.recv(timeout=30))
        assert message["type"] == "error"
        assert "API key was refused" in message["message"]
        assert heygen_key not in json.dumps(message)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=30)
    assert heygen_key not in server.output()
    assert heygen_fake.sessions == {}

    eleven_key = "el-secret-that-must-stay-private-2"
    env = avatar_env(heygen_fake, convai_fake, ELEVENLABS_API=eleven_key, ELEVENLABS_API_KEY=eleven_key)
    (tmp_path / "second").mkdir()
    with running_avatar_server(env, tmp_path / "second") as server, connect(server.ws_url()) as ws:
        ready = json.loads(ws.recv(timeout=30))
        assert ready["type"] == "avatar_ready"
        ws.send(json.dumps({"type": "client_ready"}))
        message = json.loads(ws.recv(timeout=30))
        assert message["type"] == "error"
        assert "ElevenLabs refused the API key" in message["message"]
        assert eleven_key not in json.dumps(message) and heygen_fake.api_key not in json.dumps(message)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=30)
        output = server.output()
    assert eleven_key not in output and heygen_fake.api_key not in output
    wait_for(lambda: not heygen_fake.live_sessions(), what="the session to be stopped after ElevenLabs failed")
