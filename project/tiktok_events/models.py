# Design: docs/architecture.md#data-model
from django.db import models

from project.base_models import BaseModel


class EventType(models.TextChoices):
    """The seeds' names for the events services subscribe to.

    Any other TikTokLive event is stored under its own class name, so
    ``LiveEvent.event_type`` is not limited to these.
    """

    GIFT = "GiftEvent"
    SUBSCRIBE = "SubscribeEvent"
    FOLLOW = "FollowEvent"
    SHARE = "ShareEvent"
    COMMENT = "CommentEvent"
    LIKE = "LikeEvent"
    JOIN = "JoinEvent"


class LiveSession(BaseModel):
    class Status(models.TextChoices):
        CONNECTING = "connecting"
        LIVE = "live"
        ENDED = "ended"
        FAILED = "failed"

    name = models.CharField(max_length=200, blank=True, default="")
    streamer = models.CharField(max_length=100, db_index=True)
    room_id = models.CharField(max_length=64, blank=True, default="")
    started_at = models.DateTimeField(db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CONNECTING, db_index=True)
    end_reason = models.CharField(max_length=255, blank=True, default="")
    # A session of test events from the control room: left out of reports and of any
    # "current live" selection, deletable with its events in one action.
    is_test = models.BooleanField(default=False)
    # What the capture saw of the connection, for the post-live report; null on a
    # session whose capture did not record them.
    reconnects = models.PositiveIntegerField(null=True, blank=True)
    behind_max_seconds = models.FloatField(
        null=True, blank=True, help_text="How far the capture fell behind the live at worst (s)."
    )
    # While the capture has lost the socket of a live session: why, and when it tries again
    # (the control room shows it); empty while connected.
    connection_note = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        label = self.name or "unnamed"
        return f"#{self.pk} {label} (@{self.streamer})"


class LiveEvent(BaseModel):
    """One TikTok event as received, with the user's names raw and cleaned."""

    class Streak(models.TextChoices):
        NONE = "none", "not a streak"
        OPEN = "open", "streak in progress"
        ENDED = "ended", "streak ended"
        TIMED_OUT = "timed_out", "streak closed by timeout"

    # Indexes: every one is written for each event of a flood, so only those that
    # serve a query (see Meta.indexes); session_id is the first column of two of them.
    created_at = models.DateTimeField(auto_now_add=True)
    session = models.ForeignKey(LiveSession, on_delete=models.CASCADE, related_name="events", db_index=False)
    event_type = models.CharField(max_length=64)
    # TikTok's message id: the same message delivered twice (after a reconnect) is stored once.
    msg_id = models.BigIntegerField(null=True, blank=True)
    user_id = models.CharField(max_length=32, blank=True, default="")
    user_unique_id = models.CharField(max_length=100, blank=True, default="")
    user_nickname = models.CharField(max_length=200, blank=True, default="", help_text="Cleaned nickname.")
    user_nickname_raw = models.TextField(blank=True, default="", help_text="Nickname exactly as TikTok sent it.")
    event_data = models.JSONField(default=dict, blank=True)
    streak_status = models.CharField(max_length=12, choices=Streak.choices, default=Streak.NONE)
    repeat_count = models.PositiveIntegerField(default=1)
    received_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        # Plain b-trees for the admin's filters and exact lookups; no varchar_pattern_ops
        # twins (what db_index adds on PostgreSQL): the admin searches with icontains,
        # which no b-tree serves.
        indexes = [
            models.Index(fields=["session", "event_type"], name="liveevent_session_type"),
            models.Index(fields=["event_type"], name="liveevent_event_type"),
            models.Index(fields=["user_id"], name="liveevent_user_id"),
            models.Index(fields=["user_unique_id"], name="liveevent_user_unique_id"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "msg_id"],
                condition=models.Q(msg_id__isnull=False),
                name="liveevent_unique_msg_per_session",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} #{self.pk} by {self.user_nickname or self.user_unique_id}"
