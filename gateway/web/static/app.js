// SMX gateway page: live values over Server-Sent Events (/api/live), everything else from
// the REST API (/api/openapi.json). Plain JavaScript, no build step, no external resources.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  meter: null,          // the meter shown
  market: null,         // {period_minutes, timezone}
  power: [],            // [{t: ms, kw}] net active power, last hour
  profileDay: null,     // the delivery day whose profile is drawn
  profile: null,        // that day's profile (REST Profile) or null
  period: null,         // number of the running settlement period
  upcoming: {},         // day -> number of settlement periods
  lastSnapshot: 0,
};
const HOUR = 3600e3;
const GROUPS = [
  ["Voltage", /^1-0:(32|52|72)\.7\.0$/], ["Current", /^1-0:(31|51|71)\.7\.0$/],
  ["Active power", /^1-0:(1|2|21|41|61|22|42|62)\.7\.0$/], ["Reactive power", /^1-0:(3|4|23|43|63|24|44|64)\.7\.0$/],
  ["Frequency and power factor", /^1-0:(14|13|33|53|73)\.7\.0$/], ["Energy registers", /^1-0:\d+\.8\.\d+$/],
];

function fmt(value, digits = 2) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds < 0) return `in ${age(-seconds)}`;  // a value for a time ahead (a forecast)
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

// 24-hour clock in every locale: metering times are read as 17:00, never as 05:00 PM.
function localTime(iso, seconds = true) {
  if (!iso) return "–";
  const options = {hour: "2-digit", minute: "2-digit", hourCycle: "h23"};
  if (seconds) options.second = "2-digit";
  return new Date(iso).toLocaleTimeString([], options);
}

async function api(path, options = {}) {
  const response = await fetch(path, {credentials: "same-origin", ...options});
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error : `${response.status} ${response.statusText}`;
    const err = new Error(message);
    err.status = response.status;
    err.field = body && body.field;
    throw err;
  }
  return body;
}

// -- live values ------------------------------------------------------------------------

function renderValues(values) {
  const body = $("values");
  if (!body.dataset.built) {
    body.textContent = "";
    const used = new Set();
    for (const [title, pattern] of GROUPS) {
      const rows = values.filter((v) => pattern.test(v.obis) && !used.has(v.obis));
      if (!rows.length) continue;
      const head = body.insertRow();
      head.className = "group";
      head.insertCell().textContent = title;
      head.cells[0].colSpan = 3;
      for (const v of rows) {
        used.add(v.obis);
        const tr = body.insertRow();
        tr.dataset.obis = v.obis;
        tr.insertCell().textContent = v.name;
        tr.insertCell().className = "num value";
        tr.insertCell().textContent = v.unit;
        tr.title = `OBIS ${v.obis}`;
      }
    }
    body.dataset.built = "1";
  }
  for (const v of values) {
    const tr = body.querySelector(`tr[data-obis="${v.obis}"]`);
    if (!tr) continue;
    tr.dataset.quality = v.quality;
    const digits = /\.8\./.test(v.obis) ? 3 : 2;
    tr.cells[1].textContent = v.value === null ? v.quality : fmt(v.value, digits);
    tr.cells[1].title = v.time ? `read ${localTime(v.time)} (${v.quality})` : v.quality;
  }
}

function valueOf(values, obis) {
  const v = values.find((x) => x.obis === obis);
  return v && v.quality === "good" ? v.value : null;
}

function onSnapshot(message) {
  if (message.meter !== state.meter) return;
  state.lastSnapshot = Date.now();
  $("feed-error").hidden = true;
  $("clock").textContent = localTime(message.time);
  $("link-state").textContent = message.status.link;
  $("link-state").dataset.state = message.status.link;
  renderValues(message.values);
  const pin = valueOf(message.values, "1-0:1.7.0");
  const pout = valueOf(message.values, "1-0:2.7.0");
  if (pin !== null && pout !== null) {
    const t = Date.parse(message.time);
    state.power.push({t, kw: pin - pout});
    while (state.power.length && state.power[0].t < t - HOUR) state.power.shift();
    drawPower();
  }
  renderAdvice(message.advice);
  renderExternal(message.external);
  renderStatus(message.status);
}

// -- advice -----------------------------------------------------------------------------

