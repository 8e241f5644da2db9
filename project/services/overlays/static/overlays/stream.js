/*
 * The event-stream client both OBS pages share: window.overlayStream(options) opens an
 * EventSource on options.url() and keeps one open for as long as the page shows.
 *
 * EventSource reconnects by itself after a dropped connection. When it gives up (an HTTP
 * error answer, e.g. while the web server restarts) or goes silent past the server's
 * heartbeat (the "hello" event tells it), a new one is opened, backing off up to 10 s;
 * options.url() is asked again each time, so a page can add where to resume.
 * options.on maps event names to handlers; every event counts as a sign of life.
 * Leaving the page (a reload, OBS hiding the source) ends the stream at once: a page kept
 * in the back-forward cache would otherwise hold a server thread and a stream slot.
 * Coming back from that cache reconnects.
 * Returns counters for the page's own test hooks.
 */
(function () {
  "use strict";

  const MAX_BACKOFF_MS = 10000;

  window.overlayStream = function (options) {
    const on = options.on || {};
    let source = null;
    let heartbeatMs = 15000;
    let backoffMs = 1000;
    let watchdog = null;
    let retryTimer = null;
    let connected = false;
    let connects = 0;
    let opens = 0; // every open stream, the browser's own reconnects included

    function connect() {
      retryTimer = null;
      if (source) source.close();
      connects += 1;
      source = new EventSource(options.url());
      source.addEventListener("open", () => {
        opens += 1;
        connected = true;
        backoffMs = 1000;
        alive();
      });
      source.addEventListener("hello", (event) => {
        heartbeatMs = JSON.parse(event.data).heartbeat_ms || heartbeatMs;
        alive();
        if (on.hello) on.hello(event);
      });
      source.addEventListener("ping", alive);
      for (const [name, handler] of Object.entries(on)) {
        if (name === "hello") continue;
        source.addEventListener(name, (event) => {
          alive();
          handler(event);
        });
      }
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
    return Object.freeze({
      connected: () => connected,
      connects: () => connects,
      opens: () => opens,
    });
  };
})();
