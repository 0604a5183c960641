// edgeclip's page: one script, no libraries. Every URL is relative, so the
// page works at a reverse proxy's sub-path. Text from the daemon (labels,
// camera names, errors) only ever goes into textContent, never into HTML.
"use strict";

const state = { session: null, cameras: [], live: null, timers: [], page: null, lastLive: null };

// ---- helpers -----------------------------------------------------------

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    // Through the CSSOM: the page's policy forbids style attributes.
    else if (k === "style") e.style.cssText = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

async function api(path, body) {
  const init = { credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    if (state.session && state.session.csrf) init.headers["X-Edgeclip-Csrf"] = state.session.csrf;
    init.body = JSON.stringify(body);
  }
  const r = await fetch("api/" + path, init);
  let data = null;
  try { data = await r.json(); } catch (_) { data = { error: r.status + " " + r.statusText }; }
  if (r.status === 401 && path !== "login") { showLogin(); }
  if (!r.ok) { const e = new Error(data.error || r.statusText); e.data = data; e.status = r.status; throw e; }
  return data;
}

function fmtTime(ms) { return new Date(ms).toLocaleTimeString(); }
function pct(x) { return (100 * x).toFixed(1) + "%"; }
const COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324",
  "#469990", "#800000", "#808000", "#000075", "#bfef45", "#fabed4", "#a9a9a9", "#dcbeff"];

function fillSelect(select, options, keep) {
  const old = select.value;
  select.replaceChildren(...options.map(([value, text]) => el("option", { value, text })));
  if (keep && options.some(([v]) => String(v) === old)) select.value = old;
}

function every(ms, f) { f(); state.timers.push(setInterval(f, ms)); }

// ---- session and pages ---------------------------------------------------

function showLogin() {
  $("nav").hidden = true;
  for (const s of document.querySelectorAll("section.page")) s.hidden = true;
  $("login").hidden = false;
  $("password").focus();
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  try {
    const r = await api("login", { password: $("password").value });
    state.session.csrf = r.csrf;
    state.session.logged_in = true;
    $("password").value = "";
    start();
  } catch (e) {
    $("login-error").textContent = e.message;
  }
});

async function boot() {
  state.session = await api("session");
  $("node").textContent = state.session.node + " · " + state.session.model;
  if (state.session.password && !state.session.logged_in) return showLogin();
  start();
}

async function start() {
  $("login").hidden = true;
  $("nav").hidden = false;
  document.body.classList.toggle("read-only", !state.session.changes);
  $("who").replaceChildren();
  if (state.session.password) {
    $("who").append(el("button", { text: "Log out", onclick: async () => { await api("logout", {}); location.reload(); } }));
  } else {
    $("who").textContent = "read-only (no password set)";
  }
  state.cameras = (await api("cameras")).cameras;
  for (const id of ["scores-camera", "labels-camera", "calibrate-camera"]) {
    fillSelect($(id), state.cameras.map((c) => [c.name, c.name]), true);
  }
  fillSelect($("events-camera"), [["", "all"], ...state.cameras.map((c) => [c.name, c.name])], true);
  // The spans the kept history covers (web.score_history_min).
  const spans = [[2, "2 minutes"], [10, "10 minutes"], [60, "hour"], [360, "6 hours"], [1440, "day"]];
  fillSelect($("scores-minutes"), spans.filter(([m]) => m <= state.session.score_history_min), true);
  $("scores-minutes").value = "10";
  if (!state.started) { window.addEventListener("hashchange", route); state.started = true; }
  route();
}

const PAGES = { live: openLive, scores: openScores, events: openEvents, labels: openLabels, calibrate: openCalibrate, status: openStatus };

function route() {
  const name = (location.hash || "#live").slice(1);
  const open = PAGES[name] || openLive;
  state.timers.forEach(clearInterval);
  state.timers = [];
  if (state.live && name !== "live") { state.live.close(); state.live = null; }
  for (const s of document.querySelectorAll("section.page")) s.hidden = s.id !== name;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("here", a.getAttribute("href") === "#" + name);
  state.page = name;
  open();
}

