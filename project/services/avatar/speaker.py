"""Make the avatar say something from synchronous code (the avatar service's worker).

The text goes to the live avatar session recorded in Redis (a browser's, opened
by the avatar server) when there is one. Otherwise the speaker opens a session
of its own, records it, and stops it after ``idle_seconds`` without speech, so
chat keeps the avatar talking without leaving a paid session running.

HeyGen is called with the async :class:`HeyGenService` on an event loop in a
thread of its own: the worker thread waits for each call, and the idle timer
runs on that loop even when no event arrives.

A speech ends by the caller's ``deadline`` (the item's time budget less a
margin, :mod:`project.integrations.deadlines`): past it the speech is
interrupted and a retryable :class:`HeyGenError` raised, so the worker never
has to kill the handler. Which session an item speaks through is written to
:mod:`.item_sessions` first, so ``AvatarService.on_timeout`` can stop it from
another process if the handler was killed all the same.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import os
import socket
import threading
import time

from project.integrations.deadlines import seconds_left
from project.integrations.heygen.client import HeyGenError, HeyGenService, StreamingSession
from project.services.avatar.configuration import AvatarSettings
from project.services.avatar.item_sessions import ItemSessions
from project.services.avatar.session_registry import SessionRegistry

logger = logging.getLogger("avatar.speaker")

# HeyGen answers a "sync" task only when the avatar has finished saying it.
TASK_TIMEOUT = 180.0
# streaming.new, .start, .stop and .interrupt answer within seconds.
CALL_TIMEOUT = 30.0
# Without a caller's deadline: the default item budget (300 s) less its margin.
DEFAULT_SPEAK_SECONDS = 270.0
# Past the deadline, time for the interrupted speech's clean-up (interrupt, stop a half-open session).
CLEANUP_SECONDS = 15.0
# An item's session record outlives its budget by this much, for on_timeout to find.
ITEM_RECORD_EXTRA_SECONDS = 600


class AvatarSpeaker:
    def __init__(
        self, settings: AvatarSettings, registry: SessionRegistry | None = None, items: ItemSessions | None = None
    ) -> None:
        self.settings = settings
        self.idle_seconds = settings.service_idle_seconds
        self.owner = f"service:{socket.gethostname()}:{os.getpid()}"
        self.registry = registry or SessionRegistry(ttl=int(self.idle_seconds) + 30)
        self.items = items or ItemSessions()
        self.own: StreamingSession | None = None
        # The speech being said now (on the speaker's loop), for skip().
        self._current: asyncio.Task | None = None
        self._speaking_now: list[str] = []
        self._last_spoke = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="avatar-speaker", daemon=True)
        self._thread.start()
        self._lock = asyncio.Lock()  # binds to the speaker's loop on first use
        self._heygen = HeyGenService(
            settings.heygen_api_key,
            settings.heygen_avatar_id,
            base_url=settings.heygen_base_url,
            quality=settings.heygen_quality,
            timeout=TASK_TIMEOUT,
        )

    # --- what the service calls (from its own thread) ----------------------------------

    def speak(self, text: str, *, deadline: float | None = None, item_key: str | None = None) -> str:
        """Say ``text`` by ``deadline`` (a ``time.monotonic()`` instant); returns the id of the session that said it.

        ``item_key`` (the queue item's id) names the record ``on_timeout`` reads.
        Raises :class:`HeyGenError`, retryable when the deadline passed.
        """
        if deadline is None:
            deadline = time.monotonic() + DEFAULT_SPEAK_SECONDS
        seconds = seconds_left(deadline, math.inf)
        if seconds <= 0:
            raise HeyGenError("streaming.task", "no time left in the item's time budget")
        future = asyncio.run_coroutine_threadsafe(self._speak_by(text, deadline, item_key), self._loop)
        try:
            return future.result(timeout=seconds + CLEANUP_SECONDS)
        except concurrent.futures.CancelledError:
            return ""  # skipped from the control room (skip())
        except concurrent.futures.TimeoutError:
            future.cancel()  # the loop is stuck somewhere the deadline could not reach: give up on it
            raise HeyGenError("streaming.task", f"no answer within {seconds:.0f} s (the item's time budget)") from None

    def skip(self) -> bool:
        """Cut the speech being said short (the control room's skip): HeyGen interrupts the avatar
        and the waiting ``speak`` returns "". False when nothing was being said."""
        if not self._thread.is_alive():
            return False
        return self._run_coro(self._skip(), timeout=CALL_TIMEOUT)

    def close(self) -> None:
        """Stop the session this speaker opened (if any) and its loop."""
        if not self._thread.is_alive():
            return
        try:
            self._run_coro(self._shutdown(), timeout=60)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self.registry.close()
            self.items.close()

    # --- on the speaker's loop -----------------------------------------------------------

    async def _skip(self) -> bool:
        task, speaking = self._current, self._speaking_now
        if task is None or task.done():
            return False
        if speaking:
            with contextlib.suppress(HeyGenError):
                await self._heygen.interrupt(speaking[-1], timeout=CLEANUP_SECONDS / 2)
        task.cancel()
        return True

    async def _speak_by(self, text: str, deadline: float, item_key: str | None) -> str:
        speaking: list[str] = []  # the session the task went to, if it was sent
        self._current, self._speaking_now = asyncio.current_task(), speaking
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                return await self._speak(text, deadline, item_key, speaking)
        except TimeoutError:
            if speaking:
                # The avatar may still be saying it: the retry must not talk over it.
                with contextlib.suppress(HeyGenError):
                    await self._heygen.interrupt(speaking[-1], timeout=CLEANUP_SECONDS / 2)
            raise HeyGenError(
                "streaming.task", "the avatar had not finished speaking when the item's time budget ran out"
            ) from None
        finally:
            self._current = None
            if item_key is not None:
                # The handler returns by itself: on_timeout has nothing to clean up for this item.
                await self._items("forget", item_key)

    async def _speak(self, text: str, deadline: float, item_key: str | None, speaking: list[str]) -> str:
        async with self._lock:
            shared = await self._registry("current")
            if shared is not None and (self.own is None or shared.session_id != self.own.session_id):
                if self.own is not None:
                    await self._stop_own("a newer session is live")
                try:
                    await self._note(item_key, shared.session_id, own=False, deadline=deadline)
                    speaking.append(shared.session_id)
                    await self._heygen.send_task(
                        text,
                        "repeat",
                        "sync",
                        session_id=shared.session_id,
                        timeout=seconds_left(deadline, TASK_TIMEOUT),
                    )
                    return shared.session_id
                except HeyGenError as exc:
                    if not exc.session_unusable:
                        raise
                    # The record outlived its session (its owner crashed): forget it, speak through our own.
                    logger.info("shared avatar session %s is gone: %s", shared.session_id, exc)
                    await self._registry("withdraw", shared.session_id)
            return await self._speak_through_own(text, deadline, item_key, speaking)

    async def _speak_through_own(self, text: str, deadline: float, item_key: str | None, speaking: list[str]) -> str:
        for attempt in (1, 2):
            if self.own is None:
                await self._open_own(item_key, deadline)
            assert self.own is not None
            try:
                await self._note(item_key, self.own.session_id, own=True, deadline=deadline)
                speaking.append(self.own.session_id)
                await self._heygen.send_task(
                    text,
                    "repeat",
                    "sync",
                    session_id=self.own.session_id,
                    timeout=seconds_left(deadline, TASK_TIMEOUT),
                )
            except HeyGenError as exc:
                if not exc.session_unusable or attempt == 2:
                    raise
                # HeyGen closed it (its own idle timeout): open a fresh one once.
                await self._stop_own(f"unusable: {exc}")
                continue
            self._last_spoke = time.monotonic()
            await self._registry("refresh", self.own.session_id)
            self._arm_idle_timer()
            return self.own.session_id
        raise AssertionError("unreachable")

    async def _open_own(self, item_key: str | None, deadline: float) -> None:
        session = await self._heygen.create_streaming_avatar(timeout=seconds_left(deadline, CALL_TIMEOUT))
        try:
            # Billed from now on: recorded before anything else can hang or be killed.
            await self._note(item_key, session.session_id, own=True, deadline=deadline)
            await self._heygen.start_session(session.session_id, timeout=seconds_left(deadline, CALL_TIMEOUT))
        except BaseException:
            await self._heygen.stop_session(session.session_id, timeout=CALL_TIMEOUT)
            raise
        self.own = session
        self._last_spoke = time.monotonic()
        await self._registry("publish", session.session_id, self.owner)
        logger.info(
            "avatar service opened its own session", extra={"service": "avatar", "session_id": session.session_id}
        )

    async def _stop_own(self, reason: str) -> None:
        session, self.own = self.own, None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if session is None:
            return
        # Withdrawn first: nobody may pick a session from the registry that is being stopped
        # (and a test that saw HeyGen close it found the key still there).
        await self._registry("withdraw", session.session_id)
        await self._heygen.stop_session(session.session_id, timeout=CALL_TIMEOUT)
        logger.info(
            "avatar service stopped its session (%s)",
            reason,
            extra={"service": "avatar", "session_id": session.session_id},
        )

    def _arm_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._idle_timer = self._loop.call_later(self.idle_seconds, lambda: self._loop.create_task(self._idle_check()))

    async def _idle_check(self) -> None:
        async with self._lock:
            if self.own is not None and time.monotonic() - self._last_spoke >= self.idle_seconds - 0.01:
                await self._stop_own(f"idle for {self.idle_seconds:.0f} s")

    async def _shutdown(self) -> None:
        async with self._lock:
            await self._stop_own("worker stopping")
        await self._heygen.close()

    async def _registry(self, method: str, *args: str):
        """Redis trouble must not silence the avatar: without it each side just opens its own session."""
        try:
            return await asyncio.to_thread(getattr(self.registry, method), *args)
        except Exception as exc:
            logger.warning("Redis %s of the live avatar session failed: %s", method, exc, extra={"service": "avatar"})
            return None

    async def _note(self, item_key: str | None, session_id: str, *, own: bool, deadline: float) -> None:
        if item_key is None:
            return
        ttl = int(seconds_left(deadline, math.inf)) + ITEM_RECORD_EXTRA_SECONDS
        await self._items("record", item_key, session_id, own=own, owner=self.owner, ttl=ttl)

    async def _items(self, method: str, *args, **kwargs) -> None:
        """Best-effort like the registry: without Redis, on_timeout has nothing to stop, the speech goes on."""
        try:
            await asyncio.to_thread(getattr(self.items, method), *args, **kwargs)
        except Exception as exc:
            logger.warning("Redis %s of the item's avatar session failed: %s", method, exc, extra={"service": "avatar"})

    def _run_coro(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout)
