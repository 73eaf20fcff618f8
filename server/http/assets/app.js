// The Orchard dashboard: plain JavaScript, no framework. Three views chosen by
// the URL hash (#/ tasks, #/tasks/ID one task, #/workers), each re-rendered
// from the JSON API (/api/v1/, see server/http/api.h) every second, so the page
// follows the cluster live without reloading. All server text is escaped.
"use strict";

const POLL_MS = 1000;
const STATES = ["Preparing", "Running", "Terminating", "Error", "Terminated"];
const COLORS = {
  Preparing: "var(--preparing)", Running: "var(--running)", Terminating: "var(--terminating)",
  Error: "var(--error)", Terminated: "var(--terminated)",
};

const view = document.getElementById("view");
const statusEl = document.getElementById("status");
let timer = null;
let generation = 0;  // bumps on navigation, so a late answer for an old view is dropped
let listFilter = "";

function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

function ago(iso) {
  if (!iso) return "–";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.floor(s)}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${Math.floor(s % 60)}s ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

function duration(fromIso, toIso) {
  if (!fromIso) return "–";
  const ms = (toIso ? Date.parse(toIso) : Date.now()) - Date.parse(fromIso);
  const s = Math.max(0, ms / 1000);
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${Math.floor(s % 60)}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

function badge(state, outcome) {
  const cls = outcome === "CANCELLED" ? "CANCELLED" : state;
  const text = outcome ? `${state} · ${outcome}` : state;
  return `<span class="badge ${esc(cls)}">${esc(text)}</span>`;
}

// A bar of succeeded / running / error / cancelled subtasks out of total.
function progress(task) {
  const c = task.subtasks;
  const total = c.total || 0;
  const pct = (n) => (total ? (100 * n) / total : 0);
  const done = Math.floor(pct(c.succeeded));
  return `<div class="bar" data-progress="${done}" title="${esc(`${c.succeeded} of ${total} subtasks succeeded`)}">` +
    `<span class="done" style="width:${pct(c.succeeded)}%"></span>` +
    `<span class="running" style="width:${pct(c.running + c.terminating)}%"></span>` +
    `<span class="error" style="width:${pct(c.error)}%"></span>` +
    `<span class="cancelled" style="width:${pct(c.cancelled)}%"></span></div>` +
    `<div class="bar-label">${c.succeeded}/${total} subtasks (${done}%)` +
    (task.items && task.items.total ? ` · items ${task.items.done}/${task.items.total}` : "") + "</div>";
}

async function api(path) {
  const r = await fetch(path, { cache: "no-store" });
  const body = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) {
    const e = new Error(body.error || `HTTP ${r.status}`);
    e.status = r.status;
    throw e;
  }
  return body;
}

function setStatus(ok, text) {
  statusEl.textContent = text;
  statusEl.classList.toggle("down", !ok);
}

// ------------------------------------------------------------------ views

