// Draws a run report's charts with uPlot from the data embedded in the page
// (#report-data); needs nothing from the network. Leaves the uPlot instances in
// window.reportCharts, which the browser test reads.
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var holder = document.getElementById('chart-groups');
  window.reportCharts = [];
  if (!holder || data.charts.state !== 'drawn' || typeof uPlot === 'undefined') return;

  var COLORS = { tps: '#2563eb', p50: '#16a34a', p95: '#d97706', p99: '#dc2626', errors: '#b91c1c', vus: '#7c3aed' };

  function format(value, decimals, unit) {
    return value == null ? '—' : value.toFixed(decimals) + unit;
  }

  function chart(grid, title, time, lines) {
    var figure = document.createElement('figure');
    figure.className = 'chart';
    grid.appendChild(figure);
    var options = {
      title: title,
      width: Math.max(280, figure.clientWidth || 560),
      height: 220,
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: true } },
      axes: [{}, { size: 56 }],
      series: [{}].concat(lines.map(function (line) {
        return {
          label: line.label,
          stroke: line.color,
          width: 1.5,
          value: function (u, v) { return format(v, line.decimals, line.unit); },
        };
      })),
    };
    var plot = new uPlot(options, [time].concat(lines.map(function (line) { return line.values; })), figure);
    plot.figure = figure;
    window.reportCharts.push(plot);
  }

  function group(title, columns, withVus) {
    var section = document.createElement('section');
    section.className = 'chart-group';
    var heading = document.createElement('h3');
    heading.textContent = title;
    section.appendChild(heading);
    var grid = document.createElement('div');
    grid.className = 'chart-grid';
    section.appendChild(grid);
    holder.appendChild(section);
    chart(grid, 'Requests per second', columns.time, [
      { label: 'TPS', values: columns.tps, color: COLORS.tps, decimals: 1, unit: ' req/s' },
    ]);
    chart(grid, 'Response time (ms)', columns.time, [
      { label: 'p50', values: columns.p50, color: COLORS.p50, decimals: 1, unit: ' ms' },
      { label: 'p95', values: columns.p95, color: COLORS.p95, decimals: 1, unit: ' ms' },
      { label: 'p99', values: columns.p99, color: COLORS.p99, decimals: 1, unit: ' ms' },
    ]);
    chart(grid, 'Error rate (%)', columns.time, [
      { label: 'errors', values: columns.errorRate, color: COLORS.errors, decimals: 2, unit: ' %' },
    ]);
    if (withVus) {
      chart(grid, 'Virtual users (whole run)', columns.time, [
        { label: 'VUs', values: columns.vus, color: COLORS.vus, decimals: 0, unit: '' },
      ]);
    }
  }

  group('Run', data.charts.run, true);
  data.charts.scenarios.forEach(function (columns, index) {
    group('Scenario: ' + data.scenarios[index].name, columns, false);
  });

  // For the benchmark: from the page's last byte to here is the browser's work.
  performance.mark('report-charts-drawn');

  var pending = null;
  window.addEventListener('resize', function () {
    clearTimeout(pending);
    pending = setTimeout(function () {
      window.reportCharts.forEach(function (plot) {
        plot.setSize({ width: Math.max(280, plot.figure.clientWidth), height: 220 });
      });
    }, 100);
  });
})();
