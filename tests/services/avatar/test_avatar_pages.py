"""The avatar pages in headless Chromium: microphone → /hybrid → transcript, video through livekit-client.

Chromium's fake capture device plays a WAV file as the microphone, so the page's
real AudioWorklet path (PCM16, 16 kHz) feeds the ConvAI fake.
"""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import pytest

from tests.fakes.convai import silence_pcm, speech_pcm
from tests.support.avatar import ROOT, avatar_env, running_avatar_server
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.django_db, pytest.mark.browser, pytest.mark.slow]

LIVEKIT_CLIENT = ROOT / "node_modules" / "livekit-client" / "dist" / "livekit-client.esm.mjs"


def write_voice_wav(path: Path) -> Path:
    """One second of "speech" then two of silence, looped by Chromium."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16_000)
        wav.writeframes(speech_pcm(1.0, frequency=300, amplitude=20_000) + silence_pcm(2.0))
    return path


@pytest.fixture
def chromium(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from project.services.dinochrome.chrome import chromium_options

    for tool in ("chromium", "chromedriver"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: ./scripts/setup installs it")
    if not LIVEKIT_CLIENT.is_file():
        pytest.fail("livekit-client is missing from node_modules: ./scripts/setup runs npm install")
    # The service's own headless options, plus a fake microphone that plays the voice file.
    options = chromium_options(headless=True, profile_dir=str(tmp_path / "chromium-profile"), kiosk=False)
    for flag in (
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={write_voice_wav(tmp_path / 'voice.wav')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def text_of(driver, role: str) -> str:
    return driver.execute_script(f"return document.querySelector('[data-role=\"{role}\"]').textContent")


def state_of(driver, role: str) -> str:
    return driver.execute_script(f"return document.querySelector('[data-role=\"{role}\"]').dataset.state")


def test_it_shows_the_transcript_of_a_spoken_conversation(chromium, heygen_fake, convai_fake, tmp_path):
    with running_avatar_server(avatar_env(heygen_fake, convai_fake), tmp_path) as server:
        chromium.get(f"{server.base_url}/?token=avatar-access-token-for-tests")
        wait_for(lambda: state_of(chromium, "status") == "idle", what="the page to be ready")
        chromium.find_element("css selector", "[data-role=start]").click()

        def transcript() -> list[tuple[str, str]]:
            return chromium.execute_script(
                "return [...document.querySelectorAll('[data-role=transcript] li')]"
                ".map(li => [li.dataset.who, li.textContent])"
            )

        wait_for(lambda: len(transcript()) >= 2, timeout=90, what="two transcript lines")
        assert transcript()[:2] == [["user", "hello avatar"], ["agent", "You said: hello avatar"]]
        assert state_of(chromium, "status") == "live"
        assert state_of(chromium, "mic-status") == "live"
        wait_for(lambda: heygen_fake.task_texts(), what="the agent's words at HeyGen")
        assert heygen_fake.task_texts()[0] == "You said: hello avatar"

        # The page used livekit-client with the room and token of avatar_ready; the fake
        # has no media server, so the page says the video is unavailable and carries on.
        [session] = heygen_fake.live_sessions()
        assert any(r["access_token"] == session.access_token for r in heygen_fake.livekit_requests)
        assert state_of(chromium, "video-status") == "error"
        assert text_of(chromium, "video-status").startswith("Video unavailable")

        [conversation] = convai_fake.conversations
        assert conversation.audio_seconds > 1.0, "the microphone must stream PCM16 16 kHz"

        chromium.find_element("css selector", "[data-role=stop]").click()
        wait_for(lambda: not heygen_fake.live_sessions(), what="Stop to end the HeyGen session")


def test_the_public_page_needs_the_token_and_shows_refusals(chromium, heygen_fake, convai_fake, tmp_path):
    with running_avatar_server(avatar_env(heygen_fake, convai_fake), tmp_path) as server:
        chromium.get(f"{server.base_url}/public")
        wait_for(lambda: state_of(chromium, "status") == "error", what="the missing-token state")
        assert "?token=" in text_of(chromium, "status")

        chromium.get(f"{server.base_url}/public?token=wrong")
        wait_for(lambda: state_of(chromium, "status") == "idle", what="the page to be ready")
        chromium.find_element("css selector", "[data-role=start]").click()
        wait_for(lambda: state_of(chromium, "status") == "error", what="the refusal to show")
        assert "refused" in text_of(chromium, "status")
        assert heygen_fake.sessions == {}