async function renderTasks(gen) {
  const q = listFilter ? `&state=${encodeURIComponent(listFilter)}` : "";
  const data = await api(`/api/v1/tasks?limit=100${q}`);
  if (gen !== generation) return;
  const rows = data.tasks.map((t) => `
    <tr data-task="${esc(t.id)}" data-state="${esc(t.state)}">
      <td><a class="mono" href="#/tasks/${encodeURIComponent(t.id)}">${esc(t.id)}</a></td>
      <td>${esc(t.kind)}</td>
      <td>${badge(t.state, t.outcome)}</td>
      <td style="width:34%">${progress(t)}</td>
      <td class="muted">${t.subtasks.error ? `<span style="color:var(--error);font-weight:600">${t.subtasks.error} failed</span>` : ""}</td>
      <td class="muted" title="${esc(t.created)}">${esc(ago(t.created))}</td>
      <td class="muted">${esc(duration(t.started || t.created, t.finished))}</td>
    </tr>`).join("");
  // The toolbar is drawn once per visit, so an open <select> survives the polls.
  if (!document.getElementById("tasks-page")) {
    const options = ["", ...STATES].map((s) =>
      `<option value="${s}" ${s === listFilter ? "selected" : ""}>${s || "any state"}</option>`).join("");
    view.innerHTML = `<div id="tasks-page"><h1>Tasks</h1>
      <div class="toolbar"><label>Show <select id="state-filter">${options}</select></label>
        <span class="muted" id="tasks-count"></span></div>
      <div class="panel" id="tasks-panel"></div></div>`;
    document.getElementById("state-filter").onchange = (e) => {
      listFilter = e.target.value;
      generation++;
      refresh();
    };
  }
  document.getElementById("tasks-count").textContent = `${data.tasks.length} task(s), newest first`;
  document.getElementById("tasks-panel").innerHTML = data.tasks.length === 0
    ? `<div class="empty">No tasks${listFilter ? ` in ${esc(listFilter)}` : " yet"}. Submit one with <code>orchardctl submit --kind sum --range 0:1000000 --subtasks 100</code>.</div>`
    : `<table id="tasks">
      <thead><tr><th>ID</th><th>Kind</th><th>State</th><th>Progress</th><th>Failures</th><th>Created</th><th>Duration</th></tr></thead>
      <tbody>${rows}</tbody>
    </table>`;
}

// The grid: one cell per range of subtasks, coloured by its states (a
// gradient when they are mixed); cells are kept and only restyled.
function renderGrid(container, grid) {
  const n = grid.cells.length;
  if (container.childElementCount !== n) {
    container.textContent = "";
    const frag = document.createDocumentFragment();
    for (let i = 0; i < n; i++) {
      const d = document.createElement("div");
      d.className = "cell";
      frag.appendChild(d);
    }
    container.appendChild(frag);
  }
  container.classList.toggle("dense", n > 400);
  for (let i = 0; i < n; i++) {
    const counts = grid.cells[i];
    const begin = i * grid.cell_size;
    const end = Math.min(grid.total, begin + grid.cell_size);
    const sum = counts.reduce((a, b) => a + b, 0) || 1;
    let stops = [], at = 0, parts = [], main = 0;
    counts.forEach((c, s) => {
      if (!c) return;
      const from = (100 * at) / sum;
      at += c;
      const to = (100 * at) / sum;
      stops.push(`${COLORS[STATES[s]]} ${from}% ${to}%`);
      parts.push(`${c} ${STATES[s]}`);
      if (c > counts[main]) main = s;
    });
    const bg = stops.length === 1 ? COLORS[STATES[main]] : `linear-gradient(90deg, ${stops.join(", ")})`;
    const el = container.children[i];
    if (el.dataset.bg !== bg) {
      el.style.background = bg;
      el.dataset.bg = bg;
    }
    el.dataset.state = STATES[counts.findIndex((c) => c > 0)] || "";
    el.title = end - begin === 1 ? `subtask ${begin}: ${parts.join(", ")}`
                                 : `subtasks ${begin}–${end - 1}: ${parts.join(", ")}`;
  }
}

