"""Capturing a TikTok LIVE: TikTokLive client → LiveEvent rows → EventDispatcher.

Modules: ``text_cleaning`` (names and chat), ``normalize`` (events → rows),
``streaks`` (gift streaks), ``pipeline`` (batches, de-duplication), ``store``
and ``dispatch`` (the writer thread's database and queue calls), ``client``
(TikTokLive configuration and error messages), ``runner`` (connect, reconnect,
watchdog, shutdown), ``simulator`` (``--simulate``), ``output`` (console lines).
"""
