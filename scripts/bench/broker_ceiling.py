#!/usr/bin/env python
"""Broker ceiling: how many publisher-confirmed messages per second RabbitMQ takes on this
machine in the queue system's own topology, with nothing else running — no consumer, no
database, no worker. It is the upper bound of ``queue_flood.py``'s ``dispatched_items_per_s``.

    .venv/bin/python scripts/bench/broker_ceiling.py [--messages 20000] [--batch 200] [--max-queue-size 100]

In a throw-away vhost it declares one service's queues with the project's topology
code (``svc.<slug>``, priority 10; ``svc.<slug>.discardable.LikeEvent`` with the
max-length / drop-head / dead-letter policy) and publishes with the dispatcher's
``ConfirmingPublisher`` and message builders, ``--batch`` messages per confirm wait:

  main_per_s         persistent ``process_event`` tasks into ``svc.<slug>`` (gifts)
  discardable_per_s  discardable messages (transient, as the dispatcher sends them) into
                     the bounded queue: past ``max_queue_size`` every publish also
                     dead-letters the oldest into ``events.discarded`` (likes in a flood)
  flood_mix_per_s    the flood's mix: 10 % main, 90 % discardable, interleaved
  persistent_discardable_per_s
                     the discardable case with persistent messages, for comparison (what
                     the dispatcher sent before discardable messages became transient)
  flood_events_per_s flood_mix_per_s / 2: events per second when each event goes to
                     two services, as in queue_flood.py

The last line printed is one JSON object with these figures, and under ``machine`` the
machine's speed during the run (``bench_setup.MachineGauge``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from bench_setup import MachineGauge, load_dotenv, log  # noqa: E402 - after the path set-up

from tests.support.servers import create_vhost, delete_vhost  # noqa: E402


def publish_rate(publisher, destinations, messages: int, batch: int) -> float:
    """Messages per second: ``messages`` publishes cycling through ``destinations`` (queue, build)."""
    from project.queue_system import queues

    started = time.perf_counter()
    sent = 0
    while sent < messages:
        for _ in range(min(batch, messages - sent)):
            name, build = destinations[sent % len(destinations)]
            publisher.publish(build(sent + 1), queues.EXCHANGE, name, key=sent)
            sent += 1
        delivered = publisher.wait()
        if not all(delivered.values()):
            raise RuntimeError(f"the broker refused {sum(not ok for ok in delivered.values())} publishes")
    return messages / (time.perf_counter() - started)


CASES = ("main_per_s", "discardable_per_s", "flood_mix_per_s", "persistent_discardable_per_s")


def measure(messages: int, batch: int, max_queue_size: int, cases: tuple[str, ...] = CASES) -> dict:
    """The figures of ``cases`` (messages/s) plus ``flood_events_per_s``, in a vhost of their own.

    Needs Django set up. Also what ``queue_flood.py`` and ``capture.py`` run first
    (the flood mix alone), so that their figures come with the broker's own
    speed at that time.
    """
    import amqp

    from project.queue_system import queues, topology
    from project.queue_system.broker import Management, close_quietly, open_connection
    from project.queue_system.publisher import ConfirmingPublisher
    from project.queue_system.task_messages import discardable_message, process_event_message

    created = create_vhost("broker-ceiling")
    vhost, url = created.name, created.broker_url
    admin = Management(vhost=vhost)
    slug = f"ceiling-{vhost.rsplit('-', 1)[1]}"
    result: dict = {}
    connection = None
    try:
        connection = open_connection(url)
        service = topology.ServiceTopology(slug, 1, max_queue_size, ("LikeEvent",))
        topology.declare_service(connection, service)
        topology.apply_policies(service, admin)
        main_queue = queues.main_queue_name(slug)
        discardable = queues.discardable_queue_name(slug, "LikeEvent")
        publisher = ConfirmingPublisher(connection)

        def gift(pk: int) -> amqp.Message:
            return process_event_message(pk, 10)

        def like(pk: int) -> amqp.Message:
            return discardable_message(pk, "LikeEvent", 2)

        def persistent_like(pk: int) -> amqp.Message:
            message = like(pk)
            message.properties["delivery_mode"] = 2
            return message

        mix = [(main_queue, gift)] + [(discardable, like)] * 9
        destinations = {
            "main_per_s": [(main_queue, gift)],
            "discardable_per_s": [(discardable, like)],
            "flood_mix_per_s": mix,
            "persistent_discardable_per_s": [(discardable, persistent_like)],
        }
        log(f"broker ceiling, vhost {vhost}: {messages} messages per case, {batch} per confirm wait ...")
        publish_rate(publisher, mix, min(2000, messages), batch)  # warm-up, not counted
        for name in cases:
            channel = connection.channel()
            for queue in (main_queue, discardable, queues.DISCARDED_QUEUE):
                channel.queue_purge(queue)
            channel.close()
            result[name] = round(publish_rate(publisher, destinations[name], messages, batch), 1)
            log(f"  {name:28s} {result[name]:9.1f} messages/s")
        if "flood_mix_per_s" in result:
            result["flood_events_per_s"] = round(result["flood_mix_per_s"] / 2, 1)
    finally:
        close_quietly(connection)
        try:
            delete_vhost(created)
        except Exception as exc:
            log(f"could not delete the vhost {vhost}: {exc}")
    return result


def flood_events_per_s(messages: int = 4000) -> float:
    """The broker's ceiling in two-service flood events per second, right now (a few seconds)."""
    return measure(messages, 200, 100, ("flood_mix_per_s",))["flood_events_per_s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000, help="messages per measurement")
    parser.add_argument("--batch", type=int, default=200, help="publishes per confirm wait (the flood's 100 events)")
    parser.add_argument("--max-queue-size", type=int, default=100, help="max_queue_size of the discardable queue")
    args = parser.parse_args()

    load_dotenv(ROOT / ".env")
    import django

    django.setup()
    gauge = MachineGauge()
    result = measure(args.messages, args.batch, args.max_queue_size)
    result.update(messages=args.messages, batch=args.batch, max_queue_size=args.max_queue_size)
    result["machine"] = gauge.figures()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