// ---- Live ----------------------------------------------------------------

function zoneOverlay(cam) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 1 1");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.classList.add("zones");
  for (const z of cam.zones) {
    if (!z.name) continue;
    const [x0, y0, x1, y1] = z.rect;
    const r = document.createElementNS(ns, "rect");
    for (const [k, v] of Object.entries({ x: x0, y: y0, width: x1 - x0, height: y1 - y0 })) r.setAttribute(k, v);
    svg.append(r);
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", x0 + 0.01); t.setAttribute("y", y0 + 0.05);
    t.textContent = z.name;
    svg.append(t);
  }
  return svg;
}

function openLive() {
  const root = $("live-cameras");
  root.replaceChildren();
  for (const cam of state.cameras) {
    const img = el("img", { class: "frame", alt: "the latest frame of " + cam.name });
    const toggle = el("button", { class: "change", text: cam.enabled ? "Switch off" : "Switch on" });
    toggle.addEventListener("click", async () => {
      try { await api("enabled", { camera: cam.name, enabled: !cam.enabled }); } catch (e) { alert(e.message); }
    });
    const card = el("article", { class: "camera", "data-camera": cam.name },
      el("h2", { text: cam.name }, " ", el("span", { class: "state" }), " ", toggle),
      el("figure", {}, el("div", { class: "view" }, img, zoneOverlay(cam)), el("figcaption", { class: "hint" })),
      el("div", { class: "zones-scores" }));
    card._img = img; card._toggle = toggle; card._cam = cam; card._caption = card.querySelector("figcaption");
    root.append(card);
    img.addEventListener("error", () => { img.classList.add("missing"); });
    img.addEventListener("load", () => { img.classList.remove("missing"); });
  }
  // A frame a second, while the page is shown, captioned with its number
  // (the scores beside it may be of a later frame).
  every(1000, async () => {
    for (const card of root.children) {
      try {
        const r = await fetch("api/cameras/" + encodeURIComponent(card._cam.name) + "/frame.jpg", { credentials: "same-origin" });
        if (!r.ok) continue;
        const url = URL.createObjectURL(await r.blob());
        const old = card._img.src;
        card._img.src = url;
        if (old.startsWith("blob:")) URL.revokeObjectURL(old);
        card._caption.textContent = "frame " + r.headers.get("x-frame");
      } catch (_) { /* the next tick tries again */ }
    }
  });
  if (!state.live) {
    state.live = new EventSource("api/live");
    state.live.onmessage = (m) => { state.lastLive = JSON.parse(m.data); drawLive(state.lastLive); };
  } else if (state.lastLive) {
    drawLive(state.lastLive);
  }
}

function scoreBars(zone, active, zoneName) {
  const box = el("div", { class: "bars" });
  if (!zone) { box.append(el("p", { class: "hint", text: "no frame inferred yet" })); return box; }
  const sorted = [...zone.labels].sort((a, b) => b.score - a.score);
  for (const l of sorted) {
    const key = zoneName ? zoneName + "/" + l.label : l.label;
    const bar = el("div", { class: "bar" + (active.includes(key) ? " active" : "") + (l.threshold == null ? " background" : "") },
      el("span", { class: "name", text: l.label }),
      el("span", { class: "track" },
        el("span", { class: "fill", style: "width:" + pct(l.score) }),
        l.threshold == null ? null : el("span", { class: "threshold", style: "left:" + pct(l.threshold), title: "threshold " + l.threshold })),
      el("span", { class: "value", text: l.score.toFixed(3) }));
    bar.dataset.label = l.label;
    bar.dataset.score = l.score;
    box.append(bar);
  }
  return box;
}

function drawLive(live) {
  if (state.page !== "live") return;
  for (const card of $("live-cameras").children) {
    const cam = live.cameras.find((c) => c.name === card._cam.name);
    if (!cam) continue;
    card._cam.enabled = cam.enabled;
    card._toggle.textContent = cam.enabled ? "Switch off" : "Switch on";
    card.querySelector(".state").textContent = (cam.enabled ? "on" : "off") + (cam.active.length ? " · " + cam.active.join(", ") : "");
    const zs = card.querySelector(".zones-scores");
    zs.replaceChildren(...cam.zones.map((z) => el("div", { class: "zone" },
      el("h3", { text: (z.zone || "whole frame") + (z.scores ? " · frame " + z.scores.frame + " at " + fmtTime(z.scores.time_ms) : "") }),
      scoreBars(z.scores, cam.active, z.zone))));
  }
}

