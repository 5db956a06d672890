// The live query widget's front end (anywidget): draws the state LiveDisplay pushes.
const COLOURS = ["#4C78A8", "#E45756", "#72B7B2", "#F58518"];
const NS = "http://www.w3.org/2000/svg";

function size(n) {
  for (const [u, s] of [["GB", 1e9], ["MB", 1e6], ["kB", 1e3]]) if (Math.abs(n) >= s) return (n / s).toFixed(1) + " " + u;
  return Math.round(n) + " B";
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function chart(state, width, height) {
  const root = svg("svg", {class: "wb-memory-chart", width, height});
  const series = state.chart || {};
  const budgets = state.budgets || {};
  const pts = Object.values(series).flat();
  if (!pts.length) return root;
  const tMax = Math.max(...pts.map(p => p[0]), 1e-3);
  const top = Math.max(...pts.map(p => p[1]), ...Object.values(budgets).filter(b => b)) * 1.1 || 1;
  const x = t => 4 + (width - 8) * t / tMax;
  const y = v => height - 14 - (height - 22) * v / top;
  Object.entries(series).forEach(([device, p], i) => {
    const c = COLOURS[i % COLOURS.length];
    root.appendChild(svg("polyline", {fill: "none", stroke: c, "stroke-width": 1.5,
      points: p.map(q => x(q[0]).toFixed(1) + "," + y(q[1]).toFixed(1)).join(" ")}));
    root.appendChild(svg("text", {x: 6, y: 12 + 11 * i, "font-size": 10, fill: c}, device + " " + size(p[p.length - 1][1])));
    const b = budgets[device.split(":")[0]];
    if (b) {
      root.appendChild(svg("line", {x1: 4, x2: width - 4, y1: y(b), y2: y(b), stroke: c, "stroke-dasharray": "4 3"}));
      root.appendChild(svg("text", {x: width - 4, y: y(b) - 2, "font-size": 10, "text-anchor": "end"}, "budget (limit " + size(b) + ")"));
    }
  });
  root.appendChild(svg("text", {x: width - 4, y: height - 2, "font-size": 10, "text-anchor": "end"}, tMax.toFixed(1) + " s"));
  return root;
}

function render({ model, el }) {
  const box = document.createElement("div");
  box.className = "wb-live";
  box.innerHTML = `<div class="wb-live-head"></div>
    <div class="wb-progress"><div class="wb-progress-fill"></div></div>
    <div class="wb-progress-text"></div>
    <div class="wb-download" hidden><div class="wb-download-bar"><div class="wb-download-fill"></div></div><span class="wb-download-text"></span></div>
    <div class="wb-live-body"><table class="wb-live-facts"></table><div class="wb-live-chart"></div></div>`;
  el.appendChild(box);
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
    const charts = box.querySelector(".wb-live-chart");
    if (downloading) charts.replaceChildren();  // no memory is sampled outside a query
    else charts.replaceChildren(chart(s, 360, 90));
  };
  model.on("change:state", draw);
  draw();
}
export default { render };
