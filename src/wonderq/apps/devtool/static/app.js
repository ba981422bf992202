// The WonderQ dev tool's dashboard: plain JavaScript, no build step, no dependencies.
// It polls /api/overview (counts of every queue, history of the selected one) and
// browses messages with paged peeks (GET /queues/:id?size=&after=), which never consume.
// When the broker needs an API key, any call answered 401 shows the login form; the key
// goes to POST /login once and lives in an HttpOnly cookie, out of this script's reach.
"use strict";

const POLL_MS = 1000;
const HIDDEN_POLL_MS = 5000;
const PREVIEW_CHARS = 160;
const PEEK_BYTES = 8 * 1024 * 1024;  // backends/rules.py: the bodies a peek returns at most
const DEPTH_SERIES = [
  ["messages", "Messages", "#4f6bed"],
  ["visible", "Visible", "#2a9d5c"],
  ["in_flight", "In flight", "#e08a1e"],
  ["delayed", "Delayed", "#9b59b6"],
];
const RATE_SERIES = [
  ["send_rate", "Sent", "#4f6bed"],
  ["receive_rate", "Received", "#e08a1e"],
  ["delete_rate", "Deleted", "#2a9d5c"],
];
const STATE_LABELS = { visible: "visible", in_flight: "in flight", delayed: "delayed" };

const $ = (id) => document.getElementById(id);

// An element with properties (className, textContent, title, dataset...) and children.
function el(tag, props, ...children) {
  const { dataset, ...rest } = props || {};
  const node = Object.assign(document.createElement(tag), rest);
  Object.assign(node.dataset, dataset);
  node.append(...children);
  return node;
}
const state = {
  version: null,        // the overview version whose rows the table shows
  rows: new Map(),      // queue id -> {data, tr, cells, sig}
  selected: null,       // the selected queue's id
  filter: "",
  pages: [],            // the `after` of each earlier page, for Prev
  after: 0,             // the current page's `after`
  pageSize: 25,
  messagesSig: null,    // the selected queue's counts when its messages were loaded
  history: null,
  lastIds: [],          // the ids on the current page
  timer: null,
  polling: null,        // the poll in flight
  loadingMessages: false,
  reloadMessages: false,
  brokerDown: false,
  loggedIn: false,      // the last overview came with the browser's own key
};

// -- talking to the dev tool --

async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["content-type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    throw new Error(`the dev tool does not answer (${err.message})`);
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = data && data.error;
    const message = error ? `${error.code}: ${error.message}` : `HTTP ${response.status}`;
    if (response.status === 401 && path !== "/login") showLogin(state.loggedIn ? message : "");
    throw new Error(message);
  }
  return data;
}

// -- logging in --

// `why` is said only when a key the browser had logged in with was refused (revoked).
function showLogin(why) {
  const panel = $("login");
  state.loggedIn = false;
  if (!panel.hidden) return;
  $("login-error").textContent = why;
  panel.hidden = false;
  select(null); // nothing a refused key had shown stays on the page
  updateTable([]);
  state.version = null;
  $("login-form").elements.key.focus();
}

async function logIn(event) {
  event.preventDefault();
  const form = event.target;
  try {
    await api("POST", "/login", { key: form.elements.key.value.trim() });
  } catch (err) {
    $("login-error").textContent = err.message;
    return;
  }
  form.reset();
  $("login").hidden = true;
  say("logged in", false);
  state.version = null;
  await poll(true);
  loadMessages();
}

async function logOut() {
  try {
    await api("POST", "/logout");
  } catch (err) {
    say(err.message, true);
    return;
  }
  window.location.reload(); // nothing of what the key showed stays on the page
}

function say(text, isError) {
  const status = $("status");
  status.textContent = text;
  status.className = isError ? "error" : "ok";
}

// -- formatting --

const numbers = new Intl.NumberFormat("en-US", { maximumFractionDigits: 3 }); // toLocaleString is ~50x slower
const fmt = (n) => (n === null || n === undefined ? "–" : n < 1000 && n > -1000 ? String(n) : numbers.format(n));