function renderAdvice(a) {
  const text = $("advice-text");
  if (!a) {
    text.textContent = "waiting for the first reading";
    return;
  }
  text.textContent = a.text;
  text.dataset.state = a.state;
  const p = a.period;
  state.period = p.number;
  $("advice-period").textContent = `period ${p.number}, ${localTime(p.start, false)}–${localTime(p.end, false)}`;
  $("advice-notified").textContent = fmt(a.notified_kwh, 3);
  $("advice-measured").textContent = fmt(a.measured_kwh, 3);
  $("advice-remaining").textContent = `${Math.floor(a.remaining_s / 60)} min ${Math.floor(a.remaining_s % 60)} s`;
  $("advice-required").textContent = fmt(a.required_kw);
  $("advice-current").textContent = fmt(a.current_kw);
  $("advice-imbalance").textContent = fmt(a.projected_imbalance_kwh, 3);
  if (state.profileDay !== p.day) {
    state.profileDay = p.day;
    loadProfile();
  }
}

// -- external data ----------------------------------------------------------------------

function renderExternal(items) {
  const body = $("external-rows");
  for (const x of items || []) {
    let tr = body.querySelector(`tr[data-name="${x.name}"]`);
    if (!tr) {
      tr = body.insertRow();
      tr.dataset.name = x.name;
      tr.insertCell().textContent = x.description || x.name;
      tr.insertCell().className = "num value";
      tr.insertCell().textContent = x.unit;
      tr.insertCell().className = "age";
      tr.title = x.name + (x.source ? ` from ${x.source}` : " (REST PUT or OPC UA write)");
    }
    tr.dataset.stale = String(x.stale);
    tr.cells[1].textContent = fmt(x.value);
    const mark = x.value === null ? "" : x.stale ? ' <span class="tag">stale</span>' : "";
    tr.cells[3].innerHTML = "";
    tr.cells[3].append(age(x.age_s));
    if (mark) tr.cells[3].insertAdjacentHTML("beforeend", mark);
    tr.cells[3].title = x.source_error ? `source: ${x.source_error}` : "";
  }
}

// -- status -----------------------------------------------------------------------------

function renderStatus(s) {
  const rows = [
    ["Link", s.link], ["Line speed", s.baudrate ? `${s.baudrate} Bd` : "–"],
    ["Cycle", `${fmt(s.cycle_duration_s, 3)} s, ${s.bytes_per_cycle} bytes`], ["Cycles", s.cycles],
    ["Late / skipped", `${s.late_cycles} / ${s.skipped_cycles}`], ["Errors", s.errors],
    ["Last error", s.last_error || "none"], ["Clock deviation", s.clock_deviation_s === null ? "–" : `${fmt(s.clock_deviation_s, 1)} s`],
  ];
  if (s.archive) {
    rows.push(["Archive", s.archive.state], ["Records written", s.archive.records_written]);
    if (s.archive.backlog) rows.push(["Backlog", s.archive.backlog]);
    if (s.archive.last_error) rows.push(["Archive error", s.archive.last_error]);
  }
  if (s.uplink) {
    const u = s.uplink;
    const backlog = u.writers.reduce((n, w) => n + w.backlog, 0);
    rows.push(["Uplink", `${u.state}, ${u.broker} as ${u.publisher_id}`], ["Uplink backlog", `${backlog} records`]);
    for (const w of u.writers) {
      const when = u.ack === "consumer" ? w.last_acknowledged : w.last_delivered;
      if (w.writer !== "live") rows.push([`Uplink ${w.writer}`, when ? `through ${when}` : "nothing yet"]);
    }
    if (u.last_error) rows.push(["Uplink error", u.last_error]);
  }
  const dl = $("diagnostics");
  dl.textContent = "";
  for (const [k, v] of rows) {
    const div = document.createElement("div");
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = k;
    dd.textContent = String(v);
    div.append(dt, dd);
    dl.append(div);
  }
}

// -- charts -----------------------------------------------------------------------------

function canvasContext(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight || Number(canvas.getAttribute("height"));
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "11px system-ui, sans-serif";
  return {ctx, width, height};
}

function niceRange(lo, hi) {
  if (lo === hi) { lo -= 1; hi += 1; }
  const span = hi - lo;
  const step = Math.pow(10, Math.floor(Math.log10(span / 4)));
  const unit = [1, 2, 5, 10].map((m) => m * step).find((s) => span / s <= 6);
  return {lo: Math.floor(lo / unit) * unit, hi: Math.ceil(hi / unit) * unit, step: unit};
}

function axes(ctx, box, range, width) {
  ctx.strokeStyle = "#e6eaef";
  ctx.fillStyle = "#5d6b7a";
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (let v = range.lo; v <= range.hi + range.step / 2; v += range.step) {
    const y = box.y(v);
    ctx.beginPath();
    ctx.moveTo(box.left, y);
    ctx.lineTo(width - 4, y);
    ctx.stroke();
    ctx.fillText(Number(v.toFixed(6)).toString(), box.left - 4, y);
  }
}