// ---- Scores over time --------------------------------------------------------

function zonesOf(name) {
  const cam = state.cameras.find((c) => c.name === name);
  return cam ? cam.zones : [];
}

function openScores() {
  const camSel = $("scores-camera"), zoneSel = $("scores-zone");
  const fillZones = () => fillSelect(zoneSel, zonesOf(camSel.value).map((z) => [z.index, z.name || "whole frame"]), true);
  fillZones();
  camSel.onchange = () => { fillZones(); drawScores(); };
  zoneSel.onchange = drawScores;
  $("scores-minutes").onchange = drawScores;
  every(5000, drawScores);
}

async function drawScores() {
  const q = "scores?camera=" + encodeURIComponent($("scores-camera").value) + "&zone=" + $("scores-zone").value +
    "&minutes=" + $("scores-minutes").value;
  let d;
  try { d = await api(q); } catch (e) { $("scores-legend").textContent = e.message; return; }
  const c = $("scores-chart"), g = c.getContext("2d");
  const W = c.width, H = c.height, L = 40, R = 10, T = 10, B = 24;
  const x = (t) => L + (W - L - R) * (t - d.from_ms) / (d.to_ms - d.from_ms);
  const y = (s) => T + (H - T - B) * (1 - s);
  g.clearRect(0, 0, W, H);
  g.font = "12px sans-serif";
  g.fillStyle = "#666"; g.strokeStyle = "#ddd"; g.lineWidth = 1;
  for (const s of [0, 0.25, 0.5, 0.75, 1]) {
    g.beginPath(); g.moveTo(L, y(s)); g.lineTo(W - R, y(s)); g.stroke();
    g.fillText(s.toFixed(2), 4, y(s) + 4);
  }
  for (let i = 0; i <= 4; i++) {
    const t = d.from_ms + i * (d.to_ms - d.from_ms) / 4;
    g.fillText(fmtTime(t), Math.min(x(t) - 24, W - 70), H - 6);
  }
  // Background labels in grey: they never fire, and there may be more
  // labels than colours.
  const colour = (i) => d.thresholds[d.labels[i]] == null ? "#999999" : COLOURS[i % COLOURS.length];
  for (const e of d.events) {
    const i = d.labels.indexOf(e.label);
    g.fillStyle = colour(Math.max(i, 0)) + "33";
    const x0 = x(Math.max(e.start_ms, d.from_ms)), x1 = x(e.end_ms == null ? d.to_ms : e.end_ms);
    g.fillRect(x0, T, Math.max(x1 - x0, 2), H - T - B);
  }
  d.labels.forEach((name, i) => {
    const thr = d.thresholds[name];
    g.strokeStyle = colour(i);
    if (thr != null) {
      g.setLineDash([5, 4]); g.beginPath(); g.moveTo(L, y(thr)); g.lineTo(W - R, y(thr)); g.stroke(); g.setLineDash([]);
    }
    g.lineWidth = thr == null ? 1 : 2;
    g.beginPath();
    let started = false;
    for (const p of d.points) {
      const s = p[i + 1];
      if (s == null) { started = false; continue; }
      if (!started) { g.moveTo(x(p[0]), y(s)); started = true; } else g.lineTo(x(p[0]), y(s));
    }
    g.stroke();
    g.lineWidth = 1;
  });
  c.dataset.points = d.points.length;
  c.dataset.events = d.events.length;
  $("scores-legend").replaceChildren(el("span", { text: d.frames + " inferred frames; " }),
    ...d.labels.map((name, i) => el("span", { class: "key", style: "border-color:" + (d.thresholds[name] == null ? "#999999" : COLOURS[i % COLOURS.length]), text: name +
      (d.thresholds[name] != null ? " @" + d.thresholds[name].toFixed(2) : " (background)") })));
}

