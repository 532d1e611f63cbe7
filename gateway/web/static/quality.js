// The EN 50160 weekly report page: /static/quality.html?meter=<id>&week=running|last,
// from GET /api/meters/{meter}/power-quality. Plain JavaScript, no external resources.
"use strict";

const $ = (id) => document.getElementById(id);

function when(iso) {
  if (!iso) return "(still going)";
  return new Date(iso).toLocaleString([], {dateStyle: "medium", timeStyle: "short", hourCycle: "h23"});
}

async function show() {
  const params = new URLSearchParams(location.search);
  const meter = params.get("meter") || (await (await fetch("/api/meters")).json())[0].id;
  const week = params.get("week") === "running" ? "running" : "last";
  const base = `/api/meters/${encodeURIComponent(meter)}/power-quality`;
  $("running").href = `?meter=${encodeURIComponent(meter)}&week=running`;
  $("last").href = `?meter=${encodeURIComponent(meter)}&week=last`;
  $("csv").href = `${base}.csv?week=${week}`;
  const response = await fetch(`${base}?week=${week}`, {credentials: "same-origin"});
  const r = await response.json();
  if (!response.ok) throw new Error(r.error || response.statusText);
  $("meter").textContent = r.meter;
  $("span").textContent = `${week === "last" ? "Week" : "Running week"} ${when(r.start)} – ${when(r.end)}`;
  $("hours").textContent = `${r.hours} h, ${r.intervals} ten-minute intervals`;
  $("coverage").textContent = `${r.means} means (${(100 * r.means / r.intervals).toFixed(1)} %), ${r.flagged} flagged`;
  $("verdict").textContent = r.verdict;
  $("verdict").dataset.verdict = r.verdict;
  const rows = $("criteria");
  for (const c of r.criteria) {
    const tr = document.createElement("tr");
    const measured = c.measured === null ? "–" : c.unit ? `${c.measured.toFixed(2)} %` : String(c.measured);
    for (const [text, verdict] of [[c.name], [c.clause], [measured], [c.limit], [c.verdict || "reported", c.verdict]]) {
      const td = document.createElement("td");
      td.textContent = text;
      if (verdict) td.dataset.verdict = verdict;
      tr.append(td);
    }
    tr.children[2].className = "num";
    rows.append(tr);
  }
  const episodes = $("episodes");
  for (const e of r.episodes) {
    const tr = document.createElement("tr");
    for (const text of [e.kind, when(e.start), when(e.end), e.phases.join(", ") || "all"]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    episodes.append(tr);
  }
  if (!r.episodes.length) episodes.innerHTML = "<tr><td colspan=4>None in the meter's event log.</td></tr>";
}

show().catch((err) => {
  $("verdict").textContent = `not available: ${err.message}`;
});
