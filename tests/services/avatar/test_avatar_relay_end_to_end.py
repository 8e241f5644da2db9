"""The avatar relay through the whole system: a comment, a gift and a follow of the simulated
live, through the real TikTokLive client, the capture, RabbitMQ and the avatar service's
worker, reach the HeyGen fake as tasks the avatar says; the LLM fake writes the answer."""

from __future__ import annotations

import pytest

from project.queue_system.models import QueueItem, Service
from tests.support.capture import comment, follow, gift, run_capture
from tests.support.queueing import all_settled
from tests.support.waiting import wait_for
from tests.support.worker_processes import running_workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def avatar_only(seeded):
    Service.objects.exclude(slug="avatar").update(is_active=False)
    Service.objects.filter(slug="avatar").update(is_active=True)
    return Service.objects.get(slug="avatar")


@pytest.fixture
def fresh_cooldown():
    """ana_01 answered by an earlier run less than a minute ago would be cooling down (Redis keeps it)."""
    from project.integrations.llm.cooldown import ViewerCooldown

    ViewerCooldown("avatar", 60).redis.delete(ViewerCooldown("avatar", 60).key("ana_01"))


def test_a_comment_of_the_live_is_answered_by_the_avatar(
    vhost, avatar_only, heygen_fake, llm_fake, live_session_key, fresh_cooldown
):
    llm_fake.replies.append("¡Hola Ana! Qué gusto verte en el directo.")
    env = {
        "HEYGEN_API_KEY": heygen_fake.api_key,
        "HEYGEN_AVATAR_ID": sorted(heygen_fake.avatars)[0],
        "HEYGEN_BASE_URL": heygen_fake.base_url,
        "AVATAR_IDLE_SECONDS": "3",
    }
    with running_workers(vhost, ["avatar"], extra_env=env) as workers:
        run = run_capture(
            vhost,
            [
                comment("ana_01", "hola avatar, ¿cómo estás?", nickname="Ana 🌸"),
                gift("pepe", "Galaxy", nickname="Pepe"),
                follow("lucia"),
            ],
        )
        assert run.returncode == 0, run.output
        wait_for(lambda: all_settled(avatar_only), timeout=120, what="the avatar's items did not settle")
        items = list(QueueItem.objects.filter(service=avatar_only))
        assert {(i.event_type, i.status) for i in items} == {
            ("CommentEvent", "completed"),
            ("GiftEvent", "completed"),
            ("FollowEvent", "completed"),
        }, [(i.event_type, i.status, i.error) for i in items]
        said = heygen_fake.task_texts()
        assert "¡Hola Ana! Qué gusto verte en el directo." in said, said
        assert any("Pepe" in text and "Galaxy" in text for text in said), said
        assert any("lucia" in text for text in said), said
        # The LLM was asked about the viewer's comment, by the cleaned name.
        [asked] = llm_fake.chat_requests()
        prompt = str(asked.json["messages"])
        assert "hola avatar" in prompt and "Ana" in prompt
        # The session the service opened for itself is stopped once the avatar is idle.
        wait_for(lambda: not heygen_fake.live_sessions(), timeout=60, what="the idle session was not stopped")
        assert "avatar said CommentEvent" in workers.log("avatar")
