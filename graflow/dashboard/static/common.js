// graflow dashboard: helpers shared by the pages. Every piece of run data (task ids,
// channel keys, results, errors) enters the DOM as text (textContent / setAttribute),
// never as markup.
"use strict";

const G = (window.G = {});

G.el = function (tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = String(v);
    else if (k === "class") node.className = v;
    else if (k === "style") node.style.cssText = v; // CSSOM: allowed by the page's CSP
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
};

// Replace a node's children, skipping null/undefined (replaceChildren would print "null").
G.fill = function (node, ...children) {
  node.replaceChildren(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
};

G.svg = function (tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  return node;
};

G.api = async function (path, options) {
  const response = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = null;
  }
  if (!response.ok) {
    const message = (body && body.error) || `${response.status} ${response.statusText}`;
    const err = new Error(message);
    err.status = response.status;
    throw err;
  }
  return body;
};

G.post = function (path, body) {
  return G.api(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body || {}),
  });
};

// Seconds as "4.2s", "3m 05s", "2h 10m", "3d 4h".
G.duration = function (seconds) {
  if (seconds === null || seconds === undefined || isNaN(seconds)) return "–";
  const s = Math.max(0, seconds);
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 60) return `${Math.floor(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
};

G.time = function (unix) {
  if (!unix) return "–";
  const d = new Date(unix * 1000);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
};

G.dateTime = function (unix) {
  if (!unix) return "–";
  return new Date(unix * 1000).toLocaleString([], { hour12: false });
};

G.bytes = function (n) {
  if (n === null || n === undefined) return "–";
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
};

G.badge = function (state) {
  return G.el("span", { class: `badge state-${state}`, "data-state": state, text: state });
};

// Server time minus browser time, so ages tick right on a skewed laptop.
G.skew = 0;
G.now = function () {
  return Date.now() / 1000 + G.skew;
};
G.syncClock = function (serverNow) {
  if (serverNow) G.skew = serverNow - Date.now() / 1000;
};

// A run's age and duration now (seconds): they tick between the server's updates.
G.runTimes = function (run) {
  const now = G.now();
  if (!run.created_at) return [null, null];
  const end = run.done && run.finished_at ? run.finished_at : now;
  return [now - run.created_at, end - run.created_at];
};

// A progress bar's fill for a run summary, in percent.
G.progress = function (run) {
  const total = Math.max(run.known, run.completed, 1);
  return Math.min(100, (100 * run.completed) / total);
};

G.notice = function (text, kind) {
  const box = document.getElementById("notice");
  if (!box) return;
  box.textContent = text;
  box.className = `notice ${kind || "info"}`;
  box.hidden = !text;
};

// A modal confirmation: resolves true when the user confirms.
G.confirm = function (title, text, action) {
  return new Promise((resolve) => {
    const dialog = document.getElementById("confirm");
    dialog.querySelector(".confirm-title").textContent = title;
    dialog.querySelector(".confirm-text").textContent = text;
    const ok = dialog.querySelector(".confirm-ok");
    ok.textContent = action;
    const finish = (value) => {
      dialog.close();
      ok.onclick = null;
      dialog.querySelector(".confirm-cancel").onclick = null;
      resolve(value);
    };
    ok.onclick = () => finish(true);
    dialog.querySelector(".confirm-cancel").onclick = () => finish(false);
    dialog.oncancel = () => finish(false);
    dialog.showModal();
  });
};

// An EventSource that reopens itself (with a fresh URL) after an error.
G.stream = function (urlFn, handlers) {
  let source = null;
  let closed = false;
  const open = () => {
    if (closed) return;
    source = new EventSource(urlFn());
    source.onmessage = (e) => handlers.message(JSON.parse(e.data));
    for (const name of Object.keys(handlers)) {
      if (name === "message" || name === "error") continue;
      source.addEventListener(name, (e) => handlers[name](JSON.parse(e.data)));
    }
    source.onerror = () => {
      source.close();
      if (handlers.error) handlers.error();
      setTimeout(open, 2000);
    };
  };
  open();
  return {
    close() {
      closed = true;
      if (source) source.close();
    },
  };
};

// A loop iteration's id ("{base}_cycle_{n}_{hex}") names its base task's node.
G.baseId = function (id) {
  return id.includes("_cycle_") ? id.replace(/(?:_cycle_\d+_[0-9a-f]{8})+$/, "") : id;
};

G.prefixLabel = function (prefix) {
  const label = document.getElementById("prefix");
  if (label && prefix) label.textContent = `prefix ${prefix}`;
};
