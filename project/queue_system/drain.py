"""Drain tickets: how discardable events reach the priority order of ``svc.<slug>``.

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
  ticket killed by a time limit) are repaired by ``workers.watchdog``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

import amqp

from project.queue_system import queues
from project.queue_system.broker import CONNECTION_ERRORS, close_quietly, open_connection
from project.queue_system.infrastructure import InfrastructureFault
from project.queue_system.processing import Outcome, run_item
from project.queue_system.publisher import ConfirmingPublisher
from project.queue_system.task_messages import arm_token_message, drain_ticket_message, queue_item_id_of

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


def arm(publisher: ConfirmingPublisher, slug: str, event_type: str, wanted: int, priority: int) -> int:
    """Try to take ``wanted`` tokens of one type and publish one ticket per token taken."""
    return arm_many(publisher, [(slug, event_type, wanted, priority)])[(slug, event_type)]


def arm_many(publisher: ConfirmingPublisher, requests: list[tuple[str, str, int, int]]) -> dict[tuple[str, str], int]:
    """Arm several types at once: (slug, type, tokens wanted, ticket priority) → tickets published.

    Two round trips in all, whatever the number of types. A ticket whose
    publish fails leaves its token behind, which the watchdog repairs.
    """
    for slug, event_type, wanted, _ in requests:
        for n in range(wanted):
            publisher.publish(
                arm_token_message(), "", queues.arm_queue_name(slug, event_type), key=(slug, event_type, n)
            )
    taken = publisher.wait()
    armed: dict[tuple[str, str], int] = {}
    for slug, event_type, wanted, priority in requests:
        armed[(slug, event_type)] = count = sum(1 for n in range(wanted) if taken.get((slug, event_type, n)))
        for n in range(count):
            publish_ticket(publisher, slug, event_type, priority, key=("ticket", slug, event_type, n))
    if any(armed.values()):
        publisher.wait()
    return armed


def publish_ticket(publisher: ConfirmingPublisher, slug: str, event_type: str, priority: int, key) -> None:
    main = queues.main_queue_name(slug)
    publisher.publish(drain_ticket_message(slug, event_type, priority), queues.EXCHANGE, main, key=key)


def disarm(channel: amqp.Channel, slug: str, event_type: str) -> bool:
    """Give one token back; False when there was none (more tickets than tokens, harmless)."""
    return channel.basic_get(queues.arm_queue_name(slug, event_type), no_ack=True) is not None


@dataclass
class DrainResult:
    outcome: Outcome | None  # None when the queue was empty
    rearmed: int = 0


def drain_one(slug: str, event_type: str) -> DrainResult:
    """Run one drain ticket: process the oldest waiting event of the type, then pass the ticket on."""
    queue = queues.discardable_queue_name(slug, event_type)
    skips = 0
    while True:
        try:
            current = link()
            message = current.channel.basic_get(queue, no_ack=False)
            if message is None:
                return DrainResult(None, rearmed=_release(slug, event_type))
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
            return DrainResult(outcome)
        _settle(current, tag, requeue=False)
        if outcome.status == "skipped" and skips < MAX_SKIPS:
            skips += 1
            continue
        priority = ticket_priority(slug, event_type, fallback=outcome.item.priority if outcome.item else 1)
        _pass_ticket(slug, event_type, priority)
        return DrainResult(outcome)


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
            publish_ticket(publisher, slug, event_type, priority, key="next")
            if publisher.wait().get("next"):
                return
        except CONNECTION_ERRORS:
            drop_link()
            if attempt == attempts:
                raise
            time.sleep(0.2 * attempt)
    raise RuntimeError(f"the broker refused the next drain ticket of {slug}/{event_type}")


def _release(slug: str, event_type: str) -> int:
    """The type's queue looked empty: give the token back, then look again (see module doc)."""
    current = link()
    disarm(current.channel, slug, event_type)
    _, ready, _ = current.channel.queue_declare(queues.discardable_queue_name(slug, event_type), passive=True)
    if not ready:
        return 0
    return arm(current.publisher, slug, event_type, 1, ticket_priority(slug, event_type))
