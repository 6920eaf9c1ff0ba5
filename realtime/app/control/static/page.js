// The portrait-cam control page: a WebSocket brings settings, status and preview pictures;
// changes are POSTed (the server checks every value against the preset ranges).
"use strict";
const token = document.body.dataset.token;
const $ = (id) => document.getElementById(id);
const img = $("preview");
const knobsBox = $("knobs");
let schema = [], keys = [], settings = null, ws = null, frames = 0, lastUrl = null;
const editing = {};  // knob key -> time of the user's last touch: incoming values wait a moment

async function post(path, body) {
  try {
    const r = await fetch(path + "?token=" + encodeURIComponent(token), {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
      credentials: "same-origin"});
    const data = await r.json().catch(() => ({}));
    say(data.error || data.message || "", !r.ok);
    return r.ok ? data : null;
  } catch (e) { say("not connected: " + e, true); return null; }
}

function say(text, error) {
  const m = $("message");
  if (!text && !error) return;
  m.textContent = text; m.classList.toggle("error", !!error);
}

// Wide ranges (aperture 0..1000) get a square-law slider: fine control where people use it.
function curve(k) { return (k.max - k.min) > 50 ? 2 : 1; }
function toPos(k, v) { return 1000 * Math.pow((v - k.min) / (k.max - k.min), 1 / curve(k)); }
function fromPos(k, p) {
  const v = k.min + (k.max - k.min) * Math.pow(p / 1000, curve(k));
  return k.integer ? Math.round(v) : Math.round(v * 100) / 100;
}
function shown(k, v) {
  if (k.key === "render.blades") return v === 0 ? "round" : v + " blades";
  if (typeof v === "number") return (Math.round(v * 100) / 100).toString();
  return String(v);
}

const pending = {};
let sending = false;
async function sendKnobs() {  // one request in flight; the newest values win
  if (sending || !Object.keys(pending).length) return;
  sending = true;
  const body = Object.assign({}, pending);
  for (const k in body) delete pending[k];
  await post("/api/settings", body);
  sending = false;
  sendKnobs();
}
function setKnob(key, value) { editing[key] = Date.now(); pending[key] = value; sendKnobs(); }

function buildKnobs() {
  knobsBox.textContent = "";
  for (const k of schema) {
    if (k.kind === "bool") continue;  // the effect switch sits under the picture
    const f = document.createElement("label");
    f.className = "field"; f.title = k.doc; f.dataset.key = k.key;
    const name = document.createElement("span"); name.textContent = k.label;
    const val = document.createElement("span"); val.className = "value";
    let input;
    if (k.kind === "range") {
      input = document.createElement("input");
      input.type = "range"; input.min = 0; input.max = 1000; input.step = 1;
      input.addEventListener("input", () => {
        const v = fromPos(k, +input.value); val.textContent = shown(k, v); setKnob(k.key, v);
      });
    } else {
      input = document.createElement("select");
      for (const c of k.choices) {
        const o = document.createElement("option"); o.value = c; o.textContent = shown(k, c); input.append(o);
      }
      input.addEventListener("change", () => {
        setKnob(k.key, typeof k.choices[0] === "number" ? +input.value : input.value);
      });
    }
    input.name = k.key; input.id = "knob-" + k.key.replace(".", "-");
    const note = document.createElement("span"); note.className = "note";
    f.append(name, val, input, note);
    knobsBox.append(f);
  }
}

function render(s) {
  settings = s;
  const now = Date.now();
  for (const k of schema) {
    const v = s.values[k.key], eff = s.effective[k.key];
    if (k.kind === "bool") continue;
    const f = knobsBox.querySelector(`[data-key="${k.key}"]`);
    if (!f) continue;
    const input = f.querySelector("input, select"), val = f.querySelector(".value");
    if (!(now - (editing[k.key] || 0) < 1000)) {
      input.value = k.kind === "range" ? toPos(k, v) : v;
      val.textContent = shown(k, v);
    }
    f.querySelector(".note").textContent = eff !== v ? `running at ${shown(k, eff)} (quality level ${s.level})` : "";
  }
  $("effect").checked = s.effect;
  const sel = $("preset");
  if (sel.options.length !== s.presets.length || [...sel.options].some((o, i) => o.value !== s.presets[i])) {
    sel.textContent = "";
    for (const p of s.presets) { const o = document.createElement("option"); o.value = p; o.textContent = p; sel.append(o); }
  }
  sel.value = s.preset;
  for (const b of $("views").children) b.setAttribute("aria-pressed", String(b.dataset.view === s.view));
  if (s.message) say(s.message, false);
  document.body.dataset.version = s.version;
}

