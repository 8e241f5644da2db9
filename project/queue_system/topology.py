# Design: docs/architecture.md#queue-topology
"""Declaring the RabbitMQ topology of every service from the database.

Idempotent: run at every worker and capture start (``declare_all``), by the
dispatcher before it first publishes to a service, and from the admin when a
service or its event configurations change (``apply_service``), which re-puts
the max-length policy so a new ``max_queue_size`` applies to the live queues at
once. Queues are only ever deleted by ``delete_service_queues`` (the
``delete_service_queues`` management command).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import amqp

from project.queue_system import queues
from project.queue_system.broker import BrokerError, Management, close_quietly, open_connection

logger = logging.getLogger("queue.topology")


class TopologyError(RuntimeError):
    """A queue exists with other arguments, or the broker refused a declaration."""


@dataclass(frozen=True)
class ServiceTopology:
    slug: str
    tickets: int  # K: drain tickets allowed per discardable type (1 SYNC, concurrency ASYNC)
    max_queue_size: int
    discardable_types: tuple[str, ...] = field(default_factory=tuple)


def service_topology(service) -> ServiceTopology:
    """The topology of one Service row (discardable configs count even when disabled:
    their queue may still hold messages that must be drained)."""
    types = sorted(service.event_configs.filter(discardable=True).values_list("event_type", flat=True).distinct())
    return ServiceTopology(
        slug=service.slug,
        tickets=service.worker_concurrency,
        max_queue_size=service.max_queue_size,
        discardable_types=tuple(types),
    )


def all_topologies(slugs: list[str] | None = None, *, active_only: bool = False) -> list[ServiceTopology]:
    from project.queue_system.models import Service

    services = Service.objects.prefetch_related("event_configs").order_by("slug")
    if slugs:
        services = services.filter(slug__in=slugs)
    if active_only:
        services = services.filter(is_active=True)
    return [service_topology(s) for s in services]


def _declare_queue(channel: amqp.Channel, name: str, arguments: dict) -> None:
    """Declare one durable queue; a mismatch becomes a TopologyError naming the queue and the fix."""
    try:
        channel.queue_declare(name, durable=True, auto_delete=False, arguments=arguments or None)
    except amqp.exceptions.PreconditionFailed as exc:
        raise TopologyError(
            f"RabbitMQ queue '{name}' already exists with other arguments than {arguments or '{}'} "
            f"({exc.reply_text}). Its arguments cannot be changed in place. Fix: drain it, then delete it "
            f"(python manage.py delete_service_queues <slug> --yes, or rabbitmqctl delete_queue '{name}' "
            f"-p <vhost>) and restart the worker, which declares it again."
        ) from exc


def declare_base(channel: amqp.Channel) -> None:
    channel.exchange_declare(queues.EXCHANGE, "direct", durable=True, auto_delete=False)
    channel.exchange_declare(queues.DISCARDED_EXCHANGE, "fanout", durable=True, auto_delete=False)
    channel.queue_declare(queues.DISCARDED_QUEUE, durable=True, auto_delete=False)
    channel.queue_bind(queues.DISCARDED_QUEUE, queues.DISCARDED_EXCHANGE, routing_key="")


def declare_main(channel: amqp.Channel, slug: str) -> None:
    name = queues.main_queue_name(slug)
    _declare_queue(channel, name, queues.MAIN_QUEUE_ARGUMENTS)
    channel.queue_bind(name, queues.EXCHANGE, routing_key=name)


def declare_discardable(connection: amqp.Connection, slug: str, event_type: str, tickets: int) -> None:
    """The discardable queue of one type and its arming queue (on a channel of its own)."""
    channel = connection.channel()
    try:
        name = queues.discardable_queue_name(slug, event_type)
        _declare_queue(channel, name, queues.DISCARDABLE_QUEUE_ARGUMENTS)
        channel.queue_bind(name, queues.EXCHANGE, routing_key=name)
        arm = queues.arm_queue_name(slug, event_type)
        arguments = queues.arm_queue_arguments(tickets)
        try:
            channel.queue_declare(arm, durable=True, auto_delete=False, arguments=arguments)
        except amqp.exceptions.PreconditionFailed:
            # The service's concurrency (K) changed. The arming queue only holds
            # tokens, so it is recreated; tickets already in svc.<slug> stay valid
            # and at worst a few more than K run until the type runs dry.
            logger.info("arming queue recreated for a new ticket count", extra={"queue": arm, "tickets": tickets})
            channel = connection.channel()
            channel.queue_delete(arm)
            channel.queue_declare(arm, durable=True, auto_delete=False, arguments=arguments)
    finally:
        if channel.is_open:
            channel.close()


def declare_service(connection: amqp.Connection, topology: ServiceTopology) -> None:
    """Queues and bindings of one service (no policies: see ``apply_policies``)."""
    channel = connection.channel()
    try:
        declare_base(channel)
        declare_main(channel, topology.slug)
    finally:
        if channel.is_open:
            channel.close()
    for event_type in topology.discardable_types:
        declare_discardable(connection, topology.slug, event_type, topology.tickets)


def apply_policies(topology: ServiceTopology, management: Management | None = None) -> None:
    """Put the max-length policy of a service's discardable queues (takes effect on live queues)."""
    management = management or Management()
    management.put_policy(
        queues.discardable_policy_name(topology.slug),
        queues.discardable_policy_pattern(topology.slug),
        queues.discardable_policy_definition(topology.max_queue_size),
    )


