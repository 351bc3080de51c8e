// The span detail pane: what a span is, its attributes (filterable), resource, events, links (which open
// the linked trace), status, and where it sits in the trace.

import { h } from "../dom.js";
import { duration, serviceColor, time } from "../format.js";
import { valueText } from "../model/spans.js";

function kvTable(pairs, caption) {
  if (!pairs.length) return h("p", { class: "muted", text: `No ${caption.toLowerCase()}.` });
  return h("table", { class: "kv" },
    h("caption", { class: "visually-hidden", text: caption }),
    h("tbody", {}, pairs.map(([k, v]) => h("tr", {}, h("th", { scope: "row", text: k }), h("td", { text: valueText(v) })))));
}

function section(title, ...body) {
  return h("section", { class: "detail-section" }, h("h3", { text: title }), ...body);
}

/**
 * trace: from buildTrace; span: the selected one; criticalTime: µs of it on the critical path (0: off);
 * contextSource: how its context arrived (SERVER spans made by the filter); onSelect(span) for parent links.
 */
export function spanDetail(trace, span, { criticalTime, contextSource, onSelect, onClose }) {
  const facts = [
    ["Service", span.service],
    ["Kind", span.kind.toUpperCase()],
    ["Status", span.status.code.toUpperCase() + (span.status.message ? `: ${span.status.message}` : "")],
    ["Duration", duration(span.duration)],
    ["Self time", `${duration(span.selfTime)} (not in any child)`],
    ["Critical path", criticalTime > 0 ? `${duration(criticalTime)} on the critical path` : "not on the critical path"],
    ["Starts at", `+${duration(span.start - trace.start)} (${time(span.start)})`],
    ["Span ID", span.spanId],
  ];
  if (contextSource) facts.push(["Context arrived as", contextSource]);
  if (span.scope.name) facts.push(["Scope", `${span.scope.name}${span.scope.version ? ` ${span.scope.version}` : ""}`]);

  let parentFact;
  if (span.parent) {
    parentFact = h("button", {
      type: "button", class: "link", text: `${span.parent.service}: ${span.parent.name}`,
      on: { click: () => onSelect(span.parent) },
    });
  } else if (span.orphan && span.parentId) {
    parentFact = h("span", { class: "warn-text", text: `${span.parentId} never arrived (orphan)` });
  } else {
    parentFact = h("span", { class: "muted", text: "none (a root)" });
  }

  const warnings = [];
  if (span.skew > 0) warnings.push(`Clock skew: starts ${duration(span.skew)} before its parent. The hosts' clocks disagree, or the parent's start was recorded late.`);
  if (span.orphan) warnings.push(`Orphan: its parent span ${span.parentId || "(cycle)"} is not in this trace. The service that called ${span.service} did not send its span, or sent it under another trace id.`);

  const filter = h("input", { type: "search", placeholder: "Filter attributes", "aria-label": "Filter attributes", class: "attr-filter" });
  const attrsBox = h("div", {});
  const drawAttrs = () => {
    const q = filter.value.trim().toLowerCase();
    const shown = q ? span.attributes.filter(([k, v]) => k.toLowerCase().includes(q) || valueText(v).toLowerCase().includes(q)) : span.attributes;
    attrsBox.replaceChildren(kvTable(shown, "Attributes"));
  };
  filter.addEventListener("input", drawAttrs);
  drawAttrs();

  const events = span.events.length
    ? h("ol", { class: "events" }, span.events.map((e) => h("li", {},
      h("div", { class: "event-head" }, h("span", { class: "mono", text: `+${duration(e.time - span.start)}` }), " ", h("b", { text: e.name || "(unnamed)" })),
      e.attributes.length ? kvTable(e.attributes, "Event attributes") : null)))
    : h("p", { class: "muted", text: "No events." });

  const links = span.links.length
    ? h("ul", { class: "links" }, span.links.map((l) => h("li", {},
      h("a", { href: `/trace/${l.traceId}`, text: l.traceId === trace.traceId ? `span ${l.spanId} in this trace` : `trace ${l.traceId}` }),
      h("span", { class: "muted mono", text: ` span ${l.spanId}` }),
      l.attributes.length ? kvTable(l.attributes, "Link attributes") : null)))
    : h("p", { class: "muted", text: "No links." });

  return h("aside", { class: "span-detail", "aria-label": "Span details" },
    h("header", { class: "detail-head" },
      h("i", { class: "swatch", style: { background: serviceColor(span.service) } }),
      h("div", {}, h("div", { class: "svc", text: span.service }), h("h2", { class: "op", text: span.name })),
      h("button", { type: "button", class: "close", "aria-label": "Close span details", text: "×", on: { click: onClose } })),
    warnings.map((w) => h("p", { class: "warn-box", text: w })),
    span.error ? h("p", { class: "error-box", text: `Error${span.status.message ? `: ${span.status.message}` : ""}` }) : null,
    h("dl", { class: "facts" },
      facts.map(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })]),
      h("dt", { text: "Parent" }), h("dd", {}, parentFact)),
    section(`Attributes (${span.attributes.length})`, filter, attrsBox),
    section(`Resource (${span.resource.length})`, kvTable(span.resource, "Resource")),
    section(`Events (${span.events.length})`, events),
    section(`Links (${span.links.length})`, links));
}
