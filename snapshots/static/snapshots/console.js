/* The console's value charts: one Chart.js line chart per [data-console-chart] element, a tab per
   period. Data comes from the json_script element named by data-source (snapshots/console/charts.py):
   {default, periods: [{period, loaded, labels, datasets: [{label, data, total}], unpriced_points}]}.
   Dataset 0 is the total; the others are tokens. No network access: Chart.js is vendored. */
(function () {
  "use strict";

  var COLORS = ["#417690", "#e07b39", "#3a9d5d", "#b94a8a", "#c9a227", "#6f5fc9", "#2aa1b3", "#a0522d", "#7f8c8d"];

  function money(value) {
    return value === null || value === undefined ? "—" :
      "$" + value.toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2});
  }

  function datasetsOf(series) {
    var many = series.labels.length > 60;
    return series.datasets.map(function (d, i) {
      var color = d.total ? "#264b5d" : COLORS[(i - 1) % COLORS.length];
      return {
        label: d.label, data: d.data, borderColor: color, backgroundColor: color,
        borderWidth: d.total ? 3 : 1.5, pointRadius: many ? 0 : (d.total ? 3 : 2), tension: 0.15,
        spanGaps: false
      };
    });
  }

  function draw(container) {
    var data = JSON.parse(document.getElementById(container.dataset.source).textContent);
    var canvas = container.querySelector("canvas");
    var empty = container.querySelector(".console-chart-empty");
    var note = container.querySelector(".console-chart-note");
    var tabs = Array.prototype.slice.call(container.querySelectorAll("[data-period]"));
    var chart = null;

    function show(period) {
      var series = data.periods.filter(function (p) { return p.period === period; })[0];
      tabs.forEach(function (tab) {
        var selected = tab.dataset.period === period;
        tab.classList.toggle("selected", selected);
        tab.setAttribute("aria-selected", selected ? "true" : "false");
      });
      canvas.dataset.period = period;
      empty.hidden = series.labels.length > 0;
      canvas.parentNode.hidden = series.labels.length === 0;
      note.textContent = series.unpriced_points ?
        series.unpriced_points + " point(s) include a holding without a known price; its value is not in the total." : "";
      if (chart === null) {
        chart = new Chart(canvas, {
          type: "line",
          data: {labels: series.labels, datasets: datasetsOf(series)},
          options: {
            animation: false, responsive: true, maintainAspectRatio: false,
            interaction: {mode: "index", intersect: false},
            scales: {y: {beginAtZero: true, ticks: {callback: function (v) { return money(v); }}}},
            plugins: {tooltip: {callbacks: {label: function (c) { return c.dataset.label + ": " + money(c.raw); }}}}
          }
        });
      } else {
        chart.data.labels = series.labels;
        chart.data.datasets = datasetsOf(series);
        chart.update();
      }
      container.dataset.ready = period;
    }

    tabs.forEach(function (tab) {
      tab.addEventListener("click", function (event) {
        var series = data.periods.filter(function (p) { return p.period === tab.dataset.period; })[0];
        if (!series.loaded) { return; }  // not in this page's data: follow the link (?period=…)
        event.preventDefault();
        show(tab.dataset.period);
      });
    });
    show(data.default);
  }

  document.querySelectorAll("[data-console-chart]").forEach(draw);
})();
