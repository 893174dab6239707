// The workers page: each rq worker of the pool, what it runs, how fresh its heartbeat and lease are.
"use strict";
(function () {
  const { el } = G;
  const body = document.querySelector("#workers tbody");
  const live = document.getElementById("live");

  function ago(t) {
    return t ? `${G.duration(G.now() - t)} ago` : "–";
  }

  function lease(w) {
    if (!w.lease_deadline) return "–";
    const left = w.lease_deadline - G.now();
    const renewed = w.lease_age !== null && w.lease_age !== undefined ? `renewed ${G.duration(w.lease_age)} ago, ` : "";
    return left >= 0 ? `${renewed}expires in ${G.duration(left)}` : `expired ${G.duration(-left)} ago`;
  }

  function row(w) {
    const task = w.session_id
      ? el("a", { href: `/runs/${encodeURIComponent(w.session_id)}`, class: "mono",
        text: `${w.task_id || w.current_job}${w.attempt > 1 ? ` (attempt ${w.attempt})` : ""}` })
      : (w.current_job ? el("span", { class: "mono", text: w.current_job }) : "–");
    const expired = w.lease_deadline && w.lease_deadline < G.now();
    return el("tr", { "data-worker": w.name, "data-state": w.state },
      el("td", { class: "mono", text: w.name }),
      el("td", { text: w.hostname ? `${w.hostname}${w.pid ? ` · ${w.pid}` : ""}` : "–" }),
      el("td", { text: (w.queues || []).join(", ") || "–" }),
      el("td", {}, G.badge(w.state)),
      el("td", {}, task),
      el("td", { text: w.started_at ? G.duration(G.now() - w.started_at) : "–" }),
      el("td", { text: ago(w.last_heartbeat) }),
      el("td", { class: expired ? "bad" : "", text: lease(w) }),
      el("td", { text: `${w.successful ?? 0} / ${w.failed ?? 0}` }));
  }

  async function refresh() {
    try {
      const doc = await G.api("/api/workers");
      G.syncClock(doc.now);
      body.replaceChildren(...doc.workers.map(row));
      document.getElementById("empty").hidden = doc.workers.length > 0;
      live.classList.add("on");
      G.notice("");
    } catch (e) {
      live.classList.remove("on");
      G.notice(`Cannot list workers: ${e.message}`, "error");
    }
  }
  refresh();
  setInterval(refresh, 2000);
})();
