"""Shared pieces of the avatar tests: the real avatar server as a subprocess, polling."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from project.integrations.heygen.client import HeyGenService
from tests.fakes.convai import FakeConvAI
from tests.fakes.heygen import FakeHeyGen
from tests.support import ROOT
from tests.support.processes import stop
from tests.support.servers import subprocess_env
from tests.support.waiting import wait_for

ACCESS_TOKEN = "avatar-access-token-for-tests"


def avatar_env(heygen: FakeHeyGen, convai: FakeConvAI, **overrides: str) -> dict[str, str]:
    env = subprocess_env(
        HEYGEN_API_KEY=heygen.api_key,
        HEYGEN_AVATAR_ID=sorted(heygen.avatars)[0],
        HEYGEN_BASE_URL=heygen.base_url,
        # ELEVENLABS_API is read before ELEVENLABS_API_KEY: set both so a developer's .env cannot win.
        ELEVENLABS_API=convai.api_key,
        ELEVENLABS_API_KEY=convai.api_key,
        ELEVENLABS_AGENT_ID=convai.agent_id,
        ELEVENLABS_BASE_URL=convai.base_url,
        AVATAR_ACCESS_TOKEN=ACCESS_TOKEN,
        AVATAR_MAX_SESSIONS="2",
    )
    env.update(overrides)
    return env


@dataclass
class AvatarServer:
    process: subprocess.Popen
    port: int
    stdout_path: Path
    stderr_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, token: str | None = ACCESS_TOKEN) -> str:
        query = f"?token={token}" if token is not None else ""
        return f"ws://127.0.0.1:{self.port}/hybrid{query}"

    def output(self) -> str:
        return self.stdout_path.read_text() + self.stderr_path.read_text()


@contextlib.contextmanager
def running_avatar_server(env: dict[str, str], tmp_path: Path) -> Iterator[AvatarServer]:
    stdout_path, stderr_path = tmp_path / "avatar.out", tmp_path / "avatar.err"
    with stdout_path.open("w") as out, stderr_path.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "run_avatar_server", "--port", "0", "--host", "127.0.0.1"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=err,
        )
    try:

        def port() -> int | None:
            if process.poll() is not None:
                raise AssertionError(f"avatar server exited {process.returncode}:\n{stderr_path.read_text()}")
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", stdout_path.read_text())
            return int(found.group(1)) if found else None

        bound = wait_for(port, timeout=60, what="the avatar server to listen")
        yield AvatarServer(process, bound, stdout_path, stderr_path)
    finally:
        stop(process, timeout=30)


def browser_session(fake) -> str:
    """A session opened and started the way the avatar server opens one."""

    async def open_one():
        async with HeyGenService(fake.api_key, "Test_Avatar_public", base_url=fake.base_url) as heygen:
            session = await heygen.create_streaming_avatar()
            await heygen.start_session(session.session_id)
            return session.session_id

    return asyncio.run(open_one())