// ---- Events --------------------------------------------------------------------

function openEvents() {
  $("events-form").onsubmit = (ev) => { ev.preventDefault(); listEvents(); };
  listEvents();
}

function eventQuery() {
  const p = new URLSearchParams();
  for (const [k, id] of [["camera", "events-camera"], ["zone", "events-zone"], ["label", "events-label"]]) {
    if ($(id).value) p.set(k, $(id).value);
  }
  return p;
}

async function listEvents(like) {
  const p = eventQuery();
  const text = $("events-text").value.trim();
  let rows, note;
  try {
    if (like != null) {
      p.set("like", like);
      rows = (await api("search?" + p)).hits; note = "events most like event " + like;
    } else if (text) {
      p.set("q", text);
      rows = (await api("search?" + p)).hits; note = "events most like “" + text + "”";
    } else {
      rows = (await api("events?" + p)).events; note = "newest first";
    }
  } catch (e) { $("events-note").textContent = e.message; $("events-list").replaceChildren(); return; }
  $("events-note").textContent = rows.length + " " + note;
  $("events-list").replaceChildren(...rows.map(eventCard));
}

function eventCard(e) {
  const start = e.start || e.time;
  const img = el("img", { class: "snapshot", loading: "lazy", alt: "snapshot of event " + e.id,
    src: "api/events/" + e.id + "/snapshot.jpg" });
  const exampleLabel = el("input", { size: 12, placeholder: "label", value: e.label || "" });
  const result = el("span", { class: "hint" });
  const add = el("button", { class: "change", text: "Add as example", onclick: async () => {
    result.textContent = "…";
    try {
      const r = await api("example", { camera: e.camera, zone: e.zone, label: exampleLabel.value, event: e.id });
      result.textContent = "saved (" + r.examples + " examples)";
    } catch (err) { result.textContent = err.message; }
  } });
  return el("article", { class: "event", "data-id": e.id }, img,
    el("div", {},
      el("strong", { text: e.label }), " ",
      el("span", { text: e.camera + (e.zone ? "/" + e.zone : "") }),
      el("div", { class: "hint", text: new Date(start).toLocaleString() +
        (e.peak != null ? " · peak " + e.peak.toFixed(3) : "") + (e.score != null && e.peak == null ? " · likeness " + e.score.toFixed(3) : "") +
        (e.reason ? " · ended: " + e.reason : "") }),
      el("button", { text: "More like this", onclick: () => listEvents(e.id) }),
      el("div", { class: "change" }, exampleLabel, add, result)));
}

// ---- Labels ---------------------------------------------------------------------

let labelsBase = null;

function openLabels() {
  $("labels-camera").onchange = loadLabels;
  $("labels-file").onchange = () => showLabelsFile(true);
  $("labels-check").onclick = () => checkLabels(false);
  $("labels-save").onclick = () => checkLabels(true);
  $("example-frame").onclick = addFrameExample;
  loadLabels();
}

let labelsFiles = [];

async function loadLabels() {
  const d = await api("labels?camera=" + encodeURIComponent($("labels-camera").value));
  labelsFiles = d.files;
  fillSelect($("labels-file"), d.files.map((f) => [f.index, f.path]), true);
  showLabelsFile(true);
}

function showLabelsFile(reset) {
  const f = labelsFiles[Number($("labels-file").value)] || labelsFiles[0];
  if (!f) return;
  $("labels-path").textContent = f.path + " · used by " + f.zones.map((z) => z || "the whole frame").join(", ") +
    " · loaded from " + f.origin;
  if (reset) {
    $("labels-text").value = f.text == null ? "" : f.text;
    labelsBase = f.text;
    $("labels-result").textContent = f.error || "";
    $("labels-preview").replaceChildren();
  }
}

function selectLine(area, line) {
  const lines = area.value.split("\n");
  const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
  area.focus();
  area.setSelectionRange(start, start + (lines[line - 1] || "").length);
}

