"""Per-live-session character accounting for ElevenLabs, with the optional cap.

The session a phrase is charged to is the one the caller names (a
``LiveSession`` or its id — services pass ``live_event.session_id``) or, when
none is named, the live session currently being captured (status ``live``,
latest started). Outside any live the row with no session is used.
"""

from __future__ import annotations

from django.db.models import F

from project.integrations.elevenlabs.models import TTSUsage
from project.tiktok_events.models import LiveSession

SessionRef = LiveSession | int | None


def resolve_session_id(session: SessionRef) -> int | None:
    if isinstance(session, LiveSession):
        return session.pk
    if session is not None:
        return int(session)
    return (
        LiveSession.objects.filter(status=LiveSession.Status.LIVE)
        .order_by("-started_at", "-pk")
        .values_list("pk", flat=True)
        .first()
    )


class SessionUsage:
    """The TTSUsage row of one session; every change is a single conditional UPDATE."""

    def __init__(self, session_id: int | None) -> None:
        self.session_id = session_id
        self.pk = TTSUsage.objects.get_or_create(session_id=session_id)[0].pk

    def _rows(self):
        return TTSUsage.objects.filter(pk=self.pk)

    def reserve(self, characters: int, cap: int | None) -> bool:
        """Take ``characters`` from the session's budget; False (nothing taken) if it would pass ``cap``."""
        rows = self._rows()
        if cap is not None:
            rows = rows.filter(characters__lte=cap - characters)
        return rows.update(characters=F("characters") + characters) == 1

    def refund(self, characters: int) -> None:
        self._rows().filter(characters__gte=characters).update(characters=F("characters") - characters)

    def record_success(self, credits: int) -> None:
        self._rows().update(requests=F("requests") + 1, credits=F("credits") + credits)

    def record_cache_hit(self) -> None:
        self._rows().update(cache_hits=F("cache_hits") + 1)

    def record_refused(self) -> None:
        self._rows().update(refused=F("refused") + 1)

    def characters(self) -> int:
        return self._rows().values_list("characters", flat=True).get()
