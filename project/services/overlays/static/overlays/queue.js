/*
 * The "Next up" page: listens to /overlays/queue/events/ (server-sent events) and shows the
 * service's running item, the next ones and how many wait. Every "queue" event carries the
 * whole snapshot, so the page simply redraws; a reconnect needs no resume id.
 *
 * EventSource reconnects by itself after a dropped connection; when it gives up (an HTTP
 * error answer) or goes silent past the server's heartbeat, the page opens a new one,
 * backing off up to 10 s. The page's ?service= and ?token= go on to every EventSource.
 * Nothing running and nothing waiting: the list fades out.
 * window.queueOverlay tells what is on screen (tests and debugging use it).
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
    waiting: "M5 2h14v2h-1.5v3.5L13 12l4.5 4.5V20H19v2H5v-2h1.5v-3.5L11 12 6.5 7.5V4H5zm3.5 2v2.7L12 10.2l3.5-3.5V4z",
  };
  const SVG = "http://www.w3.org/2000/svg";
  const MAX_BACKOFF_MS = 10000;
  const params = new URLSearchParams(window.location.search);
  const TOKEN = params.get("token");
  const SERVICE = params.get("service") || "";
  const queueEl = document.getElementById("queue");
  let nowEl = document.getElementById("now");
  const nextTitleEl = document.getElementById("next-title");
  const nextEl = document.getElementById("next");
  const waitingEl = document.getElementById("waiting");
  let source = null;
  let heartbeatMs = 15000;
  let backoffMs = 1000;
  let watchdog = null;
  let retryTimer = null;
  let connected = false;
  let unavailable = false;
  let snapshot = null;
  let renders = 0;

  function endpoint() {
    const url = new URL("events/", window.location.href); // the page's own query is not carried over
    url.searchParams.set("service", SERVICE);
    if (TOKEN) url.searchParams.set("token", TOKEN);
    return url.toString();
  }

  function connect() {
    retryTimer = null;
    if (source) source.close();
    source = new EventSource(endpoint());
    source.addEventListener("open", () => {
      connected = true;
      backoffMs = 1000;
      alive();
    });
    source.addEventListener("hello", (event) => {
      heartbeatMs = JSON.parse(event.data).heartbeat_ms || heartbeatMs;
      alive();
    });
    source.addEventListener("ping", alive);
    source.addEventListener("unavailable", () => {
      unavailable = true; // keep showing the last snapshot
      alive();
    });
    source.addEventListener("queue", (event) => {
      unavailable = false;
      alive();
      render(JSON.parse(event.data));
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
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text; // viewer text is never parsed as HTML
    return el;
  }

  function drawnIcon(name) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", ICONS[name] || ICONS.other);
    svg.append(path);
    return svg;
  }

  function row(tag, item, badge) {
    const known = /^[a-z]+$/.test(item.type || "") && item.type !== "waiting" && ICONS[item.type];
    const type = known ? item.type : "other";
    const el = element(tag, `row ${type}`);
    el.dataset.itemId = String(item.id);
    el.dataset.type = type;
    const icon = element("div", "icon");
    if (item.image) {
      const img = new Image();
      img.alt = "";
      img.addEventListener("error", () => icon.replaceChildren(drawnIcon(type)));
      img.src = item.image;
      icon.append(img);
    } else {
      icon.append(drawnIcon(type));
    }
    // "Ana's Rose ×5", "Ben followed"
    const what = element("div", "what");
    what.append(element("span", "name", item.nickname || "someone"));
    what.append(document.createTextNode(type === "gift" ? "’s " : " "));
    what.append(element("span", "text", item.text || ""));
    el.append(icon, what);
    if (badge) el.append(element("span", "badge", badge));
    return el;
  }

  function render(data) {
    snapshot = data;
    renders += 1;
    const running = data.running || null;
    const upcoming = Array.isArray(data.next) ? data.next : [];
    const waiting = Number(data.waiting) || 0;
    if (running) {
      const fresh = row("div", running, "now");
      fresh.id = "now";
      fresh.classList.add("now");
      nowEl.replaceWith(fresh);
      nowEl = fresh;
    } else {
      nowEl.hidden = true;
    }
    nextEl.replaceChildren(...upcoming.map((item, index) => row("li", item, index === 0 ? "next" : "")));
    nextTitleEl.hidden = upcoming.length === 0;
    waitingEl.hidden = waiting === 0;
    waitingEl.replaceChildren(drawnIcon("waiting"), element("span", "count", `${waiting} waiting`));
    queueEl.classList.toggle("empty", !running && waiting === 0);
  }

  function rows() {
    return Array.from(queueEl.querySelectorAll(".row:not([hidden])")).map((el) => ({
      id: Number(el.dataset.itemId),
      type: el.dataset.type,
      place: el.classList.contains("now") ? "now" : "next",
      text: el.querySelector(".what").textContent,
    }));
  }

  window.queueOverlay = Object.freeze({
    connected: () => connected,
    unavailable: () => unavailable,
    snapshot: () => (snapshot ? JSON.parse(JSON.stringify(snapshot)) : null),
    renders: () => renders,
    shown: () => !queueEl.classList.contains("empty"),
    rows,
    waiting: () => (waitingEl.hidden ? null : waitingEl.textContent),
  });

  // Leaving the page (a reload, OBS hiding the source) ends the stream at once: a page kept
  // in the back-forward cache would otherwise hold a server thread and a stream slot.
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
