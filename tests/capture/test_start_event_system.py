"""start_event_system end to end: real workers (python -m workers), the real capture
against the simulator, PostgreSQL and RabbitMQ (a fresh vhost)."""

from __future__ import annotations

import pytest

from project.queue_system.models import QueueItem
from tests.support.browser import dino_worker_env
from tests.support.capture import run_capture
from tests.support.servers import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_it_runs_the_demo_for_its_duration_and_finishes_every_item(
    vhost, seeded, live_server, elevenlabs_fake, overlay_stream
):
    # The seeded services as the demo runs them: DinoChrome's browser on the game page
    # (headless here), its voice on the ElevenLabs fake, Overlays on a Redis stream.
    run = run_capture(
        vhost,
        "demo",
        command="start_event_system",
        args=["--duration", "12", "--stats-interval", "5"],
        timeout=400,
        env=dino_worker_env(live_server, free_port()),
    )
    assert run.returncode == 0, run.output
    output = run.output
    assert "🚀 TIKTOK EVENT SYSTEM - START" in output
    assert "🔧 Starting worker: DinoChrome" in output and "🔧 Starting worker: Overlays" in output
    assert "✅ 2 worker(s) started" in output
    assert "📊 SYSTEM STATISTICS" in output and f"🆔 Session ID: {run.session_id}" in output
    assert "\x1b[" not in output  # not a terminal: plain blocks, no live view
    likes = run.summary["capture"]
    assert f"❤️  Likes in the room: {likes['likes_room_total']:,} (TikTok's total, exact)" in output
    assert f"❤️  Likes received: {likes['likes_counted']:,} (sum of like messages, a lower bound)" in output
    assert "👋 2 worker(s) stopped" in output
    # The demo's "qué juego de m1erda" (masked on the overlay) and its follower "Pendejo_69".
    assert "🛡️  Moderated: 2 (1 comment(s) blocked, 1 nickname(s) masked, 0 reply(ies) dropped)" in output
    summary = run.summary
    captured = summary["events_captured"]
    assert captured.get("CommentEvent", 0) > 0 and captured.get("GiftEvent", 0) > 0
    items = QueueItem.objects.filter(live_event__session_id=run.session_id)
    assert items.exists()
    # Every dispatched item ended completed or discarded: nothing pending, nothing failed.
    assert set(items.values_list("status", flat=True)) <= {QueueItem.Status.COMPLETED, QueueItem.Status.DISCARDED}
    for slug in ("dinochrome", "overlays"):
        counts = summary["services"][slug]
        assert counts["pending"] == counts["processing"] == counts["failed"] == 0
        assert counts["completed"] + counts["discarded"] == items.filter(service__slug=slug).count()
    assert "✅ [DinoChrome] GiftEvent (P:10) completed" in output
    # The Roses of the demo were thanked out loud by name.
    spoken = [request.json["text"] for request in elevenlabs_fake.tts_requests()]
    assert any("for the rose" in text for text in spoken), spoken
    assert "Thanks for the follow, friend!" in spoken and not any("Pendejo" in text for text in spoken)


def test_it_refuses_to_start_without_a_live(vhost, seeded):
    run = run_capture(vhost, "offline", command="start_event_system", args=["--no-wait"], timeout=300)
    assert run.returncode == 1
    assert "is not live right now" in run.output
    assert "👋 2 worker(s) stopped" in run.output  # the workers it started are stopped again
