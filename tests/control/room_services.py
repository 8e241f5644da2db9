"""A service class for the control room tests: it can skip what it runs (``cancel_current``)."""

from __future__ import annotations

import threading

from tests.support.recording_service import RecordingService


class SkippableService(RecordingService):
    """Holds each event for ``event_data["hold"]`` seconds unless the control room skips it."""

    def on_start(self):
        super().on_start()
        self._cancel = threading.Event()

    def process_event(self, live_event, queue_item):
        data = live_event.event_data or {}
        self._cancel.clear()
        self._record("start", item=queue_item.pk)
        if self._cancel.wait(float(data.get("hold", 0))):
            self._record("skipped", item=queue_item.pk)
        else:
            self._record("end", item=queue_item.pk)
        return True

    def cancel_current(self):
        self._cancel.set()
