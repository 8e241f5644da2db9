"""Pipelined publisher confirms on one py-amqp channel.

``publish`` only writes the frame; ``wait`` then reads the broker's basic.ack /
basic.nack (and basic.return for unroutable mandatory messages) until every
message published so far is settled. A batch of N messages costs one round
trip instead of N.
https://www.rabbitmq.com/docs/confirms#publisher-confirms
"""

from __future__ import annotations

import time
from collections.abc import Hashable

import amqp

from project.queue_system.broker import BrokerError


class ConfirmTimeout(BrokerError):
    pass


class ConfirmingPublisher:
    """Not thread-safe: one per thread (the dispatcher guards its own with a lock)."""

    def __init__(self, connection: amqp.Connection) -> None:
        self.connection = connection
        self.channel = connection.channel()
        self.channel.confirm_select()
        self._next_tag = 1
        self._unsettled: dict[int, Hashable] = {}
        self._results: dict[Hashable, bool] = {}
        self._returned: set[int] = set()
        self.channel.events["basic_ack"].add(self._on_ack)
        self.channel.events["basic_nack"].add(self._on_nack)
        self.channel.events["basic_return"].add(self._on_return)

    @property
    def is_open(self) -> bool:
        return bool(self.channel.is_open and self.connection.connected)

    def publish(self, message: amqp.Message, exchange: str, routing_key: str, key: Hashable) -> None:
        """Send one message; ``key`` names it in the results of ``wait``.

        ``mandatory`` makes an unroutable message (its queue does not exist)
        come back as a basic.return instead of being silently dropped — the
        broker would still ack it, so a return counts as not delivered.
        """
        tag = self._next_tag
        self._next_tag += 1
        # The delivery tag rides in message_id so a basic.return can be matched to its publish.
        message.properties["message_id"] = str(tag)
        self._unsettled[tag] = key
        self.channel.basic_publish(message, exchange=exchange, routing_key=routing_key, mandatory=True)

    def wait(self, timeout: float = 30.0) -> dict[Hashable, bool]:
        """Block until everything published is confirmed; returns {key: delivered} and resets."""
        deadline = time.monotonic() + timeout
        while self._unsettled:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConfirmTimeout(f"{len(self._unsettled)} publish(es) not confirmed within {timeout:.0f} s")
            try:
                self.connection.drain_events(timeout=remaining)
            except TimeoutError:
                continue
        results, self._results = self._results, {}
        return results

    def _settle(self, delivery_tag: int, multiple: bool, ok: bool) -> None:
        tags = [t for t in self._unsettled if t <= delivery_tag] if multiple else [delivery_tag]
        for tag in tags:
            key = self._unsettled.pop(tag, None)
            if key is None:
                continue
            self._results[key] = ok and tag not in self._returned
            self._returned.discard(tag)

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, True)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, False)

    def _on_return(self, exc, exchange: str, routing_key: str, message: amqp.Message) -> None:
        try:
            self._returned.add(int(message.properties.get("message_id", "")))
        except ValueError:
            pass

    def close(self) -> None:
        try:
            if self.channel.is_open:
                self.channel.close()
        except Exception:  # noqa: S110 - closing a channel of a dead connection is not an error worth raising
            pass
