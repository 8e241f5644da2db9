# Design: docs/architecture.md#data-model
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from project.base_models import BaseModel
from project.queue_system.service_loader import validate_service_class

# The slug names RabbitMQ queues (svc.<slug>) and the Celery node (<slug>@host).
slug_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]{0,49}$",
    "Use lower-case letters, digits, '-' or '_', starting with a letter or digit (it names the queue svc.<slug>).",
)
event_type_validator = RegexValidator(
    r"^[A-Z][A-Za-z0-9]*Event$",
    "An event type is a TikTokLive class name ending in 'Event', e.g. GiftEvent.",
)


class Service(BaseModel):
    class Mode(models.TextChoices):
        SYNC = "SYNC", "SYNC (one at a time)"
        ASYNC = "ASYNC", "ASYNC (thread pool)"

    name = models.CharField(max_length=100, unique=True)
    slug = models.CharField(max_length=50, unique=True, validators=[slug_validator])
    service_class = models.CharField(
        max_length=255,
        validators=[validate_service_class],
        help_text="Dotted path of a BaseQueueService subclass, e.g. project.services.overlays.services.OverlaysService",
    )
    mode = models.CharField(max_length=5, choices=Mode.choices, default=Mode.SYNC)
    concurrency = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1)], help_text="Thread-pool size for ASYNC services."
    )
    max_queue_size = models.PositiveIntegerField(
        default=100,
        validators=[MinValueValidator(1)],
        help_text="How many discardable events of each type may wait; older ones are dropped beyond it.",
    )
    is_active = models.BooleanField(default=True, db_index=True)
    paused = models.BooleanField(
        default=False,
        help_text="Paused from the control room: its worker takes nothing from svc.<slug>; events wait.",
    )
    time_budget_seconds = models.PositiveIntegerField(
        "time budget (s)",
        default=300,
        validators=[MinValueValidator(5), MaxValueValidator(3600)],
        help_text="How long one event may take in this service (5–3600 s). Past it the event fails with "
        "'timed out after N s', the service's on_timeout runs and the next event starts.",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(concurrency__gte=1), name="service_concurrency_gte_1"),
            models.CheckConstraint(condition=models.Q(max_queue_size__gte=1), name="service_max_queue_size_gte_1"),
            models.CheckConstraint(
                condition=models.Q(time_budget_seconds__gte=5, time_budget_seconds__lte=3600),
                name="service_time_budget_5_3600",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def worker_concurrency(self) -> int:
        return 1 if self.mode == self.Mode.SYNC else self.concurrency


class ServiceEventConfig(BaseModel):
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="event_configs")
    event_type = models.CharField(max_length=64, validators=[event_type_validator])
    enabled = models.BooleanField(default=True)
    priority = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(10)], help_text="1–10, 10 is served first."
    )
    discardable = models.BooleanField(
        default=False, help_text="May be dropped (oldest first) when more than max_queue_size are waiting."
    )
    guest_gifts = models.BooleanField(
        default=False,
        help_text="React to gifts sent to a guest of a multi-guest LIVE (not only to the host).",
    )

    class Meta:
        ordering = ["service", "-priority", "event_type"]
        verbose_name = "service event configuration"
        constraints = [
            models.UniqueConstraint(fields=["service", "event_type"], name="unique_service_event_type"),
            models.CheckConstraint(condition=models.Q(priority__gte=1, priority__lte=10), name="config_priority_1_10"),
        ]

    def __str__(self) -> str:
        return f"{self.service} · {self.event_type} (P:{self.priority})"


class QueueItem(BaseModel):
    """One delivery of one event to one service (the seeds' ``EventQueue``)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        PROCESSING = "processing"
        COMPLETED = "completed"
        FAILED = "failed"
        DISCARDED = "discarded"

    # No single-column indexes on the two keys: the unique (live_event, service)
    # and the (service, status) indexes lead with them. Every index is paid on
    # each insert and on each status change, several per item (see Meta).
    live_event = models.ForeignKey(
        "tiktok_events.LiveEvent", on_delete=models.CASCADE, related_name="queue_items", db_index=False
    )
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="queue_items", db_index=False)
    event_type = models.CharField(max_length=64)
    priority = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(10)])
    discardable = models.BooleanField(default=False)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    moderation = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text="What moderation filtered for this service, and the blocklist entry it matched "
        "(docs/moderation.md). A filtered item still completes.",
    )
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # Indexes kept to what the workers, the stats and the admin query: an
        # item is inserted, marked dispatched, claimed and finished within
        # seconds, and each index costs every one of those writes. Setting
        # ``dispatched_at`` touches no indexed column, so it is a HOT update
        # (the table's fillfactor leaves room for it, migration 0002);
        # ``redispatch_pending`` finds the undispatched among the pending ones
        # through (status, event_type).
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["service", "status"], name="queueitem_service_status"),
            models.Index(fields=["status", "event_type"], name="queueitem_status_type"),
            # The dashboard's per-session moderation count. Partial: the unmoderated
            # items (nearly all) are never written to it.
            models.Index(fields=["live_event"], condition=~models.Q(moderation=""), name="queueitem_moderated"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["live_event", "service"], name="unique_event_per_service"),
        ]

    def __str__(self) -> str:
        return f"{self.service} · {self.event_type} #{self.live_event_id} [{self.status}]"