function drawPower() {
  const {ctx, width, height} = canvasContext($("power-chart"));
  const points = state.power;
  const now = points.length ? points[points.length - 1].t : Date.now();
  const kws = points.map((p) => p.kw);
  const range = niceRange(Math.min(0, ...kws), Math.max(0.1, ...kws));
  const left = 42, top = 8, bottom = height - 20;
  const box = {left, y: (v) => bottom - ((v - range.lo) / (range.hi - range.lo)) * (bottom - top)};
  const x = (t) => left + ((t - (now - HOUR)) / HOUR) * (width - left - 4);
  axes(ctx, box, range, width);
  ctx.textBaseline = "top";
  const every = width < 480 ? 30 : 15;  // a phone has room for fewer time labels
  for (let m = 60; m >= 0; m -= every) {
    // The outer labels align inwards so neither is cut by the canvas edge or meets the y labels.
    ctx.textAlign = m === 60 ? "left" : m === 0 ? "right" : "center";
    ctx.fillText(m ? `−${m} min` : "now", x(now - m * 60e3), bottom + 5);
  }
  ctx.strokeStyle = "#0b6bcb";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  points.forEach((p, i) => (i ? ctx.lineTo(x(p.t), box.y(p.kw)) : ctx.moveTo(x(p.t), box.y(p.kw))));
  ctx.stroke();
}

function drawProfile() {
  const {ctx, width, height} = canvasContext($("profile-chart"));
  const periods = state.profile ? state.profile.periods : [];
  if (!periods.length) return;
  const values = periods.map((p) => p.energy_kwh);
  const range = niceRange(Math.min(0, ...values), Math.max(0, ...values));
  const left = 42, top = 8, bottom = height - 20;
  const box = {left, y: (v) => bottom - ((v - range.lo) / (range.hi - range.lo)) * (bottom - top)};
  axes(ctx, box, range, width);
  const w = (width - left - 4) / periods.length;
  periods.forEach((p, i) => {
    ctx.fillStyle = state.period === p.number && state.profileDay === state.profile.day ? "#b35900" : "#7fb0e6";
    const y0 = box.y(0), y1 = box.y(p.energy_kwh);
    ctx.fillRect(left + i * w + 0.5, Math.min(y0, y1), Math.max(1, w - 1), Math.abs(y1 - y0) || 1);
  });
  ctx.fillStyle = "#5d6b7a";
  ctx.textAlign = "left";
  ctx.textBaseline = "top";
  ctx.fillText("kWh per period", left, bottom + 5);
}

// -- notified profile -------------------------------------------------------------------

async function loadProfile() {
  const day = state.profileDay;
  $("profile-day").textContent = day || "";
  try {
    state.profile = await api(`/api/meters/${state.meter}/profiles/${day}`);
    const p = state.profile;
    $("profile-summary").textContent =
      `${p.periods.length} periods of ${p.period_minutes} min, ${fmt(p.total_kwh, 3)} kWh in total`;
  } catch (err) {
    state.profile = null;
    $("profile-summary").textContent = err.status === 404 ? `No profile notified for ${day}.` : err.message;
  }
  drawProfile();
  const form = $("profile-form");
  if (!form.day.value) form.day.value = day;
  updatePeriods();
}

async function updatePeriods() {
  const list = await api(`/api/meters/${state.meter}/profiles`);
  for (const u of list.upcoming) state.upcoming[u.day] = u.periods;
  const day = $("profile-form").day.value;
  const n = state.upcoming[day];
  $("profile-periods").textContent = n ? `${day} has ${n} periods of ${list.period_minutes} min` : "";
}

function parseValues(text) {
  const parts = text.split(/[\s,;]+/).filter(Boolean);
  return parts.map((p) => (p.trim().toLowerCase() === "nan" ? NaN : Number(p)));
}

async function submitProfile(event) {
  event.preventDefault();
  const form = event.target;
  const error = $("profile-error");
  const ok = $("profile-ok");
  error.hidden = true;
  ok.hidden = true;
  const values = parseValues(form.values.value);
  const bad = values.findIndex((v) => !Number.isFinite(v));
  if (!form.day.value) return showError("Choose the delivery day.");
  if (!values.length) return showError("Enter one value per settlement period.");
  if (bad >= 0) return showError(`period ${bad + 1}: ${form.values.value.split(/[\s,;]+/).filter(Boolean)[bad]} is not a number`);
  try {
    const stored = await api(`/api/meters/${state.meter}/profiles/${form.day.value}`, {
      method: "PUT",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({values, unit: form.unit.value, replace: form.replace.checked}),
    });
    ok.textContent = `Registered ${stored.periods.length} periods for ${stored.day} (${fmt(stored.total_kwh, 3)} kWh).`;
    ok.hidden = false;
    if (stored.day === state.profileDay) loadProfile();
  } catch (err) {
    if (err.status === 401) {
      showError("Log in as an operator to register profiles.");
      askLogin("Registering a profile needs an operator.");
    } else {
      showError(err.message);
    }
  }
}

