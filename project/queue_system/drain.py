# Design: docs/architecture.md#drain-tickets-and-tokens
"""Drain tickets: how discardable events reach the priority order of ``svc.<slug>``.

The whole protocol lives here (docs/architecture.md, "Drain tickets and tokens"): the
tokens, the tickets, the drain's release-and-recheck and the watchdog's repair. The batch
dispatcher (``dispatcher.py``) and the streaming one (``streaming.py``) arm through the same
functions; the worker's watchdog thread (``workers/watchdog.py``) calls ``repair``.

A discardable event waits in ``svc.<slug>.discardable.<T>`` (bounded by policy,
oldest dropped). For each type at most K tickets — ``tasks.drain(slug, T)``
messages at T's priority — wait in ``svc.<slug>``; the right to publish one is
a token in ``svc.<slug>.armed.<T>`` (``x-max-length`` K, ``reject-publish``: a
publish the broker nacks means "already armed").

The rules that keep a message from being stranded:

- the dispatcher publishes the event and has it confirmed *before* it tries to arm;
- a drain that finds the queue empty first gives its token back, *then* looks
  at the depth again and re-arms if something arrived meanwhile. Any publish
  that saw "already armed" happened while that token existed, i.e. before the
  drain gave it back, so the second look sees it;
- tokens whose ticket was lost (a crash between arming and publishing, a
  ticket killed by a time limit) are repaired by ``repair``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import NamedTuple

import amqp

from project.queue_system import queues
from project.queue_system.broker import CONNECTION_ERRORS, close_quietly, open_connection
from project.queue_system.infrastructure import InfrastructureFault
from project.queue_system.processing import Outcome, run_item
from project.queue_system.publisher import ConfirmingPublisher
from project.queue_system.task_messages import drain_ticket_message, queue_item_id_of

logger = logging.getLogger("queue.drain")

# Already-finished items (duplicates) skipped in one drain before it passes the ticket on.
MAX_SKIPS = 100
PRIORITY_CACHE_SECONDS = 2.0


class BrokerLink:
    """A connection with a plain channel (basic.get/ack) and a confirming publisher."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.connection = open_connection()
        self.channel = self.connection.channel()
        self.publisher = ConfirmingPublisher(self.connection)

    @property
    def usable(self) -> bool:
        return self.pid == os.getpid() and self.connection.connected and self.channel.is_open

    def close(self) -> None:
        if self.pid == os.getpid():
            close_quietly(self.connection)


_local = threading.local()


def link() -> BrokerLink:
    """This thread's link, reopened when the broker dropped it or after a fork."""
    current: BrokerLink | None = getattr(_local, "link", None)
    if current is None or not current.usable:
        if current is not None:
            current.close()
        current = BrokerLink()
        _local.link = current
    return current


def drop_link() -> None:
    current: BrokerLink | None = getattr(_local, "link", None)
    _local.link = None
    if current is not None:
        current.close()


_priority_cache: dict[tuple[str, str], tuple[float, int | None]] = {}


def ticket_priority(slug: str, event_type: str, fallback: int = 1) -> int:
    """Current priority of a type in the config (cached briefly); fallback when the config is gone."""
    from project.queue_system.models import ServiceEventConfig

    key = (slug, event_type)
    cached = _priority_cache.get(key)
    if cached is None or time.monotonic() - cached[0] > PRIORITY_CACHE_SECONDS:
        priority = (
            ServiceEventConfig.objects.filter(service__slug=slug, event_type=event_type)
            .values_list("priority", flat=True)
            .first()
        )
        cached = (time.monotonic(), priority)
        _priority_cache[key] = cached
    return cached[1] or fallback


# -- confirm keys ----------------------------------------------------------------------------
# What each publish on a ConfirmingPublisher is known by in its confirms.


class ItemKey(NamedTuple):
    """A QueueItem's message, published as part of batch ``batch`` (0 for the batch dispatcher)."""

    batch: int
    pk: int


class TokenKey(NamedTuple):
    """The ``n``-th token asked for a type; ``priority`` is the ticket's, once the token is taken."""

    slug: str
    event_type: str
    n: int
    priority: int


class TicketKey(NamedTuple):
    """A drain ticket published for a taken token (``seq`` tells tickets of one token apart)."""

    slug: str
    event_type: str
    seq: int


