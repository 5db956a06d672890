// The live query widget's front end (anywidget): draws the state LiveDisplay pushes.
// live.py serves this file with uPlot (vendor/uPlot.iife.min.js, MIT) in front of it, in one
// ES module: `uPlot` below is that module-level name.
//
// DOM contract (tests/browser): .wb-live > .wb-progress-text, .wb-live-facts, .wb-live-chart;
// the memory chart is .wb-memory-plot (a uPlot: .uplot, its legend .u-legend names each
// device and its budget) with data-x-label / data-y-label; the offloaded model's lane of layers
// is .wb-layer-plot. Each chart element keeps its uPlot instance as `wbPlot`.
const COLOURS = ["#4C78A8", "#E45756", "#72B7B2", "#F58518"];
const X_LABEL = "seconds since the query started";
const Y_LABEL = "resident memory";
const WIDTH = 420;

function size(n) {
  if (n == null) return "";
  for (const [u, s] of [["GB", 1e9], ["MB", 1e6], ["kB", 1e3]]) if (Math.abs(n) >= s) return (n / s).toFixed(1) + " " + u;
  return Math.round(n) + " B";
}

// Memory series {device: [[t, bytes], ...]} on one time axis (uPlot's aligned columns), with
// a flat budget series per device whose kind has a budget.
function memoryData(state) {
  const series = state.chart || {};
  const budgets = state.budgets || {};
  const devices = Object.keys(series);
  const ts = [...new Set(devices.flatMap(d => series[d].map(p => p[0])))].sort((a, b) => a - b);
  const cols = devices.map(d => {
    const at = new Map(series[d].map(p => [p[0], p[1]]));
    return ts.map(t => (at.has(t) ? at.get(t) : null));
  });
  const limits = devices.map(d => budgets[d.split(":")[0]] || null);
  const budgetCols = limits.filter(b => b).map(b => ts.map(() => b));
  return {devices, limits, data: [ts, ...cols, ...budgetCols]};
}

function theme(el) {
  const css = getComputedStyle(el);
  return {
    ink: css.getPropertyValue("--jp-ui-font-color1").trim() || "#333",
    grid: css.getPropertyValue("--jp-border-color2").trim() || "#e0e0e0",
  };
}

function axes(el, yLabel, yValues) {
  const {ink, grid} = theme(el);
  const common = {stroke: ink, grid: {stroke: grid, width: 1}, ticks: {stroke: grid, width: 1}, font: "10px sans-serif", labelFont: "11px sans-serif"};
  return [
    {...common, label: X_LABEL, labelSize: 14, size: 30, values: (u, vals) => vals.map(v => v + " s")},
    {...common, label: yLabel, labelSize: 16, size: 62, values: yValues},
  ];
}

function memoryPlot(el, state) {
  const {devices, limits, data} = memoryData(state);
  const series = [{label: "t (s)", value: (u, v) => (v == null ? "" : v.toFixed(1) + " s")}];
  devices.forEach((d, i) => series.push({
    label: d, stroke: COLOURS[i % COLOURS.length], width: 1.5, value: (u, v) => size(v),
  }));
  devices.forEach((d, i) => {
    if (limits[i]) series.push({
      label: d.split(":")[0] + " budget (limit " + size(limits[i]) + ")", stroke: COLOURS[i % COLOURS.length],
      width: 1, dash: [5, 4], points: {show: false}, value: (u, v) => size(v),
    });
  });
  const opts = {
    width: WIDTH, height: 170, series,
    scales: {x: {time: false}, y: {range: (u, lo, hi) => [0, Math.max(hi, 1) * 1.1]}},
    axes: axes(el, Y_LABEL, (u, vals) => vals.map(size)),
    legend: {live: false},
    cursor: {drag: {x: false, y: false}},
  };
  el.dataset.xLabel = X_LABEL;
  el.dataset.yLabel = Y_LABEL;
  el.dataset.budgets = String(limits.filter(b => b).length);
  return new uPlot(opts, data, el);
}

// An offloaded model's layers: per layer, when it finished (x) and the seconds spent reading
// its weights from disk and computing it (bars side by side).
function layerData(state) {
  const layers = state.layers || [];
  return [layers.map(l => l[0]), layers.map(l => l[2]), layers.map(l => l[3])];
}

