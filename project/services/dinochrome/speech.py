"""The voice of DinoChrome: ElevenLabs text-to-speech, played on the streaming machine."""

from __future__ import annotations

from pathlib import Path


def speak(text: str) -> Path | None:
    """Synthesize ``text`` and play it; returns once it has been spoken.

    Returns the audio file, or None when the live's character cap refused the phrase
    (the client logs it). ``wait=True`` because DinoChrome is a SYNC service: the next action must not start
    (or talk) over this one.
    """
    # Imported here so the game actions keep working in a worker where the integration
    # cannot be imported (a missing optional dependency); only voice actions then fail.
    from project.integrations.elevenlabs.client import ElevenLabsClient

    return ElevenLabsClient().text_to_speech_and_save(text, play_audio=True, wait=True)
