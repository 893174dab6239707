// The run's graph as SVG, from the server's layout (graflow/dashboard/layout.py):
// nodes as boxes coloured by state, groups as boxes around their members, edges as
// polylines (dashed when they close a loop). Zoom with the wheel, pan by dragging.
"use strict";
(function () {
  const { svg } = G;
  const STATES = ["pending", "queued", "running", "redelivered", "lost", "completed", "failed", "skipped", "canceled"];

  function label(text, width) {
    const max = Math.max(4, Math.floor((width - 16) / 7));
    return text.length > max ? `${text.slice(0, max - 1)}…` : text;
  }

  G.Graph = class {
    constructor(root, onSelect) {
      this.root = root;
      this.onSelect = onSelect;
      this.nodes = new Map(); // id -> {g, rect, badge, kind, members}
      this.view = { x: 0, y: 0, w: 100, h: 100 };
      this.size = { w: 0, h: 0 };
      this.selected = null;
      this._panning = null;
      root.addEventListener("wheel", (e) => this._wheel(e), { passive: false });
      root.addEventListener("pointerdown", (e) => this._down(e));
      root.addEventListener("pointermove", (e) => this._move(e));
      root.addEventListener("pointerup", () => (this._panning = null));
      root.addEventListener("pointerleave", () => (this._panning = null));
    }

    // Draw shape + layout; keeps the current zoom when only nodes were added.
    draw(shape, layout) {
      const keepView = this.nodes.size > 0;
      this.root.replaceChildren();
      this.nodes.clear();
      const defs = svg("defs");
      const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7,
        markerHeight: 7, orient: "auto-start-reverse" });
      marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }));
      defs.append(marker);
      this.root.append(defs);
      this.scene = svg("g", { class: "scene" });
      this.root.append(this.scene);
      const kinds = new Map(shape.nodes.map((n) => [n.id, n]));
      const groupLayer = svg("g", { class: "groups" });
      const edgeLayer = svg("g", { class: "edges" });
      const nodeLayer = svg("g", { class: "nodes" });
      this.scene.append(groupLayer, edgeLayer, nodeLayer);
      for (const [id, box] of Object.entries(layout.groups || {})) {
        const g = svg("g", { class: "group state-pending", "data-task": id, "data-state": "pending" });
        const rect = svg("rect", { x: box.x, y: box.y, width: box.w, height: box.h, rx: 8 });
        const text = svg("text", { x: box.x + 10, y: box.y + 17, class: "group-label" });
        text.textContent = label(box.label || id, box.w);
        const title = svg("title");
        title.textContent = id;
        g.append(rect, text, title);
        g.addEventListener("click", (e) => {
          if (e.target === rect || e.target === text) this.select(id);
        });
        groupLayer.append(g);
        const node = kinds.get(id) || {};
        this.nodes.set(id, { g, kind: "group", members: node.members || [], badge: null, box });
      }
      for (const edge of layout.edges || []) {
        const points = edge.points.map((p) => p.join(",")).join(" ");
        edgeLayer.append(svg("polyline", { points, class: edge.back ? "edge back" : "edge", "marker-end": "url(#arrow)" }));
      }
      for (const [id, box] of Object.entries(layout.nodes || {})) {
        const node = kinds.get(id) || {};
        const g = svg("g", { class: `node state-pending${node.dynamic ? " dynamic" : ""}`, "data-task": id,
          "data-state": "pending", transform: `translate(${box.x},${box.y})`, tabindex: 0 });
        const rect = svg("rect", { width: box.w, height: box.h, rx: 6 });
        const text = svg("text", { x: 10, y: box.h / 2 + 4 });
        text.textContent = label(id, box.w - 24);
        const badge = svg("text", { x: box.w - 8, y: box.h / 2 + 4, class: "node-badge", "text-anchor": "end" });
        const title = svg("title");
        title.textContent = id;
        g.append(rect, text, badge, title);
        g.addEventListener("click", () => this.select(id));
        g.addEventListener("keydown", (e) => {
          if (e.key === "Enter") this.select(id);
        });
        nodeLayer.append(g);
        this.nodes.set(id, { g, kind: "task", badge, box });
      }
      this.size = { w: layout.width, h: layout.height };
      if (!keepView) this.fit();
      else this._apply();
      if (this.selected && this.nodes.has(this.selected)) this.nodes.get(this.selected).g.classList.add("selected");
    }

    has(id) {
      return this.nodes.has(id);
    }

    // Set one node's state class (returns true if it changed).
    setState(id, state) {
      const node = this.nodes.get(id);
      if (!node || node.state === state) return false;
      if (node.state) node.g.classList.remove(`state-${node.state}`);
      else node.g.classList.remove("state-pending");
      node.g.classList.add(`state-${state}`);
      node.g.setAttribute("data-state", state);
      node.state = state;
      return true;
    }

    setBadge(id, text) {
      const node = this.nodes.get(id);
      if (node && node.badge && node.badge.textContent !== text) node.badge.textContent = text;
    }

    // A group without a state of its own takes its members' (running while any runs).
    groupStates(stateOf) {
      for (const [id, node] of this.nodes) {
        if (node.kind !== "group") continue;
        this.setState(id, stateOf(id) || this._aggregate(node.members, stateOf));
      }
    }

    _aggregate(members, stateOf) {
      const seen = new Set(members.map((m) => stateOf(m) || (this.nodes.get(m) || {}).state || "pending"));
      for (const s of ["failed", "lost", "redelivered", "running", "queued"]) {
        if (seen.has(s)) return s === "queued" ? "running" : s;
      }
      if (seen.size === 1) return [...seen][0];
      if (seen.has("completed")) return "running";
      return "pending";
    }

    select(id) {
      if (this.selected && this.nodes.has(this.selected)) this.nodes.get(this.selected).g.classList.remove("selected");
      this.selected = id;
      if (this.nodes.has(id)) this.nodes.get(id).g.classList.add("selected");
      this.onSelect(id);
    }

    // The whole graph in view, never magnified past its natural size (a small graph
    // stays readable, a 1,000-task fan-out shows every node's colour at once).
    fit() {
      const rect = this.root.getBoundingClientRect();
      const pad = 16;
      const w = this.size.w + 2 * pad;
      const h = this.size.h + 2 * pad;
      const pw = rect.width || 800;
      const ph = rect.height || 500;
      const scale = Math.max(w / pw, h / ph, 1);
      const vw = pw * scale;
      const vh = ph * scale;
      this.view = { x: -pad - (vw - w) / 2, y: -pad - (vh - h) / 2, w: vw, h: vh };
      this._apply();
    }

    zoom(factor, cx, cy) {
      const v = this.view;
      const px = cx === undefined ? v.x + v.w / 2 : cx;
      const py = cy === undefined ? v.y + v.h / 2 : cy;
      const w = Math.min(Math.max(v.w * factor, 80), Math.max(this.size.w, this.size.h, 400) * 4);
      const f = w / v.w;
      this.view = { x: px - (px - v.x) * f, y: py - (py - v.y) * f, w, h: v.h * f };
      this._apply();
    }

    _apply() {
      const v = this.view;
      this.root.setAttribute("viewBox", `${v.x} ${v.y} ${v.w} ${v.h}`);
    }

    _point(e) {
      const rect = this.root.getBoundingClientRect();
      return {
        x: this.view.x + ((e.clientX - rect.left) / rect.width) * this.view.w,
        y: this.view.y + ((e.clientY - rect.top) / rect.height) * this.view.h,
      };
    }

    _wheel(e) {
      e.preventDefault();
      const p = this._point(e);
      this.zoom(e.deltaY > 0 ? 1.15 : 1 / 1.15, p.x, p.y);
    }

    _down(e) {
      if (e.target.closest && e.target.closest(".node")) return;
      this._panning = { x: e.clientX, y: e.clientY, view: Object.assign({}, this.view) };
    }

    _move(e) {
      if (!this._panning) return;
      const rect = this.root.getBoundingClientRect();
      const dx = ((e.clientX - this._panning.x) / rect.width) * this.view.w;
      const dy = ((e.clientY - this._panning.y) / rect.height) * this.view.h;
      this.view.x = this._panning.view.x - dx;
      this.view.y = this._panning.view.y - dy;
      this._apply();
    }
  };

  G.legend = function (box) {
    box.replaceChildren(...STATES.map((s) => G.el("span", { class: `key state-${s}` }, G.el("i"), s)));
  };
})();