async function renderTask(gen, id) {
  let t, subs, errs;
  try {
    [t, subs, errs] = await Promise.all([
      api(`/api/v1/tasks/${encodeURIComponent(id)}`),
      api(`/api/v1/tasks/${encodeURIComponent(id)}/subtasks?limit=0`),
      api(`/api/v1/tasks/${encodeURIComponent(id)}/errors?limit=200`),
    ]);
  } catch (e) {
    if (gen !== generation) return;
    if (e.status === 404 || e.status === 400) {
      view.innerHTML = `<h1>Task <span class="mono">${esc(id)}</span></h1><div class="banner">${esc(e.message)}</div><a href="#/">All tasks</a>`;
      return;
    }
    throw e;
  }
  if (gen !== generation) return;
  const task = t.task;
  const c = task.subtasks;
  if (!document.getElementById("task-page") || view.dataset.task !== id) {
    view.dataset.task = id;
    view.innerHTML = `
      <div id="task-page">
      <h1><a href="#/" class="muted" style="font-weight:400">Tasks /</a> <span class="mono">${esc(id)}</span> <span id="task-badge"></span></h1>
      <div id="task-reason"></div>
      <div class="row">
        <div class="panel"><h2>Progress</h2><div id="task-progress"></div><div id="task-counts" class="counts" style="margin-top:10px"></div></div>
        <div class="panel"><h2>Task</h2><dl class="kv" id="task-kv"></dl></div>
      </div>
      <div class="panel"><h2>Subtasks <span class="muted" id="grid-note" style="font-weight:400"></span></h2>
        <div class="grid" id="grid"></div>
        <div class="legend">${STATES.map((s) => `<span><span class="dot" style="background:${COLORS[s]}"></span>${s}</span>`).join("")}</div>
      </div>
      <div class="panel errors"><h2>Failed subtasks</h2><div id="task-errors"></div></div>
      <div class="row">
        <div class="panel"><h2>Timeline</h2><ul class="timeline" id="timeline"></ul></div>
        <div class="panel"><h2>Result</h2><div id="task-result"></div></div>
      </div>
      </div>`;
  }
  document.getElementById("task-badge").innerHTML = badge(task.state, task.outcome);
  document.getElementById("task-badge").dataset.state = task.state;
  const reason = document.getElementById("task-reason");
  reason.innerHTML = task.reason
    ? `<div class="reason ${task.outcome === "FAILED" ? "" : "info"}" id="reason-text">${esc(task.reason)}</div>` : "";
  document.getElementById("task-progress").innerHTML = progress(task);
  document.getElementById("task-counts").innerHTML = STATES.map((s) =>
    `<span><span class="dot" style="background:${COLORS[s]}"></span>${s} <b>${c[s.toLowerCase()]}</b></span>`).join("") +
    `<span class="muted">succeeded <b>${c.succeeded}</b> · cancelled <b>${c.cancelled}</b></span>`;
  const p = task.policy;
  document.getElementById("task-kv").innerHTML = [
    ["Kind", esc(task.kind)],
    ["Range", `[${task.range.begin}, ${task.range.end})`],
    ["Params", `<code>${esc(JSON.stringify(task.params))}</code>`],
    ["Policy", esc(`max attempts ${p.max_attempts}, failure budget ${p.max_failed_subtasks ?? "none"}` +
      (p.deadline_ms ? `, deadline ${p.deadline_ms} ms` : "") + (p.parallelism ? `, parallelism ${p.parallelism}` : ""))],
    ["Labels", esc(Object.entries(task.labels).map(([k, v]) => `${k}=${v}`).join(", ") || "–")],
    ["Created", `${esc(task.created)} <span class="muted">(${esc(ago(task.created))})</span>`],
    ["Duration", esc(duration(task.started || task.created, task.finished))],
    ["Reconciler", esc(task.reconciler || "–")],
  ].map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("");

  const grid = subs.grid;
  document.getElementById("grid-note").textContent = grid.total === 0 ? "(not planned yet)"
    : grid.cell_size === 1 ? `(${grid.total}, one cell each)`
    : `(${grid.total} in ${grid.cells.length} cells of ${grid.cell_size})`;
  renderGrid(document.getElementById("grid"), grid);

  document.getElementById("task-errors").innerHTML = errs.errors.length === 0
    ? `<div class="empty">No failed attempts.</div>`
    : `<table><thead><tr><th>Subtask</th><th>State</th><th>Attempt</th><th>Error</th><th>Worker</th><th>When</th></tr></thead><tbody>` +
      errs.errors.map((e) => `<tr data-index="${e.index}"><td class="mono">${e.index}</td><td>${badge(e.state)}</td>` +
        `<td>${e.attempt} of ${p.max_attempts}</td><td class="err">${esc(e.error)}</td><td class="mono">${esc(e.worker || "–")}</td>` +
        `<td class="muted" title="${esc(e.updated)}">${esc(ago(e.updated))}</td></tr>`).join("") + `</tbody></table>` +
      (errs.next_page_token ? `<div class="muted">More failed subtasks: <code>orchardctl subtasks ${esc(id)} --state Error</code></div>` : "");

  document.getElementById("timeline").innerHTML = t.history.map((h) => `
    <li class="${esc(h.to)}"><b>${h.from ? `${esc(h.from)} → ` : ""}${esc(h.to)}</b> <span class="muted">${esc(h.event)}</span>
      ${h.reason ? `<div>${esc(h.reason)}</div>` : ""}
      <div class="when">${esc(h.time)} · ${esc(h.actor)}</div></li>`).join("");
  document.getElementById("task-result").innerHTML = task.result === null
    ? `<div class="empty">${task.state === "Terminated" || task.state === "Error" ? "No result." : "Not finished yet."}</div>`
    : (task.result_partial
        ? `<div class="partial" id="result-partial">Partial: the task ${task.outcome === "FAILED" ? "failed" : "was cancelled"}; only the slices that succeeded are in it.</div>`
        : "") +
      `<pre class="json" id="result-json">${esc(JSON.stringify(task.result, null, 2))}</pre>`;
}

