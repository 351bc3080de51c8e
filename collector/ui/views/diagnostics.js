// What only a mesh-wide tracer can tell: where propagation broke. From the collector's
// `/api/meshtrace/traces/{id}/diagnostics`: orphan spans (a parent that never arrived), several roots,
// CLIENT spans with no SERVER child (the callee is not traced), clock skew, and for each SERVER span made
// by the filter the format its context arrived in.

import { h } from "../dom.js";
import { duration } from "../format.js";

const SOURCE_NOTES = {
  tracecontext: "W3C traceparent",
  b3: "B3 single header",
  b3multi: "B3 multi-header",
  jaeger: "uber-trace-id",
  "x-request-id": "x-request-id only (trace id derived)",
  none: "no context arrived: a new trace started here",
};

function item(entry, text, detail, onSelect, spanById) {
  const span = spanById.get(entry.spanId);
  return h("li", {},
    span
      ? h("button", { type: "button", class: "link", text, on: { click: () => onSelect(span) } })
      : h("span", { text }),
    detail ? h("span", { class: "muted", text: ` ${detail}` }) : null);
}

function group(title, explain, entries, render, cls = "warn") {
  if (!entries.length) return null;
  return h("details", { class: ["diag-group", cls], open: cls === "warn" },
    h("summary", {}, h("b", { text: `${entries.length} ${title}` }), h("span", { class: "muted", text: ` · ${explain}` })),
    h("ul", {}, entries.map(render)));
}

/** The diagnostics panel. `diag` is the endpoint's JSON, or an Error when it could not be read. */
export function diagnosticsPanel(diag, trace, onSelect) {
  if (diag instanceof Error) {
    return h("section", { class: "diagnostics-panel" }, h("h2", { text: "Propagation diagnostics" }),
      h("p", { class: "muted", text: `Unavailable: ${diag.message}` }));
  }
  const spanById = new Map(trace.spans.map((s) => [s.spanId, s]));
  const orphans = diag.orphans ?? [];
  const roots = diag.roots ?? [];
  const untraced = diag.untracedCallees ?? [];
  const skew = diag.clockSkew ?? [];
  const sources = diag.contextSources ?? [];
  const multipleRoots = roots.length > 1 ? roots : [];
  // Broken propagation; a call to an untraced service is worth knowing but breaks nothing.
  const problems = orphans.length + (multipleRoots.length ? 1 : 0) + skew.length;

  const tally = new Map();
  for (const s of sources) tally.set(s.source, (tally.get(s.source) ?? 0) + 1);
  // No context at the trace's first span is where the trace began (the mesh's edge); anywhere else a
  // hop lost it.
  const entry = trace.roots.slice().sort((a, b) => a.start - b.start)[0];
  const isEntry = (s) => entry && s.spanId === entry.spanId;
  const lost = sources.filter((s) => s.source === "none" && !isEntry(s));

  const found = [
    orphans.length && `${orphans.length} orphan ${orphans.length === 1 ? "span" : "spans"}`,
    multipleRoots.length && `${multipleRoots.length} roots`,
    skew.length && `clock skew on ${skew.length} ${skew.length === 1 ? "span" : "spans"}`,
  ].filter(Boolean);
  const leaving = untraced.length ? ` ${untraced.length} ${untraced.length === 1 ? "call leaves" : "calls leave"} the traced mesh.` : "";
  const summary = problems
    ? h("p", { class: "diag-summary bad", role: "status" }, `Propagation broke: ${found.join(", ")}.${leaving}`)
    : h("p", { class: "diag-summary good", role: "status", text: `Propagation intact: one root, every parent arrived.${leaving}` });

  const hops = sources.length
    ? h("details", { class: "diag-group info", open: lost.length > 0 },
      h("summary", {}, h("b", { text: "Context arrived as " }),
        [...tally].map(([src, n], i) => [i ? ", " : "", h("span", { class: ["src", src === "none" && lost.length && "bad"], text: `${src} ×${n}` })])),
      h("table", { class: "hops" },
        h("thead", {}, h("tr", {}, h("th", { text: "Service" }), h("th", { text: "Server span" }), h("th", { text: "Context format" }))),
        h("tbody", {}, sources.map((s) => {
          const span = spanById.get(s.spanId);
          const note = s.source === "none" && isEntry(s) ? "the trace's entry: it began here" : SOURCE_NOTES[s.source];
          return h("tr", { class: s.source === "none" && !isEntry(s) ? "bad" : "" },
            h("td", { text: s.service }),
            h("td", {}, span ? h("button", { type: "button", class: "link", text: s.name, on: { click: () => onSelect(span) } }) : s.name),
            h("td", { text: `${s.source}${note ? ` (${note})` : ""}` }));
        }))))
    : null;

  return h("section", { class: "diagnostics-panel", "aria-label": "Propagation diagnostics" },
    h("h2", { text: "Propagation diagnostics" }),
    summary,
    group(orphans.length === 1 ? "orphan span" : "orphan spans", "its parent never reached the collector: the hop above it did not forward the context, or its span was lost",
      orphans, (o) => item(o, `${o.service}: ${o.name}`, `parent ${o.parentSpanId} missing`, onSelect, spanById)),
    group("roots", "the trace broke into separate trees: a hop started a new trace instead of continuing this one",
      multipleRoots, (r) => item(r, `${r.service}: ${r.name}`, "", onSelect, spanById)),
    group(untraced.length === 1 ? "untraced callee" : "untraced callees", "a CLIENT span with no SERVER span below it: the service it called is not traced (a database, an external API, or a service without a sidecar)",
      untraced, (u) => item(u, `${u.service}: ${u.name}`, u.peer ? `→ ${u.peer}` : "", onSelect, spanById), "info"),
    group("clock skew", "a child starts before its parent: the hosts' clocks disagree",
      skew, (c) => {
        const span = spanById.get(c.spanId);
        return item(c, span ? `${span.service}: ${span.name}` : c.spanId, `starts ${duration(Number(c.skewNanos) / 1000)} before its parent`, onSelect, spanById);
      }),
    hops);
}