function age(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86400)}d ${Math.floor((seconds % 86400) / 3600)}h`;
}

function rowCells(q) {
  return [q.name, fmt(q.messages), fmt(q.visible), fmt(q.in_flight),
    fmt(q.delayed), age(q.oldest_message_age)];
}

// -- the queue list: rows are kept and patched, never rebuilt --

function makeRow(q) {
  const texts = rowCells(q);
  const cells = texts.map((text, i) => el("td", { className: i ? "num" : "", textContent: text }));
  return { data: q, tr: el("tr", { dataset: { id: q.id } }, ...cells), cells, sig: texts.join("|") };
}

function patchRow(entry, q) {
  entry.data = q;
  const texts = rowCells(q);
  const sig = texts.join("|");
  if (sig === entry.sig) return;
  entry.sig = sig;
  texts.forEach((text, i) => {
    if (entry.cells[i].textContent !== text) entry.cells[i].textContent = text;
  });
}

function matches(entry) {
  return !state.filter || entry.data.name.toLowerCase().includes(state.filter);
}

function updateTable(queues) {
  const tbody = $("queues").tBodies[0];
  const seen = new Set();
  let previous = null; // rows come in id order, and the table keeps that order
  for (const q of queues) {
    seen.add(q.id);
    let entry = state.rows.get(q.id);
    if (entry) {
      patchRow(entry, q);
    } else {
      entry = makeRow(q);
      entry.tr.hidden = !matches(entry);
      state.rows.set(q.id, entry);
      tbody.insertBefore(entry.tr, previous ? previous.nextSibling : tbody.firstChild);
    }
    previous = entry.tr;
  }
  if (seen.size !== state.rows.size) {
    for (const [id, entry] of state.rows) {
      if (!seen.has(id)) {
        entry.tr.remove();
        state.rows.delete(id);
      }
    }
  }
  if (state.selected !== null && !state.rows.has(state.selected)) select(null);
  summarize(queues);
}

function summarize(queues) {
  let messages = 0;
  for (const q of queues) messages += q.messages;
  let shown = 0;
  for (const entry of state.rows.values()) if (!entry.tr.hidden) shown++;
  const filtered = shown === queues.length ? "" : ` (${fmt(shown)} shown)`;
  $("summary").textContent = `${fmt(queues.length)} queues${filtered} · ${fmt(messages)} messages`;
}

function applyFilter() {
  state.filter = $("filter").value.trim().toLowerCase();
  for (const entry of state.rows.values()) {
    const hide = !matches(entry);
    if (entry.tr.hidden !== hide) entry.tr.hidden = hide;
  }
  summarize([...state.rows.values()].map((e) => e.data));
}

// -- polling --

// Polls one at a time: a caller that wants fresh data (after an action) waits for
// the poll in flight, then makes its own.
async function poll(force) {
  while (state.polling) await state.polling;
  state.polling = pollOnce(force).finally(() => { state.polling = null; });
  return state.polling;
}

async function pollOnce(force) {
  clearTimeout(state.timer);
  try {
    const params = new URLSearchParams({ window: $("window").value });
    if (!force && state.version !== null) params.set("since", state.version);
    if (state.selected !== null) params.set("queue", state.selected);
    const data = await api("GET", `/api/overview?${params}`);
    $("login").hidden = true;
    $("logout").hidden = !data.logged_in;
    state.loggedIn = data.logged_in;
    $("broker").textContent = `broker ${data.broker}`;
    $("broker").classList.toggle("down", Boolean(data.error));
    if (data.error) say(`broker: ${data.error}`, true);
    else if (state.brokerDown) say("the broker answers again", false);
    state.brokerDown = Boolean(data.error);
    if (data.queues) {
      updateTable(data.queues);
      state.version = data.version;
    }
    state.history = data.history;
    if (state.selected !== null) showSelected();
  } catch (err) {
    say(err.message, true);
  } finally {
    state.timer = setTimeout(() => poll(false), document.hidden ? HIDDEN_POLL_MS : POLL_MS);
  }
}

// -- the selected queue --

function select(id) {
  if (state.selected !== null && state.rows.has(state.selected)) {
    state.rows.get(state.selected).tr.classList.remove("selected");
  }
  state.selected = id;
  state.pages = [];
  state.after = 0;
  state.messagesSig = null;
  state.history = null;
  $("queue-panel").hidden = id === null;
  $("empty-panel").hidden = id !== null;
  $("messages").tBodies[0].replaceChildren();
  if (id === null) {
    history.replaceState(null, "", location.pathname);
    return;
  }
  const entry = state.rows.get(id);
  entry.tr.classList.add("selected");
  history.replaceState(null, "", `#queue=${encodeURIComponent(entry.data.name)}`);
  showSelected();
  poll(true);
}

