// imago fleet page. Plain script, no build step, nothing loaded from elsewhere.
// Every value from the API is put into the page as text (textContent), never
// as markup: node names and paths come from attested hosts.
"use strict";

const order = { fail: 0, stale: 1, enrolling: 2, pass: 3 };
const maxRows = 500;
const nodes = new Map();
let fleet = null;
let selected = "";
let live = false;

function token() { return sessionStorage.getItem("imago-token") || ""; }

function headers() {
  const h = { "Accept": "application/json" };
  if (token()) h["Authorization"] = "Bearer " + token();
  return h;
}

class AuthError extends Error {}

async function api(path) {
  const rsp = await fetch(path, { headers: headers(), cache: "no-store" });
  if (rsp.status === 401 || rsp.status === 403) throw new AuthError((await rsp.json()).error);
  if (!rsp.ok) throw new Error(path + ": HTTP " + rsp.status);
  return rsp.json();
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k == null ? "" : String(k)));
  return e;
}

function showError(err) {
  const p = document.getElementById("error");
  if (err instanceof AuthError) {
    document.getElementById("auth").hidden = false;
    p.textContent = err.message;
  } else {
    p.textContent = err ? String(err.message || err) : "";
  }
  p.hidden = !err;
}

// parseDuration reads a Go duration ("10s", "1m0s", "500ms") in milliseconds.
function parseDuration(s) {
  const units = { h: 3600e3, m: 60e3, s: 1e3, ms: 1, us: 1e-3, "µs": 1e-3, ns: 1e-6 };
  let ms = 0;
  for (const [, n, u] of String(s || "").matchAll(/([0-9.]+)(h|ms|m|s|us|µs|ns)/g)) ms += parseFloat(n) * units[u];
  return ms || 10000;
}

function ago(iso) {
  if (!iso) return "never";
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return Math.max(s, 0) + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return new Date(iso).toLocaleString();
}

function failureText(f) {
  return (f.entry >= 0 ? "#" + f.entry + " " : "") + (f.path ? f.path + " " : "") + f.id;
}

function renderCounts() {
  if (!fleet) return;
  const st = fleet.states || {};
  document.getElementById("n-all").textContent = fleet.nodes;
  for (const s of ["fail", "stale", "enrolling", "pass"]) document.getElementById("n-" + s).textContent = st[s] || 0;
  document.getElementById("where").textContent =
    "replica " + fleet.replica + " · " + fleet.store + " · interval " + fleet.interval + " · lease " + fleet.lease_ttl;
  for (const c of document.querySelectorAll(".count")) c.classList.toggle("selected", c.dataset.state === selected);
  const held = new Map();
  for (const l of fleet.leases || []) {
    if (l.owner && Date.parse(l.expires) > Date.parse(fleet.time)) held.set(l.owner, (held.get(l.owner) || []).concat(l.name));
  }
  const body = document.querySelector("#replicas tbody");
  body.replaceChildren(...(fleet.replicas || []).map(r => el("tr", { "data-replica": r.name },
    el("td", {}, r.name), el("td", {}, r.addr), el("td", {}, r.build),
    el("td", { class: "state " + (r.live ? "pass" : "fail") }, r.live ? "live" : "gone"),
    el("td", {}, (held.get(r.name) || []).join(", ") || "-"), el("td", {}, ago(r.heartbeat)))));
}

