"""Moderation before anything reaches the air (docs/moderation.md).

One module every speaking or showing path calls: DinoChrome's and the avatar's
thank-yous, the LLM service's and the avatar's replies, the overlays' cards.

- :mod:`.blocklist`: folding and matching (leetspeak, spacing, whole words);
- :mod:`.settings`: the Config keys, read per event, validated in the admin;
- :mod:`.screening`: the verdict on an event, the reply check, the QueueItem record;
- :mod:`.counts`: the per-session counts of the dashboard.
"""

from project.moderation.screening import Screening, check_reply, record, screen

__all__ = ["Screening", "check_reply", "record", "screen"]
