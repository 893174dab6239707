// The run page: the graph with live node states, the task panel, checkpoints, events, actions.
"use strict";
(function () {
  const { el } = G;
  const session = decodeURIComponent(location.pathname.split("/").pop());
  const base = `/api/runs/${encodeURIComponent(session)}`;
  const graph = new G.Graph(document.getElementById("graph"), (id) => openTask(id));
  const live = document.getElementById("live");

  let doc = null; // the run document (GET /api/runs/S)
  let nodes = {}; // task id -> state from the server
  let counts = {};
  let redelivered = {};
  let summary = null;
  let lastEvent = "0-0";
  let stream = null;
  let pending = []; // updates waiting for the next animation frame
  let relayout = null;
  let openId = null;
  let panelTimer = null;
  const eventRows = [];
  // Milliseconds from a task's completion event (its stream id) to its node turning
  // completed on screen; read by the browser tests and the latency benchmark.
  window.graflowLatencies = [];

  document.getElementById("session").textContent = session;
  document.title = `${session} · graflow`;
  G.legend(document.getElementById("legend"));
  document.getElementById("fit").onclick = () => graph.fit();
  document.getElementById("zoom-in").onclick = () => graph.zoom(1 / 1.3);
  document.getElementById("zoom-out").onclick = () => graph.zoom(1.3);

  function stateOf(id) {
    if (nodes[id]) return nodes[id];
    const node = graph.nodes.get(id);
    if (node && node.kind === "group") return null;
    return summary && summary.done ? "skipped" : "pending";
  }

  function badgeOf(id) {
    const [cycles, retries] = counts[id] || [0, 0];
    const parts = [];
    if (cycles > 1) parts.push(`×${cycles}`);
    if (retries) parts.push(`↻${retries}`);
    if (redelivered[id]) parts.push(`⚠${redelivered[id]}`);
    return parts.join(" ");
  }

  // Repaint these nodes (every node without ids), then the groups around them.
  function paint(ids) {
    for (const id of ids || graph.nodes.keys()) {
      const node = graph.nodes.get(id);
      if (!node) continue;
      if (node.kind === "task") graph.setState(id, stateOf(id));
      graph.setBadge(id, badgeOf(id));
    }
    graph.groupStates((id) => nodes[id] || null);
  }

  function renderSummary() {
    const s = summary;
    document.getElementById("workflow").textContent = s.workflow || "workflow";
    document.getElementById("state").replaceChildren(G.badge(s.state));
    const bar = document.getElementById("progress");
    bar.className = `progress wide state-${s.state}`;
    bar.querySelector(".bar").style.width = `${G.progress(s)}%`;
    bar.querySelector("span").textContent = `${s.completed} of ${s.known} tasks done · ${s.running} running · ${s.pending} waiting`;
    const [age, duration] = G.runTimes(s);
    document.getElementById("age").textContent = G.duration(age);
    document.getElementById("duration").textContent = G.duration(duration);
    document.getElementById("steps").textContent = s.max_steps && s.max_steps < 2 ** 53 ? `${s.steps} / ${s.max_steps}` : String(s.steps);
    document.getElementById("queue").textContent = s.queue || "–";
    document.getElementById("workers").textContent =
      Object.entries(s.workers || {}).map(([w, n]) => `${w} (${n})`).join(", ") || "–";
    document.getElementById("cancel").disabled = s.done;
    document.getElementById("retry").disabled = !(s.state === "failed" && s.last_checkpoint);
    document.getElementById("retry").title = s.state !== "failed" ? "only a failed run is retried"
      : (s.last_checkpoint ? `resume from ${s.last_checkpoint}` : "the run wrote no checkpoint");
  }

  function renderError(error) {
    const box = document.getElementById("error-box");
    box.hidden = !error || !error.message;
    if (box.hidden) return;
    G.fill(document.getElementById("error-head"),
      el("strong", { text: `${error.type || "Error"}: ` }), error.message,
      error.task ? el("span", { class: "muted", text: ` — in task ${error.task}` }) : null);
    document.getElementById("error-trace").textContent = error.traceback || "";
  }

  function renderCheckpoints(list) {
    const body = document.querySelector("#checkpoints tbody");
    document.getElementById("no-checkpoints").hidden = list.length > 0;
    body.replaceChildren(...list.slice().reverse().map((c) => el("tr", { "data-location": c.location },
      el("td", { class: "mono small", text: c.location }),
      el("td", { text: c.steps }),
      el("td", { text: G.dateTime(c.time) }),
      el("td", { text: c.readable === false ? "not readable here" : G.bytes(c.size) }),
      el("td", {}, el("button", { type: "button", class: "resume", onclick: () => resume(c.location),
        text: "Resume from here", disabled: summary && !summary.done })))));
  }

  function eventRow(e) {
    const data = Object.assign({}, e.data);
    const task = data.task_id || data.group_id || "";
    delete data.task_id;
    delete data.spec_id;
    const details = Object.entries(data).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join("  ");
    return el("tr", {},
      el("td", { class: "small", text: G.time(e.time) }),
      el("td", {}, el("span", { class: `ev ev-${e.event}`, text: e.event })),
      el("td", {}, task ? el("a", { href: "#", class: "mono", text: task,
        onclick: (ev) => { ev.preventDefault(); graph.select(G.baseId(task)); } }) : ""),
      el("td", { class: "small", text: details }));
  }

  function addEvents(events) {
    const body = document.querySelector("#events tbody");
    const rows = events.map(eventRow);
    body.prepend(...rows.reverse());
    eventRows.push(...events);
    while (body.childElementCount > 500) body.lastElementChild.remove();
    document.getElementById("events-count").textContent = `(${doc ? doc.events_total + eventRows.length : eventRows.length})`;
  }

  async function load() {
    try {
      doc = await G.api(base);
    } catch (e) {
      G.notice(e.status === 404 ? `Run ${session} does not exist under this prefix (it may have expired or been purged).`
        : `Cannot load the run: ${e.message}`, "error");
      return false;
    }
    G.syncClock(doc.now);
    nodes = doc.nodes;
    counts = doc.counts;
    redelivered = doc.redelivered;
    summary = doc.summary;
    // Redrawn only when tasks were added (a reload after an event keeps the drawn graph).
    const drawn = doc.shape.nodes.length === graph.nodes.size && doc.shape.nodes.every((n) => graph.has(n.id));
    if (!drawn) graph.draw(doc.shape, doc.layout);
    paint();
    renderSummary();
    renderError(doc.error);
    renderCheckpoints(doc.checkpoints);
    if (lastEvent === "0-0") {
      document.querySelector("#events tbody").replaceChildren();
      addEvents(doc.events);
      eventRows.length = 0;
    }
    lastEvent = doc.last_event;
    return true;
  }

  // One animation frame applies every update that arrived since the last one.
  function flush() {
    const batch = pending;
    pending = [];
    const completedAt = [];
    const newEvents = [];
    let needLayout = false;
    for (const u of batch) {
      if (u.summary) summary = u.summary;
      if (u.nodes) Object.assign(nodes, u.nodes);
      if (u.counts) Object.assign(counts, u.counts);
      if (u.known && u.known.some((id) => !graph.has(id))) needLayout = true;
      for (const e of u.events || []) {
        newEvents.push(e);
        const id = e.data.task_id ? G.baseId(e.data.task_id) : null;
        if (e.event === "redelivered" && id) redelivered[id] = (redelivered[id] || 0) + 1;
        if (e.event === "completed" && id) completedAt.push([id, Number(e.id.split("-")[0])]);
        if (e.event === "checkpoint" || e.event === "finished" || e.event === "failed") scheduleReload();
      }
      if (u.last_event) lastEvent = u.last_event;
    }
    // Only what changed is repainted: a 1,000-task fan-out sends a few hundred changes a frame.
    const touched = new Set();
    for (const u of batch) {
      for (const id of Object.keys(u.nodes || {})) touched.add(id);
      for (const id of Object.keys(u.counts || {})) touched.add(id);
    }
    for (const e of newEvents) if (e.event === "redelivered" && e.data.task_id) touched.add(G.baseId(e.data.task_id));
    paint(batch.some((u) => u.summary && u.summary.done) ? null : touched); // at the end the unreached turn skipped
    if (summary) renderSummary();
    if (newEvents.length) addEvents(newEvents);
    const now = Date.now();
    for (const [id, ms] of completedAt) {
      const node = graph.nodes.get(id);
      if (node && node.state === "completed") window.graflowLatencies.push(now - ms);
    }
    if (needLayout) scheduleReload();
    if (openId && batch.some((u) => (u.nodes && openId in u.nodes) || (u.events || []).some((e) => e.data.task_id && G.baseId(e.data.task_id) === openId))) {
      clearTimeout(panelTimer);
      panelTimer = setTimeout(() => openTask(openId, true), 300);
    }
  }

  function scheduleReload() {
    if (relayout) return;
    relayout = setTimeout(async () => {
      relayout = null;
      await load();
    }, 500);
  }

  function connect() {
    stream = G.stream(() => `${base}/stream?after=${encodeURIComponent(lastEvent)}`, {
      message(update) {
        G.syncClock(update.now);
        live.classList.add("on");
        if (!pending.length) requestAnimationFrame(flush);
        pending.push(update);
      },
      end() {
        stream.close();
        live.classList.remove("on");
        live.title = "the run has ended";
        scheduleReload();
      },
      gone(msg) {
        stream.close();
        G.notice(msg.error, "error");
      },
      error() {
        live.classList.remove("on");
      },
    });
  }

  // -- the task panel -------------------------------------------------------------------
  async function openTask(id, refresh) {
    openId = id;
    const panel = document.getElementById("task-panel");
    if (!refresh) panel.replaceChildren(el("p", { class: "muted", text: `Loading ${id}…` }));
    let t;
    try {
      t = await G.api(`${base}/tasks/${encodeURIComponent(id)}`);
    } catch (e) {
      panel.replaceChildren(el("p", { class: "bad", text: e.message }));
      return;
    }
    if (openId !== id) return;
    const attempts = el("table", { class: "grid small" },
      el("thead", {}, el("tr", {}, ...["#", "Worker", "Started", "Took", "Outcome"].map((h) => el("th", { text: h })))),
      el("tbody", {}, ...t.attempts.map((a) => el("tr", { class: `outcome-${a.outcome.split(" ")[0]}` },
        el("td", { text: a.attempt }), el("td", { class: "mono", text: a.worker || "–" }),
        el("td", { text: G.time(a.started_at) }), el("td", { text: G.duration(a.duration) }),
        el("td", {}, a.outcome, a.error ? el("div", { class: "bad", text: a.error }) : null)))));
    const result = t.result.present
      ? (t.result.text ? el("pre", { class: "result", text: t.result.text + (t.result.truncated ? "\n…" : "") })
        : el("p", { class: "muted", text: t.result.note || "" }))
      : el("p", { class: "muted", text: "No result stored." });
    const logs = t.logs.filter((l) => l.stream !== "end");
    const logBox = logs.length
      ? el("pre", { class: "logs" }, ...logs.map((l) => el("span", { class: `log-${l.stream}`, text: l.text })))
      : el("p", { class: "muted", text: "Nothing captured." });
    const writes = t.writes.length
      ? el("ul", { class: "writes mono" }, ...t.writes.map((k) => el("li", { text: k })))
      : el("p", { class: "muted", text: "No channel key written (or not recorded)." });
    G.fill(panel,
      el("h2", { class: "mono", text: id }),
      el("p", {}, G.badge(t.state),
        t.cycles > 1 ? el("span", { class: "muted", text: ` ${t.cycles} iterations` }) : null,
        t.retries ? el("span", { class: "muted", text: ` · ${t.retries} retr${t.retries === 1 ? "y" : "ies"}` }) : null,
        t.parent ? el("span", { class: "muted", text: ` · added by ${t.parent}` }) : null),
      el("h3", { text: "Attempts" }), t.attempts.length ? attempts : el("p", { class: "muted", text: "None recorded." }),
      t.error && t.error.message ? el("h3", { text: "Error" }) : null,
      t.error && t.error.message ? el("pre", { class: "bad trace", text: `${t.error.type}: ${t.error.message}\n\n${t.error.traceback || ""}` }) : null,
      el("h3", {}, "Result", t.result.type ? el("span", { class: "muted small", text: ` ${t.result.type}, ${G.bytes(t.result.size)}` }) : null),
      result,
      el("h3", { text: "Logs" }), logBox,
      el("h3", { text: "Channel keys written" }), writes);
  }

  // -- actions ----------------------------------------------------------------------------
  async function act(path, body, title, text, button) {
    if (!(await G.confirm(title, text, button))) return;
    try {
      await G.post(`${base}/${path}`, body);
      G.notice(`${button}: done.`, "ok");
      await load();
      if (!summary.done) {
        stream.close();
        connect();
      }
    } catch (e) {
      G.notice(e.message, "error");
    }
  }

  document.getElementById("cancel").onclick = () => act("cancel", {}, "Cancel this run?",
    `Run ${session} stops now: queued tasks are dropped and running tasks are stopped. This cannot be undone.`, "Cancel run");
  document.getElementById("retry").onclick = () => act("retry", {}, "Retry this run?",
    `Run ${session} resumes from its last checkpoint (${summary.last_checkpoint}).`, "Retry");
  function resume(location) {
    act("resume", { checkpoint: location }, "Resume from this checkpoint?",
      `Run ${session} continues from ${location}: the work pending at that checkpoint is queued again.`, "Resume");
  }

  setInterval(() => summary && renderSummary(), 1000);
  load().then((ok) => {
    if (ok) connect();
  });
})();