@dataclass
class DeclareReport:
    declared: list[str] = field(default_factory=list)
    policy_errors: list[str] = field(default_factory=list)


def declare_all(
    slugs: list[str] | None = None,
    *,
    connection: amqp.Connection | None = None,
    policies: bool = True,
    strict_policies: bool = True,
) -> DeclareReport:
    """Declare the exchanges, queues and (with ``policies``) the policies of every service.

    Raises TopologyError for a queue with mismatching arguments and BrokerError
    when RabbitMQ is unreachable; a failing management API raises too unless
    ``strict_policies`` is False, in which case the error is reported and logged.
    """
    report = DeclareReport()
    own = connection is None
    connection = connection or open_connection()
    try:
        from project.queue_system.restarts import reconcile

        topologies = all_topologies(slugs)
        reconcile(connection)
        channel = connection.channel()
        declare_base(channel)
        channel.close()
        for topology in topologies:
            declare_service(connection, topology)
            report.declared.append(topology.slug)
    finally:
        if own:
            close_quietly(connection)
    if policies:
        management = Management()
        for topology in topologies:
            try:
                apply_policies(topology, management)
            except BrokerError as exc:
                if strict_policies:
                    raise
                report.policy_errors.append(f"{topology.slug}: {exc}")
                logger.error("max-length policy not applied", extra={"service": topology.slug, "error": str(exc)})
    return report


def apply_service(service) -> None:
    """Declare one service's queues and re-put its policy (admin save)."""
    topology = service_topology(service)
    connection = open_connection(timeout=3.0)
    try:
        declare_service(connection, topology)
    finally:
        close_quietly(connection)
    apply_policies(topology)


def delete_service_queues(slug: str, event_types: list[str] | None = None) -> list[str]:
    """Delete every queue and the policy of a service (messages in them are lost).

    ``event_types`` defaults to the discardable types known in the database plus
    any ``svc.<slug>.*`` queue the management API lists.
    """
    from project.queue_system.models import ServiceEventConfig

    management = Management()
    names = {queues.main_queue_name(slug)}
    types = set(event_types or [])
    types |= set(ServiceEventConfig.objects.filter(service__slug=slug).values_list("event_type", flat=True))
    for event_type in types:
        names.add(queues.discardable_queue_name(slug, event_type))
        names.add(queues.arm_queue_name(slug, event_type))
    try:
        names |= {
            n
            for n in management.queue_depths(prefix=f"svc.{slug}.")
            if n.startswith((f"svc.{slug}.discardable.", f"svc.{slug}.armed."))
        }
    except BrokerError:
        pass
    connection = open_connection()
    deleted = []
    try:
        for name in sorted(names):
            channel = connection.channel()
            try:
                channel.queue_delete(name)
                deleted.append(name)
            finally:
                if channel.is_open:
                    channel.close()
    finally:
        close_quietly(connection)
    management.delete_policy(queues.discardable_policy_name(slug))
    return deleted
