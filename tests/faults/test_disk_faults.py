"""A full disk under the ElevenLabs audio cache: the item is retried, nothing is paid twice, nothing is lost.

The disk is a real one: a small tmpfs mounted over the test's MEDIA_ROOT and
filled to a few kilobytes (ENOSPC), or a file-size limit (RLIMIT_FSIZE, EFBIG)
on a subprocess. The ElevenLabs and LLM APIs are the local protocol fakes.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone

from project.app_config.config import set_config
from project.integrations.elevenlabs.cache import ReceivedAudio
from project.integrations.elevenlabs.client import DISK_FULL_RETRY_SECONDS, ElevenLabsClient
from project.integrations.elevenlabs.errors import ElevenLabsDiskFullError
from project.integrations.elevenlabs.models import TTSUsage
from project.integrations.llm.models import LLMReply
from project.queue_system.base_service import TransientError
from project.queue_system.dispatcher import EventDispatcher
from project.queue_system.models import QueueItem
from project.tiktok_events.models import LiveEvent, LiveSession
from tests.support import ROOT
from tests.support.outages import fault_lock
from tests.support.queueing import make_service
from tests.support.servers import subprocess_env
from tests.support.waiting import wait_for
from tests.support.worker_processes import running_workers

TMPFS_KB = 512
LEFT_FREE = 8 * 1024  # less than any phrase's audio (~44 kB per second of speech)
PHRASE = "¡Gracias por la rosa, Ana!"


@contextlib.contextmanager
def tmpfs_mounted(path: Path, size_kb: int) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        # Lazy: a worker that is still being stopped may hold a file open.
        subprocess.run(["umount", "-l", str(path)], check=False)


class Disk:
    """The tmpfs under MEDIA_ROOT, filled up to ``LEFT_FREE`` bytes by one file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.filler = root / "filler"

    def free_bytes(self) -> int:
        stat = os.statvfs(self.root)
        return stat.f_bavail * stat.f_frsize

    def fill(self) -> None:
        (self.root / "elevenlabs").mkdir(exist_ok=True)
        with self.filler.open("wb") as out:
            out.write(b"\0" * (self.free_bytes() - LEFT_FREE))
        assert self.free_bytes() <= LEFT_FREE

    def make_room(self) -> None:
        self.filler.unlink()

    def cached(self) -> list[str]:
        return sorted(p.name for p in (self.root / "elevenlabs").iterdir())


@pytest.fixture
def full_disk(media_root) -> Iterator[Disk]:
    """MEDIA_ROOT (settings and environment, for workers too) on a full 512 kB tmpfs."""
    with tmpfs_mounted(media_root, TMPFS_KB):
        disk = Disk(media_root)
        disk.fill()
        yield disk


@pytest.fixture(scope="module", autouse=True)
def no_server_stopped_meanwhile():
    """The machine-wide fault lock for this module: another run's fault test must not stop
    PostgreSQL or Redis under these (Redis holds the kept audio, PostgreSQL the charges)."""
    with fault_lock():
        connections.close_all()  # one opened before the lock may be dead after another run's restart
        yield


@pytest.fixture(autouse=True)
def fresh_process_memory():
    ReceivedAudio.forget_memory()
    yield
    ReceivedAudio.forget_memory()


def live_session() -> LiveSession:
    return LiveSession.objects.create(streamer="streamer", started_at=timezone.now(), status=LiveSession.Status.LIVE)


def usage_of(session: LiveSession) -> tuple[int, int, int]:
    usage = TTSUsage.objects.get(session=session)
    return usage.characters, usage.credits, usage.requests


def audio_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as audio:
        return audio.getnframes() / audio.getframerate()


@pytest.mark.django_db
@pytest.mark.parametrize("retry_in", ["the same process", "another process"])
def test_a_full_disk_is_transient_keeps_the_charge_and_the_retry_does_not_pay_again(
    elevenlabs_fake, full_disk, retry_in
):
    session = live_session()
    with pytest.raises(ElevenLabsDiskFullError) as caught:
        ElevenLabsClient().text_to_speech_and_save(PHRASE, session=session)

    error = caught.value
    assert isinstance(error, TransientError) and not error.permanent
    assert error.retry_after == DISK_FULL_RETRY_SECONDS
    assert "no room" in str(error) and "No space left on device" in str(error)
    assert usage_of(session) == (len(PHRASE), len(PHRASE), 1), "ElevenLabs charged it: it stays counted"
    assert full_disk.cached() == [], "no partial file is left in the cache"
    assert len(elevenlabs_fake.tts_requests()) == 1

    full_disk.make_room()
    if retry_in == "another process":
        ReceivedAudio.forget_memory()  # only Redis still holds the audio
    path = ElevenLabsClient().text_to_speech_and_save(PHRASE, session=session)

    assert full_disk.cached() == [path.name]
    assert audio_seconds(path) > 0.5
    assert len(elevenlabs_fake.tts_requests()) == 1, "the retry saved the audio already paid for"
    assert usage_of(session) == (len(PHRASE), len(PHRASE), 1)
    assert ReceivedAudio.get(path.name) is None, "saved, the kept copy is dropped"


