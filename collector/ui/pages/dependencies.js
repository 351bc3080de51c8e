// /dependencies: the service map from the collector's service graph (`/api/dependencies`): services as
// nodes, calls as edges with their rate and error rate; a click on a service opens its page. The same
// edges are listed in a table below the map.

import { h, s } from "../dom.js";
import * as api from "../api.js";
import { count, percent, rate, serviceColor } from "../format.js";
import { LAYOUT, layeredLayout } from "../model/layout.js";
import { lookbackMicros } from "../model/query.js";

const LOOKBACKS = [["15m", "Last 15 minutes"], ["1h", "Last hour"], ["6h", "Last 6 hours"], ["24h", "Last 24 hours"], ["7d", "Last 7 days"]];

function errorClass(errorRate) {
  if (errorRate >= 0.05) return "bad";
  if (errorRate > 0) return "some";
  return "ok";
}

function shorten(text, max = 22) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function serviceMap(edges, seconds, navigate) {
  const layout = layeredLayout(edges);
  const { nodeWidth: W, nodeHeight: H } = LAYOUT;
  const maxCalls = Math.max(1, ...edges.map((e) => e.callCount));
  const svg = s("svg", {
    class: "service-map", viewBox: `0 0 ${layout.width} ${layout.height + 40}`, width: layout.width, height: layout.height + 40,
    role: "img", "aria-label": `Service map: ${layout.nodes.size} services, ${edges.length} edges`,
  });
  svg.append(s("defs", {}, ["ok", "some", "bad"].map((k) => s("marker", {
    id: `arrow-${k}`, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: "userSpaceOnUse",
    orient: "auto-start-reverse",
  }, s("path", { d: "M0,0 L10,5 L0,10 z", class: `arrow ${k}` })))));
  const edgeLayer = s("g", { class: "edges" });
  const labelLayer = s("g", { class: "edge-labels" });
  const nodeLayer = s("g", { class: "nodes" });
  const byNode = new Map();
  const showAllLabels = edges.length <= 16;
  for (const e of edges) {
    if (e.parent === e.child) continue;
    const a = layout.nodes.get(e.parent);
    const b = layout.nodes.get(e.child);
    const errRate = e.callCount ? e.errorCount / e.callCount : 0;
    const cls = errorClass(errRate);
    let d;
    let mid;
    if (b.x > a.x) {
      const x1 = a.x + W;
      const y1 = a.y + H / 2;
      const x2 = b.x;
      const y2 = b.y + H / 2;
      const c = (x2 - x1) / 2;
      d = `M${x1},${y1} C${x1 + c},${y1} ${x2 - c},${y2} ${x2},${y2}`;
      mid = [(x1 + x2) / 2, (y1 + y2) / 2];
    } else {
      // A call back to the left (a cycle) or within a column: loop below the boxes.
      const x1 = a.x + W / 2;
      const y1 = a.y + H;
      const x2 = b.x + W / 2;
      const y2 = b.y + H;
      const dip = Math.max(y1, y2) + 36;
      d = `M${x1},${y1} C${x1},${dip} ${x2},${dip} ${x2},${y2}`;
      mid = [(x1 + x2) / 2, dip - 8];
    }
    const width = 1.2 + 3.5 * (Math.log1p(e.callCount) / Math.log1p(maxCalls));
    const label = `${rate(e.callCount / seconds)}${e.errorCount ? ` · ${percent(errRate)}` : ""}`;
    const path = s("path", { d, class: `edge ${cls}`, "stroke-width": width.toFixed(2), "marker-end": `url(#arrow-${cls})` },
      s("title", { text: `${e.parent} → ${e.child}: ${count(e.callCount)} calls (${rate(e.callCount / seconds)}), ${count(e.errorCount)} errors (${percent(errRate)})` }));
    const text = s("text", { x: mid[0], y: mid[1] - 4, "text-anchor": "middle", class: ["edge-label", cls, !showAllLabels && "hover-only"], text: label });
    edgeLayer.append(path);
    labelLayer.append(text);
    for (const n of [e.parent, e.child]) {
      if (!byNode.has(n)) byNode.set(n, []);
      byNode.get(n).push(path, text);
    }
  }
  for (const node of layout.nodes.values()) {
    const focus = (on) => {
      svg.classList.toggle("focus", on);
      for (const el of byNode.get(node.name) ?? []) el.classList.toggle("hl", on);
    };
    const g = s("a", {
      href: `/service/${encodeURIComponent(node.name)}`, class: "node", "aria-label": `Service ${node.name}`,
      on: { mouseenter: () => focus(true), mouseleave: () => focus(false), focus: () => focus(true), blur: () => focus(false) },
    },
    s("title", { text: node.name }),
    s("rect", { x: node.x, y: node.y, width: W, height: H, rx: 6, class: "node-box" }),
    s("rect", { x: node.x, y: node.y, width: 6, height: H, rx: 2, fill: serviceColor(node.name) }),
    s("text", { x: node.x + 14, y: node.y + H / 2 + 4, class: "node-label", text: shorten(node.name) }));
    nodeLayer.append(g);
  }
  svg.append(edgeLayer, nodeLayer, labelLayer);
  return svg;
}

