// Draws every chart of a stampede page with uPlot from the JSON in
// #chart-data, and records what it drew in #render-result (the browser test
// reads it): per chart, the series drawn; any script error; any resource
// the page tried to load (there should be none: everything is inline).
(function () {
  "use strict";
  var result = { charts: {}, errors: [], resources: [] };
  // Written now and again after every later error (uPlot draws after a frame).
  function publish() {
    result.resources = performance.getEntriesByType("resource").map(function (e) { return e.name; });
    document.getElementById("render-result").textContent = JSON.stringify(result);
  }
  window.addEventListener("error", function (e) { result.errors.push(String(e.message)); publish(); });
  var consoleError = console.error;
  console.error = function () {
    result.errors.push(Array.prototype.join.call(arguments, " "));
    publish();
    consoleError.apply(console, arguments);
  };
  var COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  var BAND = { phase: ["rgba(120,120,120,0.07)", "rgba(120,120,120,0.14)"], fault: ["rgba(214,39,40,0.14)"] };
  var MARK = { knee: "#6a3d9a", fault_on: "#d62728", fault_off: "#2ca02c" };

  function num(v) {
    if (v == null) return "–";
    var a = Math.abs(v);
    if (a >= 1000) return v.toFixed(0);
    if (a >= 10) return (+v.toFixed(1)).toString();
    if (a >= 1) return (+v.toFixed(2)).toString();
    return (+v.toPrecision(3)).toString();
  }
  function nines(v) {
    var p = 100 * (1 - Math.pow(10, -v));
    return "p" + (+p.toFixed(Math.max(0, Math.ceil(v) - 2 + 1))).toString();
  }
  function xAxis(spec) {
    var axis = { label: spec.x_label };
    if (spec.x_scale === "nines") {
      axis.splits = function (u, i, min, max) {
        return [0, 1, 2, 3, 4, 5].filter(function (v) { return v >= min && v <= max; });
      };
      axis.values = function (u, splits) { return splits.map(nines); };
    } else if (spec.x_scale === "category") {
      axis.splits = function () { return spec.x_labels.map(function (_, i) { return i; }); };
      axis.values = function (u, splits) { return splits.map(function (i) { return spec.x_labels[i] || ""; }); };
    } else {
      axis.values = function (u, splits) { return splits.map(num); };
    }
    return axis;
  }
  function xScale(spec) {
    if (spec.x_scale !== "category") return { time: false };
    // Every category gets room, a single one included.
    return { time: false, range: function () { return [-0.5, spec.x_labels.length - 0.5]; } };
  }
  function xValue(spec) {
    if (spec.x_scale === "nines") return function (u, v) { return v == null ? "–" : nines(v); };
    if (spec.x_scale === "category") return function (u, v) { return v == null ? "–" : (spec.x_labels[v] || ""); };
    if (spec.x_scale === "seconds") return function (u, v) { return v == null ? "–" : num(v) + " s"; };
    return function (u, v) { return num(v); };
  }
  function drawBands(u, spec) {
    var ctx = u.ctx, b = u.bbox, r = devicePixelRatio || 1;
    ctx.save();
    ctx.font = (11 * r) + "px sans-serif";
    ctx.textBaseline = "top";
    (spec.bands || []).forEach(function (band, i) {
      var x0 = Math.max(b.left, u.valToPos(band.from, "x", true));
      var x1 = Math.min(b.left + b.width, u.valToPos(band.to, "x", true));
      if (!(x1 > x0)) return;
      var fills = BAND[band.kind] || BAND.phase;
      ctx.fillStyle = fills[i % fills.length];
      ctx.fillRect(x0, b.top, x1 - x0, b.height);
      ctx.fillStyle = band.kind === "fault" ? "#a11" : "#555";
      var y = b.top + 2 * r + (band.kind === "fault" ? 14 * r : 0);
      ctx.fillText(band.label, x0 + 3 * r, y, Math.max(x1 - x0 - 6 * r, 10));
    });
    ctx.restore();
  }
  function drawMarks(u, spec) {
    var ctx = u.ctx, b = u.bbox, r = devicePixelRatio || 1;
    ctx.save();
    ctx.font = "bold " + (12 * r) + "px sans-serif";
    (spec.marks || []).forEach(function (m) {
      var x = u.valToPos(m.at, "x", true);
      if (x < b.left || x > b.left + b.width) return;
      ctx.strokeStyle = ctx.fillStyle = MARK[m.kind] || "#333";
      ctx.lineWidth = 2 * r;
      ctx.setLineDash(m.kind === "knee" ? [] : [6 * r, 4 * r]);
      ctx.beginPath();
      ctx.moveTo(x, b.top);
      ctx.lineTo(x, b.top + b.height);
      ctx.stroke();
      var w = ctx.measureText(m.label).width;
      var tx = x + 4 * r + w > b.left + b.width ? x - 4 * r - w : x + 4 * r;
      ctx.fillText(m.label, tx, b.top + 30 * r);
    });
    ctx.restore();
  }
  function options(spec, width) {
    var series = [{ label: spec.x_label, value: xValue(spec) }];
    spec.series.forEach(function (s, i) {
      series.push({
        label: s.label,
        stroke: s.dash ? "#777" : COLORS[i % COLORS.length],
        width: 2,
        dash: s.dash ? [8, 5] : undefined,
        points: { show: spec.points, size: 7 },
        value: function (u, v) { return num(v); },
      });
    });
    return {
      width: width,
      height: 300,
      scales: { x: xScale(spec), y: spec.y_log ? { distr: 3, log: 10 } : { range: function (u, min, max) { return [Math.min(0, min), max > 0 ? max * 1.08 : 1]; } } },
      axes: [xAxis(spec), { label: spec.y_label, size: 64, values: function (u, splits) { return splits.map(num); } }],
      series: series,
      hooks: {
        drawClear: [function (u) { drawBands(u, spec); }],
        draw: [function (u) { drawMarks(u, spec); }],
      },
    };
  }
  function data(spec) {
    var cols = [spec.x];
    spec.series.forEach(function (s) {
      cols.push(spec.y_log ? s.values.map(function (v) { return v != null && v > 0 ? v : null; }) : s.values);
    });
    return cols;
  }
  function draw(spec, plots) {
    var fig = document.getElementById(spec.id);
    if (!fig) throw new Error("no element for chart " + spec.id);
    var nojs = fig.querySelector(".nojs");
    if (nojs) nojs.remove();
    var u = new uPlot(options(spec, Math.max(fig.clientWidth - 8, 280)), data(spec), fig);
    plots.push([u, fig]);
    result.charts[spec.id] = {
      series: u.series.length - 1,
      points: spec.x.length,
      canvas: !!fig.querySelector("canvas"),
    };
  }
  var plots = [];
  try {
    var specs = JSON.parse(document.getElementById("chart-data").textContent).charts;
    specs.forEach(function (spec) {
      try { draw(spec, plots); } catch (e) { result.errors.push(spec.id + ": " + e.message); }
    });
  } catch (e) {
    result.errors.push("chart data: " + e.message);
  }
  window.addEventListener("resize", function () {
    plots.forEach(function (p) { p[0].setSize({ width: Math.max(p[1].clientWidth - 8, 280), height: 300 }); });
  });
  publish();
  requestAnimationFrame(function () { setTimeout(publish, 0); });
  document.documentElement.setAttribute("data-rendered", String(Object.keys(result.charts).length));
})();
