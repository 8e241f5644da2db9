/*
 * Overlays page: listens to /overlays/events/ (server-sent events) and shows one card per
 * event for its display time; several at once, the newest at the bottom.
 *
 * EventSource reconnects by itself after a dropped connection, sending the id of the last
 * card it got (Last-Event-ID) so the server resumes after it. When it gives up (an HTTP
 * error answer, e.g. while the web server restarts) or goes silent past the server's
 * heartbeat, the page opens a new one with ?last_id=, backing off up to 10 s. While the
 * server's Redis is away the stream stays open: "unavailable", pings, then "available"
 * and the cards published since.
 * The page's own ?token= (the OBS URL the admin shows) goes on to every EventSource:
 * EventSource cannot send headers, and the events endpoint needs the token too.
 * window.overlays tells what is on screen (tests and debugging use it).
 */
(function () {
  "use strict";

  // Drawn icons, not emoji: an OBS machine may have no colour emoji font.
  const ICONS = {
    gift: "M3 8h18v4H3zM5 12h14v9H5zM11 8h2v13h-2zM12 8C10 4 6 4 7 7c.5 1.2 3 1 5 1zm0 0c2-4 6-4 5-1-.5 1.2-3 1-5 1z",
    follow: "M9 4a4 4 0 1 1 0 8 4 4 0 0 1 0-8zM1 20c0-4 4-6 8-6s8 2 8 6zM19 7h2v3h3v2h-3v3h-2v-3h-3v-2h3z",
    subscribe: "M12 2l3 6.6 7 .8-5.2 4.8 1.5 7L12 17.6 5.7 21.2l1.5-7L2 9.4l7-.8z",
    share: "M14 4l8 7-8 7v-4c-5 0-9 1.5-12 6 1-6 4-11 12-12z",
    comment: "M4 3h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H10l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z",
    like: "M12 21L3.5 12.6A5.2 5.2 0 0 1 12 5.8a5.2 5.2 0 0 1 8.5 6.8z",
    join: "M10 3h9a2 2 0 0 1 2 2v14a2 2 0 0 1-2 2h-9v-2h9V5h-9zM9 7l5 5-5 5v-3.5H2v-3h7z",
    other: "M12 2l2.5 7.5L22 12l-7.5 2.5L12 22l-2.5-7.5L2 12l7.5-2.5z",
  };
  const SVG = "http://www.w3.org/2000/svg";
  const LEAVE_MS = 280;
  const MAX_BACKOFF_MS = 10000;
  const TOKEN = new URLSearchParams(window.location.search).get("token");
  const cardsEl = document.getElementById("cards");
  const shown = new Map(); // card id -> { el, entry, timer }
  const history = [];
  let source = null;
  let lastId = null;
  let heartbeatMs = 15000;
  let backoffMs = 1000;
  let watchdog = null;
  let retryTimer = null;
  let connected = false;
  let connects = 0;
  let unavailable = false;
  let outages = 0;
  let opens = 0; // every open stream, the browser's own reconnects included

  function endpoint() {
    const url = new URL("events/", window.location.href); // the page's own query is not carried over
    if (TOKEN) url.searchParams.set("token", TOKEN);
    if (lastId) url.searchParams.set("last_id", lastId);
    return url.toString();
  }

  function connect() {
    retryTimer = null;
    if (source) source.close();
    connects += 1;
    source = new EventSource(endpoint());
    source.addEventListener("open", () => {
      opens += 1;
      connected = true;
      backoffMs = 1000;
      alive();
    });
    source.addEventListener("hello", (event) => {
      unavailable = false;
      heartbeatMs = JSON.parse(event.data).heartbeat_ms || heartbeatMs;
      alive();
    });
    source.addEventListener("ping", alive);
    source.addEventListener("unavailable", () => {
      if (!unavailable) outages += 1;
      unavailable = true;
      alive();
    });
    source.addEventListener("available", () => {
      unavailable = false;
      alive();
    });
    source.addEventListener("card", (event) => {
      alive();
      if (event.lastEventId) lastId = event.lastEventId;
      show(JSON.parse(event.data));
    });
    source.addEventListener("error", () => {
      connected = false;
      // CONNECTING: the browser is already retrying by itself. CLOSED: it gave up.
      if (source && source.readyState === EventSource.CLOSED) reconnectLater();
    });
  }

  function alive() {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => {
      connected = false;
      reconnectLater(); // silent past the heartbeat: the connection is dead without knowing it
    }, heartbeatMs * 2.5 + 2000);
  }

  function reconnectLater() {
    clearTimeout(watchdog);
    if (source) {
      source.close();
      source = null;
    }
    if (retryTimer) return;
    retryTimer = setTimeout(connect, backoffMs);
    backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
  }

  function element(tag, className, text) {
    const el = document.createElement(tag);
    el.className = className;
    if (text !== undefined) el.textContent = text; // user text is never parsed as HTML
    return el;
  }

  function drawnIcon(type) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", ICONS[type] || ICONS.other);
    svg.append(path);
    return svg;
  }

  function show(card) {
    const type = /^[a-z]+$/.test(card.type || "") ? card.type : "other";
    const previous = shown.get(card.id);
    if (previous) {
      // a retried event: its new card replaces the old one
      clearTimeout(previous.timer);
      previous.el.remove();
      shown.delete(card.id);
    }
    const el = element("article", `card ${type}`);
    el.dataset.cardId = card.id;
    el.dataset.type = type;
    const icon = element("div", "icon");
    if (card.image) {
      const img = new Image();
      img.alt = "";
      img.addEventListener("error", () => icon.replaceChildren(drawnIcon(type)));
      img.src = card.image;
      icon.append(img);
    } else {
      icon.append(drawnIcon(type));
    }
    const body = element("div", "body");
    body.append(element("div", "name", card.nickname || ""), element("div", "text", card.text || ""));
    el.append(icon, body);
    cardsEl.append(el);
    const now = Date.now();
    el.dataset.shownAt = String(now);
    const ms = Math.max(0, Number(card.remaining_ms ?? card.duration_ms) || 0);
    const entry = { id: card.id, type, shownAt: now, hiddenAt: null, durationMs: card.duration_ms, remainingMs: ms };
    history.push(entry);
    if (history.length > 500) history.shift();
    shown.set(card.id, { el, entry, timer: setTimeout(() => hide(card.id), ms) });
  }

  function hide(id) {
    const item = shown.get(id);
    if (!item) return;
    shown.delete(id);
    item.entry.hiddenAt = Date.now();
    item.el.classList.add("leaving");
    setTimeout(() => item.el.remove(), LEAVE_MS);
  }

  window.overlays = Object.freeze({
    visible: () => Array.from(shown.keys()),
    history: () => history.map((entry) => Object.assign({}, entry)),
    connected: () => connected,
    connects: () => connects,
    opens: () => opens,
    unavailable: () => unavailable,
    outages: () => outages,
    lastId: () => lastId,
  });

  // Leaving the page (a reload, OBS hiding the source) ends the stream at once: a page kept
  // in the back-forward cache would otherwise hold a server thread and a stream slot.
  // Coming back reconnects with lastId, so the cards published meanwhile still show.
  window.addEventListener("pagehide", () => {
    clearTimeout(watchdog);
    clearTimeout(retryTimer);
    retryTimer = null;
    connected = false;
    if (source) source.close();
    source = null;
  });
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) connect();
  });

  connect();
})();