async function renderWorkers(gen) {
  const data = await api("/api/v1/workers");
  if (gen !== generation) return;
  const rows = data.workers.map((w) => {
    const pct = w.slots ? (100 * w.slots_in_use) / w.slots : 0;
    const state = !w.alive ? "dead" : w.draining ? "draining" : "alive";
    return `<tr data-worker="${esc(w.id)}">
      <td><b>${esc(w.name)}</b><div class="mono muted">${esc(w.id)}</div></td>
      <td><span class="badge ${state}">${state}</span></td>
      <td style="width:24%"><div class="bar"><span class="running" style="width:${pct}%"></span></div>
        <div class="bar-label">${w.slots_in_use} of ${w.slots} slots in use</div></td>
      <td>${w.kinds.map((k) => `<code>${esc(k)}</code>`).join(" ")}</td>
      <td class="muted" title="${esc(w.last_heartbeat)}">${esc(ago(w.last_heartbeat))}</td>
      <td class="muted" title="${esc(w.registered)}">${esc(ago(w.registered))}</td></tr>`;
  }).join("");
  const alive = data.workers.filter((w) => w.alive);
  const slots = alive.reduce((a, w) => a + w.slots, 0);
  const used = alive.reduce((a, w) => a + w.slots_in_use, 0);
  view.innerHTML = `
    <h1>Workers</h1>
    <div class="toolbar muted">${alive.length} alive of ${data.workers.length} · ${used} of ${slots} slots in use</div>
    <div class="panel">${data.workers.length === 0 ? `<div class="empty">No worker has registered. Start one with <code>orchard-worker --server HOST:PORT --slots 4</code>.</div>` : `
    <table id="workers"><thead><tr><th>Worker</th><th>State</th><th>Slots</th><th>Handlers</th><th>Last heartbeat</th><th>Registered</th></tr></thead>
    <tbody>${rows}</tbody></table>`}</div>`;
}

// ---------------------------------------------------------------- routing

function route() {
  const h = location.hash.replace(/^#/, "") || "/";
  const m = h.match(/^\/tasks\/([^/?]+)/);
  if (m) return { name: "task", id: decodeURIComponent(m[1]) };
  if (h.startsWith("/workers")) return { name: "workers" };
  return { name: "tasks" };
}

async function refresh() {
  clearTimeout(timer);
  const gen = generation;
  const r = route();
  document.querySelectorAll("[data-nav]").forEach((a) =>
    a.classList.toggle("active", a.dataset.nav === (r.name === "task" ? "tasks" : r.name)));
  try {
    if (r.name === "task") await renderTask(gen, r.id);
    else if (r.name === "workers") await renderWorkers(gen);
    else await renderTasks(gen);
    setStatus(true, `live · updated ${new Date().toLocaleTimeString()}`);
  } catch (e) {
    setStatus(false, `server unreachable: ${e.message} (retrying)`);
  }
  if (gen === generation) timer = setTimeout(refresh, POLL_MS);
}

window.addEventListener("hashchange", () => {
  generation++;
  view.dataset.task = "";
  view.innerHTML = "";
  refresh();
});
refresh();