// -- login: the same users and roles as OPC UA -------------------------------------------

let loggedIn = null;  // resolves the wait of start() when reading needs a login

function renderSession(s) {
  $("who").textContent = s.user ? `${s.user} (${s.role})` : "not logged in";
  $("login-open").hidden = Boolean(s.user);
  $("logout").hidden = !s.user;
}

function askLogin(why) {
  $("login-why").textContent = why || "The gateway's users (smx-gateway users add).";
  $("login-error").hidden = true;
  const dialog = $("login");
  if (!dialog.open) dialog.showModal();
  $("login-form").user.focus();
}

async function submitLogin(event) {
  event.preventDefault();
  const form = event.target;
  try {
    const s = await api("/api/login", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({user: form.user.value, password: form.password.value}),
    });
    form.password.value = "";
    $("login").close();
    renderSession(s);
    if (loggedIn) { loggedIn(); loggedIn = null; }
  } catch (err) {
    $("login-error").textContent = err.message;
    $("login-error").hidden = false;
  }
}

async function logout() {
  renderSession(await api("/api/logout", {method: "POST"}));
}

function showError(message) {
  const error = $("profile-error");
  error.textContent = message;
  error.hidden = false;
}

function fillConstant() {
  const form = $("profile-form");
  const n = state.upcoming[form.day.value];
  if (!n) return showError(`The number of periods of ${form.day.value || "that day"} is not known here; enter the values.`);
  form.values.value = Array(n).fill(form.constant.value).join(" ");
}

// -- alarms and voltage quality ------------------------------------------------------------

async function loadAlarms() {
  let list;
  try {
    list = (await api("/api/alarms")).alarms;
  } catch (err) {
    return;  // shown again at the next look
  }
  const body = $("alarm-rows");
  body.textContent = "";
  for (const a of list) {
    const tr = document.createElement("tr");
    tr.dataset.active = a.active;
    tr.dataset.acknowledged = a.acknowledged;
    const state = `${a.active ? "active" : "cleared"}, ${a.acknowledged ? "acknowledged" : "unacknowledged"}`;
    for (const [text, cls] of [[a.severity, "num"], [a.source], [a.condition + (a.limit ? ` (${a.limit})` : "")],
                               [a.message], [a.active_since ? localTime(a.active_since) : localTime(a.time)], [state]]) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    const td = document.createElement("td");
    if (!a.acknowledged) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Acknowledge";
      button.addEventListener("click", () => acknowledge(a));
      td.append(button);
    }
    tr.append(td);
    body.append(tr);
  }
  $("alarms-none").hidden = list.length > 0;
  $("alarms-count").textContent = list.length ? `${list.filter((a) => a.active).length} active, ` +
    `${list.filter((a) => !a.acknowledged).length} unacknowledged` : "";
}

async function acknowledge(a) {
  const error = $("alarm-error");
  error.hidden = true;
  try {
    await api(`/api/alarms/${encodeURIComponent(a.source)}/${encodeURIComponent(a.condition)}/acknowledge`, {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({event_id: a.event_id, comment: "acknowledged on the web page"}),
    });
  } catch (err) {
    if (err.status === 401) {
      await new Promise((resolve) => { loggedIn = resolve; askLogin("Acknowledging needs an operator's login."); });
      return acknowledge(a);
    }
    error.textContent = err.message;
    error.hidden = false;
  }
  loadAlarms();
}

async function loadQuality() {
  const rows = $("quality-rows");
  $("quality-report").href = `/static/quality.html?meter=${encodeURIComponent(state.meter)}&week=last`;
  let weeks;
  try {
    weeks = await Promise.all(["running", "last"].map(
      (w) => api(`/api/meters/${state.meter}/power-quality?week=${w}`)));
  } catch (err) {
    rows.textContent = "";
    return;
  }
  rows.textContent = "";
  const cell = (c) => c.verdict ? `${fmt(c.measured, 2)} % ${c.verdict}` : String(c.measured);
  weeks[0].criteria.forEach((c, i) => {
    const tr = document.createElement("tr");
    const name = document.createElement("td");
    name.textContent = c.name;
    tr.append(name);
    for (const w of weeks) {
      const td = document.createElement("td");
      const k = w.criteria[i];
      td.className = "num";
      td.dataset.verdict = k.verdict || "";
      td.textContent = k.measured === null ? "–" : cell(k);
      tr.append(td);
    }
    rows.append(tr);
  });
}