function layerPlot(el, state) {
  const bars = align => uPlot.paths.bars({size: [0.45, 10], align});
  const opts = {
    width: WIDTH, height: 120,
    series: [
      {label: "t (s)"},
      {label: "layer read (disk)", stroke: "#F58518", fill: "#F5851899", paths: bars(-1), points: {show: false}},
      {label: "layer computed", stroke: "#54A24B", fill: "#54A24B99", paths: bars(1), points: {show: false}},
    ],
    scales: {x: {time: false}, y: {range: (u, lo, hi) => [0, Math.max(hi, 1e-3) * 1.1]}},
    axes: axes(el, "seconds per layer", (u, vals) => vals.map(v => v.toFixed(2))),
    legend: {live: false},
    cursor: {drag: {x: false, y: false}},
  };
  el.dataset.xLabel = X_LABEL;
  el.dataset.yLabel = "seconds per layer";
  return new uPlot(opts, layerData(state), el);
}

// Keep one uPlot per chart element: new data when the set of series is the same, else a new one.
function update(el, state, make, dataOf, key) {
  const plot = el.wbPlot;
  if (plot && el.dataset.key === key) {
    plot.setData(dataOf(state));
    return;
  }
  if (plot) plot.destroy();
  el.replaceChildren();
  el.dataset.key = key;
  el.wbPlot = make(el, state);
}

function render({ model, el }) {
  const box = document.createElement("div");
  box.className = "wb-live";
  box.innerHTML = `<div class="wb-live-head"></div>
    <div class="wb-progress"><div class="wb-progress-fill"></div></div>
    <div class="wb-progress-text"></div>
    <div class="wb-download" hidden><div class="wb-download-bar"><div class="wb-download-fill"></div></div><span class="wb-download-text"></span></div>
    <div class="wb-live-body"><table class="wb-live-facts"></table>
      <div class="wb-live-chart"><div class="wb-memory-plot"></div><div class="wb-layer-plot" hidden></div></div></div>`;
  el.appendChild(box);
  const memory = box.querySelector(".wb-memory-plot");
  const lane = box.querySelector(".wb-layer-plot");
  const draw = () => {
    const s = model.get("state") || {};
    const downloading = s.activity === "download";  // a hub download outside any query
    box.dataset.activity = s.activity || "query";
    box.querySelector(".wb-live-head").textContent = s.sql ? "running: " + s.sql : "";
    box.querySelector(".wb-progress-fill").style.width = (100 * (s.fraction || 0)).toFixed(1) + "%";
    box.querySelector(".wb-progress-text").textContent = s.progress_text || "";
    box.dataset.updates = s.updates || 0;
    // a download during a query (its model's cached copy was lost): a line with its own bar
    const dl = box.querySelector(".wb-download");
    dl.hidden = downloading || !s.download;
    if (s.download && !downloading) {
      box.querySelector(".wb-download-fill").style.width = (100 * (s.download.fraction || 0)).toFixed(1) + "%";
      box.querySelector(".wb-download-text").textContent = s.download.text || "";
    }
    const table = box.querySelector(".wb-live-facts");
    table.replaceChildren(...(s.facts || []).map(([k, v]) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th"); th.textContent = k;
      const td = document.createElement("td"); td.textContent = v;
      tr.append(th, td);
      return tr;
    }));
    // no memory is sampled outside a query, nor before the first sample
    const hasMemory = !downloading && Object.values(s.chart || {}).some(p => p.length);
    memory.hidden = !hasMemory;
    if (hasMemory) {
      const key = JSON.stringify([Object.keys(s.chart), s.budgets || {}]);
      update(memory, s, memoryPlot, st => memoryData(st).data, key);
    }
    const hasLayers = !downloading && (s.layers || []).length > 0;
    lane.hidden = !hasLayers;
    if (hasLayers) update(lane, s, layerPlot, layerData, "layers");
  };
  model.on("change:state", draw);
  draw();
  return () => {
    for (const c of [memory, lane]) if (c.wbPlot) c.wbPlot.destroy();
  };
}
export default { render };
