// The post-live report's charts: events per minute by type, and events by type.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const palette = ["#58a6ff", "#f778ba", "#3fb950", "#d29922", "#a371f7", "#f85149", "#39c5cf", "#8b949e"];
  const color = (i) => palette[i % palette.length];
  Chart.defaults.color = "#98a2b1";
  Chart.defaults.borderColor = "#2c333d";
  Chart.defaults.animation = false; // drawn at once: the page is read, not watched

  const timeline = data.timeline;
  window.reportCharts = {};
  if (timeline.labels.length) {
    window.reportCharts.timeline = new Chart(document.getElementById("chart-timeline"), {
      type: "bar",
      data: {
        labels: timeline.labels,
        datasets: timeline.datasets.map((d, i) => ({ label: d.label, data: d.data, backgroundColor: color(i) })),
      },
      options: {
        maintainAspectRatio: false,
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } },
        plugins: { legend: { position: "bottom" } },
      },
    });
  }
  if (data.by_type.labels.length) {
    window.reportCharts.types = new Chart(document.getElementById("chart-types"), {
      type: "doughnut",
      data: {
        labels: data.by_type.labels,
        datasets: [{ data: data.by_type.counts, backgroundColor: data.by_type.labels.map((_, i) => color(i)) }],
      },
      options: { maintainAspectRatio: false, plugins: { legend: { position: "right" } } },
    });
  }
})();
