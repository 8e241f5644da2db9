"""Asking an LLM on a viewer's behalf: what every reply path shares (the LLM service, the avatar).

- the prompt quotes and caps what the viewer typed (:func:`prompts.build_prompt`), and
  the system prompt says quoted text is to be commented on, never obeyed;
- ``max_tokens`` bounds what a reply may cost (Config ``<prefix>_max_tokens``);
- a viewer gets at most one reply per interval (Config ``<prefix>_reply_cooldown_seconds``,
  :class:`ViewerCooldown`), shared by every worker of the service.

``prefix`` is ``llm`` for the LLM service and ``avatar`` for the avatar, so each
keeps its own limits and its own cooldowns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from project.integrations.config_values import config_int
from project.integrations.errors import IntegrationError
from project.integrations.llm.cooldown import ViewerCooldown
from project.integrations.llm.prompts import viewer_name
from project.redis_outage import plan_for

if TYPE_CHECKING:
    from project.integrations.llm.client import ChatResult, LLMClient

DEFAULT_COOLDOWN_SECONDS = 60
DEFAULT_MAX_TOKENS = 120


@dataclass(frozen=True)
class ReplyLimits:
    cooldown_seconds: int
    max_tokens: int

    @classmethod
    def from_config(cls, prefix: str) -> ReplyLimits:
        """``<prefix>_reply_cooldown_seconds`` (60; 0 = no limit) and ``<prefix>_max_tokens`` (120)."""
        return cls(
            cooldown_seconds=config_int(f"{prefix}_reply_cooldown_seconds", DEFAULT_COOLDOWN_SECONDS),
            max_tokens=config_int(f"{prefix}_max_tokens", DEFAULT_MAX_TOKENS, minimum=1),
        )


def viewer_key(live_event: Any) -> str:
    """Who the cooldown counts: the @handle, else TikTok's user id, else the name."""
    return live_event.user_unique_id or live_event.user_id or viewer_name(live_event)


def ask_for_viewer(
    client: LLMClient,
    prompt: str,
    *,
    service_slug: str,
    live_event: Any,
    queue_item: Any,
    limits: ReplyLimits,
    time_budget: float,
    deadline: float | None,
    logger: logging.Logger,
    log: dict[str, Any],
) -> ChatResult | None:
    """The LLM's answer, or None while the viewer is cooling down.

    A failed call gives the viewer's claim back (their next message may be answered)
    and raises the client's error.
    """
    viewer = viewer_key(live_event)
    # A Redis outage is waited out in the claim, keeping half the time budget for the
    # LLM call and the speech after it (the whole wait with the default 300 s budget).
    outage = plan_for(queue_item, time_budget=time_budget, reserve=time_budget / 2)
    cooldown = ViewerCooldown(service_slug, limits.cooldown_seconds, wait_seconds=outage.wait_seconds)
    if not cooldown.claim(viewer, live_event.pk, retry_after=outage.retry_after):
        logger.info(
            "no reply: %s was answered less than %s s ago (%s s left)",
            viewer,
            cooldown.seconds,
            cooldown.remaining(viewer),
            extra=log,
        )
        return None
    try:
        return client.complete(prompt, max_tokens=limits.max_tokens, deadline=deadline)
    except IntegrationError:
        cooldown.release(viewer, live_event.pk)
        raise
