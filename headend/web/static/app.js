// SMX head-end fleet page: the sites from /api/sites every few seconds, one site's load
// profile drawn as SVG bars; a portfolio's live view (its net power of the last hour as an
// SVG line, the running period against its schedule, the advice, its members' freshness
// and the flexibility ranking). Plain JavaScript, no build step, no external resources.
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
  portfolio: null,   // the portfolio shown
  portfolios: [],    // the last /api/portfolios answer
  recent: [],        // its points of the last hour, oldest first
  pfTimer: null,
  pfRound: 0,        // the latest portfolio poll
};
const HOUR_MS = 3600e3;
const MEMBER_ROWS = 200;

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

// A site's name cell (its PublisherId as the title when it has a name) and its state cell (a badge).
function siteCells(publisher, siteName, siteState) {
  const name = cell(siteName || publisher, "site");
  if (siteName) name.title = publisher;
  const badge = document.createElement("span");
  badge.className = "state";
  badge.dataset.state = siteState;
  badge.textContent = siteState;
  const stateCell = cell("", "state-cell");
  stateCell.append(badge);
  return [name, stateCell];
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
  tr.append(...siteCells(site.publisher, site.name, site.state), cell(localTime(site.last_seen), "last-seen"),
    cell(String(site.backlog), "num backlog"), cell(site.rate.toFixed(2), "num rate"), daysCell);
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

// -- a portfolio's live view ----------------------------------------------------------------

const kw = (v, digits = 1) => (typeof v === "number" ? `${v.toFixed(digits)} kW` : "–");
const kwh = (v, digits = 2) => (typeof v === "number" ? `${v.toFixed(digits)} kWh` : "–");

function wanted() {
  const match = /^#portfolio=(.+)$/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

// Local clock time in the portfolio's market zone (its periods are that zone's quarter hours).
function zoneTime(iso, zone, seconds = false) {
  return new Date(iso).toLocaleTimeString([], {
    timeZone: zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23", ...(seconds ? {second: "2-digit"} : {}),
  });
}

function duration(s) {
  const whole = Math.max(0, Math.round(s));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

async function pollPortfolio() {
  clearTimeout(state.pfTimer);
  const round = ++state.pfRound;  // a poll started meanwhile (a choice, a token) takes over the timer
  try {
    await showPortfolio(round);
  } catch (err) {
    if (err instanceof Unauthorized) return;  // resumes once a token is given
    problem(`Cannot read the portfolio: ${err.message}`);
  }
  if (round === state.pfRound) state.pfTimer = setTimeout(pollPortfolio, POLL_MS);
}

async function showPortfolio(round) {
  const list = await api("/api/portfolios");
  if (round !== state.pfRound) return;
  state.portfolios = list;
  const view = $("portfolio-view");
  view.hidden = list.length === 0;
  if (!list.length) return;
  const select = $("portfolio");
  const names = list.map((p) => p.name);
  if (select.options.length !== names.length || [...select.options].some((o, i) => o.value !== names[i])) {
    const previous = select.value;
    select.replaceChildren(...names.map((n) => new Option(n, n)));
    if (names.includes(previous)) select.value = previous;
  }
  // The first time the address may name one (#portfolio=NAME); then the choice in the list.
  const chosen = state.portfolio === null ? wanted() ?? select.value : select.value;
  const name = names.includes(chosen) ? chosen : names[0];
  select.value = name;
  if (name !== state.portfolio) {
    state.portfolio = name;
    state.recent = [];
    $("pf-chart").dataset.state = "loading";
  }
  const base = `/api/portfolios/${encodeURIComponent(name)}`;
  const last = state.recent.length ? state.recent[state.recent.length - 1].time : null;
  const [live, recent, members, flexibility] = await Promise.all([
    api(`${base}/live`),
    api(`${base}/recent${last ? `?since=${encodeURIComponent(last)}` : ""}`),
    api(`${base}/members?limit=${MEMBER_ROWS}`),
    api(`${base}/flexibility`),
  ]);
  if (round !== state.pfRound || name !== state.portfolio) return;  // another poll took over
  const summary = list.find((p) => p.name === name);
  const d = summary.definition;
  $("pf-definition").textContent = `${d.origin === "config" ? "from the configuration file" : "made through REST"}`
    + ` · ${d.period_minutes}-min periods · ${d.timezone} · ${summary.members} members`
    + (d.description ? ` · ${d.description}` : "");
  state.recent = state.recent.concat(recent.points.filter((p) => last === null || p.time > last));
  const cut = Date.parse(live.time) - HOUR_MS;
  state.recent = state.recent.filter((p) => Date.parse(p.time) > cut);
  renderLive(live, d.timezone);
  drawPower(live, d.timezone);
  renderMembers(members);
  renderRanking(flexibility);
  view.dataset.portfolio = name;  // what is shown, once it is
  view.dataset.time = live.time;
}

function renderLive(live, zone) {
  const a = live.aggregate;
  const advice = live.advice;
  $("pf-net").textContent = a ? kw(a.net_kw) : "–";
  $("pf-net").dataset.value = a ? String(a.net_kw) : "";
  $("pf-split").textContent = a
    ? `${kw(a.measured_kw)} measured${a.estimated_kw || a.uncertainty_kw
      ? `, ${kw(a.estimated_kw)} ± ${a.uncertainty_kw.toFixed(1)} estimated` : ""}` : "no aggregate yet";
  $("pf-coverage").textContent = `${Math.round(live.coverage * 100)} %`;
  const m = live.members;
  $("pf-counts").textContent = `${m.fresh} fresh · ${m.stale} stale · ${m.offline} offline of ${m.total}`;
  $("pf-how").textContent = `How it was formed: ${live.how}.`;
  $("pf-advice").textContent = advice.text;
  $("pf-advice").dataset.state = advice.state;
  const p = advice.period;
  $("pf-period-name").textContent = `· period ${p.number}, ${zoneTime(p.start, zone)}–${zoneTime(p.end, zone)}`;
  // The running period against its schedule: the energy so far, where the schedule would be by now.
  const total = (Date.parse(p.end) - Date.parse(p.start)) / 1e3;
  const elapsed = Math.min(1, Math.max(0, 1 - advice.remaining_s / total));
  const energy = a && a.period_start === p.start ? a.energy_kwh : null;
  const notified = advice.notified_kwh;
  const scale = Math.max(Math.abs(notified ?? 0), Math.abs(energy ?? 0)) || 1;
  $("pf-energy-bar").style.width = `${Math.min(100, (Math.abs(energy ?? 0) / scale) * 100)}%`;
  $("pf-energy-bar").dataset.over = String(notified !== null && energy !== null && energy > notified * elapsed);
  $("pf-due").hidden = notified === null;
  $("pf-due").style.left = `${notified === null ? 0 : Math.min(100, (Math.abs(notified * elapsed) / scale) * 100)}%`;
  const parts = [
    energy === null ? "no energy measured yet" : `${kwh(energy)}${a.energy_uncertainty_kwh
      ? ` ± ${a.energy_uncertainty_kwh.toFixed(2)}` : ""} so far`,
    notified === null ? "no schedule for this period" : `of ${kwh(notified)} notified`,
    `${duration(advice.remaining_s)} left`,
  ];
  if (typeof advice.required_kw === "number") parts.push(`${kw(advice.required_kw)} required`);
  $("pf-period").textContent = parts.join(" · ");
  $("pf-progress").dataset.energy = energy === null ? "" : String(energy);
  $("pf-progress").dataset.notified = notified === null ? "" : String(notified);
}

function drawPower(live, zone) {
  const svg = $("pf-chart");
  const ns = "http://www.w3.org/2000/svg";
  // The drawing's units are the element's pixels, so its text is not stretched.
  const width = Math.round(svg.getBoundingClientRect().width) || 960, height = 196, top = 8;
  svg.setAttribute("viewBox", `0 0 ${width} 220`);
  const end = Date.parse(live.time), start = end - HOUR_MS;
  const points = state.recent;
  const values = points.flatMap((p) => [p.net_kw, p.measured_kw]);
  let high = Math.max(0, ...values), low = Math.min(0, ...values);
  const pad = (high - low) * 0.08 || 1;
  high += pad;
  low = low < 0 ? low - pad : 0;
  const x = (t) => ((t - start) / HOUR_MS) * width;
  const y = (v) => top + (height - top) * (1 - (v - low) / (high - low));
  const shapes = [];
  const line = (cls, y1, x1 = 0, x2 = width, y2 = y1) => {
    const el = document.createElementNS(ns, "line");
    el.setAttribute("class", cls);
    for (const [k, v] of Object.entries({x1, x2, y1, y2})) el.setAttribute(k, String(v));
    return el;
  };
  const text = (cls, tx, ty, content, anchor = "start") => {
    const el = document.createElementNS(ns, "text");
    el.setAttribute("class", cls);
    el.setAttribute("x", String(tx));
    el.setAttribute("y", String(ty));
    el.setAttribute("text-anchor", anchor);
    el.textContent = content;
    return el;
  };
  // A quarter-hour grid in the market's zone, labelled.
  const quarter = 15 * 60e3;
  for (let t = Math.ceil(start / quarter) * quarter; t <= end; t += quarter) {
    shapes.push(line("grid", top, x(t), x(t), height));
    shapes.push(text("tick", x(t), height + 16, zoneTime(new Date(t).toISOString(), zone), "middle"));
  }
  shapes.push(line("axis", y(0)));
  // The net power (measured + estimated) and its measured part; a gap over 30 s breaks the line.
  for (const [key, cls] of [["measured_kw", "measured"], ["net_kw", "net"]]) {
    let d = "", before = null;
    for (const p of points) {
      const t = Date.parse(p.time);
      d += `${before === null || t - before > 30e3 ? "M" : "L"}${x(t).toFixed(1)},${y(p[key]).toFixed(1)}`;
      before = t;
    }
    const path = document.createElementNS(ns, "path");
    path.setAttribute("class", cls);
    path.setAttribute("d", d);
    shapes.push(path);
  }
  shapes.push(text("scale", 4, top + 12, `${high.toFixed(1)} kW`), text("scale", 4, y(0) - 4, "0"));
  svg.replaceChildren(...shapes);
  const lastPoint = points[points.length - 1];
  svg.dataset.points = String(points.length);
  svg.dataset.last = lastPoint ? String(lastPoint.net_kw) : "";
  svg.dataset.lastTime = lastPoint ? lastPoint.time : "";
  svg.dataset.state = "drawn";
}

function renderMembers(answer) {
  const rows = answer.members.map((m) => {
    const tr = document.createElement("tr");
    tr.dataset.publisher = m.publisher;
    tr.append(...siteCells(m.publisher, m.name, m.state), cell(typeof m.power_kw === "number" ? m.power_kw.toFixed(2) : "–", "num power"),
      cell(m.age_s === null ? "never" : `${Math.round(m.age_s)} s`, "num age"),
      cell(typeof m.change_kw === "number" ? `${m.change_kw >= 0 ? "+" : ""}${m.change_kw.toFixed(2)}` : "–",
        "num change"));
    return tr;
  });
  $("pf-members").tBodies[0].replaceChildren(...rows);
  const c = answer.counts;
  $("pf-member-count").textContent = `${answer.total} · ${c.fresh} fresh, ${c.stale} stale, ${c.offline} offline`
    + (answer.total > answer.members.length ? ` · the ${answer.members.length} least fresh shown` : "");
}

function renderRanking(answer) {
  const items = answer.ranking.map((f) => {
    const li = document.createElement("li");
    li.dataset.publisher = f.publisher;
    const who = document.createElement("strong");
    who.textContent = f.name || f.publisher;
    li.append(who, document.createTextNode(`: ${f.reason}`));
    return li;
  });
  $("pf-ranking").replaceChildren(...items);
  const none = $("pf-ranking-none");
  none.hidden = items.length > 0;
  none.textContent = typeof answer.advice.correction_kw === "number"
    ? "No fresh member moved against the advice lately." : "No correction asked for: nothing to rank.";
}

function start() {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, event.target.token.value.trim());
    event.target.token.value = "";
    poll();
    pollPortfolio();
  });
  $("portfolio").addEventListener("change", () => {
    history.replaceState(null, "", `#portfolio=${encodeURIComponent($("portfolio").value)}`);
    pollPortfolio();
  });
  $("meter").addEventListener("change", () => loadProfile().catch((err) => problem(err.message)));
  $("channel").addEventListener("change", () => { state.channel = $("channel").value; draw(); });
  $("day").addEventListener("change", () => {
    if ($("day").value) showSite(state.site, $("day").value);
  });
  $("export").addEventListener("click", download);
  poll();
  pollPortfolio();
}

start();
