# Design: docs/architecture.md#processes
"""The control room's hold on a running worker: pause/resume, heartbeat, skip (project/queue_system/control.py).

- ``PausedAtStart``: a consumer bootstep that runs after Celery built its task
  consumer and before the event loop consumes: a worker started (or
  reconnected) while its service is paused never takes a message.
- ``tte_sync_pause``: a remote control command the web process broadcasts when
  the flag changes. It runs in the consumer's own thread (where the broker
  channel may be used), reads the flag and cancels or adds the consumer of
  ``svc.<slug>``. Cancelling acks and drops nothing: what the worker already
  holds finishes, the rest waits in the queue.
- ``ControlWatch``: a thread of the worker's main process that writes a
  heartbeat (node, consuming or not) to Redis every ``HEARTBEAT_EVERY`` s and
  re-reads the flag, asking its own worker to apply it when a broadcast was
  missed.
- ``SkipListener``: a thread in the process that holds the service objects (the
  prefork child of a SYNC worker, the main process of an ASYNC one), calling
  ``cancel_current()`` when the control room asks to skip.
"""

from __future__ import annotations

import logging
import threading

from celery import bootsteps
from celery.worker.control import control_command

from project.queue_system import control, queues

logger = logging.getLogger("queue.control")

_consumer = None  # Celery's Consumer of this worker, kept by the bootstep


def _paused(slug: str) -> bool:
    from django.db import close_old_connections

    from project.queue_system.models import Service

    close_old_connections()
    return bool(Service.objects.filter(slug=slug).values_list("paused", flat=True).first())


def consuming(slug: str) -> bool:
    consumer = _consumer
    task_consumer = getattr(consumer, "task_consumer", None)
    return bool(task_consumer is not None and task_consumer.consuming_from(queues.main_queue_name(slug)))


def apply_flag(consumer, slug: str) -> str:
    """Make the worker consume ``svc.<slug>`` or not, as the flag says; runs in the consumer's thread."""
    name = queues.main_queue_name(slug)
    paused = _paused(slug)
    now_consuming = consumer.task_consumer is not None and consumer.task_consumer.consuming_from(name)
    if paused and now_consuming:
        consumer.cancel_task_queue(name)
        logger.warning(f"⏸️  {slug} paused from the control room: no new message is taken", extra={"service": slug})
        return "paused"
    if not paused and not now_consuming:
        consumer.add_task_queue(name)
        logger.warning(f"▶️  {slug} resumed from the control room", extra={"service": slug})
        return "resumed"
    return "paused" if paused else "running"


class PausedAtStart(bootsteps.StartStopStep):
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c, **kwargs):
        super().__init__(c, **kwargs)
        self.slugs: list[str] = []

    def start(self, c) -> None:
        global _consumer
        from workers.hooks import SLUGS

        _consumer = c
        for slug in SLUGS:
            try:
                if _paused(slug):
                    apply_flag(c, slug)
            except Exception:  # the database away: the watch thread applies the flag later
                logger.exception("could not read the pause flag at start", extra={"service": slug})


@control_command(args=[("slug", str)], signature="<slug>")
def tte_sync_pause(state, slug):
    """Apply the service's pause flag (the control room's pause/resume)."""
    from workers.hooks import SLUGS

    if slug not in SLUGS:
        return {"ok": "not served here"}
    return {"ok": apply_flag(state.consumer, slug)}


class ControlWatch(threading.Thread):
    def __init__(self, slugs: list[str], node: str, interval: float = control.HEARTBEAT_EVERY) -> None:
        super().__init__(name="control-watch", daemon=True)
        self.slugs = slugs
        self.node = node
        self.interval = interval
        self._stop_event = threading.Event()
        self._client = None

    def stop(self) -> None:
        self._stop_event.set()
        try:
            client = self._client or control.redis_client()
            for slug in self.slugs:
                control.remove_heartbeat(client, slug, self.node)
        except Exception:  # noqa: S110 - the heartbeat expires by itself
            pass

    def run(self) -> None:
        failing = False
        while not self._stop_event.is_set():
            try:
                self.check()
                failing = False
            except Exception as exc:
                if not failing:  # once per outage, not every 2 s
                    logger.warning("control watch failed", extra={"error": str(exc)[:200]})
                failing = True
                self._client = None
            self._stop_event.wait(self.interval)

    def check(self) -> None:
        from project.celery import app

        if self._client is None:
            self._client = control.redis_client()
        for slug in self.slugs:
            if _consumer is None:
                continue
            is_consuming = consuming(slug)
            control.write_heartbeat(self._client, slug, self.node, is_consuming)
            if _paused(slug) == is_consuming:
                # A broadcast was missed (the worker was reconnecting): ask our own consumer thread.
                app.control.broadcast(control.PAUSE_COMMAND, arguments={"slug": slug}, destination=[self.node])


class SkipListener(threading.Thread):
    """Calls ``cancel_current`` of this process's service objects when the control room asks."""

    def __init__(self, slugs: list[str]) -> None:
        super().__init__(name="skip-listener", daemon=True)
        self.slugs = slugs
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        channels = {control.skip_channel(slug): slug for slug in self.slugs}
        failing = False
        while not self._stop_event.is_set():
            try:
                client = control.redis_client()
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(*channels)
                failing = False
                while not self._stop_event.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self.skip(channels.get(message["channel"].decode(), ""))
            except Exception as exc:  # Redis away: listen again once it is back
                if not failing:
                    logger.warning("skip listener lost Redis", extra={"error": str(exc)[:200]})
                failing = True
                self._stop_event.wait(2.0)

    def skip(self, slug: str) -> None:
        from project.queue_system import runtime

        instance = runtime._instances.get(slug)
        if instance is None:
            return
        logger.warning(f"⏭️  {slug}: skipping the current item (control room)", extra={"service": slug})
        try:
            instance.cancel_current()
        except Exception:
            logger.exception("cancel_current raised", extra={"service": slug})
