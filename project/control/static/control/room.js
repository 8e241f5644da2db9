// The control room's live page: applies each snapshot the server streams (one a second)
// to the server-rendered page, and keeps a rolling 5-minute chart of events per second.
// Text from viewers (nicknames, reasons) only ever goes in through textContent.
(function () {
  "use strict";

  var script = document.currentScript;
  var streamUrl = script.getAttribute("data-stream");
  var initial = JSON.parse(document.getElementById("room-snapshot").textContent);
  var windowSeconds = initial.window_seconds || 300;
  var counts = {}; // event type -> {epoch second: count}
  var lastEpoch = initial.epoch;
  var chart = null;
  var COLORS = ["#58a6ff", "#3fb950", "#d29922", "#f85149", "#bc8cff", "#39c5cf", "#ff7b72", "#e3b341", "#8b949e"];

  window.controlRoom = { snapshots: 0, state: "snapshot", last: initial };

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function fmt(value, suffix) {
    return value === null || value === undefined ? "—" : value + (suffix || "");
  }

  function mergeRates(rates) {
    Object.keys(rates).forEach(function (type) {
      var per = (counts[type] = counts[type] || {});
      Object.keys(rates[type]).forEach(function (second) {
        per[second] = rates[type][second];
      });
    });
  }

  function chartData(now) {
    var labels = [];
    for (var s = now - windowSeconds + 1; s <= now; s++) labels.push(s);
    var types = Object.keys(counts).sort();
    var datasets = types.map(function (type, n) {
      var per = counts[type];
      Object.keys(per).forEach(function (second) {
        if (+second <= now - windowSeconds) delete per[second];
      });
      return {
        label: type,
        data: labels.map(function (second) { return per[second] || 0; }),
        borderColor: COLORS[n % COLORS.length],
        backgroundColor: COLORS[n % COLORS.length],
        borderWidth: 1.5,
        pointRadius: 0,
        tension: 0.2,
      };
    });
    return {
      labels: labels.map(function (second) {
        var ago = now - second;
        return ago % 60 === 0 ? (ago ? "-" + ago / 60 + " min" : "now") : "";
      }),
      datasets: datasets,
    };
  }

  function drawChart(now) {
    var canvas = document.getElementById("rate-chart");
    if (!canvas || typeof Chart === "undefined") return;
    var data = chartData(now);
    if (!chart) {
      chart = new Chart(canvas, {
        type: "line",
        data: data,
        options: {
          animation: false,
          maintainAspectRatio: false,
          interaction: { mode: "index", intersect: false },
          scales: {
            x: { ticks: { autoSkip: false, color: "#98a2b1", maxRotation: 0 }, grid: { display: false } },
            y: { beginAtZero: true, ticks: { color: "#98a2b1", precision: 0 }, grid: { color: "#2c333d" } },
          },
          plugins: { legend: { labels: { color: "#e6e9ee", boxWidth: 12 } } },
        },
      });
    } else {
      chart.data.labels = data.labels;
      chart.data.datasets = data.datasets;
      chart.update("none");
    }
  }

  function setField(card, name, value) {
    var node = card.querySelector('[data-field="' + name + '"]');
    if (node) node.textContent = value;
    return node;
  }

  function replaceRows(tbody, rows, emptyText, columns) {
    if (!tbody) return;
    var fragment = document.createDocumentFragment();
    if (!rows.length) {
      var tr = el("tr");
      var td = el("td", emptyText, "muted");
      td.colSpan = columns;
      tr.appendChild(td);
      fragment.appendChild(tr);
    }
    rows.forEach(function (cells) {
      var tr = el("tr");
      cells.forEach(function (cell) {
        tr.appendChild(cell instanceof Node ? cell : el("td", cell));
      });
      fragment.appendChild(tr);
    });
    tbody.replaceChildren(fragment);
  }

  function num(value) {
    return el("td", fmt(value), "num");
  }

  function latencyText(latency, which) {
    if (!latency || !latency.n) return "—";
    return "p50 " + latency[which + "_p50"] + " s · p99 " + latency[which + "_p99"] + " s";
  }

  function updateCard(s) {
    var card = document.querySelector('.service-card[data-slug="' + s.slug + '"]');
    if (!card) return false;
    card.classList.toggle("paused", s.paused);
    var worker = setField(card, "worker", s.worker);
    if (worker) worker.className = "badge worker-" + s.worker;
    setField(card, "busy", s.busy);
    var running = card.querySelector('[data-field="running"]');
    if (running) {
      running.replaceChildren();
      if (!s.running.length) running.textContent = "—";
      s.running.forEach(function (r) {
        running.appendChild(el("span", r.event_type + " (P" + r.priority + ") " + (r.user || "") + " · " + r.seconds + " s", "running-item"));
        running.appendChild(document.createTextNode(" "));
      });
    }
    setField(card, "completed", s.completed);
    setField(card, "failed", s.failed);
    setField(card, "discarded", s.discarded);
    setField(card, "latency-start", latencyText(s.latency, "start"));
    setField(card, "latency-finish", latencyText(s.latency, "finish"));
    setField(card, "main-ready", fmt(s.main_queue.ready === null ? "?" : s.main_queue.ready));
    replaceRows(
      card.querySelector('[data-field="by-priority"]'),
      s.main_queue.by_priority.map(function (p) { return ["P" + p.priority, num(p.waiting)]; }),
      "nothing waiting",
      2
    );
    s.discardable.forEach(function (d) {
      var row = card.querySelector('tr[data-queue="' + d.queue + '"]');
      if (!row) return;
      var ready = d.ready === null ? 0 : d.ready;
      row.children[1].textContent = (d.ready === null ? "?" : d.ready) + " / " + d.bound;
      var fill = row.querySelector(".fill");
      var share = Math.min(100, Math.round((100 * ready) / Math.max(1, d.bound)));
      fill.style.width = share + "%";
      fill.classList.toggle("full", ready >= d.bound);
    });
    var pauseForm = card.querySelector(".action-pause");
    var resumeForm = card.querySelector(".action-resume");
    if (pauseForm) pauseForm.hidden = s.paused;
    if (resumeForm) resumeForm.hidden = !s.paused;
    return true;
  }

  function apply(snap) {
    var live = snap.live;
    var fields = {
      streamer: live.streamer ? "@" + live.streamer : "—",
      session_id: fmt(live.session_id),
      label: live.label,
      reason: live.reason || "—",
      viewers: fmt(live.viewers),
      last_event_at: live.last_event_at ? new Date(live.last_event_at).toLocaleTimeString() : "—",
    };
    Object.keys(fields).forEach(function (name) {
      var node = document.querySelector('[data-live="' + name + '"]');
      if (node) node.textContent = fields[name];
    });
    var badge = document.querySelector('[data-live="label"]');
    if (badge) badge.className = "badge state-" + live.state;
    var errors = document.getElementById("errors");
    if (errors) errors.replaceChildren.apply(errors, snap.errors.map(function (e) { return el("li", e); }));

    var missing = snap.services.some(function (s) { return !updateCard(s); });
    var shown = document.querySelectorAll(".service-card").length;
    if ((missing || shown !== snap.services.length) && window.controlRoom.snapshots > 0) {
      window.location.reload(); // a service was added or removed: the server renders its card
      return;
    }

    replaceRows(
      document.getElementById("reactions"),
      snap.reactions.map(function (r) {
        var event = el("td", r.event_type + " ");
        event.appendChild(el("span", r.user || "", "muted"));
        return [event, r.service, el("td", r.status, "status-" + r.status), num(r.start_latency), num(r.latency)];
      }),
      "none yet",
      5
    );
    replaceRows(
      document.getElementById("problems"),
      snap.problems.map(function (r) {
        return [r.event_type, r.service, el("td", r.status, "status-" + r.status), el("td", r.reason, "reason")];
      }),
      "none yet",
      4
    );
    mergeRates(snap.rates);
    lastEpoch = snap.epoch;
    drawChart(lastEpoch);
    window.controlRoom.last = snap;
  }

  function setState(state) {
    window.controlRoom.state = state;
    var node = document.getElementById("stream-state");
    if (node) node.textContent = state;
  }

  var source = null;

  function listen() {
    if (!window.EventSource) return setState("no live updates (EventSource missing)");
    var es = (source = new EventSource(streamUrl));
    es.addEventListener("open", function () { setState("live"); });
    es.addEventListener("snapshot", function (message) {
      window.controlRoom.snapshots += 1;
      setState("live");
      apply(JSON.parse(message.data));
    });
    es.addEventListener("problem", function (message) {
      setState("server problem: " + JSON.parse(message.data).error);
    });
    // The browser reconnects by itself (the server's retry: 2 s); a closed source
    // (e.g. a 503: too many streams) is opened again after a pause.
    es.addEventListener("error", function () {
      if (es.readyState === EventSource.CLOSED) {
        setState("reconnecting");
        if (source === es) source = null;
        setTimeout(function () { if (!source) listen(); }, 5000);
      } else {
        setState("reconnecting");
      }
    });
  }

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });

  // Leaving the page ends its stream at once, which frees the server's thread (the browser
  // could otherwise keep the page, and the stream, in its back/forward cache).
  window.addEventListener("pagehide", function () {
    if (source) source.close();
    source = null;
  });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && !source) listen();
  });

  mergeRates(initial.rates);
  drawChart(lastEpoch);
  listen();
})();
