// ctrader dashboard: one page, live from /api/events (server-sent events). No framework, no CDN:
// plotly.js is served from the installed plotly package. Every value goes in through textContent.
"use strict";

const MAX_POINTS = 20000;          // PnL points kept in the chart
const MAX_FILLS = 50;              // rows in the fills table
const TOKEN_KEY = "ctrader-token";

let lastFillId = 0;
let lastPnlTime = 0;
let source = null;
let chartReady = false;

const $ = (id) => document.getElementById(id);

function fmt(value, digits = 6) {
  if (value === null || value === undefined) return "-";
  if (typeof value === "number") {
    if (!isFinite(value)) return "-";
    return Math.abs(value) >= 1e6 ? value.toExponential(3) : Number(value.toPrecision(digits)).toString();
  }
  return String(value);
}

function signed(el, value) {
  el.textContent = fmt(value);
  el.classList.toggle("pos", typeof value === "number" && value > 0);
  el.classList.toggle("neg", typeof value === "number" && value < 0);
}

function duration(s) {
  if (s === null || s === undefined) return "-";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h ? `${h}h${String(m).padStart(2, "0")}m` : m ? `${m}m${String(sec).padStart(2, "0")}s` : `${sec}s`;
}

function clock(t) {
  return new Date(t * 1000).toLocaleTimeString([], {hour12: false});
}

function fillRows(tbody, rows) {
  // rows: arrays of cells; a cell is a value or {text, cls}
  tbody.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      if (cell !== null && typeof cell === "object") {
        td.textContent = cell.text;
        if (cell.cls) td.className = cell.cls;
      } else {
        td.textContent = cell === null || cell === undefined ? "-" : String(cell);
      }
      tr.appendChild(td);
    }
    return tr;
  }));
}

function toast(text) {
  const el = $("toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 5000);
}

// --- token -------------------------------------------------------------------------------------

function askToken(why) {
  return new Promise((resolve) => {
    const dialog = $("token-dialog");
    $("token-why").textContent = why;
    $("token-input").value = "";
    const done = (value) => {
      dialog.close();
      $("token-form").onsubmit = null;
      $("token-cancel").onclick = null;
      resolve(value);
    };
    $("token-form").onsubmit = (ev) => { ev.preventDefault(); done($("token-input").value.trim() || null); };
    $("token-cancel").onclick = () => done(null);
    dialog.showModal();
  });
}

function storeToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  // for the event stream when the monitor is not on loopback (EventSource sends no headers)
  document.cookie = `ctrader_token=${encodeURIComponent(token)}; path=/; SameSite=Strict`;
}

function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  document.cookie = "ctrader_token=; path=/; max-age=0; SameSite=Strict";
}

async function control(path, why, body) {
  let token = sessionStorage.getItem(TOKEN_KEY);
  for (let attempt = 0; attempt < 3; attempt++) {
    if (!token) {
      token = await askToken(why);
      if (!token) return null;
    }
    const resp = await fetch(path, {
      method: "POST",
      headers: {"Authorization": `Bearer ${token}`, "Content-Type": "application/json"},
      body: JSON.stringify(body || {}),
    });
    if (resp.status === 401) {
      forgetToken();
      token = null;
      why = "Wrong token. The monitor's token:";
      continue;
    }
    if (!resp.ok) throw new Error(`${path}: HTTP ${resp.status}`);
    storeToken(token);
    return resp.json();
  }
  return null;
}

// --- charts -----------------------------------------------------------------------------------

const CHART_LAYOUT = {
  margin: {l: 50, r: 10, t: 10, b: 30}, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
  font: {color: "#d8dee6", size: 11}, xaxis: {gridcolor: "#263140"}, yaxis: {gridcolor: "#263140", zerolinecolor: "#8593a3"},
  showlegend: false,
};
const CHART_CONFIG = {displayModeBar: false, responsive: true};

function initCharts(history) {
  const xs = history.pnl.map((p) => new Date(p[0] * 1000));
  const ys = history.pnl.map((p) => p[1]);
  lastPnlTime = history.pnl.length ? history.pnl[history.pnl.length - 1][0] : 0;
  Plotly.newPlot("pnl-chart", [{x: xs, y: ys, type: "scatter", mode: "lines", line: {color: "#4c9aff", width: 2}}],
                 {...CHART_LAYOUT}, CHART_CONFIG);
  Plotly.newPlot("t2o-chart", [{x: [], y: [], type: "bar", marker: {color: "#4c9aff"}}],
                 {...CHART_LAYOUT, xaxis: {...CHART_LAYOUT.xaxis, type: "category", title: {text: "us, up to"}}},
                 CHART_CONFIG);
  chartReady = true;
}