function renderNodes() {
  const q = document.getElementById("filter").value.trim().toLowerCase();
  const state = document.getElementById("state-filter").value || selected;
  let list = [...nodes.values()].filter(n => (!state || n.state === state) && (!q || n.node.toLowerCase().includes(q)));
  list.sort((a, b) => (order[a.state] ?? 9) - (order[b.state] ?? 9) || (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  const total = list.length;
  list = list.slice(0, maxRows);
  document.getElementById("shown").textContent = total > maxRows ? "(" + maxRows + " of " + total + " shown)" : "(" + total + ")";
  const body = document.querySelector("#nodes tbody");
  body.replaceChildren(...list.map(n => {
    const fails = el("td", {});
    for (const f of (n.failures || []).slice(0, 3)) fails.append(el("span", { class: "failure" }, failureText(f)));
    if ((n.failures || []).length > 3) fails.append(el("span", { class: "failure" }, "+" + (n.failures.length - 3) + " more"));
    const tr = el("tr", { "data-node": n.node, "data-state": n.state },
      el("td", {}, n.node), el("td", { class: "state " + n.state }, n.state), el("td", {}, n.verdict || "-"),
      el("td", {}, n.entries), el("td", {}, ago(n.last_seen)), fails);
    tr.addEventListener("click", () => showNode(n.node));
    return tr;
  }));
}

async function showNode(name) {
  try {
    const n = await api("/v1/nodes/" + encodeURIComponent(name) + "?history=50");
    document.getElementById("detail").hidden = false;
    document.getElementById("d-name").textContent = n.node;
    const facts = [["state", n.state], ["last verdict", n.verdict || "-"], ["entries", n.entries], ["round", n.round],
      ["last evidence", n.last_seen || "never"], ["policy", n.policy_id], ["EK", n.ek || "-"],
      ["TPM", n.tpm ? "clock " + n.tpm.clock + ", resets " + n.tpm.reset_count + ", restarts " + n.tpm.restart_count : "-"]];
    document.getElementById("d-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    document.querySelector("#d-failures tbody").replaceChildren(...(n.failures || []).map(f =>
      el("tr", {}, el("td", {}, f.entry >= 0 ? f.entry : "-"), el("td", {}, f.path || ""), el("td", {}, f.id), el("td", {}, f.detail || ""))));
    document.querySelector("#d-history tbody").replaceChildren(...(n.history || []).map(h =>
      el("tr", {}, el("td", {}, h.round), el("td", {}, h.time), el("td", { class: "state " + (h.verdict === "pass" ? "pass" : "fail") }, h.verdict),
        el("td", {}, h.entries), el("td", {}, (h.failures || []).map(failureText).join("; ")))));
    document.getElementById("detail").scrollIntoView({ block: "nearest" });
  } catch (err) { showError(err); }
}

async function load() {
  try {
    const [f, list] = await Promise.all([api("/v1/fleet"), api("/v1/nodes")]);
    fleet = f;
    nodes.clear();
    for (const n of list.nodes) nodes.set(n.node, n);
    showError(null);
    renderCounts();
    renderNodes();
    return true;
  } catch (err) {
    showError(err);
    return false;
  }
}

function setLive(on) {
  live = on;
  const b = document.getElementById("live");
  b.textContent = on ? "live" : "polling";
  b.className = "live " + (on ? "on" : "off");
}

function apply(u) {
  fleet = u.fleet;
  for (const n of u.nodes || []) nodes.set(n.node, n);
  renderCounts();
  renderNodes();
}

// stream follows /v1/events (server-sent events read through fetch, so
// that the operator token can go in a header) until it ends.
async function stream() {
  const rsp = await fetch("/v1/events", { headers: headers(), cache: "no-store" });
  if (!rsp.ok || !rsp.body) throw new Error("events: HTTP " + rsp.status);
  setLive(true);
  const reader = rsp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (event === "update" && data) apply(JSON.parse(data));
    }
  }
}

async function follow() {
  for (;;) {
    try {
      await stream();
    } catch (err) {
      // fall through to polling
    }
    setLive(false);
    const every = Math.min(parseDuration(fleet && fleet.interval), 10000);
    const until = Date.now() + 5000;
    do {
      await new Promise(r => setTimeout(r, every));
      await load();
    } while (Date.now() < until);
  }
}

document.getElementById("filter").addEventListener("input", renderNodes);
document.getElementById("state-filter").addEventListener("change", renderNodes);
for (const c of document.querySelectorAll(".count")) {
  c.addEventListener("click", () => { selected = selected === c.dataset.state ? "" : c.dataset.state; renderCounts(); renderNodes(); });
}
document.getElementById("d-close").addEventListener("click", () => { document.getElementById("detail").hidden = true; });
document.getElementById("auth").addEventListener("submit", ev => {
  ev.preventDefault();
  sessionStorage.setItem("imago-token", document.getElementById("token").value);
  document.getElementById("auth").hidden = true;
  load();
});

(async () => {
  await load();
  follow();
  // last-evidence times age on the page; a full reload refreshes them
  setInterval(() => { if (live) load(); }, 60000);
})();