function showSelected() {
  const entry = state.rows.get(state.selected);
  if (!entry) return;
  const q = entry.data;
  $("queue-title").textContent = q.name;
  const stats = [
    ["Messages", fmt(q.messages)], ["Visible", fmt(q.visible)],
    ["In flight", fmt(q.in_flight)], ["Delayed", fmt(q.delayed)],
    ["Oldest", age(q.oldest_message_age)], ["Sent/s", q.send_rate],
    ["Received/s", q.receive_rate], ["Deleted/s", q.delete_rate], ["ID", q.id],
    ["Dead-letter queue", q.redrive_target ? `${q.redrive_target} after ${q.max_receive_count}` : "none"],
    ["FIFO", q.fifo ? "yes" : "no"],
    ["Tags", Object.entries(q.tags || {}).map(([k, v]) => `${k}=${v}`).join(", ") || "none"],
  ];
  $("move-back").hidden = !sources(q.name).length;
  // Each label and its value in one <div>, so the row wraps between pairs, never inside one.
  const dl = $("queue-stats");
  if (dl.children.length !== stats.length) dl.replaceChildren(...stats.map(() => el("div", {}, el("dt"), el("dd"))));
  stats.forEach(([label, value], i) => {
    dl.children[i].children[0].textContent = label;
    dl.children[i].children[1].textContent = value;
  });
  drawCharts();
  if (countsOf(q) !== state.messagesSig) loadMessages();
}

// -- charts: a small line chart on a canvas --

function drawCharts() {
  const h = state.history || { t: [] };
  drawChart($("depth-chart"), h, DEPTH_SERIES, true);
  drawChart($("rate-chart"), smoothed(h, RATE_SERIES), RATE_SERIES, false);
}

// Rates sampled once a second jump between 0 and bursts: each point becomes the mean of the
// rates over the trailing SMOOTH_FRACTION of the window (at least 5 s), so the line shows the
// trend instead of a saw-tooth.
const SMOOTH_FRACTION = 1 / 20;
function smoothed(h, series) {
  const over = Math.max(5000, Number($("window").value) * 1000 * SMOOTH_FRACTION);
  const out = { t: h.t };
  for (const [key] of series) out[key] = movingMean(h.t, h[key] || [], over);
  return out;
}

function movingMean(t, values, over) {
  const out = [];
  let start = 0;
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    sum += values[i];
    while (t[i] - t[start] >= over) sum -= values[start++];
    out.push(sum / (i - start + 1));
  }
  return out;
}

// The y axis: at most four gridlines a "nice" step apart (1, 2, 2.5 or 5 times a power of ten).
function yScale(max, integers) {
  const rough = Math.max(max, integers ? 4 : 1) / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= rough);
  if (integers) step = Math.max(1, Math.ceil(step));
  return { step, top: step * Math.max(1, Math.ceil(max / step)) };
}

function drawChart(canvas, h, series, integers) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  let max = 0;
  for (const [key] of series) for (const v of h[key] || []) if (v > max) max = v;
  const { step, top } = yScale(max, integers);
  ctx.font = "11px system-ui, sans-serif";
  const ticks = [];
  for (let v = 0; v <= top + step / 2; v += step) ticks.push([v, fmt(Number(v.toPrecision(6)))]);
  const left = 14 + Math.ceil(Math.max(...ticks.map(([, label]) => ctx.measureText(label).width)));
  const box = { left, top: 10, w: width - left - 12, h: height - 32 };
  const span = Number($("window").value) * 1000;
  const now = h.t.length ? h.t[h.t.length - 1] : Date.now();
  const x = (t) => box.left + box.w * (1 - (now - t) / span);
  const y = (v) => box.top + box.h * (1 - v / top);
  drawAxes(ctx, box, { ticks, span, now }, x, y);
  ctx.lineJoin = "round";
  // Equal series would hide each other: each is drawn wider than the ones drawn over it,
  // so where they coincide they show as stripes of every colour.
  series.forEach(([key, , color], i) => {
    const values = h[key] || [];
    ctx.lineWidth = 1.6 + 2 * (series.length - 1 - i);
    ctx.strokeStyle = color;
    ctx.beginPath();
    values.forEach((v, j) => (j ? ctx.lineTo(x(h.t[j]), y(v)) : ctx.moveTo(x(h.t[j]), y(v))));
    ctx.stroke();
  });
}