async function checkLabels(save) {
  const body = { camera: $("labels-camera").value, file: Number($("labels-file").value || 0), text: $("labels-text").value };
  $("labels-result").textContent = save ? "saving…" : "checking…";
  $("labels-result").className = "";
  try {
    const d = await api("labels/check", body);
    $("labels-preview").replaceChildren(...d.zones.map((z) => el("div", { class: "zone" },
      el("h3", { text: "On the current frame of " + (z.zone || "the whole frame") }),
      z.scores ? scoreBars(z.scores, [], z.zone) : el("p", { class: "hint", text: "no frame inferred yet" }))));
    if (!save) { $("labels-result").textContent = "valid"; return; }
    const r = await api("labels/save", { ...body, base: labelsBase });
    labelsBase = body.text;
    $("labels-result").textContent = "saved to " + r.saved + "; the daemon loads it within a second";
  } catch (e) {
    $("labels-result").textContent = e.message;
    $("labels-result").className = "error";
    if (e.data && e.data.line) selectLine($("labels-text"), e.data.line);
  }
}

async function addFrameExample() {
  $("example-result").textContent = "waiting for the next frame…";
  try {
    const r = await api("example", { camera: $("labels-camera").value, zone: $("example-zone").value || null,
      label: $("example-label").value });
    $("example-result").textContent = "saved " + r.saved + " (" + r.examples + " examples); the labels load again";
  } catch (e) { $("example-result").textContent = e.message; }
}

// ---- Calibrate -------------------------------------------------------------------

let proposals = [];
let windowEvents = [];

function openCalibrate() {
  $("calibrate-form").onsubmit = (ev) => { ev.preventDefault(); runCalibration([]); };
  $("calibrate-apply").onclick = applyProposals;
}

async function runCalibration(right) {
  const q = "calibrate?camera=" + encodeURIComponent($("calibrate-camera").value) + "&minutes=" +
    $("calibrate-minutes").value + "&margin=" + $("calibrate-margin").value +
    (right.length ? "&right=" + encodeURIComponent(JSON.stringify(right)) : "");
  $("calibrate-note").textContent = "…";
  try {
    const d = await api(q);
    proposals = d.labels;
    $("calibrate-note").textContent = d.frames + " inferred frames of the last " + d.minutes + " minutes, " +
      d.right + " events taken as right";
    drawProposals();
    drawWindowEvents(d.events, right);
  } catch (e) { $("calibrate-note").textContent = e.message; }
}

function drawWindowEvents(events, right) {
  windowEvents = events;
  const isRight = (e) => right.some((r) => r.label === e.label && r.start_ms === e.start_ms && r.zone === e.zone);
  const box = $("calibrate-events");
  if (!events.length) { box.replaceChildren(el("p", { class: "hint", text: "No events in these minutes." })); return; }
  box.replaceChildren(el("h3", { text: "Events in these minutes: tick those that were right" }),
    el("ul", {}, ...events.map((e, i) => el("li", {}, el("label", {},
      el("input", { type: "checkbox", "data-e": i, ...(isRight(e) ? { checked: "" } : {}) }), " ",
      el("strong", { text: e.label }), " " + (e.zone ? "in " + e.zone + " " : "") + "at " + fmtTime(e.start_ms) +
      (e.end_ms ? " for " + ((e.end_ms - e.start_ms) / 1000).toFixed(1) + " s" : " (still on)") +
      " · peak " + e.peak.toFixed(3))))),
    el("button", { type: "button", id: "calibrate-again", text: "Calibrate again with the ticked events as right", onclick: () => {
      const ticked = [...box.querySelectorAll("input:checked")].map((c) => windowEvents[Number(c.dataset.e)]);
      runCalibration(ticked.map((e) => ({ zone: e.zone, label: e.label, start_ms: e.start_ms, end_ms: e.end_ms })));
    } }));
}

