// The runs page: every run under the prefix, newest first, updated live.
"use strict";
(function () {
  const { el } = G;
  const body = document.querySelector("#runs tbody");
  const stateSel = document.getElementById("filter-state");
  const workflowBox = document.getElementById("filter-workflow");
  let runs = [];
  let stream = null;

  const params = new URLSearchParams(location.search);
  stateSel.value = params.get("state") || "";
  workflowBox.value = params.get("workflow") || "";

  function query() {
    const q = new URLSearchParams();
    if (stateSel.value) q.set("state", stateSel.value);
    if (workflowBox.value.trim()) q.set("workflow", workflowBox.value.trim());
    return q.toString();
  }

  function progress(run) {
    return el("div", { class: `progress state-${run.state}`, title: `${run.completed} of ${run.known} tasks` },
      el("div", { class: "bar", style: `width:${Math.round(G.progress(run))}%` }),
      el("span", { text: `${run.completed}/${run.known}` }));
  }

  function row(run) {
    const [age, duration] = G.runTimes(run);
    const workers = Object.keys(run.workers || {});
    return el("tr", { "data-session": run.session_id, "data-state": run.state },
      el("td", {}, el("a", { href: `/runs/${encodeURIComponent(run.session_id)}`, class: "mono", text: run.session_id })),
      el("td", { text: run.workflow || "–" }),
      el("td", {}, G.badge(run.state), run.stop_reason && run.state !== "completed"
        ? el("span", { class: "muted small", text: ` ${run.stop_reason}` }) : null),
      el("td", {}, progress(run)),
      el("td", { text: G.duration(age) }),
      el("td", { text: G.duration(duration) }),
      el("td", { class: "small", text: workers.length ? workers.join(", ") : "–" }));
  }

  function render() {
    body.replaceChildren(...runs.map(row));
    document.getElementById("empty").hidden = runs.length > 0;
    document.getElementById("count").textContent = `${runs.length} run${runs.length === 1 ? "" : "s"}`;
  }

  function connect() {
    if (stream) stream.close();
    const live = document.getElementById("live");
    stream = G.stream(() => `/api/runs/stream?${query()}`, {
      message(doc) {
        G.syncClock(doc.now);
        G.prefixLabel(doc.prefix);
        runs = doc.runs;
        live.classList.add("on");
        G.notice("");
        render();
      },
      error() {
        live.classList.remove("on");
        G.notice("Lost the connection to the dashboard; retrying…", "warn");
      },
    });
  }

  function refilter(e) {
    if (e) e.preventDefault();
    const q = query();
    history.replaceState(null, "", q ? `/?${q}` : "/");
    connect();
  }
  stateSel.addEventListener("change", refilter);
  let typing = null;
  workflowBox.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(refilter, 300);
  });
  document.getElementById("filters").addEventListener("submit", refilter);
  setInterval(render, 1000); // ages and durations tick between updates
  connect();
})();