export async function render(main, { params, signal, navigate }) {
  document.title = "Service map · meshtrace";
  const lookback = LOOKBACKS.some(([k]) => k === params.get("lookback")) ? params.get("lookback") : "1h";
  const lookbackMs = lookbackMicros(lookback) / 1000;
  const picker = h("select", {
    "aria-label": "Time window", value: lookback,
    on: { change: () => navigate(`/dependencies?lookback=${picker.value}`) },
  }, LOOKBACKS.map(([v, t]) => h("option", { value: v, text: t })));
  const box = h("div", { class: "map-box" }, h("p", { class: "loading", text: "Loading the service graph…" }));
  main.append(h("div", { class: "deps-page" },
    h("div", { class: "page-head" }, h("h1", { text: "Service map" }), picker),
    box));
  const edges = await api.data("/api/dependencies", { endTs: Date.now(), lookback: lookbackMs }, { signal });
  for (const e of edges) {
    e.callCount = Number(e.callCount) || 0;
    e.errorCount = Number(e.errorCount) || 0;
  }
  const seconds = lookbackMs / 1000;
  if (!edges.length) {
    box.replaceChildren(h("section", { class: "empty" }, h("h2", { text: "No calls between services in this window" }),
      h("p", { text: "Edges appear when a span of one service has a parent in another (a CLIENT span and the SERVER span it called)." })));
    return;
  }
  edges.sort((a, b) => b.callCount - a.callCount || a.parent.localeCompare(b.parent));
  const services = new Set(edges.flatMap((e) => [e.parent, e.child]));
  const totalCalls = edges.reduce((n, e) => n + e.callCount, 0);
  const totalErrors = edges.reduce((n, e) => n + e.errorCount, 0);
  box.replaceChildren(
    h("p", { class: "lead", text: `${services.size} services, ${edges.length} edges, ${count(totalCalls)} calls (${rate(totalCalls / seconds)}), ${percent(totalCalls ? totalErrors / totalCalls : 0)} failed.` }),
    h("div", { class: "map-scroll" }, serviceMap(edges, seconds, navigate)),
    h("p", { class: "legend" },
      h("span", { class: "legend-item ok", text: "no errors" }), h("span", { class: "legend-item some", text: "some errors" }),
      h("span", { class: "legend-item bad", text: "5% or more errors" }), " · thicker: more calls · hover a service to see its calls"),
    h("table", { class: "edges-table" },
      h("caption", { text: "Calls between services" }),
      h("thead", {}, h("tr", {}, ["Caller", "Callee", "Calls", "Rate", "Errors", "Error rate"].map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", {}, edges.map((e) => {
        const errRate = e.callCount ? e.errorCount / e.callCount : 0;
        return h("tr", {},
          h("td", {}, h("a", { href: `/service/${encodeURIComponent(e.parent)}`, text: e.parent })),
          h("td", {}, h("a", { href: `/service/${encodeURIComponent(e.child)}`, text: e.child })),
          h("td", { class: "num", text: count(e.callCount) }),
          h("td", { class: "num", text: rate(e.callCount / seconds) }),
          h("td", { class: ["num", e.errorCount > 0 && "err"], text: count(e.errorCount) }),
          h("td", { class: ["num", errorClass(errRate)], text: percent(errRate) }));
      }))));
}
