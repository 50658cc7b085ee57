// omen's page: polls the JSON endpoints every 2 s and draws the ranked table, the chart
// of the selected series (value, forecast, prediction interval, score) and the status.
// No framework, no network beyond omen itself.
"use strict";

const POLL_MS = 2000;
const state = { mode: null, selected: null, rows: [], detail: null, demo: null, status: null, hover: null };
const $ = (id) => document.getElementById(id);

// ---- formatting ---------------------------------------------------------------------
function fmtNum(v) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(2) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  if (a >= 100 || Number.isInteger(v)) return v.toFixed(0);
  if (a >= 1) return v.toFixed(2);
  if (a === 0) return "0";
  return v.toPrecision(3);
}
const fmtScore = (s) => (s === null || s === undefined ? "warming" : s.toFixed(2));
const localTime = (ms) => new Date(ms).toLocaleTimeString();
const utcTime = (ms) => new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
const labelText = (labels) => labels.map(([k, v]) => `${k}="${v}"`).join(", ");

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props || {});
  for (const c of children) e.append(c);
  return e;
}
function timeCell(ms) {
  if (ms === null || ms === undefined) return el("td", { textContent: "–" });
  return el("td", { className: "time", textContent: localTime(ms), title: utcTime(ms) });
}

async function getJson(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

function showError(msg) {
  const e = $("error");
  e.hidden = !msg;
  e.textContent = msg ? `Cannot reach omen (${msg}); retrying…` : "";
}

// ---- status ---------------------------------------------------------------------------
function renderStatus(s) {
  $("mode").textContent = s.mode === "demo" ? "demo" : `serve · v${s.version}`;
  const rate = s.ingest.samples_per_s;
  $("s-ingest").textContent = rate === null ? "measuring…" : `${fmtNum(rate)} samples/s`;
  $("s-ingest-sub").textContent = `${fmtNum(s.ingest.received_samples)} received · ${fmtNum(s.ingest.derived_samples)} derived`;
  $("s-models").textContent = fmtNum(s.models.count);
  $("s-models-sub").textContent = `of ${fmtNum(s.models.max_series)} max · ${s.models.rules} rule${s.models.rules === 1 ? "" : "s"} · ${fmtNum(s.models.retired)} retired`;
  $("s-evictions").textContent = fmtNum(s.models.evictions);
  $("s-evictions-sub").textContent = `models (LRU) · page record: ${s.record.series}/${s.record.max_series} series, ${s.record.evictions} replaced`;
  $("s-fit").textContent = s.models.fit_backlog === null ? "n/a" : fmtNum(s.models.fit_backlog);
  const d = s.downstream;
  const h = $("s-down");
  h.textContent = d.health;
  h.className = `value health-${d.health}`;
  const lat = d.mean_latency_ms === null ? "" : ` · ${d.mean_latency_ms.toFixed(1)} ms mean`;
  const codes = d.requests.map(([c, n]) => `${c}: ${fmtNum(n)}`).join(", ");
  $("s-down-sub").textContent = `${d.url}${lat}${codes ? " · " + codes : ""}`;
  $("s-down-sub").title = d.url;
}

// ---- demo panel ------------------------------------------------------------------------
function renderDemo(info) {
  $("demo").hidden = false;
  $("source-label").hidden = false;
  const simNow = info.sim_now_ms;
  $("demo-sub").textContent = `${info.series} synthetic series, ${info.speed}× speed, a compressed day of ${info.day_s / 60} min; the downstream received ${fmtNum(info.downstream.samples)} samples`;
  const list = $("demo-list");
  list.replaceChildren();
  if (info.anomalies.length === 0) {
    list.append(el("li", { textContent: "The first anomaly is injected once the models have warmed up." }));
  }
  for (const a of info.anomalies.slice(-12).reverse()) {
    const st = simNow < a.start_ms ? "upcoming" : simNow <= a.end_ms ? "active" : "past";
    const li = el("li", { title: `${a.for}{${labelText(a.labels)}}\n${utcTime(a.start_ms)} – ${utcTime(a.end_ms)}` },
      el("span", { className: `state ${st}`, textContent: st }),
      el("span", { className: "kind", textContent: a.kind.replace("_", " ") }),
      ` ${localTime(a.start_ms)} · ${a.for}{${labelText(a.labels)}}`);
    li.addEventListener("click", () => selectBy(a.for, a.labels));
    list.append(li);
  }
}

function selectBy(name, labels) {
  const want = JSON.stringify(labels);
  const row = state.rows.find((r) => r.for === name && JSON.stringify(r.labels) === want);
  if (row) select(row.id);
}

// ---- table -----------------------------------------------------------------------------
function source() {
  return state.mode === "demo" ? $("source").value : "omen";
}

function renderTable(data) {
  const filter = $("filter").value.trim().toLowerCase();
  const rows = data.series.filter((r) => !filter || `${r.for} ${labelText(r.labels)}`.toLowerCase().includes(filter));
  state.rows = data.series;
  const body = $("series").tBodies[0];
  body.replaceChildren();
  const scored = data.series.filter((r) => r.score !== null).length;
  const empty = $("empty");
  if (data.total === 0) {
    empty.hidden = false;
    empty.textContent = state.mode === "demo"
      ? "Waiting for the first samples from the generator…"
      : "No modeled series yet. Series matching a rule in models.rules appear here once samples arrive.";
  } else if (scored === 0) {
    empty.hidden = false;
    empty.textContent = `Warming up: ${data.total} series are being learnt; scores appear after each model's warm-up samples.`;
  } else {
    empty.hidden = true;
  }
  for (const r of rows) {
    const tr = el("tr", {},
      el("td", { className: "num" + (r.score > 1 ? " hot" : ""), textContent: fmtScore(r.score) }),
      el("td", { className: "num" + (r.max_score > 1 ? " hot" : ""), textContent: r.max_score === null ? "–" : r.max_score.toFixed(2) }),
      el("td", { textContent: r.for }),
      el("td", { className: "labels" }, ...r.labels.map(([k, v]) => el("span", { textContent: `${k}="${v}"` }))),
      el("td", { className: "num", textContent: fmtNum(r.value) + (r.counter ? "/s" : "") }),
      timeCell(r.ts));
    if (r.id === state.selected) tr.className = "selected";
    tr.addEventListener("click", () => select(r.id));
    body.append(tr);
  }
  $("table-sub").textContent = `${rows.length} of ${data.total} series in the window` + (filter ? ` (filter: ${filter})` : "");
}

function select(id) {
  state.selected = id;
  for (const tr of $("series").tBodies[0].rows) tr.classList.remove("selected");
  refreshDetail().then(refreshTable).catch((e) => showError(e.message));
}

// ---- charts ----------------------------------------------------------------------------
function setupCanvas(c) {
  const ratio = window.devicePixelRatio || 1;
  const w = c.clientWidth, h = Number(c.getAttribute("height"));
  if (c.width !== Math.round(w * ratio)) {
    c.width = Math.round(w * ratio);
    c.style.height = h + "px";
  }
  c.height = Math.round(h * ratio);
  const ctx = c.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return { ctx, w, h };
}

const PAD = { l: 56, r: 10, t: 8, b: 20 };

function extent(arrays) {
  let lo = Infinity, hi = -Infinity;
  for (const a of arrays) for (const v of a) if (v !== null && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (lo === Infinity) return [0, 1];
  if (lo === hi) { lo -= 1; hi += 1; }
  const pad = (hi - lo) * 0.06;
  return [lo - pad, hi + pad];
}

function axes(ctx, w, h, x0, x1, y0, y1, ticksY) {
  ctx.strokeStyle = "#dde2ea"; ctx.fillStyle = "#5d6677"; ctx.lineWidth = 1; ctx.font = "11px system-ui, sans-serif";
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  for (const v of ticksY) {
    const y = PAD.t + (1 - (v - y0) / (y1 - y0)) * (h - PAD.t - PAD.b);
    ctx.beginPath(); ctx.moveTo(PAD.l, y); ctx.lineTo(w - PAD.r, y); ctx.stroke();
    ctx.fillText(fmtNum(v), PAD.l - 4, y);
  }
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  const n = Math.max(2, Math.floor((w - PAD.l - PAD.r) / 110));
  for (let i = 0; i <= n; i++) {
    const t = x0 + (i / n) * (x1 - x0);
    const x = PAD.l + (i / n) * (w - PAD.l - PAD.r);
    ctx.fillText(localTime(t), Math.min(Math.max(x, PAD.l + 24), w - PAD.r - 24), h - PAD.b + 4);
  }
}

function niceTicks(lo, hi, n) {
  const step0 = (hi - lo) / n;
  const mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

function line(ctx, xs, ys, sx, sy) {
  let open = false;
  ctx.beginPath();
  for (let i = 0; i < xs.length; i++) {
    const v = ys[i];
    if (v === null || !isFinite(v)) { open = false; continue; }
    if (open) ctx.lineTo(sx(xs[i]), sy(v)); else { ctx.moveTo(sx(xs[i]), sy(v)); open = true; }
  }
  ctx.stroke();
}

function drawCharts() {
  const d = state.detail;
  const vc = setupCanvas($("values")), sc = setupCanvas($("scores"));
  for (const { ctx, w, h } of [vc, sc]) ctx.clearRect(0, 0, w, h);
  if (!d || d.t.length < 2) {
    const { ctx, w, h } = vc;
    ctx.fillStyle = "#5d6677"; ctx.font = "13px system-ui, sans-serif"; ctx.textAlign = "center";
    ctx.fillText(d ? "Collecting points…" : "Select a series in the table.", w / 2, h / 2);
    return;
  }
  const t = d.t, x0 = t[0], x1 = t[t.length - 1];
  const sx = (w) => (v) => PAD.l + ((v - x0) / (x1 - x0)) * (w - PAD.l - PAD.r);

  // Values with the prediction interval and the forecast.
  {
    const { ctx, w, h } = vc;
    const [y0, y1] = extent([d.value, d.lower, d.upper]);
    const X = sx(w), Y = (v) => PAD.t + (1 - (v - y0) / (y1 - y0)) * (h - PAD.t - PAD.b);
    axes(ctx, w, h, x0, x1, y0, y1, niceTicks(y0, y1, 5));
    ctx.fillStyle = "rgba(47, 95, 208, 0.14)";
    let i = 0;
    while (i < t.length) {
      while (i < t.length && (d.lower[i] === null || d.upper[i] === null)) i++;
      const s = i;
      while (i < t.length && d.lower[i] !== null && d.upper[i] !== null) i++;
      if (i - s >= 1) {
        ctx.beginPath();
        for (let k = s; k < i; k++) ctx.lineTo(X(t[k]), Y(d.upper[k]));
        for (let k = i - 1; k >= s; k--) ctx.lineTo(X(t[k]), Y(d.lower[k]));
        ctx.closePath(); ctx.fill();
      }
    }
    ctx.setLineDash([5, 4]); ctx.strokeStyle = "#2f5fd0"; ctx.lineWidth = 1.2;
    line(ctx, t, d.forecast, X, Y);
    ctx.setLineDash([]); ctx.strokeStyle = "#1d2330"; ctx.lineWidth = 1.4;
    line(ctx, t, d.value, X, Y);
    ctx.fillStyle = "#d23a2f";
    for (let k = 0; k < t.length; k++) {
      if (d.score[k] > 1 && d.value[k] !== null) { ctx.beginPath(); ctx.arc(X(t[k]), Y(d.value[k]), 3.2, 0, 2 * Math.PI); ctx.fill(); }
    }
    hoverLine(ctx, X, h);
  }
  // Scores, with the alert threshold at 1.
  {
    const { ctx, w, h } = sc;
    const top = Math.max(2, ...d.score.filter((v) => v !== null)) * 1.08;
    const X = sx(w), Y = (v) => PAD.t + (1 - v / top) * (h - PAD.t - PAD.b);
    axes(ctx, w, h, x0, x1, 0, top, niceTicks(0, top, 3));
    ctx.strokeStyle = "#d23a2f"; ctx.setLineDash([4, 3]); ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(PAD.l, Y(1)); ctx.lineTo(w - PAD.r, Y(1)); ctx.stroke(); ctx.setLineDash([]);
    const bw = Math.max(1, (w - PAD.l - PAD.r) / t.length - 0.5);
    for (let k = 0; k < t.length; k++) {
      const s = d.score[k];
      if (s === null) continue;
      ctx.fillStyle = s > 1 ? "#d23a2f" : "#8fa6d8";
      ctx.fillRect(X(t[k]) - bw / 2, Y(s), bw, Y(0) - Y(s));
    }
    ctx.fillStyle = "#5d6677"; ctx.textAlign = "left"; ctx.textBaseline = "top"; ctx.font = "11px system-ui, sans-serif";
    ctx.fillText("anomaly_score", PAD.l + 4, PAD.t);
    hoverLine(ctx, X, h);
  }
}

function hoverLine(ctx, X, h) {
  if (state.hover === null || !state.detail) return;
  const x = X(state.detail.t[state.hover]);
  ctx.strokeStyle = "rgba(29, 35, 48, .4)"; ctx.lineWidth = 1;
  ctx.beginPath(); ctx.moveTo(x, PAD.t); ctx.lineTo(x, h - PAD.b); ctx.stroke();
}

function onHover(ev) {
  const d = state.detail;
  const tip = $("tooltip");
  if (!d || d.t.length < 2) { tip.hidden = true; return; }
  const c = ev.currentTarget, rect = c.getBoundingClientRect();
  const w = rect.width, px = ev.clientX - rect.left;
  const x0 = d.t[0], x1 = d.t[d.t.length - 1];
  const tx = x0 + ((px - PAD.l) / (w - PAD.l - PAD.r)) * (x1 - x0);
  let best = 0;
  for (let k = 1; k < d.t.length; k++) if (Math.abs(d.t[k] - tx) < Math.abs(d.t[best] - tx)) best = k;
  state.hover = best;
  const unit = d.counter ? "/s" : "";
  tip.replaceChildren(
    el("div", { textContent: `${localTime(d.t[best])}  (${utcTime(d.t[best])})` }),
    el("div", { textContent: `value ${fmtNum(d.value[best])}${unit} · forecast ${fmtNum(d.forecast[best])}${unit}` }),
    el("div", { textContent: `interval ${fmtNum(d.lower[best])} … ${fmtNum(d.upper[best])}` }),
    el("div", { textContent: `anomaly_score ${fmtScore(d.score[best])}` }));
  tip.hidden = false;
  const box = $("values").parentElement.getBoundingClientRect();
  const left = ev.clientX - box.left + 14;
  tip.style.left = Math.min(left, box.width - 260) + "px";
  tip.style.top = (ev.clientY - box.top + 12) + "px";
  drawCharts();
}

function onLeave() {
  state.hover = null;
  $("tooltip").hidden = true;
  drawCharts();
}

// ---- polling -----------------------------------------------------------------------------
async function refreshStatus() {
  const s = await getJson("/api/omen/status");
  state.status = s;
  state.mode = s.mode;
  renderStatus(s);
  if (s.mode === "demo") renderDemo(await getJson("/api/omen/demo"));
}

async function refreshTable() {
  const rank = $("rank").value;
  renderTable(await getJson(`/api/omen/series?limit=200&rank=${rank}&source=${source()}`));
}

async function refreshDetail() {
  const id = state.selected;
  if (!id) return;
  let d;
  try {
    d = await getJson(`/api/omen/series/${id}?source=${source()}`);
  } catch (e) {
    // Evicted from the record meanwhile: forget the selection.
    state.selected = null;
    state.detail = null;
    drawCharts();
    return;
  }
  if (id !== state.selected) return;
  state.detail = d;
  $("chart-title").textContent = d.for + (d.counter ? " (per-second rate)" : "");
  $("chart-labels").textContent = `{${labelText(d.labels)}} · ${d.points} points · ${d.anomalies} above 1`;
  drawCharts();
}

async function tick() {
  try {
    await refreshStatus();
    if (!state.selected) {
      // Show the series with the highest score in the window, once there is one.
      const best = await getJson(`/api/omen/series?limit=1&rank=window&source=${source()}`);
      if (best.series.length && best.series[0].max_score !== null) state.selected = best.series[0].id;
    }
    await refreshTable();
    await refreshDetail();
    showError(null);
  } catch (e) {
    showError(e.message);
  }
}

$("rank").addEventListener("change", () => refreshTable().catch((e) => showError(e.message)));
$("source").addEventListener("change", () => {
  state.selected = null;
  state.detail = null;
  refreshTable().catch((e) => showError(e.message));
});
$("filter").addEventListener("input", () => refreshTable().catch((e) => showError(e.message)));
for (const id of ["values", "scores"]) {
  $(id).addEventListener("mousemove", onHover);
  $(id).addEventListener("mouseleave", onLeave);
}
window.addEventListener("resize", drawCharts);
tick();
setInterval(tick, POLL_MS);
