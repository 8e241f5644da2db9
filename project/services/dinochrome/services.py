"""DinoChrome (SYNC): drives the /dino/ game in Chromium and thanks viewers out loud.

What each event does is the action map of ``actions.py`` (a Rose restarts the game and
thanks the sender by name, a like makes the dino jump, ...). SYNC, so actions never
overlap: a phrase is spoken to the end (``wait=True``) before the next event starts.
"""

from __future__ import annotations

import json
from typing import Any

from project.app_config.config import get_config
from project.moderation import Screening, record, screen
from project.moderation.screening import COMMENT_BLOCKED
from project.queue_system.base_service import BaseQueueService, TransientError
from project.services.dinochrome.actions import (
    ACTIONS_CONFIG_KEY,
    Action,
    ActionMapError,
    actions_for,
    build_action_map,
    placeholders,
    render_text,
)
from project.services.dinochrome.browser_config import chrome_service_from_config
from project.services.dinochrome.chrome import ChromeError, ChromeService
from project.services.dinochrome.speech import speak

# A browser that cannot come back right now (the web server restarting, Chromium
# crashing in a loop) is worth retrying a little later rather than failing the gift.
BROWSER_RETRY_SECONDS = 5.0
# Said instead of a blocked nickname (Config moderation_neutral_name overrides it); the phrases are English.
NEUTRAL_NAME = "friend"


class DinoChromeService(BaseQueueService):
    def __init__(self, service: Any = None, **options: Any) -> None:
        super().__init__(service, **options)
        self.chrome: ChromeService | None = None
        self.headless = False
        self._reported_override: str | None = None

    @property
    def _slug(self) -> str:
        return self.service.slug if self.service is not None else "dinochrome"

    def on_start(self) -> None:
        self.chrome, self.headless = chrome_service_from_config(self.options)
        try:
            self.chrome.initialize_browser(headless=self.headless)
        except ChromeError as exc:
            # The worker stays up: voice actions still work and the next game action retries.
            self.logger.error("browser did not start: %s", exc, extra={"service": self._slug})

    def on_stop(self) -> None:
        if self.chrome is not None:
            self.chrome.close()

    def process_event(self, live_event: Any, queue_item: Any) -> bool:
        actions = actions_for(live_event, self.action_map())
        used = set().union(*(placeholders(a.text) for a in actions if a.kind == "say"))
        # Screened only when something is said: a like's jump needs no query.
        screening = screen(live_event) if used else None
        for action in actions:
            self.run_action(action, live_event, screening)
        if screening is not None:
            note = screening.note(COMMENT_BLOCKED if "comment" in used else None, name="nickname" in used)
            record(queue_item, note, log={"service": self._slug, "event_id": live_event.pk})
        self.logger.info(
            "actions done",
            extra={
                "service": self._slug,
                "event_id": live_event.pk,
                "event_type": live_event.event_type,
                "actions": ",".join(a.kind for a in actions) or "none",
            },
        )
        return True

    def action_map(self) -> dict[str, list[Action]]:
        """The defaults with the admin's override; read per event so edits apply at once."""
        override = self.options.get("actions") or get_config(ACTIONS_CONFIG_KEY)
        if isinstance(override, dict):
            override = json.dumps(override)
        try:
            return build_action_map(override or "")
        except ActionMapError as exc:
            if override != self._reported_override:
                self._reported_override = override
                self.logger.error(
                    "Config %s ignored, using the defaults: %s",
                    ACTIONS_CONFIG_KEY,
                    exc,
                    extra={"service": self._slug},
                )
            return build_action_map("")

    def run_action(self, action: Action, live_event: Any, screening: Screening | None = None) -> None:
        extra = {"service": self._slug, "event_id": live_event.pk, "action": action.kind}
        if action.kind == "say":
            screening = screening or screen(live_event)
            if screening.comment_blocked and "comment" in placeholders(action.text):
                self.logger.info("not spoken: the comment has a blocked word", extra=extra)
                return
            text = render_text(action.text, live_event, name=screening.spoken_name(NEUTRAL_NAME))
            path = speak(text)
            self.logger.info("spoke", extra={**extra, "audio": str(path)})
            return
        chrome = self._browser()
        try:
            if action.kind == "restart":
                before = chrome.get_score()
                chrome.restart()
                self.logger.info("game restarted", extra={**extra, "score_before": before})
            elif action.kind == "jump":
                chrome.jump()
            elif action.kind == "duck":
                chrome.duck()
        except ChromeError as exc:
            raise TransientError(f"{action.kind}: {exc}", retry_after=BROWSER_RETRY_SECONDS) from exc

    def _browser(self) -> ChromeService:
        if self.chrome is None:  # process_event without on_start (a direct call)
            self.chrome, self.headless = chrome_service_from_config(self.options)
            self.chrome.headless = self.headless
        return self.chrome