function addPnlPoint(t, value) {
  if (!chartReady || value === null || value === undefined || t <= lastPnlTime) return;
  lastPnlTime = t;
  Plotly.extendTraces("pnl-chart", {x: [[new Date(t * 1000)]], y: [[value]]}, [0], MAX_POINTS);
}

function drawHistogram(hist) {
  if (!chartReady || !hist) return;
  const labels = hist.bounds_us.map((b) => (b >= 1000 ? `${b / 1000}ms` : `${b}`)).concat(["more"]);
  const last = hist.counts.reduce((acc, n, i) => (n ? i : acc), 0);
  Plotly.react("t2o-chart", [{x: labels.slice(0, last + 1), y: hist.counts.slice(0, last + 1), type: "bar",
                              marker: {color: "#4c9aff"}}],
               {...CHART_LAYOUT, xaxis: {...CHART_LAYOUT.xaxis, type: "category"}}, CHART_CONFIG);
}

// --- rendering ----------------------------------------------------------------------------------

function renderStatus(s) {
  $("run").textContent = `run ${s.run_id} · ${s.mode || "?"} on ${s.venue || "?"}`;
  const kill = s.kill || {};
  const ks = $("kill-state");
  ks.textContent = kill.engaged ? `KILLED (${kill.note || kill.reason})` : "trading";
  ks.className = "badge " + (kill.engaged ? "killed" : "armed");

  const pnl = s.pnl || {};
  signed($("pnl-total"), pnl.total);
  $("pnl-asset").textContent = pnl.valuation_asset || "";
  signed($("pnl-daily"), pnl.daily);
  $("pnl-limit").textContent = pnl.daily_loss_limit === null || pnl.daily_loss_limit === undefined ? "-" : `-${pnl.daily_loss_limit}`;
  const ex = s.executor || {};
  $("orders").textContent = fmt(ex.orders_sent);
  $("fills").textContent = fmt(ex.fills);
  const refused = Object.values(ex.refusals || {}).reduce((a, b) => a + b, 0);
  $("refusals").textContent = String(refused);
  $("uptime").textContent = duration(s.uptime_s);
  addPnlPoint(s.time, pnl.total);

  fillRows($("components").tBodies[0], Object.entries(s.components || {}).map(([name, c]) => [
    name, {text: c.state, cls: `state-${c.state}`}, c.pid, c.restarts, c.beat_age_s === null ? "-" : `${fmt(c.beat_age_s, 2)}s`]));

  renderBooks(s.feed || {});
  const lat = s.latency_us || {};
  $("t2o-p50").textContent = fmt((lat.tick_to_order || {}).p50);
  $("t2o-p99").textContent = fmt((lat.tick_to_order || {}).p99);
  $("feed-p50").textContent = fmt((lat.recv_to_ring || {}).p50);
  $("eval-p50").textContent = fmt((lat.strategy_eval || {}).p50);
  drawHistogram(s.tick_to_order_histogram);

  const byAsset = pnl.by_asset || {};
  fillRows($("positions").tBodies[0], Object.entries(s.positions || {}).map(([asset, units]) => [
    asset, fmt(units, 8), byAsset[asset] === undefined ? "-" : fmt(byAsset[asset])]));
  const balances = s.balances;
  $("balances-note").textContent = balances ? "" : (s.mode === "paper" ? "paper mode: the venue holds no balances for this session" : "not read yet");
  fillRows($("balances").tBodies[0], Object.entries(balances || {}).map(([asset, b]) => [asset, b.free, b.locked]));

  const open = s.open_orders || [];
  $("open-count").textContent = `(${open.length})`;
  fillRows($("open-orders").tBodies[0], open.map((o) => [
    o.symbol, {text: o.side, cls: o.side === "BUY" ? "pos" : "neg"}, `${o.type}${o.tif ? " " + o.tif : ""}`,
    o.price === null ? "market" : o.price, o.qty, o.filled, o.status, o.age_s === null ? "-" : `${fmt(o.age_s, 3)}s`]));

  const fills = (s.fills || {}).last || [];
  for (const f of fills) addFill(f);
  renderAlerts(s.alerts || {});
  renderCounters(s);
}

function renderBooks(feed) {
  const books = feed.books;
  const strip = $("books");
  if (!books) {
    $("stale-count").textContent = feed.stale_symbols === undefined ? "" : `${feed.stale_symbols} stale`;
    strip.replaceChildren();
    return;
  }
  const stale = books.filter((b) => b.stale).length;
  $("stale-count").textContent = `${books.length} symbols, ${stale} stale`;
  strip.replaceChildren(...books.map((b) => {
    const cell = document.createElement("span");
    const cls = b.stale ? "stale" : b.age_s === null ? "unknown" : b.age_s < 1 ? "fresh" : b.age_s < 5 ? "slow" : "old";
    cell.className = `cell ${cls}`;
    cell.textContent = b.symbol;
    cell.title = b.stale ? `${b.symbol}: stale for ${fmt(b.stale_for_s, 3)}s` :
      `${b.symbol}: last change ${b.age_s === null ? "never" : fmt(b.age_s, 3) + "s ago"}`;
    return cell;
  }));
}

