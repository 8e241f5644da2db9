"""The drain protocol's repairs on the real broker: a drain's release-and-recheck, and the watchdog's
re-arming of a type whose ticket was lost (drain.py, docs/architecture.md)."""

from __future__ import annotations

import pytest

from project.queue_system import drain, queues
from project.queue_system.broker import passive_counts
from project.queue_system.dispatcher import EventDispatcher
from tests.support.broker import amqp_connection, depth, peek
from tests.support.queueing import make_events, make_service, make_session

pytestmark = pytest.mark.django_db(transaction=True)

MAIN = queues.main_queue_name("dino")
LIKES = queues.discardable_queue_name("dino", "LikeEvent")
TOKENS = queues.arm_queue_name("dino", "LikeEvent")


@pytest.fixture
def dino(vhost):
    drain.drop_link()  # the thread's link must be to this test's vhost
    yield make_service("dino", max_queue_size=50)
    drain.drop_link()


def _dispatch_likes(count: int) -> None:
    EventDispatcher().dispatch_many(make_events(make_session(), ["LikeEvent"] * count))


def _purge(vhost, *names: str) -> None:
    with amqp_connection(vhost) as conn:
        channel = conn.channel()
        for name in names:
            channel.queue_purge(name)


def _tickets(vhost) -> list:
    return [m["args"] for m in peek(vhost, MAIN) if m["task"] == "tasks.drain"]


def _repair(*, no_ticket_out: bool) -> int:
    current = drain.link()
    counts = passive_counts(current.connection, [LIKES, TOKENS])
    return drain.repair(current, "dino", "LikeEvent", 1, counts, no_ticket_out=no_ticket_out)


def test_a_drain_that_found_its_queue_empty_gives_its_token_back(vhost, dino):
    _dispatch_likes(1)
    _purge(vhost, LIKES, MAIN)  # the like was drained, its ticket is running

    assert drain._release("dino", "LikeEvent") == 0

    assert (depth(vhost, TOKENS), depth(vhost, MAIN)) == (0, 0)


def test_an_event_that_arrived_while_the_drain_let_go_is_armed_by_its_second_look(vhost, dino):
    _dispatch_likes(1)
    # The dispatcher of the like saw "already armed" (the running drain's token), so no ticket
    # of its own: only the drain's second look can bring it in.
    _purge(vhost, MAIN)

    assert drain._release("dino", "LikeEvent") == 1

    assert (depth(vhost, TOKENS), depth(vhost, LIKES)) == (1, 1)
    assert _tickets(vhost) == [["dino", "LikeEvent"]]


def test_the_watchdog_arms_a_type_with_waiting_events_and_no_token(vhost, dino):
    _dispatch_likes(3)
    _purge(vhost, TOKENS, MAIN)  # token and ticket lost (a broker restart empties the arming queue)

    assert _repair(no_ticket_out=False) == 1

    assert depth(vhost, TOKENS) == 1
    assert _tickets(vhost) == [["dino", "LikeEvent"]]


def test_a_token_without_its_ticket_is_purged_and_armed_again_only_on_the_idle_evidence(vhost, dino):
    _dispatch_likes(2)
    _purge(vhost, MAIN)  # the ticket is lost, its token is still taken

    assert _repair(no_ticket_out=False) == 0  # a ticket may still be on its way: leave it
    assert (depth(vhost, TOKENS), _tickets(vhost)) == (1, [])

    assert _repair(no_ticket_out=True) == 1

    assert depth(vhost, TOKENS) == 1
    assert _tickets(vhost) == [["dino", "LikeEvent"]]


def test_stale_tokens_of_an_empty_type_are_purged_and_nothing_is_armed(vhost, dino):
    _dispatch_likes(1)
    _purge(vhost, LIKES, MAIN)

    assert _repair(no_ticket_out=True) == 0

    assert (depth(vhost, TOKENS), depth(vhost, MAIN)) == (0, 0)


def test_a_type_never_published_to_is_left_alone(vhost, dino):
    current = drain.link()
    counts = passive_counts(current.connection, [LIKES, TOKENS])
    assert counts == {LIKES: None, TOKENS: None}
    assert drain.repair(current, "dino", "LikeEvent", 1, counts, no_ticket_out=True) == 0