function renderStatus(st) {
  const stages = Object.entries(st.stages_ms || {}).map(([k, v]) => `${k} ${v}`).join(" ");
  const lines = [
    `${(st.fps ?? 0).toFixed(1)} fps | latency p50 ${st.latency_p50_ms ?? 0} / p95 ${st.latency_p95_ms ?? 0} ms`,
    stages ? stages + " ms" : "",
    `dropped ${st.dropped ?? 0} | quality ${st.level ?? 0}: ${st.level_label ?? ""}`,
  ];
  if (st.fail_closed) lines.push("FAIL-CLOSED: " + st.fail_reason);
  if (st.camera_lost) lines.push(st.note || "camera lost");
  const el = $("status");
  el.textContent = lines.filter(Boolean).join("\n");
  el.classList.toggle("failing", !!st.fail_closed);
}

function hello(h) {
  schema = h.knobs; keys = h.keys;
  buildKnobs();
  const v = $("views"); v.textContent = "";
  for (const name of h.views) {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = name; b.dataset.view = name;
    b.addEventListener("click", () => post("/api/view", {view: name}));
    v.append(b);
  }
  const t = $("keys"); t.textContent = "";
  for (const [k, what] of h.key_help) {
    const tr = document.createElement("tr");
    const a = document.createElement("td"), b = document.createElement("td");
    a.textContent = k; b.textContent = what; tr.append(a, b); t.append(tr);
  }
  $("save").hidden = !h.can_save;
}

function connect() {
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws?token=${encodeURIComponent(token)}`);
  ws.binaryType = "blob";
  ws.onopen = () => { $("offline").hidden = true; };
  ws.onmessage = (ev) => {
    if (typeof ev.data !== "string") {
      const url = URL.createObjectURL(ev.data);
      img.onload = () => { if (lastUrl) URL.revokeObjectURL(lastUrl); lastUrl = url; };
      img.src = url;
      img.dataset.frames = String(++frames);
      ws.send("ack");
      return;
    }
    const m = JSON.parse(ev.data);
    if (m.type === "hello") hello(m);
    else if (m.type === "settings") render(m);
    else if (m.type === "status") renderStatus(m);
  };
  ws.onclose = () => { $("offline").hidden = false; $("offline").textContent = "disconnected: retrying"; setTimeout(connect, 1000); };
}

img.addEventListener("click", (e) => {
  const r = img.getBoundingClientRect();
  const x = (e.clientX - r.left) / r.width, y = (e.clientY - r.top) / r.height;
  const m = $("marker");
  m.style.left = (e.clientX - r.left) + "px"; m.style.top = (e.clientY - r.top) + "px"; m.hidden = false;
  setTimeout(() => { m.hidden = true; }, 1000);
  post("/api/focus", {x: Math.min(1, Math.max(0, x)), y: Math.min(1, Math.max(0, y))});
});
$("autofocus").addEventListener("click", () => post("/api/focus", {auto: true}));
$("effect").addEventListener("change", (e) => setKnob("render.effect", e.target.checked));
$("preset").addEventListener("change", (e) => post("/api/preset", {preset: e.target.value}));
$("save").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = $("save-name").value.trim();
  if (name) post("/api/save", {name});
});
document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || e.target.closest("input, select, textarea")) return;
  if (e.key === "h") { $("help").open = !$("help").open; return; }
  if (keys.includes(e.key)) { e.preventDefault(); post("/api/key", {key: e.key}); }
});
connect();