function drawAxes(ctx, box, scale, x, y) {
  ctx.fillStyle = "#6b7280";
  ctx.strokeStyle = "#e5e7eb";
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const [v, label] of scale.ticks) {
    const at = Math.round(y(v)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(box.left, at);
    ctx.lineTo(box.left + box.w, at);
    ctx.stroke();
    ctx.fillText(label, box.left - 6, y(v));
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const tick = scale.span <= 60000 ? 15000 : scale.span <= 300000 ? 60000 : 120000;
  for (let ago = 0; ago <= scale.span; ago += tick) {
    const label = ago === 0 ? "now" : ago >= 60000 ? `-${ago / 60000}m` : `-${ago / 1000}s`;
    ctx.fillText(label, x(scale.now - ago), box.top + box.h + 6);
  }
}

function legends() {
  for (const [id, series] of [["depth-legend", DEPTH_SERIES], ["rate-legend", RATE_SERIES]]) {
    $(id).replaceChildren(...series.map(([, label, color]) => {
      const span = el("span", { textContent: label });
      span.style.setProperty("--c", color);
      return span;
    }));
  }
}

// -- the message browser: one page at a time, peeked --

// The page of messages is reloaded when the selected queue's counts change.
const countsOf = (q) => `${q.messages}|${q.visible}|${q.in_flight}|${q.delayed}`;

async function loadMessages() {
  if (state.selected === null) return;
  if (state.loadingMessages) {
    state.reloadMessages = true;
    return;
  }
  const id = state.selected;
  state.loadingMessages = true;
  state.reloadMessages = false;
  state.messagesSig = countsOf(state.rows.get(id).data);
  try {
    const params = new URLSearchParams({ size: state.pageSize, after: state.after });
    const messages = await api("GET", `/queues/${id}?${params}`);
    if (id === state.selected) renderMessages(messages);
  } catch (err) {
    say(err.message, true);
  } finally {
    state.loadingMessages = false;
    if (state.reloadMessages) loadMessages();
  }
}

function messageRow(m) {
  const preview = m.body.length > PREVIEW_CHARS ? `${m.body.slice(0, PREVIEW_CHARS)}…` : m.body;
  return el("tr", { dataset: { id: m.id } },
    el("td", { className: "num", textContent: fmt(m.id) }),
    el("td", { className: "body", textContent: preview, title: m.body.slice(0, 2000) }),
    el("td", { className: `state ${m.state}`, textContent: STATE_LABELS[m.state] || m.state }),
    el("td", { className: "num", textContent: fmt(m.receive_count) }),
    el("td", { textContent: new Date(m.created_at).toLocaleTimeString() }),
    el("td", {}, el("button", { type: "button", className: "danger small delete", textContent: "Delete" })));
}

function renderMessages(messages) {
  const rows = messages.map(messageRow);
  if (!rows.length) {
    const text = state.after ? "No more messages." : "No messages.";
    rows.push(el("tr", {}, el("td", { colSpan: 6, className: "empty", textContent: text })));
  }
  $("messages").tBodies[0].replaceChildren(...rows);
  state.lastIds = messages.map((m) => m.id);
  // a page ends early once its bodies pass the broker's PEEK_BYTES: then there may be more
  const bytes = messages.reduce((n, m) => n + new TextEncoder().encode(m.body).length, 0);
  $("next-page").disabled = messages.length === 0 || (messages.length < state.pageSize && bytes < PEEK_BYTES);
  $("prev-page").disabled = state.pages.length === 0;
  $("first-page").disabled = state.pages.length === 0;
  const range = messages.length ? `ids ${fmt(messages[0].id)}–${fmt(messages[messages.length - 1].id)}` : "";
  $("page-info").textContent = `page ${state.pages.length + 1} ${range}`;
}

function page(direction) {
  if (direction === "next" && state.lastIds && state.lastIds.length) {
    state.pages.push(state.after);
    state.after = state.lastIds[state.lastIds.length - 1];
  } else if (direction === "prev" && state.pages.length) {
    state.after = state.pages.pop();
  } else if (direction === "first") {
    state.pages = [];
    state.after = 0;
  }
  loadMessages();
}

// -- actions --

async function act(what, method, path, body) {
  try {
    const result = await api(method, path, body);
    say(what(result), false);
    await poll(true);
    loadMessages();
    return result;
  } catch (err) {
    say(err.message, true);
    return null;
  }
}

async function createQueue(event) {
  event.preventDefault();
  const form = event.target;
  const name = form.elements.name.value.trim();
  const queue = await act((q) => `Created queue ${q.name}`, "POST", "/api/queues", { name });
  if (queue) {
    form.reset();
    if (state.rows.has(queue.id)) select(queue.id);
  }
}

async function sendMessage(event) {
  event.preventDefault();
  const form = event.target;
  const body = { body: form.elements.body.value };
  if (form.elements.delay_seconds.value !== "") body.delay_seconds = form.elements.delay_seconds.value;
  const sent = await act((m) => `Sent message ${m.id}`, "POST", `/api/queues/${state.selected}/messages`, body);
  if (sent) form.elements.body.value = "";
}

function selectedName() {
  return state.rows.get(state.selected).data.name;
}

async function purge() {
  const name = selectedName();
  if (!confirm(`Purge every message of ${name}?`)) return;
  state.pages = [];
  state.after = 0;
  await act((r) => `Purged ${fmt(r.purged)} messages from ${name}`, "POST", `/api/queues/${state.selected}/purge`);
}

function sources(name) {
  return [...state.rows.values()].filter((e) => e.data.redrive_target === name).map((e) => e.data.name);
}

async function moveBack() {
  const name = selectedName();
  if (!confirm(`Move the messages of ${name} back to the queues they came from (${sources(name).join(", ")})?`)) return;
  await act((r) => `Moving ${fmt(r.to_move)} messages back from ${name}`, "POST", `/api/queues/${state.selected}/move`);
}

async function deleteQueue() {
  const name = selectedName();
  if (!confirm(`Delete queue ${name} and all its messages?`)) return;
  const id = state.selected;
  if (await act(() => `Deleted queue ${name}`, "DELETE", `/api/queues/${id}`) && state.selected === id) select(null);
}

async function deleteMessage(id) {
  if (!confirm(`Delete message ${id}?`)) return;
  await act(() => `Deleted message ${id}`, "DELETE", `/api/messages/${id}`);
}

// -- wiring --

function selectFromHash() {
  const match = /^#queue=(.+)$/.exec(location.hash);
  if (!match) return;
  const name = decodeURIComponent(match[1]);
  for (const [id, entry] of state.rows) if (entry.data.name === name) return select(id);
}

async function start() {
  legends();
  $("queues").tBodies[0].addEventListener("click", (event) => {
    const tr = event.target.closest("tr");
    if (tr) select(Number(tr.dataset.id));
  });
  $("messages").tBodies[0].addEventListener("click", (event) => {
    if (event.target.matches("button.delete")) deleteMessage(Number(event.target.closest("tr").dataset.id));
  });
  $("filter").addEventListener("input", applyFilter);
  $("create-form").addEventListener("submit", createQueue);
  $("login-form").addEventListener("submit", logIn);
  $("logout").addEventListener("click", logOut);
  $("send-form").addEventListener("submit", sendMessage);
  $("purge").addEventListener("click", purge);
  $("move-back").addEventListener("click", moveBack);
  $("delete-queue").addEventListener("click", deleteQueue);
  $("first-page").addEventListener("click", () => page("first"));
  $("prev-page").addEventListener("click", () => page("prev"));
  $("next-page").addEventListener("click", () => page("next"));
  $("page-size").addEventListener("change", (e) => { state.pageSize = Number(e.target.value); page("first"); });
  $("window").addEventListener("change", () => poll(true));
  window.addEventListener("resize", () => state.selected !== null && drawCharts());
  document.addEventListener("visibilitychange", () => !document.hidden && poll(false));
  await poll(true);
  selectFromHash();
}

start();