// -- archive files ----------------------------------------------------------------------

async function loadArchive() {
  const box = $("archive-files");
  try {
    const list = await api(`/api/meters/${state.meter}/archive`);
    box.textContent = "";
    const streams = {};
    for (const f of list.files) (streams[f.stream] = streams[f.stream] || []).push(f);
    for (const [stream, files] of Object.entries(streams)) {
      const div = document.createElement("div");
      div.innerHTML = `<h3></h3><ul></ul>`;
      div.querySelector("h3").textContent = `${stream} (${files.length} ${files.length === 1 ? "day" : "days"})`;
      for (const f of files.slice(-7).reverse()) {
        const li = document.createElement("li");
        const a = document.createElement("a");
        a.href = f.url;
        a.textContent = f.name;
        a.setAttribute("download", "");
        const size = document.createElement("span");
        size.textContent = f.size < 10240 ? `${f.size} B` : `${Math.round(f.size / 1024)} KiB`;
        li.append(a, size);
        div.querySelector("ul").append(li);
      }
      box.append(div);
    }
    if (!list.files.length) box.textContent = "No archive files yet.";
  } catch (err) {
    box.textContent = err.message;
  }
}

// -- start ------------------------------------------------------------------------------

async function loadPowerHistory() {
  const end = new Date();
  const start = new Date(end.getTime() - HOUR);
  const q = `start=${start.toISOString()}&end=${end.toISOString()}`;
  try {
    const [pin, pout] = await Promise.all(["1-0:1.7.0", "1-0:2.7.0"].map(
      (o) => api(`/api/meters/${state.meter}/history/${o}?${q}`)));
    const out = new Map(pout.values.map((v) => [v.time, v.value]));
    const older = pin.values.filter((v) => v.value !== null && out.get(v.time) != null)
      .map((v) => ({t: Date.parse(v.time), kw: v.value - out.get(v.time)}));
    const first = state.power.length ? state.power[0].t : Infinity;
    state.power = older.filter((p) => p.t < first).concat(state.power);
    drawPower();
  } catch (err) {
    // No archive: the chart fills from the live feed.
  }
}

function connect() {
  const source = new EventSource("/api/live");
  source.addEventListener("snapshot", (e) => onSnapshot(JSON.parse(e.data)));
  source.onerror = () => {
    $("feed-error").textContent = "Live feed interrupted; reconnecting…";
    $("feed-error").hidden = false;
  };
}

async function start() {
  $("login-form").addEventListener("submit", submitLogin);
  $("login-cancel").addEventListener("click", () => $("login").close());
  $("login-open").addEventListener("click", () => askLogin());
  $("logout").addEventListener("click", logout);
  const session = await api("/api/session");
  renderSession(session);
  if (!session.user && !session.anonymous_read) {
    // Reading needs a login here: wait for it before asking for anything else.
    await new Promise((resolve) => { loggedIn = resolve; askLogin("This gateway shows its data to its users only."); });
  }
  const index = await api("/api");
  state.market = index.market;
  $("version").textContent = `${index.product} ${index.version}`;
  $("opcua").textContent = index.opcua;
  const meters = await api("/api/meters");
  const select = $("meter-select");
  for (const m of meters) select.add(new Option(m.name, m.id));
  select.hidden = meters.length < 2;
  const show = (id) => {
    state.meter = id;
    state.power = [];
    state.profileDay = null;
    $("values").dataset.built = "";
    const m = meters.find((x) => x.id === id);
    $("meter-name").textContent = m ? m.name : id;
    loadPowerHistory();
    loadArchive();
    loadQuality();
  };
  select.addEventListener("change", () => show(select.value));
  show(meters[0].id);
  $("profile-form").addEventListener("submit", submitProfile);
  $("profile-form").day.addEventListener("change", updatePeriods);
  $("fill-constant").addEventListener("click", fillConstant);
  window.addEventListener("resize", () => { drawPower(); drawProfile(); });
  setInterval(loadArchive, 60e3);
  setInterval(loadQuality, 600e3);
  loadAlarms();
  setInterval(loadAlarms, 5e3);
  connect();
}

start().catch((err) => {
  $("feed-error").textContent = `The gateway did not answer: ${err.message}`;
  $("feed-error").hidden = false;
});