function addFill(f) {
  if (f.id <= lastFillId) return;
  lastFillId = f.id;
  const tbody = $("fills-table").tBodies[0];
  const tr = document.createElement("tr");
  tr.dataset.fillId = String(f.id);
  const cells = [f.id, clock(f.time), f.symbol, f.side, f.price, f.qty, `${f.fee} ${f.fee_asset}`, f.client_order_id];
  cells.forEach((value, i) => {
    const td = document.createElement("td");
    td.textContent = String(value);
    if (i === 3) td.className = f.side === "BUY" ? "pos" : "neg";
    tr.appendChild(td);
  });
  tbody.insertBefore(tr, tbody.firstChild);
  while (tbody.rows.length > MAX_FILLS) tbody.deleteRow(tbody.rows.length - 1);
}

function renderAlerts(alerts) {
  const items = [];
  for (const a of alerts.open || []) items.push({a, open: true});
  for (const a of (alerts.recent || []).slice().reverse()) {
    if (!(alerts.open || []).some((o) => o.key === a.key && o.at === a.at)) items.push({a, open: false});
  }
  $("alerts").replaceChildren(...items.slice(0, 15).map(({a, open}) => {
    const li = document.createElement("li");
    li.className = `sev-${a.severity}`;
    li.textContent = `${clock(a.at)} ${open ? "OPEN " : ""}${a.title}${a.body ? ": " + a.body : ""}${a.outcome ? " [" + a.outcome + "]" : ""}`;
    return li;
  }));
  if (!items.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "none";
    $("alerts").replaceChildren(li);
  }
}

function renderCounters(s) {
  const feed = s.feed || {}, st = s.strategy || {}, ex = s.executor || {}, rec = s.recorder || {};
  const rows = [
    ["feed messages", feed.messages], ["gaps / resyncs", `${fmt(feed.gaps)} / ${fmt(feed.resyncs)}`],
    ["disconnects", feed.disconnects], ["strategy events", st.events],
    ["candidates / taken", `${fmt(st.candidates)} / ${fmt(st.taken)}`], ["model calls", st.model_calls],
    ["rejects", Object.values(ex.rejects || {}).reduce((a, b) => a + b, 0)],
    ["refusals", Object.entries(ex.refusals || {}).map(([k, v]) => `${k} ${v}`).join(", ") || "0"],
    ["rate back-off", ex.backoff_s ? `${fmt(ex.backoff_s, 3)}s` : "none"],
    ["store", rec.store_up === undefined ? "-" : rec.store_up ? "up" : "DOWN"],
    ["rows stored (md)", rec.rows_md_book], ["spill backlog", rec.spill_pending_batches],
  ];
  fillRows($("counters").tBodies[0], rows.map(([k, v]) => [k, v === undefined ? "-" : fmt(v)]));
}

// --- live updates ---------------------------------------------------------------------------------

function connect() {
  if (source) source.close();
  source = new EventSource("/api/events");
  source.addEventListener("open", () => { $("conn").textContent = "live"; $("conn").className = "badge on"; });
  source.addEventListener("status", (ev) => renderStatus(JSON.parse(ev.data)));
  source.addEventListener("fill", (ev) => addFill(JSON.parse(ev.data)));
  source.addEventListener("alert", (ev) => {
    const a = JSON.parse(ev.data);
    toast(`${a.title}${a.body ? ": " + a.body : ""}`);
  });
  source.addEventListener("error", async () => {
    $("conn").textContent = "offline";
    $("conn").className = "badge off";
    const resp = await fetch("/api/status").catch(() => null);
    if (resp && resp.status === 401) {     // reads need the token: this monitor is not on loopback
      source.close();
      const token = await askToken("This monitor needs its token to show the session:");
      if (token) { storeToken(token); connect(); }
    }
  });
}

async function start() {
  $("kill").addEventListener("click", async () => {
    try {
      const res = await control("/api/kill", "Engage the kill switch: the monitor's token", {reason: "dashboard"});
      if (res) toast("kill switch engaged: new orders refused, open orders being cancelled");
    } catch (err) { toast(String(err)); }
  });
  $("resume").addEventListener("click", async () => {
    try {
      const res = await control("/api/resume", "Clear the kill switch: the monitor's token");
      if (res) toast(res.note);
    } catch (err) { toast(String(err)); }
  });
  let history = {pnl: []};
  const resp = await fetch("/api/history").catch(() => null);
  if (resp && resp.ok) history = await resp.json();
  initCharts(history);
  connect();
}

document.addEventListener("DOMContentLoaded", start);