function drawProposals() {
  const head = el("tr", {}, ...["", "zone", "label", "now", "proposed", "basis", "scene held", "visits held", "false events now → then", "visits found now → then"].map((h) => el("th", { text: h })));
  const rows = proposals.map((p, i) => el("tr", {},
    el("td", {}, el("input", { type: "checkbox", "data-i": i, ...(p.proposed !== p.current ? { checked: "" } : {}) })),
    el("td", { text: p.zone || "" }), el("td", { text: p.label }),
    el("td", { text: p.current.toFixed(2) }), el("td", { class: "proposed", text: p.proposed.toFixed(2) }),
    el("td", { text: p.basis.replace("_", " ") }),
    el("td", { text: p.scene_held.toFixed(3) }), el("td", { text: p.visits_held == null ? "" : p.visits_held.toFixed(3) }),
    el("td", { text: p.events_now.false_events + " → " + p.events_proposed.false_events }),
    el("td", { text: p.visits ? p.events_now.visits_found + " → " + p.events_proposed.visits_found + " of " + p.visits : "" })));
  $("calibrate-table").replaceChildren(head, ...rows);
  $("calibrate-apply").disabled = proposals.length === 0;
}

async function applyProposals() {
  const checked = [...document.querySelectorAll("#calibrate-table input:checked")].map((c) => proposals[Number(c.dataset.i)]);
  try {
    const r = await api("calibrate/apply", { camera: $("calibrate-camera").value,
      thresholds: checked.map((p) => ({ zone: p.zone, label: p.label, threshold: p.proposed })) });
    $("calibrate-result").textContent = r.written.map((w) => w.thresholds + " thresholds into " + w.file).join("; ") || "nothing checked";
  } catch (e) { $("calibrate-result").textContent = e.message; }
}

// ---- Status ------------------------------------------------------------------------

function table(rows) {
  return el("table", {}, ...rows.map(([k, v]) => el("tr", {}, el("th", { text: k }), el("td", { text: String(v) }))));
}

function openStatus() {
  every(2000, async () => {
    let d;
    try { d = await api("status"); } catch (e) { $("status-body").textContent = e.message; return; }
    const s = d.stats;
    if (!s) { $("status-body").textContent = "the first stats come within two seconds"; return; }
    const parts = [el("p", { text: "edgeclip " + s.version + " · node " + s.node + " · model " + s.model + " · up " + s.uptime_s + " s" })];
    for (const [name, c] of Object.entries(s.cameras)) {
      parts.push(el("h2", { text: name + (c.running ? "" : " (ended)") + (c.enabled ? "" : " (off)") }));
      parts.push(table([["source", c.source], ["frames a second (captured / inferred)", c.fps.captured + " / " + c.fps.inferred],
        ["frames captured / inferred / dropped", c.frames.captured + " / " + c.frames.inferred + " / " + c.frames.dropped],
        ["skipped (still / rate / off)", c.frames.motion_skipped + " / " + c.frames.rate_skipped + " / " + c.frames.disabled_skipped],
        ["corrupt frames, source errors", c.frames.corrupt + ", " + c.frames.source_errors],
        ["labels", c.labels + " from " + c.labels_from], ["active", c.active.join(", ") || "none"]]));
      parts.push(el("table", { class: "latency" }, el("tr", {}, ...["stage", "frames", "median ms", "p99 ms", "max ms"].map((h) => el("th", { text: h }))),
        ...Object.entries(c.latency).map(([stage, l]) => el("tr", {}, ...[stage, l.count, l.p50_ms, l.p99_ms, l.max_ms].map((v) => el("td", { text: String(v) }))))));
    }
    parts.push(el("h2", { text: "MQTT" }));
    parts.push(table([["connected", s.mqtt.connected], ["queued", s.mqtt.queued], ["published", s.mqtt.published],
      ["reconnects", s.mqtt.reconnects], ["last error", s.mqtt.last_error || "none"],
      ["commands accepted / refused", s.mqtt.commands_accepted + " / " + s.mqtt.commands_refused]]));
    if (s.store) {
      parts.push(el("h2", { text: "Event history" }));
      parts.push(table(Object.entries(s.store)));
    }
    parts.push(el("h2", { text: "This page" }));
    parts.push(table(Object.entries(d.web)));
    $("status-body").replaceChildren(...parts);
  });
}

boot().catch((e) => { document.body.textContent = "edgeclip: " + e.message; });
