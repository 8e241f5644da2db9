/*
 * Overlays page: listens to /overlays/events/ (server-sent events, through stream.js) and
 * shows one card per event for its display time; several at once, the newest at the bottom.
 *
 * A reconnect resumes after the last card: EventSource sends its id (Last-Event-ID) by
 * itself, and a new EventSource gets it as ?last_id=. While the server's Redis is away the
 * stream stays open: "unavailable", pings, then "available" and the cards published since.
 * The page's own ?token= (the OBS URL the admin shows) goes on to every EventSource:
 * EventSource cannot send headers, and the events endpoint needs the token too.
 * window.overlays tells what is on screen (tests and debugging use it).
 */
(function () {
  "use strict";

  const { element, icon } = window.overlayDraw;
  const LEAVE_MS = 280;
  const TOKEN = new URLSearchParams(window.location.search).get("token");
  const cardsEl = document.getElementById("cards");
  const shown = new Map(); // card id -> { el, entry, timer }
  const history = [];
  let lastId = null;
  let unavailable = false;
  let outages = 0;

  function endpoint() {
    const url = new URL("events/", window.location.href); // the page's own query is not carried over
    if (TOKEN) url.searchParams.set("token", TOKEN);
    if (lastId) url.searchParams.set("last_id", lastId);
    return url.toString();
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
    const body = element("div", "body");
    body.append(element("div", "name", card.nickname || ""), element("div", "text", card.text || ""));
    el.append(icon(type, card.image), body);
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

  const stream = window.overlayStream({
    url: endpoint,
    on: {
      hello: () => {
        unavailable = false;
      },
      unavailable: () => {
        if (!unavailable) outages += 1;
        unavailable = true;
      },
      available: () => {
        unavailable = false;
      },
      card: (event) => {
        if (event.lastEventId) lastId = event.lastEventId;
        show(JSON.parse(event.data));
      },
    },
  });

  window.overlays = Object.freeze({
    visible: () => Array.from(shown.keys()),
    history: () => history.map((entry) => Object.assign({}, entry)),
    connected: stream.connected,
    connects: stream.connects,
    opens: stream.opens,
    unavailable: () => unavailable,
    outages: () => outages,
    lastId: () => lastId,
  });
})();