class ArmRequest(NamedTuple):
    """Tokens wanted for a type whose events were just confirmed, and its tickets' priority."""

    slug: str
    event_type: str
    wanted: int
    priority: int


def arm_token_message() -> amqp.Message:
    """A token of an arming queue, transient: the broker confirms it without a disk write.

    A broker restart empties the arming queues, which only means "not armed":
    the next dispatch arms again, and a ticket that survived the restart (they
    are persistent) runs beside the new one, finds its queue empty at the end
    and stops — one ticket too many, never one too few.
    """
    return amqp.Message(b"1", delivery_mode=1)


# -- arming: one set of steps for the batch and the streaming dispatcher ------------------------


def arming_requests(items: Iterable, confirmed: set[int]) -> list[ArmRequest]:
    """What to arm after a publish: each type with confirmed discardable items.

    As many tokens as the type's worker can use at once (K), but no more than it got events.
    """
    arming: dict[tuple[str, str], list] = defaultdict(list)
    for item in items:
        if item.discardable and item.pk in confirmed:
            arming[(item.service.slug, item.event_type)].append(item)
    return [
        ArmRequest(slug, event_type, min(typed[0].service.worker_concurrency, len(typed)), typed[0].priority)
        for (slug, event_type), typed in arming.items()
    ]


def token_keys(request: ArmRequest) -> list[TokenKey]:
    return [TokenKey(request.slug, request.event_type, n, request.priority) for n in range(request.wanted)]


def publish_token(publisher: ConfirmingPublisher, key: TokenKey) -> None:
    """Ask for one token; the broker's confirm says it was taken, its nack "already armed"."""
    publisher.publish(arm_token_message(), "", queues.arm_queue_name(key.slug, key.event_type), key=key)


def publish_ticket(publisher: ConfirmingPublisher, token: TokenKey, seq: int = 0) -> TicketKey:
    """The ticket a taken token entitles to, into ``svc.<slug>`` at the type's priority."""
    key = TicketKey(token.slug, token.event_type, seq)
    message = drain_ticket_message(token.slug, token.event_type, token.priority)
    publisher.publish(message, queues.EXCHANGE, queues.main_queue_name(token.slug), key=key)
    return key


def arm_many(publisher: ConfirmingPublisher, requests: list[ArmRequest]) -> dict[tuple[str, str], int]:
    """Arm several types and wait: (slug, type) → tickets published. Two round trips in all.

    The streaming dispatcher takes the same steps without waiting: it publishes the tokens,
    and a ticket for each token as its confirm arrives. A ticket whose publish fails leaves
    its token behind, which ``repair`` finds.
    """
    tokens = [key for request in requests for key in token_keys(request)]
    for key in tokens:
        publish_token(publisher, key)
    taken = publisher.wait()
    armed: dict[tuple[str, str], int] = {(r.slug, r.event_type): 0 for r in requests}
    for key in tokens:
        if taken.get(key):
            publish_ticket(publisher, key, seq=key.n)
            armed[(key.slug, key.event_type)] += 1
    if any(armed.values()):
        publisher.wait()
    return armed


def arm(publisher: ConfirmingPublisher, slug: str, event_type: str, wanted: int, priority: int) -> int:
    """Try to take ``wanted`` tokens of one type and publish one ticket per token taken."""
    return arm_many(publisher, [ArmRequest(slug, event_type, wanted, priority)])[(slug, event_type)]


def disarm(channel: amqp.Channel, slug: str, event_type: str) -> bool:
    """Give one token back; False when there was none (more tickets than tokens, harmless)."""
    return channel.basic_get(queues.arm_queue_name(slug, event_type), no_ack=True) is not None


# -- the watchdog's repair ----------------------------------------------------------------------