@pytest.mark.django_db
def test_without_the_kept_audio_the_retry_pays_once_more_and_counts_it(elevenlabs_fake, full_disk):
    """The limit of the guarantee: with the kept copy gone (Redis flushed, process restarted), a retry pays again."""
    session = live_session()
    with pytest.raises(ElevenLabsDiskFullError):
        ElevenLabsClient().text_to_speech_and_save(PHRASE, session=session)
    path = ElevenLabsClient().cache_path(PHRASE)
    ReceivedAudio.drop(path.name)
    full_disk.make_room()

    assert ElevenLabsClient().text_to_speech_and_save(PHRASE, session=session) == path
    assert len(elevenlabs_fake.tts_requests()) == 2
    assert usage_of(session) == (2 * len(PHRASE), 2 * len(PHRASE), 2), "both calls were charged: both counted"


CHILD_CODE = """
import json
from project.integrations.elevenlabs.client import ElevenLabsClient
try:
    ElevenLabsClient().text_to_speech_and_save({text!r}, session={session})
    print(json.dumps({{"raised": None}}))
except Exception as exc:
    print(json.dumps({{"raised": type(exc).__name__, "transient": not exc.permanent,
                      "retry_after": exc.retry_after, "message": str(exc)}}))
"""


@pytest.mark.django_db(transaction=True)
def test_a_file_size_limit_is_transient_and_another_process_saves_the_audio(elevenlabs_fake, media_root):
    session = live_session()
    limit = 16 * 1024

    def limit_file_size() -> None:  # in the child only: a process's RLIMIT_FSIZE, like a container's
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    child = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", CHILD_CODE.format(text=PHRASE, session=session.pk)],
        cwd=ROOT,
        env=subprocess_env(),
        preexec_fn=limit_file_size,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    outcome = json.loads(child.stdout.strip().splitlines()[-1])
    assert outcome["raised"] == "ElevenLabsDiskFullError", outcome
    assert outcome["transient"] and outcome["retry_after"] == DISK_FULL_RETRY_SECONDS
    assert "File too large" in outcome["message"]
    assert usage_of(session) == (len(PHRASE), len(PHRASE), 1)
    assert [p.name for p in (media_root / "elevenlabs").iterdir()] == [], "no partial file is left"

    path = ElevenLabsClient().text_to_speech_and_save(PHRASE, session=session)  # this process: no limit

    assert path.stat().st_size > limit
    assert len(elevenlabs_fake.tts_requests()) == 1, "the audio the child received came through Redis"
    assert usage_of(session) == (len(PHRASE), len(PHRASE), 1)


LLM_CLASS = "project.integrations.llm.services.LLMService"
LLM_TABLE = [("GiftEvent", 10, False), ("FollowEvent", 8, False), ("CommentEvent", 6, True)]


@pytest.mark.django_db(transaction=True)
def test_a_spoken_gift_retries_through_the_queue_while_the_disk_is_full_and_completes_after(
    vhost, llm_fake, elevenlabs_fake, full_disk
):
    service = make_service("llm-disk", service_class=LLM_CLASS, table=LLM_TABLE)
    set_config("llm_speak_replies", "true")
    llm_fake.replies.append(PHRASE)
    session = live_session()
    gift = LiveEvent.objects.create(
        session=session,
        event_type="GiftEvent",
        user_unique_id=f"disk-{os.getpid()}-{timezone.now().timestamp()}",
        user_nickname="Ana",
        event_data={"gift": {"name": "Rosa"}},
        received_at=timezone.now(),
    )

    with running_workers(vhost, ["llm-disk"]):
        EventDispatcher().dispatch(gift)
        item = QueueItem.objects.get(live_event=gift, service=service)

        def retrying() -> bool:
            item.refresh_from_db()
            return item.status == QueueItem.Status.PENDING and "retrying" in item.error

        wait_for(retrying, timeout=90, what="the first attempt to fail on the full disk")
        assert item.attempts == 1
        assert "no room" in item.error
        assert usage_of(session) == (len(PHRASE), len(PHRASE), 1), "charged, and counted while the disk is full"
        assert full_disk.cached() == []

        full_disk.make_room()

        def finished() -> bool:
            item.refresh_from_db()
            return item.status in (QueueItem.Status.COMPLETED, QueueItem.Status.FAILED)

        wait_for(finished, timeout=DISK_FULL_RETRY_SECONDS + 60, what="the retry after the disk has room")

    assert item.status == QueueItem.Status.COMPLETED, item.error
    assert item.attempts == 2
    reply = LLMReply.objects.get(live_event=gift)
    assert reply.spoken and reply.reply == PHRASE
    assert full_disk.cached() == [reply.audio_file]
    assert len(llm_fake.chat_requests()) == 1, "the stored reply was spoken, not generated again"
    assert len(elevenlabs_fake.tts_requests()) == 1, "the retry saved the audio already paid for"
    assert usage_of(session) == (len(PHRASE), len(PHRASE), 1)
