// SMX head-end fleet page: the sites from /api/sites every few seconds, one site's load
// profile drawn as SVG bars. Plain JavaScript, no build step, no external resources.
"use strict";

const $ = (id) => document.getElementById(id);
const POLL_MS = 5000;
const PERIOD_MS = 15 * 60e3;
const TOKEN_KEY = "smx-headend-token";  // sessionStorage: this tab only, gone with it
const state = {
  sites: [],         // the last /api/sites answer
  site: null,        // the publisher shown below the table
  day: null,         // its local day drawn (YYYY-MM-DD)
  channel: null,     // the field drawn
  profile: null,     // the last profile answer
  timer: null,
};

class Unauthorized extends Error {}

async function api(path) {
  const headers = {Accept: "application/json"};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, {headers});
  if (response.status === 401) {
    const body = await response.json().catch(() => ({}));
    askToken(token ? body.error || "wrong token" : "");
    throw new Unauthorized(body.error || "token needed");
  }
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.error || `${path}: HTTP ${response.status}`);
  }
  return (response.headers.get("Content-Type") || "").startsWith("application/json")
    ? response.json() : response.text();
}

function askToken(error) {
  const form = $("token-form");
  form.hidden = false;
  $("token-error").hidden = !error;
  $("token-error").textContent = error;
  form.token.focus();
}

function problem(text) {
  $("problem").hidden = !text;
  $("problem").textContent = text || "";
}

