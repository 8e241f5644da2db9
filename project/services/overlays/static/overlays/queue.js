/*
 * The "Next up" page: listens to /overlays/queue/events/ (server-sent events, through
 * stream.js) and shows the service's running item, the next ones and how many wait. Every
 * "queue" event carries the whole snapshot, so the page simply redraws; a reconnect needs
 * no resume id. The page's ?service= and ?token= go on to every EventSource.
 * Nothing running and nothing waiting: the list fades out.
 * window.queueOverlay tells what is on screen (tests and debugging use it).
 */
(function () {
  "use strict";

  const { element, svg, icon, hasIcon } = window.overlayDraw;
  const HOURGLASS = "M5 2h14v2h-1.5v3.5L13 12l4.5 4.5V20H19v2H5v-2h1.5v-3.5L11 12 6.5 7.5V4H5zm3.5 2v2.7L12 10.2l3.5-3.5V4z";
  const params = new URLSearchParams(window.location.search);
  const TOKEN = params.get("token");
  const SERVICE = params.get("service") || "";
  const queueEl = document.getElementById("queue");
  let nowEl = document.getElementById("now");
  const nextTitleEl = document.getElementById("next-title");
  const nextEl = document.getElementById("next");
  const waitingEl = document.getElementById("waiting");
  let unavailable = false;
  let snapshot = null;
  let renders = 0;

  function endpoint() {
    const url = new URL("events/", window.location.href); // the page's own query is not carried over
    url.searchParams.set("service", SERVICE);
    if (TOKEN) url.searchParams.set("token", TOKEN);
    return url.toString();
  }

  function row(tag, item, badge) {
    const type = /^[a-z]+$/.test(item.type || "") && hasIcon(item.type) ? item.type : "other";
    const el = element(tag, `row ${type}`);
    el.dataset.itemId = String(item.id);
    el.dataset.type = type;
    // "Ana's Rose ×5", "Ben followed"
    const what = element("div", "what");
    what.append(element("span", "name", item.nickname || "someone"));
    what.append(document.createTextNode(type === "gift" ? "’s " : " "));
    what.append(element("span", "text", item.text || ""));
    el.append(icon(type, item.image), what);
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
    waitingEl.replaceChildren(svg(HOURGLASS), element("span", "count", `${waiting} waiting`));
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

  const stream = window.overlayStream({
    url: endpoint,
    on: {
      unavailable: () => {
        unavailable = true; // keep showing the last snapshot
      },
      queue: (event) => {
        unavailable = false;
        render(JSON.parse(event.data));
      },
    },
  });

  window.queueOverlay = Object.freeze({
    connected: stream.connected,
    unavailable: () => unavailable,
    snapshot: () => (snapshot ? JSON.parse(JSON.stringify(snapshot)) : null),
    renders: () => renders,
    shown: () => !queueEl.classList.contains("empty"),
    rows,
    waiting: () => (waitingEl.hidden ? null : waitingEl.textContent),
  });
})();
