"""The fixtures reach subprocesses too: a worker started by a test talks to the same fakes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from project.integrations.elevenlabs.models import TTSUsage
from tests.support import ROOT
from tests.support.servers import subprocess_env

SCRIPT = """
from project.integrations.elevenlabs.client import ElevenLabsClient
from project.integrations.llm.client import LLMClient
reply = LLMClient().chat("hola desde otro proceso")
path = ElevenLabsClient().text_to_speech_and_save(reply)
print(path)
"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_subprocess_uses_the_fakes_media_root_and_test_database(elevenlabs_fake, llm_fake, media_root):
    llm_fake.replies.append("Hola, proceso")
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SCRIPT],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.parent == media_root / "elevenlabs" and path.is_file()
    assert [r.json["text"] for r in elevenlabs_fake.tts_requests()] == ["Hola, proceso"]
    assert len(llm_fake.chat_requests()) == 1
    assert TTSUsage.objects.get(session=None).characters == len("Hola, proceso")
