"""The fakes run by hand, as a developer would: `python -m tests.fakes.<name> --port N`."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import requests
from elevenlabs.client import ElevenLabs
from elevenlabs.core.api_error import ApiError

from tests.support import ROOT
from tests.support.processes import stop


@pytest.fixture
def run_fake():
    started: list[subprocess.Popen] = []

    def start(module: str, *args: str) -> str:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--port", "0", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(process)
        line = process.stdout.readline()  # the first line names the URL; blocks until the fake is up
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, f"unexpected first line from {module}: {line!r}"
        return match[1]

    try:
        yield start
    finally:
        for process in started:
            stop(process, timeout=20)


def test_the_elevenlabs_fake_serves_the_sdk_and_takes_modes_over_http(run_fake):
    url = run_fake("tests.fakes.elevenlabs_fake", "--api-key", "hand-key")
    sdk = ElevenLabs(api_key="hand-key", base_url=url)
    audio = b"".join(sdk.text_to_speech.convert("JBFqnCBsd6RMkjVDRZzb", text="hola", output_format="wav_16000"))
    assert audio[:4] == b"RIFF"

    requests.post(f"{url}/_fake/mode", json={"mode": "quota", "times": 1}, timeout=10).raise_for_status()
    with pytest.raises(ApiError) as caught:
        b"".join(sdk.text_to_speech.convert("JBFqnCBsd6RMkjVDRZzb", text="hola", output_format="wav_16000"))
    assert caught.value.status_code == 401 and caught.value.body["detail"]["status"] == "quota_exceeded"

    seen = requests.get(f"{url}/_fake/requests", timeout=10).json()
    assert [r["json"]["text"] for r in seen] == ["hola", "hola"]
    assert requests.post(f"{url}/_fake/mode", json={"mode": "nope"}, timeout=10).status_code == 400


def test_the_llm_fake_answers_chat_completions(run_fake):
    url = run_fake("tests.fakes.llm_fake", "--api-key", "hand-key")
    body = {"model": "m", "messages": [{"role": "user", "content": "hola"}]}
    answer = requests.post(
        f"{url}/v1/chat/completions", json=body, headers={"Authorization": "Bearer hand-key"}, timeout=10
    ).json()
    assert answer["choices"][0]["message"]["content"] == "Respuesta a: hola"
    refused = requests.post(f"{url}/v1/chat/completions", json=body, timeout=10)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
