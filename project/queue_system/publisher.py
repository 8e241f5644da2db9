# Design: docs/architecture.md#queue-topology
"""Pipelined publisher confirms on one py-amqp channel.

``publish`` only encodes the frames; ``wait`` writes everything published
since the last wait to the socket in one go, then reads the broker's
basic.ack / basic.nack (and basic.return for unroutable mandatory messages)
until every message published so far is settled. A batch of N messages costs
one write and one round trip instead of N.
https://www.rabbitmq.com/docs/confirms#publisher-confirms

The frames are py-amqp's own (``amqp.method_framing.frame_writer``, the
encoder behind ``Channel.basic_publish``) written into a buffer instead of the
socket: ``basic_publish`` costs a ``send`` plus a non-blocking read attempt
per message, which was most of the dispatcher's time under a flood.
"""

from __future__ import annotations

import time
from collections.abc import Hashable

import amqp
from amqp import spec
from amqp.exceptions import RecoverableConnectionError
from amqp.method_framing import frame_writer
from amqp.serialization import dumps

from project.queue_system.broker import BrokerError

# How long a publish may wait for its confirm before the connection is given up.
CONFIRM_TIMEOUT = 30.0
# Write the buffer out early once it holds this much (a huge batch).
FLUSH_BYTES = 1 << 20
PUBLISH_ARGS = "Bssbb"  # basic.publish: ticket, exchange, routing key, mandatory, immediate


class ConfirmTimeout(BrokerError):
    pass


class _FrameBuffer:
    """Stands in for the socket transport of ``frame_writer``: frames accumulate here."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, frame) -> None:
        self.data += frame  # frame_writer reuses its own buffer: copy now


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
        self._buffer = _FrameBuffer()
        self._write_frame = frame_writer(connection, self._buffer)
        self._publish_args: dict[tuple[str, str], bytes] = {}  # encoded basic.publish arguments per destination
        self.channel.events["basic_ack"].add(self._on_ack)
        self.channel.events["basic_nack"].add(self._on_nack)
        self.channel.events["basic_return"].add(self._on_return)

    @property
    def is_open(self) -> bool:
        return bool(self.channel.is_open and self.connection.connected)

    def publish(self, message: amqp.Message, exchange: str, routing_key: str, key: Hashable) -> None:
        """Encode one message (sent by the next ``wait`` or ``flush``); ``key`` names it in the results of ``wait``.

        ``mandatory`` makes an unroutable message (its queue does not exist)
        come back as a basic.return instead of being silently dropped — the
        broker would still ack it, so a return counts as not delivered.
        """
        if not self.is_open:
            raise RecoverableConnectionError("publishing channel closed")
        tag = self._next_tag
        self._next_tag += 1
        # The delivery tag rides in message_id so a basic.return can be matched to its publish.
        message.properties["message_id"] = str(tag)
        self._unsettled[tag] = key
        args = self._publish_args.get((exchange, routing_key))
        if args is None:
            args = dumps(PUBLISH_ARGS, (0, exchange, routing_key, True, False))
            self._publish_args[exchange, routing_key] = args
        self._write_frame(1, self.channel.channel_id, spec.Basic.Publish, args, message)
        if len(self._buffer.data) >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write the frames published so far to the socket (``wait`` does it first)."""
        if self._buffer.data:
            data, self._buffer.data = self._buffer.data, bytearray()
            self.connection.transport.write(data)

    def wait(self, timeout: float | None = None) -> dict[Hashable, bool]:
        """Block until everything published is confirmed; returns {key: delivered} and resets."""
        timeout = CONFIRM_TIMEOUT if timeout is None else timeout
        results = self.read(timeout)
        if self._unsettled:
            raise ConfirmTimeout(f"{len(self._unsettled)} publish(es) not confirmed within {timeout:.0f} s")
        return results

    @property
    def unsettled(self) -> int:
        return len(self._unsettled)

    def read(self, timeout: float) -> dict[Hashable, bool]:
        """Write what is published, then read the confirms that arrive within ``timeout``.

        Returns {key: delivered} for what settled since the last read. For a
        stream (``pipeline.DispatchPipeline``): nothing has to be settled when
        it returns, and the caller publishes more in between.
        """
        self.flush()
        if self._unsettled:
            deadline = time.monotonic() + timeout
            # One socket timeout for the whole read (drain_events with a timeout
            # sets and restores it around every single frame).
            with self.connection.transport.having_timeout(timeout):
                while self._unsettled and time.monotonic() < deadline:
                    try:
                        self.connection.drain_events(timeout=None)
                    except TimeoutError:
                        break
        results, self._results = self._results, {}
        return results

    def _settle(self, delivery_tag: int, multiple: bool, ok: bool) -> None:
        if multiple:
            tags = []
            for tag in self._unsettled:  # in publishing order, i.e. by tag
                if tag > delivery_tag:
                    break
                tags.append(tag)
        else:
            tags = [delivery_tag]
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
