"""Service objects of the current worker process: created from ``Service.service_class``,
``on_start`` once before the first event, ``on_stop`` on a clean shutdown.

A SYNC worker runs its tasks in one prefork child, so the object lives there
(``worker_process_init``); an ASYNC worker runs them on threads of the main
process, which all share one object (started at ``worker_ready``). Whichever
comes first, a task asking for its service starts it if nobody has yet.
"""

from __future__ import annotations

import logging
import os
import threading

from project.queue_system.base_service import BaseQueueService
from project.queue_system.service_loader import load_service_class

logger = logging.getLogger("queue.runtime")

_lock = threading.Lock()
_instances: dict[str, BaseQueueService] = {}
_pid = os.getpid()


class ServiceStartError(RuntimeError):
    pass


def _forget_inherited() -> None:
    # A prefork child inherits the parent's dict; the objects in it (a browser,
    # sockets) belong to the parent, so the child starts its own.
    global _pid
    if os.getpid() != _pid:
        _instances.clear()
        _pid = os.getpid()


def service_instance(service) -> BaseQueueService:
    """The started service object for a Service row, starting it on first use."""
    _forget_inherited()
    instance = _instances.get(service.slug)
    if instance is not None:
        return instance
    with _lock:
        instance = _instances.get(service.slug)
        if instance is not None:
            return instance
        cls = load_service_class(service.service_class)
        instance = cls(service=service)
        try:
            instance.on_start()
        except Exception as exc:
            logger.exception("on_start failed", extra={"service": service.slug})
            raise ServiceStartError(f"{cls.__name__}.on_start failed: {type(exc).__name__}: {exc}") from exc
        logger.info("service started", extra={"service": service.slug, "pid": os.getpid()})
        _instances[service.slug] = instance
        return instance


def start_services(slugs: list[str]) -> None:
    """Start the services a worker serves, before its first event; a failure is logged and retried per event."""
    from django.db import close_old_connections

    from project.queue_system.models import Service

    close_old_connections()
    for service in Service.objects.filter(slug__in=slugs):
        try:
            service_instance(service)
        except Exception:  # noqa: S112 - already logged; the first event retries on_start
            continue


def stop_services() -> None:
    """Call on_stop of every started service of this process (clean shutdown)."""
    _forget_inherited()
    with _lock:
        instances = list(_instances.items())
        _instances.clear()
    for slug, instance in instances:
        try:
            instance.on_stop()
            logger.info("service stopped", extra={"service": slug, "pid": os.getpid()})
        except Exception:
            logger.exception("on_stop failed", extra={"service": slug})