def repair(current: BrokerLink, slug: str, event_type: str, tickets: int, counts: dict, *, no_ticket_out: bool) -> int:
    """Make sure a type with waiting events has a ticket out; the tickets armed (0 or 1).

    ``counts`` are the broker's (ready, consumers) per queue name. ``no_ticket_out`` is the
    watchdog's evidence that no ticket of the service exists: its worker was idle for a whole
    interval with ``svc.<slug>`` empty (a waiting ticket would have been delivered to it). Then
    tokens left are stale (their tickets were lost) and are purged. Fewer tokens than K with
    events waiting → arm: always safe, the broker still caps tokens at K; a false alarm adds one
    ticket too many, which runs, finds nothing and ends.
    """
    waiting = counts.get(queues.discardable_queue_name(slug, event_type))
    tokens = counts.get(queues.arm_queue_name(slug, event_type))
    if waiting is None or tokens is None:
        return 0  # not declared yet: nothing was ever published there
    extra = {"service": slug, "event_type": event_type, "waiting": waiting[0]}
    held = tokens[0]
    if held and no_ticket_out:
        logger.warning("stale drain tokens purged", extra={**extra, "tokens": held})
        current.channel.queue_purge(queues.arm_queue_name(slug, event_type))
        held = 0
    if not waiting[0] or held >= tickets:
        return 0
    armed = arm(current.publisher, slug, event_type, 1, ticket_priority(slug, event_type))
    if armed:
        logger.info("drain ticket re-armed", extra=extra)
    return armed


# -- running a ticket -----------------------------------------------------------------------------


def drain_one(slug: str, event_type: str) -> Outcome | None:
    """Run one drain ticket: process the oldest waiting event of the type, then pass the ticket on.

    None when the queue was empty: the token is given back (and the type re-armed if an event
    arrived meanwhile, ``_release``).
    """
    queue = queues.discardable_queue_name(slug, event_type)
    skips = 0
    while True:
        try:
            current = link()
            message = current.channel.basic_get(queue, no_ack=False)
            if message is None:
                _release(slug, event_type)
                return None
        except CONNECTION_ERRORS as exc:
            drop_link()
            raise InfrastructureFault(f"the broker failed under the drain of {queue}: {exc}") from exc
        tag = message.delivery_info["delivery_tag"]
        item_id = queue_item_id_of(message.body)
        if item_id is None:
            logger.error("dropping a message that is not a queue item", extra={"queue": queue})
            current.channel.basic_ack(tag)
            continue
        try:
            outcome = run_item(item_id, redelivered=bool(message.delivery_info.get("redelivered")), queue=queue)
        except InfrastructureFault:
            # Back to the head of its queue (its place in the order); the ticket is requeued by the task.
            _settle(current, tag, requeue=True)
            raise
        if outcome.status == "retry":
            # Back to its place at the head of the type's queue; the ticket is
            # retried after the service's back-off.
            _settle(current, tag, requeue=True)
            return outcome
        _settle(current, tag, requeue=False)
        if outcome.status == "skipped" and skips < MAX_SKIPS:
            skips += 1
            continue
        priority = ticket_priority(slug, event_type, fallback=outcome.item.priority if outcome.item else 1)
        _pass_ticket(slug, event_type, priority)
        return outcome


def _settle(current: BrokerLink, tag: int, *, requeue: bool) -> None:
    # If the connection died while the handler ran, the broker has already put
    # the message back; its redelivery finds the item finished and skips it.
    try:
        if requeue:
            current.channel.basic_reject(tag, requeue=True)
        else:
            current.channel.basic_ack(tag)
    except CONNECTION_ERRORS:
        drop_link()


def _pass_ticket(slug: str, event_type: str, priority: int, attempts: int = 3) -> None:
    """Publish the next ticket (the token stays taken), reconnecting if needed."""
    for attempt in range(1, attempts + 1):
        try:
            publisher = link().publisher
            key = publish_ticket(publisher, TokenKey(slug, event_type, 0, priority))
            if publisher.wait().get(key):
                return
        except CONNECTION_ERRORS:
            drop_link()
            if attempt == attempts:
                raise
            time.sleep(0.2 * attempt)
    raise RuntimeError(f"the broker refused the next drain ticket of {slug}/{event_type}")


def _release(slug: str, event_type: str) -> int:
    """The type's queue looked empty: give the token back, then look again (see module doc); tickets armed."""
    current = link()
    disarm(current.channel, slug, event_type)
    _, ready, _ = current.channel.queue_declare(queues.discardable_queue_name(slug, event_type), passive=True)
    if not ready:
        return 0
    return arm(current.publisher, slug, event_type, 1, ticket_priority(slug, event_type))