// 24-hour clock in every locale: metering times are read as 17:00, never as 05:00 PM.
function localTime(iso) {
  if (!iso) return "never";
  return new Date(iso).toLocaleString([], {
    month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
}

function level(percent) {
  if (percent === null) return "none";
  return percent >= 100 ? "full" : percent >= 95 ? "partial" : "poor";
}

function cell(text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  return td;
}

// -- the table of sites --------------------------------------------------------------------

function renderSites(sites) {
  state.sites = sites;
  const body = $("sites").tBodies[0];
  body.replaceChildren(...sites.map(siteRow));
  $("site-count").textContent = `${sites.length} site${sites.length === 1 ? "" : "s"}`;
  $("updated").textContent = new Date().toLocaleTimeString([], {hourCycle: "h23"});
}

function siteRow(site) {
  const tr = document.createElement("tr");
  tr.dataset.publisher = site.publisher;
  tr.setAttribute("aria-selected", String(site.publisher === state.site));
  const name = cell(site.name || site.publisher, "site");
  if (site.name) name.title = site.publisher;
  const badge = document.createElement("span");
  badge.className = "state";
  badge.dataset.state = site.state;
  badge.textContent = site.state;
  const stateCell = cell("", "state-cell");
  stateCell.append(badge);
  const days = document.createElement("div");
  days.className = "days";
  for (const d of site.completeness) {
    const span = document.createElement("span");
    span.className = "day";
    span.dataset.day = d.day;
    span.dataset.percent = d.percent === null ? "" : String(d.percent);
    span.dataset.level = level(d.percent);
    span.dataset.selected = String(site.publisher === state.site && d.day === state.day);
    span.textContent = d.percent === null ? "–" : `${Math.floor(d.percent)}`;
    span.title = `${d.day}: ${d.stored} of ${d.expected} due quarter hours stored`
      + (d.not_recorded ? `, ${d.not_recorded} not recorded by the meter` : "") + ` (${d.periods} in the day)`;
    span.addEventListener("click", (event) => {
      event.stopPropagation();
      showSite(site.publisher, d.day);
    });
    days.append(span);
  }
  const daysCell = cell("", "completeness");
  daysCell.append(days);
  tr.append(name, stateCell, cell(localTime(site.last_seen), "last-seen"), cell(String(site.backlog), "num backlog"),
    cell(site.rate.toFixed(2), "num rate"), daysCell);
  tr.addEventListener("click", () => showSite(site.publisher, null));
  return tr;
}

async function poll() {
  clearTimeout(state.timer);
  try {
    renderSites(await api("/api/sites"));
    $("token-form").hidden = true;
    problem("");
  } catch (err) {
    if (!(err instanceof Unauthorized)) problem(`Cannot read the sites: ${err.message}`);
    if (err instanceof Unauthorized) return;  // polling resumes once a token is given
  }
  state.timer = setTimeout(poll, POLL_MS);
}

// -- one site's load profile ---------------------------------------------------------------

async function showSite(publisher, day) {
  const site = state.sites.find((s) => s.publisher === publisher);
  if (!site) return;
  state.site = publisher;
  state.day = day || state.day && publisher === $("site").dataset.publisher && state.day
    || site.completeness[site.completeness.length - 1].day;  // today, in the site's zone
  $("site").dataset.publisher = publisher;
  $("site").hidden = false;
  $("site-title").textContent = site.name || site.publisher;
  $("site-zone").textContent = `${site.publisher} · ${site.timezone}`;
  $("day").value = state.day;
  for (const tr of $("sites").tBodies[0].rows) {
    tr.setAttribute("aria-selected", String(tr.dataset.publisher === publisher));
    for (const span of tr.querySelectorAll(".day")) {
      span.dataset.selected = String(tr.dataset.publisher === publisher && span.dataset.day === state.day);
    }
  }
  try {
    const detail = await api(`/api/sites/${encodeURIComponent(publisher)}`);
    const select = $("meter");
    const previous = select.value;
    select.replaceChildren(...detail.meters.map((m) => new Option(m.meter, m.meter)));
    if (detail.meters.some((m) => m.meter === previous)) select.value = previous;
    await loadProfile();
  } catch (err) {
    if (!(err instanceof Unauthorized)) problem(`Cannot read ${publisher}: ${err.message}`);
  }
}

async function loadProfile() {
  const meter = $("meter").value;
  const svg = $("chart");
  if (!meter) {
    svg.replaceChildren();
    svg.dataset.state = "no-meter";
    $("profile-summary").textContent = "No load profile stored for this site yet.";
    return;
  }
  const site = encodeURIComponent(state.site);
  const path = `/api/sites/${site}/meters/${encodeURIComponent(meter)}/profile?stream=lp1&day=${state.day}`;
  svg.dataset.state = "loading";
  const profile = await api(path);
  state.profile = profile;
  const channels = profile.fields.filter((f) => f !== "MeterStatus");
  const select = $("channel");
  select.replaceChildren(...channels.map((f) => new Option(f, f)));
  state.channel = channels.includes(state.channel) ? state.channel
    : channels.includes("APlusPerPeriod") ? "APlusPerPeriod" : channels[0] || null;
  if (state.channel) select.value = state.channel;
  draw();
}

function draw() {
  const profile = state.profile;
  const svg = $("chart");
  const ns = "http://www.w3.org/2000/svg";
  const from = Date.parse(profile.from.replace(/\.\d+Z$/, "Z"));
  const count = Math.round((Date.parse(profile.to.replace(/\.\d+Z$/, "Z")) - from) / PERIOD_MS);
  const byIndex = new Map();
  for (const r of profile.records) {
    byIndex.set(Math.round((Date.parse(r.time) - from) / PERIOD_MS) - 1, r);
  }
  const values = [...byIndex.values()].map((r) => r.values[state.channel]).filter((v) => typeof v === "number");
  const top = Math.max(0, ...values) || 1;
  const bottom = Math.min(0, ...values);
  const width = 960, height = 240, slot = width / count;
  const y = (v) => height - ((v - bottom) / (top - bottom)) * height;
  const shapes = [];
  let total = 0;
  for (let i = 0; i < count; i++) {
    const r = byIndex.get(i);
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("x", String(i * slot));
    rect.setAttribute("width", String(Math.max(slot - 1, 1)));
    const end = new Date(from + (i + 1) * PERIOD_MS).toISOString();
    const title = document.createElementNS(ns, "title");
    const v = r ? r.values[state.channel] : undefined;
    if (typeof v === "number") {
      rect.setAttribute("class", "bar");
      rect.setAttribute("y", String(Math.min(y(v), y(0))));
      rect.setAttribute("height", String(Math.max(Math.abs(y(0) - y(v)), 0.5)));
      rect.dataset.value = String(v);
      total += v;
      title.textContent = `${localTime(end)}: ${v}`;
    } else {
      rect.setAttribute("class", "gap");  // not stored (or no value): shown, not hidden
      rect.setAttribute("y", "0");
      rect.setAttribute("height", String(height));
      title.textContent = `${localTime(end)}: ${r ? "no value" : "not stored"}`;
    }
    rect.dataset.end = end;
    rect.append(title);
    shapes.push(rect);
  }
  const axis = document.createElementNS(ns, "line");
  axis.setAttribute("class", "axis");
  axis.setAttribute("x1", "0"); axis.setAttribute("x2", String(width));
  axis.setAttribute("y1", String(y(0))); axis.setAttribute("y2", String(y(0)));
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", "4"); label.setAttribute("y", String(height + 14));
  label.textContent = `${state.day}, ${count} quarter hours; top ${top}`;
  svg.replaceChildren(...shapes, axis, label);
  svg.dataset.channel = state.channel || "";
  svg.dataset.day = state.day;
  svg.dataset.state = "drawn";
  $("profile-summary").textContent = state.channel
    ? `${state.channel}: ${values.length} of ${count} quarter hours stored, total ${+total.toFixed(6)}`
    : `No quarter hours stored on ${state.day}.`;
}

async function download(event) {
  event.preventDefault();
  // A plain link would not carry the token: fetch, then hand the file over.
  try {
    const text = await api(`/api/export?day=${state.day}&site=${encodeURIComponent(state.site)}`);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text], {type: "text/csv"}));
    link.download = `smx-headend-${state.day}-${state.site}.csv`;
    link.click();
    URL.revokeObjectURL(link.href);
  } catch (err) {
    if (!(err instanceof Unauthorized)) problem(`Cannot export: ${err.message}`);
  }
}

function start() {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, event.target.token.value.trim());
    event.target.token.value = "";
    poll();
  });
  $("meter").addEventListener("change", () => loadProfile().catch((err) => problem(err.message)));
  $("channel").addEventListener("change", () => { state.channel = $("channel").value; draw(); });
  $("day").addEventListener("change", () => {
    if ($("day").value) showSite(state.site, $("day").value);
  });
  $("export").addEventListener("click", download);
  poll();
}

start();
